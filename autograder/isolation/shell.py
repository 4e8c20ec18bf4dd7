"""The student's side of grading: runs inside the sandbox, computes, never judges.

A small server over one socket. The trusted judge (``judging/judge.py``) asks it to
run the student's cells one by one in an IPython shell, to describe the
names a test needs (plain data comes back as data, callables as handles), and
to call the student's functions on the judge's inputs. Everything here can be
rewritten by the student's own code, so nothing here decides a grade: the
judge validates every reply (``wire.decode``) and treats a broken channel as
a dead kernel.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback

from . import wire
from .output import CappedWriter

class Kernel:
    """Serve the judge's requests on `sock` until it says bye or the channel breaks."""

    def __init__(self, sock, *, workdir: str):
        self.sock = sock
        self.workdir = workdir
        self.handles: dict[int, object] = {}
        self.next_handle = 1
        self.in_student_code = False
        self.shell = None
        self.pid = os.getpid()

    # -- setup ---------------------------------------------------------------------------------
    def start_shell(self):
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config

        config = Config()
        config.HistoryManager.enabled = False
        config.InteractiveShell.colors = "NoColor"
        config.InteractiveShell.xmode = "Plain"
        shell = InteractiveShell.instance(config=config)
        shell.user_ns["__name__"] = "__main__"
        self.tracebacks: list[str] = []

        def record_traceback(etype, evalue, stb):
            self.tracebacks.append("\n".join(stb))

        shell._showtraceback = record_traceback
        shell.enable_gui = _enable_gui  # `%matplotlib inline` works as in ipykernel
        self.shell = shell
        signal.signal(signal.SIGINT, self._on_interrupt)

    def _on_interrupt(self, signum, frame):
        if self.in_student_code:
            raise KeyboardInterrupt("interrupted by the grader (time limit)")

    # -- handles ---------------------------------------------------------------------------------
    def _to_handle(self, value):
        ident = self.next_handle
        self.next_handle += 1
        self.handles[ident] = value
        label = getattr(value, "__qualname__", None) or type(value).__name__
        return wire.Handle("kernel", ident, "", str(label)[:100])

    def _resolve(self, handle: wire.Handle):
        if handle.owner == "judge":
            return self._judge_stub(handle)
        if handle.name:
            return self.shell.user_ns[handle.name]
        return self.handles[handle.id]

    def _judge_stub(self, handle: wire.Handle):
        kernel = self

        def judge_function(*args, **kwargs):
            return kernel._callback(handle, args, kwargs)

        judge_function.__name__ = judge_function.__qualname__ = handle.label or "judge_function"
        return judge_function

    def _encode(self, value):
        return wire.encode(value, callable_to_handle=self._to_handle, lenient=True)

    def _decode(self, tree):
        return wire.decode(tree, handle_to_callable=self._resolve)

    # -- requests ------------------------------------------------------------------------------
    def serve(self):
        while True:
            try:
                message = wire.recv(self.sock)
            except (wire.ChannelClosed, OSError):
                return
            if message["op"] == "bye":
                self._send({"op": "bye"})
                return
            self._dispatch(message)

    def _dispatch(self, message):
        op = message["op"]
        try:
            if op == "run":
                reply = self._run_cell(message["source"])
            elif op == "describe":
                reply = {"op": "described", "values": {n: self._describe(n) for n in message["names"]}}
            elif op == "call":
                reply = self._call(message)
            elif op == "getattr":
                reply = self._getattr(message)
            elif op == "exec":
                reply = self._exec_test(message["source"])
            else:
                reply = {"op": "raise", "type": "RuntimeError", "message": f"unknown request {op!r}", "traceback": ""}
        except Exception as error:  # a malformed request: answer, never die
            reply = {"op": "raise", "type": "RuntimeError", "message": f"kernel error: {error!r}"[:2000],
                     "traceback": ""}
        self._send(reply)

    def _send(self, message) -> None:
        """Reply to the judge; a process the student's code forked (whose os.fork() returned 0 and which
        then raised, or returned from the cell) ends here instead of answering as a second kernel."""
        if os.getpid() != self.pid:
            os._exit(0)
        wire.send(self.sock, message)

    def _capture(self):
        out, err = CappedWriter(), CappedWriter()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        return out, err, saved

    def _run_cell(self, source: str) -> dict:
        out, err, saved = self._capture()
        self.tracebacks = []
        start = time.perf_counter()
        self.in_student_code = True
        try:
            result = self.shell.run_cell(source, store_history=False)
            error = result.error_in_exec or result.error_before_exec
        except BaseException as caught:  # noqa: BLE001 - whatever the cell raised, report it
            error = caught
        finally:
            self.in_student_code = False
            sys.stdout, sys.stderr = saved
        seconds = time.perf_counter() - start
        reply = {"op": "ran", "stdout": out.getvalue(), "stderr": err.getvalue(), "seconds": seconds,
                 "error": None}
        if error is not None:
            reply["error"] = {"ename": type(error).__name__, "evalue": str(error)[:2000],
                              "traceback": "\n".join(self.tracebacks)[-20000:]}
        return reply

    def _describe(self, name: str):
        namespace = self.shell.user_ns
        if name not in namespace:
            return ["missing"]
        value = namespace[name]
        if callable(value):
            return ["callable", wire.encode(wire.Handle("kernel", 0, name, name))]
        try:
            return ["data", self._encode(value)]
        except wire.NotPlainData as why:
            return ["opaque", str(why)]
        except Exception as error:  # a value whose iteration or conversion fails
            return ["opaque", f"{type(error).__name__}: {error}"[:500]]

    def _call(self, message) -> dict:
        target = self._decode(message["target"])
        args = self._decode(message["args"])
        kwargs = self._decode(message["kwargs"])
        self._set_rng(message.get("rng"))
        out, err, saved = self._capture()
        self.in_student_code = True
        try:
            value = target(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - report any failure, including SystemExit
            self.in_student_code = False
            sys.stdout, sys.stderr = saved
            return {"op": "raise", "type": type(error).__name__, "message": str(error)[:2000],
                    "traceback": "".join(traceback.format_exception(error))[-8000:],
                    "stdout": out.getvalue(), "stderr": err.getvalue()}
        finally:
            self.in_student_code = False
            sys.stdout, sys.stderr = saved
        reply = {"op": "return", "stdout": out.getvalue(), "stderr": err.getvalue()}
        try:
            reply["value"] = self._encode(value)
        except wire.NotPlainData as why:
            reply["opaque"] = str(why)
        except Exception as error:
            reply["opaque"] = f"{type(error).__name__}: {error}"[:500]
        if message.get("writeback"):
            try:
                reply["args_after"] = self._encode(list(args))
            except Exception:
                reply["args_after"] = None
        return reply

    def _getattr(self, message) -> dict:
        target = self._decode(message["target"])
        try:
            value = getattr(target, message["name"])
        except BaseException as error:  # noqa: BLE001
            return {"op": "raise", "type": type(error).__name__, "message": str(error)[:2000], "traceback": ""}
        try:
            return {"op": "return", "value": self._encode(value)}
        except Exception as why:
            return {"op": "return", "opaque": str(why)[:500]}

    def _exec_test(self, source: str) -> dict:
        """Run a test cell in this kernel (only for tests the judge cannot run outside; flagged if tampered)."""
        out, err, saved = self._capture()
        self.in_student_code = True
        error = None
        try:
            exec(compile(source, "<test cell>", "exec"), self.shell.user_ns)
        except BaseException as caught:  # noqa: BLE001
            error = caught
        finally:
            self.in_student_code = False
            sys.stdout, sys.stderr = saved
        reply = {"op": "ran", "stdout": out.getvalue(), "stderr": err.getvalue(), "error": None}
        if error is not None:
            reply["error"] = {"ename": type(error).__name__, "evalue": str(error)[:2000],
                              "traceback": "".join(traceback.format_exception(error))[-8000:]}
        return reply

    # -- callbacks into the judge ----------------------------------------------------------------
    def _callback(self, handle: wire.Handle, args, kwargs):
        saved = self.in_student_code
        self.in_student_code = False
        try:
            self._send({"op": "callback", "target": wire.encode(handle),
                        "args": self._encode(list(args)), "kwargs": self._encode(dict(kwargs))})
            while True:
                message = wire.recv(self.sock)
                if message["op"] == "return":
                    return self._decode(message["value"])
                if message["op"] == "raise":
                    raise wire.rebuild_exception(message, RuntimeError)
                self._dispatch(message)  # the judge may call back into us while we wait
        finally:
            self.in_student_code = saved

    # -- random state: the judge's, lent for the call (never taken back: the judge keeps its own) --
    def _set_rng(self, rng):
        if not rng:
            return
        import random

        import numpy as np
        import torch

        torch.set_rng_state(torch.from_numpy(wire.decode(rng["torch"])).to(torch.uint8))
        state = rng["numpy"]
        np.random.set_state(("MT19937", wire.decode(state[0]), state[1], state[2], state[3]))
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(int(v) for v in wire.decode(internal)), gauss))
        torch.set_default_dtype(getattr(torch, rng["dtype"]))


def _enable_gui(gui=None):
    """What ipykernel does for `%matplotlib inline` (or no GUI): nothing; a GUI toolkit cannot run here."""
    if gui not in (None, "inline"):
        from IPython.core.error import UsageError

        raise UsageError(f"the grader has no {gui!r} event loop: use %matplotlib inline")


def main(sock, workdir: str):
    """Entry point inside the sandbox (after isolation is in place)."""
    os.chdir(workdir)
    kernel = Kernel(sock, workdir=workdir)
    kernel.start_shell()
    try:
        kernel.serve()
    finally:
        try:
            sock.close()
        except OSError:
            pass
