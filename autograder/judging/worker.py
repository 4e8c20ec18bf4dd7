"""Grading jobs, and the warm worker that forks one per submission.

One job grades one submission (one student, one assignment, its notebooks)
and writes one result file. It is a plain function of a JSON job spec, so the
same job runs three ways:

- in the pool of ``python -m autograder grade``: a *zygote* process imports
  torch, numpy, IPython, nbconvert and course_lib once, then forks a job per
  submission (milliseconds, nothing re-imported);
- as ``python -m autograder grade-one``, one process per submission, e.g. one
  job per submission on a cluster scheduler;
- in the tests, in-process.

A job forks the student's sandboxes *first*, before it reads any source
notebook, so no solution or hidden test is ever in a sandbox's memory. The
job itself is trusted, marked undumpable, and dies with its parent.

The zygote imports ``course_lib`` from a plain copy in a temporary folder of
its own (not from the checkout, nor through an editable install's finder), so
that what a sandbox is shown of it names nothing of the course. Everything a
grader leaves when it is killed (that copy, its scratch folder, cgroups, half
written files) is named after its owner process; `clear_leftovers` removes
what belongs to owners that died.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from .. import REPO_ROOT
from ..files import HALF_WRITTEN, read_bytes, write_atomic
from ..isolation.linux import SandboxError, make_undumpable
from ..isolation.sandbox import Sandbox
from .alignment import read_submission
from .feedback import render_html
from .jobs import JobResult, JobSpec
from .judge import grade_notebook, zero_result
from .plan import Plan
from .source import SourceModel

PRELOAD_MODULES = ("numpy", "torch", "matplotlib.pyplot", "IPython.core.interactiveshell",
                   "IPython.core.inputtransformer2", "ipywidgets", "sklearn.datasets", "nbformat",
                   "nbconvert.exporters.html", "tqdm.auto")


def preload() -> None:
    """Import what every job needs, once, in the process that will fork the jobs."""
    os.environ.setdefault("MPLBACKEND", "agg")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import importlib
    import pkgutil

    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional extras
            pass
    import torch

    torch.set_num_threads(1)  # one job per core; also keeps forked children free of thread pools
    try:
        import course_lib

        for info in pkgutil.iter_modules(course_lib.__path__):
            try:
                importlib.import_module(f"course_lib.{info.name}")
            except Exception:  # noqa: BLE001 - a module being edited by an author right now
                pass
    except ImportError:
        pass
    from ..isolation import file_view
    from . import feedback, judge  # noqa: F401

    file_view.view()  # reads site-packages once here, not in every job

    try:  # compile the feedback template once, so forked jobs render fast
        import nbformat

        feedback.render_html(nbformat.v4.new_notebook(), notebook="warm-up", scores={})
    except Exception:  # noqa: BLE001
        pass
    from IPython.core.inputtransformer2 import TransformerManager

    TransformerManager().transform_cell("x = 1\n")


def run_job(spec: JobSpec) -> JobResult:
    """Grade one submission; returns the result (also written to spec.result_path when given)."""
    make_undumpable()
    start = time.perf_counter()
    submitted = {}
    for name, location in spec.notebooks.items():
        if location is None:
            submitted[name] = None
            continue
        try:
            submitted[name] = read_bytes(location)
        except OSError as error:
            submitted[name] = error
    # sandboxes first: forked before any source notebook is read into this process
    boxes = {}
    for name, data in submitted.items():
        if isinstance(data, bytes):
            try:
                boxes[name] = Sandbox(spec.isolation, spec.limits, hide=spec.hide, notebook_name=f"{name}.ipynb",
                                      notebook_bytes=data).start()
            except SandboxError as error:
                boxes[name] = error
    results = {}
    for name, data in submitted.items():
        source = read_submission(Path(spec.sources[name]).read_bytes())
        model = SourceModel.from_notebook(name, source)
        plan = spec.plans.get(name, Plan())
        if plan.prune:
            model.prune()
        if data is None:
            result = zero_result(model, name, "notebook not submitted")
        elif isinstance(data, Exception):
            result = zero_result(model, name, f"could not read the submitted file: {data}")
        elif isinstance(boxes.get(name), Exception):
            result = zero_result(model, name, f"grader problem: the sandbox did not start ({boxes[name]})")
        else:
            try:
                result = grade_notebook(data, model, plan, boxes[name], cell_timeout=spec.limits.cell_timeout,
                                        notebook=name, cache_dir=spec.cache_dir)
            except Exception as error:  # noqa: BLE001 - a bug of ours must not cost the batch
                boxes[name].kill()
                result = zero_result(model, name, f"grader problem: {type(error).__name__}: {error}")
                result.notes.append(traceback.format_exc()[-4000:])
        if spec.feedback and result.feedback is not None:
            try:
                result.feedback_html = render_html(result.feedback, notebook=name, scores=result.page_scores())
            except Exception as error:  # noqa: BLE001
                result.notes.append(f"feedback page not rendered: {error}")
        for problem in spec.problems:  # found when the submission was listed (course/submissions.py)
            if problem not in result.flags:
                result.flags.append(problem)
        results[name] = result
    out = JobResult(spec.job_id, spec.student, spec.assignment, spec.key, results, time.perf_counter() - start,
                    spec.isolation.mode)
    if spec.result_path:
        write_atomic(Path(spec.result_path), json.dumps(out.to_json()))
    return out


# ---- the zygote ------------------------------------------------------------------------------

def zygote_main() -> None:
    """Read job specs (JSON lines) on stdin, fork a job for each, report when each ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the grader decides when to stop
    from ..isolation import linux

    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    preload()
    out = sys.stdout
    out.write(json.dumps({"ready": os.getpid()}) + "\n")
    out.flush()
    running: dict[int, str] = {}
    buffer = b""
    stdin = sys.stdin.fileno()
    while True:
        ready, _, _ = select.select([stdin], [], [], 0.02)
        if ready:
            chunk = os.read(stdin, 1 << 16)
            if not chunk:
                break
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                if "run" in request:
                    spec = request["run"]
                    parent = os.getpid()
                    pid = os.fork()
                    if pid == 0:
                        _job_child(spec, parent)
                    running[pid] = spec["job_id"]
                    out.write(json.dumps({"started": spec["job_id"], "pid": pid}) + "\n")
                    out.flush()
                elif "kill" in request:
                    for pid, job in list(running.items()):
                        if job == request["kill"]:
                            _kill_tree(pid)
        while running:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            job = running.pop(pid, None)
            if job is not None:
                out.write(json.dumps({"done": job, "code": os.waitstatus_to_exitcode(status)}) + "\n")
                out.flush()
    for pid in running:
        _kill_tree(pid)


def _kill_tree(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _job_child(spec: dict, parent: int) -> None:
    """The forked job: `spec` as JSON, read only after the fork (the zygote stays free of any job's data)."""
    code = 0
    try:
        from ..isolation import linux

        linux.die_with_parent(parent)  # the zygote may have died (killed grader) since the fork
        os.setpgid(0, 0)  # the job and anything it starts outside a sandbox die together
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        run_job(JobSpec.from_json(spec))
    except BaseException:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        code = 1
    finally:
        os._exit(code)


class Pool:
    """The grader's handle on one zygote: submit specs, collect finished job ids, kill stragglers."""

    def __init__(self):
        from ..isolation import file_view

        clear_leftovers()
        code = REPO_ROOT  # the folder that holds the autograder package
        self.runtime = file_view.course_lib_copy()
        # the zygote's sys.path: the copy of course_lib (its working directory, first), then the grader's code
        paths = [str(code)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autograder.judging.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=None, preexec_fn=_die_with_parent, cwd=str(self.runtime or code),
            env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)))
        self._buffer = b""
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the worker has imported everything (it starts importing as soon as it is spawned)."""
        if not self.ready:
            messages = self._read(timeout=600)
            if not messages or "ready" not in messages[0]:
                raise RuntimeError("the grading worker did not start")
            self.ready = True

    def _read(self, timeout: float) -> list[dict]:
        messages, deadline = [], time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                try:
                    messages.append(json.loads(line))
                except ValueError:
                    continue
            if messages:
                return messages
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return messages
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return messages
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise RuntimeError("the grading worker exited")
            self._buffer += chunk

    def submit(self, spec: JobSpec) -> None:
        self.wait_ready()
        self.process.stdin.write((json.dumps({"run": spec.to_json()}) + "\n").encode())
        self.process.stdin.flush()

    def kill(self, job_id: str) -> None:
        self.process.stdin.write((json.dumps({"kill": job_id}) + "\n").encode())
        self.process.stdin.flush()

    def finished(self, timeout: float = 0.2) -> list[tuple[str, int]]:
        done = []
        for message in self._read(timeout):
            if "done" in message:
                done.append((message["done"], message["code"]))
        return done

    def close(self) -> None:
        if not self.ready:
            self.process.kill()  # still importing: nothing to finish
        try:
            self.process.stdin.close()
        except OSError:
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)


# ---- what a grader leaves behind --------------------------------------------------------------------

LEFTOVER = re.compile(r"^vg-[a-z-]+?-(\d+)-(\d+)-")  # vg-<kind>-<owner pid>-<owner start time>-<random>
UNTAGGED = re.compile(r"^vg-(grade|grade-one|unsafe)-[a-z0-9_]{8}$")  # graders before owners were named: by age


def scratch_dir(kind: str) -> Path:
    """A private temporary folder named after this process, so a later run can tell when it is left over."""
    from ..isolation.owners import owner_tag

    return Path(tempfile.mkdtemp(prefix=f"vg-{kind}-{owner_tag()}-"))


def clear_leftovers(course_root: Path | None = None) -> None:
    """Remove what graders that died left: sandbox cgroups (and their processes), scratch folders and
    copies of course_lib in the temporary folder, half-written files in the course root."""
    from ..isolation.cgroups import sweep_cgroups
    from ..isolation.owners import owner_alive

    sweep_cgroups()
    try:
        entries = list(os.scandir(tempfile.gettempdir()))
    except OSError:
        entries = []
    for entry in entries:
        match = LEFTOVER.match(entry.name)
        if not entry.is_dir(follow_symlinks=False):
            continue
        if match and not owner_alive(int(match[1]), int(match[2])) or \
                UNTAGGED.match(entry.name) and time.time() - entry.stat(follow_symlinks=False).st_mtime > 86400:
            shutil.rmtree(entry.path, ignore_errors=True)
    for folder in ([course_root / "autograded", course_root / "feedback"] if course_root else []):
        for parent, _, files in os.walk(folder):
            for name in files:
                match = HALF_WRITTEN.match(name)
                if match and not owner_alive(int(match[1]), None):
                    Path(parent, name).unlink(missing_ok=True)


def _die_with_parent() -> None:
    from ..isolation.linux import PR_SET_PDEATHSIG, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


if __name__ == "__main__":
    zygote_main()
