"""Trusted (instructor) code run in the judge's process: captured output, the last expression's value,
a deadline counted in the time the test had, tracebacks without the grader's own frames."""

from __future__ import annotations

import ast
import linecache
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..isolation.output import CappedWriter
from .ipython import to_python
from .kernel_client import KernelDied


class _Alarm(BaseException):
    """The judge's own deadline for a cell (BaseException: tests must not swallow it)."""


@dataclass
class Execution:
    ok: bool
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None
    value: object = None
    seconds: float = 0.0


def run_trusted(source: str, namespace: dict, *, filename: str, timeout: float | None = None,
                deadline=None) -> Execution:
    """Execute trusted (instructor) code in `namespace`, capturing output; the last expression's value is kept.
    With `deadline` (sandbox.Deadline), `timeout` counts the time the test had, not wall-clock time."""
    out, err = CappedWriter(), CappedWriter()
    saved = sys.stdout, sys.stderr
    start = time.perf_counter()
    python = to_python(source)
    linecache.cache[filename] = (len(python), None, python.splitlines(True), filename)
    value, error = None, None
    previous = signal.signal(signal.SIGALRM, _alarm_handler(deadline)) if timeout else None
    if timeout:
        signal.setitimer(signal.ITIMER_REAL, timeout)
    sys.stdout, sys.stderr = out, err
    try:
        tree = ast.parse(python, filename)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), namespace)
        if last is not None:
            value = eval(compile(last, filename, "eval"), namespace)
    except _Alarm:
        error = {"ename": "TimeoutError", "evalue": f"the test did not finish within {timeout:.0f} s",
                 "traceback": "", "alarm": True}
    except KernelDied as died:
        error = {"ename": "KernelDied", "evalue": str(died), "traceback": ""}
    except BaseException as caught:  # noqa: BLE001 - a failing test is an outcome, not a crash
        if isinstance(caught, (SystemExit, KeyboardInterrupt)) and not isinstance(caught, SystemExit):
            raise
        error = {"ename": type(caught).__name__, "evalue": str(caught)[:4000], "traceback": _format_error(caught)}
    finally:
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        sys.stdout, sys.stderr = saved
        linecache.cache.pop(filename, None)
    return Execution(error is None, out.getvalue(), err.getvalue(), error, value, time.perf_counter() - start)


_OWN_FILES = str(Path(__file__).resolve().parent.parent)  # autograder/: the grader's frames


def _format_error(error: BaseException) -> str:
    """The traceback of a failed test as a student should see it: the test's frames and the library's,
    not the grader's own."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(_OWN_FILES)]
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(error), error)
    return "".join(lines)[-8000:]


def _alarm_handler(deadline):
    """SIGALRM ends the test, unless `deadline` says time is left (a busy machine): then it re-arms."""
    def on_alarm(signum, frame):
        left = deadline.remaining() if deadline is not None else 0
        if left > 0:
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.05))
            return
        raise _Alarm()

    return on_alarm
