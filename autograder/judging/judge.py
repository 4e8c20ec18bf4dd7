"""The trusted side of grading one notebook: the kernel computes, the judge decides.

The student's cells run in the sandboxed kernel (``isolation/shell.py``), in the
student's order, as nbgrader would run them. Test cells never run there.
The judge runs them itself, from the *source* notebook, in its own namespace
built from the source's trusted cells (imports, data), in a process the
student's code cannot reach. A name a solution cell defines (an "answer") is
fetched from the kernel when a test needs it: plain data arrives as fresh
objects of known types (``isolation/wire.py``); a function arrives as a proxy whose
calls send the judge's inputs to the kernel and bring plain data back. So
whatever the student patched in their kernel (builtins, numpy, torch,
``checks``, IPython's transformers, lying dunders) cannot touch a verdict.

The judge lends its random state to each call (so a test that seeds and then
calls the student's function sees the same numbers as in a notebook), moves
its own streams on afterwards (so two calls differ), never adopts a state
from the kernel, and writes changes to array arguments back (so "does not
modify its inputs" checks still see modifications).

A test that cannot run this way (say it needs an ``nn.Module`` the student
built, with autograd) is found once per assignment by the calibration run of
the solution (``course/calibration.py``) and runs inside the kernel instead, like plain
nbgrader; a submission that tampers is then flagged and gets no credit for
such tests.
"""

from __future__ import annotations

import builtins
import json
import math
import re
import time

import nbformat
import numpy as np

from .. import KERNELSPEC
from ..isolation import wire
from . import hidden, inspection
from .alignment import Step, align, read_submission
from .cache import RecordingNamespace, TestCache
from .demo import SKIPPED_SOURCE
from .feedback import student_view
from .jobs import CellScore, NotebookResult
from .kernel_client import KernelClient, KernelDied
from .names import bound_names
from .plan import Plan, first_line, plan_steps
from .rng import restore_rng, save_rng
from .source import SourceCell, SourceModel
from .trusted import Execution, run_trusted
from .version import GRADER_VERSION


def zero_result(model: SourceModel, notebook: str, reason: str) -> NotebookResult:
    """Nothing could run (unreadable file, missing notebook): every graded cell scores 0, flagged."""
    result = NotebookResult(notebook, flags=[reason])
    for cell in model.graded():
        result.scores[cell.grade_id] = CellScore(0.0, cell.points, "none", reason)
    return result


def grade_notebook(data: bytes, model: SourceModel, plan: Plan, sandbox, *, cell_timeout: float,
                   notebook: str, cache_dir: str | None = None) -> NotebookResult:
    """Grade one submitted notebook against its source model; `sandbox` is started but unused so far."""
    start = time.perf_counter()
    try:
        nb = read_submission(data)
    except ValueError as error:
        sandbox.kill()
        result = zero_result(model, notebook, f"unreadable notebook: {error}")
        result.seconds = time.perf_counter() - start
        return result
    steps, notes = align(nb, model)
    result = NotebookResult(notebook)
    result.flags += notes  # every departure from the released notebook is for the instructor to see
    skipped, name_notes = plan_steps(steps, model, plan)
    written = [(i, s.cell["source"]) for i, s in enumerate(steps) if s.student_written and s.kind == "student"]
    findings = inspection.inspect_cells(written)
    for finding in findings[:20]:
        result.flags.append(f"suspicious code: {finding.describe()}")
    if len(findings) > 20:
        result.flags.append(f"... and {len(findings) - 20} more suspicious constructs")
    client = KernelClient(sandbox, call_timeout=cell_timeout)
    cache = TestCache(cache_dir, f"{GRADER_VERSION}:{model.sha256}:{json.dumps(plan.to_json(), sort_keys=True)}")
    judge = Judge(model, plan, client, cell_timeout, cache)
    judge.name_notes.update(name_notes)
    for position, step in enumerate(steps):
        if step.kind == "student" and position in skipped:
            step.cell["outputs"] = [_stream("stdout", "(not run during grading: no answer or test uses it)\n")]
        elif step.kind == "student":
            judge.run_student(position, step)
        elif step.kind == "demo":
            step.cell["outputs"] = [_stream("stdout", SKIPPED_SOURCE.lstrip("# ") + "\n")]
        elif step.kind == "test":
            judge.run_test(step)
        elif step.kind == "manual":
            cell = model.by_id(step.grade_id)
            unchanged = step.cell["source"].strip() == "" or step.cell["source"] == _released_stub(cell)
            result.scores[step.grade_id] = CellScore(0.0 if unchanged else None, cell.points, "manual",
                                                     "no response" if unchanged else None)
    if client.dead is None:
        try:
            wire.send(sandbox.sock, {"op": "bye"})
        except OSError:
            pass
    exit_ = sandbox.close()
    result.scores.update(judge.scores)
    for cell in model.graded():
        if cell.grade_id not in result.scores:
            result.scores[cell.grade_id] = CellScore(0.0, cell.points, "none", "test cell not run")
    result.flags += judge.flags
    if client.dead:
        result.flags.append(f"the kernel stopped early: {client.dead}")
    elif exit_.oom:
        result.flags.append("the kernel hit the memory limit")
    if exit_.pids_exhausted:
        result.flags.append("the kernel hit the process limit")
    if client.timeouts:
        result.flags.append(f"student code ran past the {cell_timeout:.0f} s time limit {client.timeouts} time(s) "
                            "and was interrupted")
    if client.tampered:
        result.flags.append(f"tampering with the grader's channel: {client.tampered}")
    kernel_judged = [gid for gid, s in result.scores.items() if s.mode == "kernel"]
    tamper = any(f.startswith(("suspicious code", "tampering")) for f in result.flags)
    if kernel_judged and tamper:
        for gid in kernel_judged:
            score = result.scores[gid]
            if score.score:
                score.score = 0.0
                score.error = "not credited: this test ran inside the kernel, which this submission tampers with"
        result.flags.append(f"tests {kernel_judged} ran inside the kernel: no credit given until reviewed")
    cells = [step.cell for step in steps]
    autograded = nbformat.v4.new_notebook()
    autograded.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    autograded.cells = [nbformat.from_dict(c) for c in cells]
    for position, cell in enumerate(autograded.cells):
        cell.setdefault("id", f"cell-{position:03d}")
        if not cell.get("id") or not isinstance(cell.get("id"), str):
            cell["id"] = f"cell-{position:03d}"
    _unique_ids(autograded)
    result.autograded = autograded
    result.feedback = feedback_notebook(autograded, model.hidden_test_lines())
    result.seconds = time.perf_counter() - start
    return result


def _released_stub(cell: SourceCell) -> str:
    from nbgrader.preprocessors import ClearSolutions

    clear = ClearSolutions()
    stub = nbformat.v4.new_code_cell(cell.source) if cell.cell_type == "code" else \
        nbformat.v4.new_markdown_cell(cell.source)
    stub.metadata["nbgrader"] = {"solution": True, "grade_id": cell.grade_id}
    try:
        clear._replace_solution_region(stub, "python")
    except Exception:  # noqa: BLE001
        return cell.source
    return stub.source


def _unique_ids(nb) -> None:
    seen = set()
    for position, cell in enumerate(nb.cells):
        ident = str(cell.get("id") or f"cell-{position:03d}")[:64]
        while ident in seen:
            ident = f"{ident[:58]}-{position:03d}"
        seen.add(ident)
        cell["id"] = ident


def _stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _error_output(error: dict) -> dict:
    lines = (error.get("traceback") or "").splitlines() or [f"{error['ename']}: {error['evalue']}"]
    return {"output_type": "error", "ename": error["ename"], "evalue": error["evalue"], "traceback": lines}


class Judge:
    def __init__(self, model: SourceModel, plan: Plan, client: KernelClient, cell_timeout: float,
                 cache: TestCache | None = None):
        self.model, self.plan, self.client, self.timeout = model, plan, client, cell_timeout
        self.namespace = RecordingNamespace({"__name__": "__main__", "__builtins__": builtins})
        self.cache = cache or TestCache(None, "")
        self.trusted_done = 0
        self.scores: dict[str, CellScore] = {}
        self.flags: list[str] = []
        self.name_notes: dict[str, str] = {}  # name -> why the kernel does not have it (see plan_steps)
        self.cell_errors: dict[str, str] = {}  # name a failed student cell binds -> the sentence to show

    def run_student(self, position: int, step: Step) -> None:
        cell = step.cell
        if self.client.dead:
            cell["outputs"] = [_stream("stderr", f"(not run: the kernel had stopped: {self.client.dead})\n")]
            return
        try:
            reply = self.client.run_cell(cell["source"], timeout=self.timeout)
        except KernelDied as died:
            cell["outputs"] = [_stream("stderr", f"(the kernel stopped while running this cell: {died})\n")]
            self.flags.append(f"the kernel stopped in cell {position + 1}: {died}")
            return
        outputs = []
        for name in ("stdout", "stderr"):
            text = reply.get(name)
            if isinstance(text, str) and text:
                outputs.append(_stream(name, text))
        error = reply.get("error")
        if isinstance(error, dict):
            outputs.append(_error_output({"ename": str(error.get("ename", "Error"))[:100],
                                          "evalue": str(error.get("evalue", ""))[:2000],
                                          "traceback": str(error.get("traceback", ""))[:20000]}))
            if error.get("ename") == "SystemExit":
                self.flags.append(f"cell {position + 1} tried to end the kernel (SystemExit)")
        if reply.get("interrupted_after"):
            self.flags.append(f"cell {position + 1} ran longer than {self.timeout:.0f} s and was interrupted")
        if isinstance(error, dict) or reply.get("interrupted_after"):
            self._explain_failed_cell(step, error if isinstance(error, dict) else {}, outputs,
                                      bool(reply.get("interrupted_after")))
        cell["outputs"] = outputs

    def _explain_failed_cell(self, step: Step, error: dict, outputs: list, interrupted: bool) -> None:
        """Say why a cell failed when the cause is grading's (a name only a demo cell or a later cell
        defines), and remember the cause for the names the cell should have defined."""
        ename = str(error.get("ename", "Error"))[:100]
        missing = _undefined_name(error)
        note = self.name_notes.get(missing) if missing else None
        if note:
            outputs.append(_stream("stderr", f"(grader) {note}.\n"))
        first = first_line(step.cell["source"])
        if step.demo:
            why = "ran past the time limit" if interrupted else f"failed during grading ({ename})"
            note = note or f"it comes from the demonstration cell that starts `{first}`, which {why}"
        names = set(bound_names(step.cell["source"]))
        source_cell = self.model.by_id(step.grade_id) if step.grade_id else None
        if source_cell is not None:
            names |= bound_names(source_cell.source, imports=False)  # what this answer cell should define
        for name in names:
            self.cell_errors.setdefault(name, note or f"the cell that should define it stopped with {ename}")
            if step.demo:
                self.name_notes.setdefault(name, f"`{name}` comes from the demonstration cell that starts "
                                                 f"`{first}`, which failed during grading")

    def _explain_name_error(self, failure: dict) -> str | None:
        """A student-facing sentence for a test's NameError caused by a missing answer or grading's order."""
        missing = _undefined_name(failure)
        if not missing:
            return None
        if missing in self.name_notes:
            return self.name_notes[missing]
        if missing in self.model.answer_names:
            why = self.cell_errors.get(missing)
            return f"`{missing}` is not set" + (f": {why}" if why else ": no cell of the notebook defines it")
        return None

    def _catch_up(self, upto: int) -> None:
        """Run the trusted cells of the source before index `upto` that the judge has not run yet."""
        for cell in self.model.cells[self.trusted_done:upto]:
            trusted = cell.kind in ("plain", "locked") and cell.cell_type == "code" and (
                cell.needed or not self.plan.prune)
            if trusted or (cell.kind == "demo" and cell.needed):
                seconds = max(self.timeout, 120)
                run = run_trusted(cell.source, self.namespace, filename=f"<source cell {cell.index + 1}>",
                                  timeout=seconds, deadline=self.client.sandbox.deadline(seconds))
                if not run.ok:
                    self.flags.append(f"grader problem: trusted source cell {cell.index + 1} failed in the judge "
                                      f"({run.error['ename']}: {run.error['evalue'][:200]})")
        self.trusted_done = max(self.trusted_done, upto)

    def _refresh_answers(self) -> None:
        names = self.model.answer_names
        if not names:
            return
        described = self.client.describe(names)
        for name, (kind, value) in described.items():
            if kind == "missing":
                self.namespace.pop(name, None)
            else:
                self.namespace[name] = value

    def run_test(self, step: Step) -> None:
        cell_model = self.model.by_id(step.grade_id)
        points = cell_model.points
        self._catch_up(cell_model.index)
        segments = hidden.split_hidden(cell_model.source)
        in_kernel = step.grade_id in self.plan.kernel_tests
        if self.client.dead:
            error = f"not run: the kernel had stopped ({self.client.dead})"
            step.cell["outputs"] = [_stream("stderr", error + "\n")]
            self.scores[step.grade_id] = CellScore(0.0, points, "kernel" if in_kernel else "judge", error)
            step.cell["metadata"]["autograder"] = {"visible_outputs": 1, "hidden_failed": None}
            return
        ok, value, failure, hidden_failed = True, None, None, False
        visible_outputs, hidden_outputs = [], []
        if not in_kernel:
            try:
                self._refresh_answers()
            except KernelDied as died:
                ok, failure = False, {"ename": "KernelDied", "evalue": str(died), "traceback": ""}
        if ok and not in_kernel and not hidden.segments_compile(cell_model.source):
            segments = [(cell_model.source, True)]
        rng = None if in_kernel else save_rng()  # each test starts from a state no student influenced
        cacheable = ok and not in_kernel and not cell_model.exports
        hit = self.cache.lookup(step.grade_id, self.namespace) if cacheable else None
        if hit is not None:
            restore_rng(rng)
            ok, failure, hidden_failed = hit["ok"], hit["failure"], hit["hidden_failed"]
            visible_outputs, hidden_outputs = hit["visible"], hit["hidden"]
            value = wire.decode(hit["value"]) if hit["value"] is not None else None
            segments = []
        calls_before = self.client.remote_calls
        if cacheable and hit is None:
            self.namespace.start_recording()
        hidden_seen = False  # outputs after hidden inputs were in play are never shown
        for number, (code, is_hidden) in enumerate(segments if ok else []):
            hidden_seen = hidden_seen or is_hidden
            if in_kernel:
                try:
                    reply = self.client.exec_test(code, timeout=self.timeout)
                    run = Execution(reply.get("error") is None, str(reply.get("stdout", "")),
                                    str(reply.get("stderr", "")), reply.get("error") if isinstance(
                                        reply.get("error"), dict) else None)
                except KernelDied as died:
                    run = Execution(False, error={"ename": "KernelDied", "evalue": str(died), "traceback": ""})
            else:
                run = run_trusted(code, self.namespace, filename=f"<test {step.grade_id}>", timeout=self.timeout + 10,
                                  deadline=self.client.sandbox.deadline(self.timeout + 10))
                if run.error and run.error.pop("alarm", False):
                    self.client.die(f"a test did not finish within {self.timeout + 10:.0f} s")  # channel state unknown
            produced = []
            if run.stdout:
                produced.append(_stream("stdout", run.stdout))
            if run.stderr:
                produced.append(_stream("stderr", run.stderr))
            if run.error:
                produced.append(_error_output(run.error))
            (hidden_outputs if hidden_seen else visible_outputs).extend(produced)
            if not run.ok:
                ok, failure, hidden_failed = False, run.error, hidden_seen
                break
            if number == len(segments) - 1:
                value = run.value
        reads = self.namespace.stop_recording()
        if rng is not None and hit is None:
            restore_rng(rng)
        if cacheable and hit is None and reads is not None and self.client.remote_calls == calls_before \
                and not self.client.dead and not (failure and failure.get("ename") in ("TimeoutError", "KernelDied")):
            fingerprints = sorted(reads.items())
            try:
                encoded_value = None if value is None else wire.encode(value)
            except wire.NotPlainData:
                fingerprints = [(None, None)]
            if all(fp is not None for _, fp in fingerprints):
                self.cache.store(step.grade_id, fingerprints, {
                    "ok": ok, "failure": failure, "hidden_failed": hidden_failed, "visible": visible_outputs,
                    "hidden": hidden_outputs, "value": encoded_value})
        score = float(points) if ok else 0.0
        if ok and value is not None and not isinstance(value, bool):
            try:
                partial = float(value) if isinstance(value, (int, float, np.integer, np.floating)) else None
            except (TypeError, ValueError):
                partial = None
            if partial is not None and math.isfinite(partial):
                score = min(max(partial, 0.0), float(points))
                visible_outputs.append({"output_type": "execute_result", "execution_count": None,
                                        "metadata": {}, "data": {"text/plain": repr(value)}})
        message = None if ok else f"{failure['ename']}: {failure['evalue']}"
        explained = None if ok or failure.get("ename") != "NameError" else self._explain_name_error(failure)
        if explained:
            message = f"NameError: {explained}"
            if not hidden_failed:
                for output in visible_outputs:
                    if output.get("output_type") == "error":
                        output.update(evalue=explained, traceback=[f"NameError: {explained}"])
        step.cell["outputs"] = visible_outputs + hidden_outputs
        hidden_summary = None
        if hidden_failed and failure:
            hidden_summary = failure_kind(failure) + (f": {explained}" if explained else "")
        step.cell["metadata"]["autograder"] = {"visible_outputs": len(visible_outputs),
                                               "hidden_failed": hidden_summary}
        self.scores[step.grade_id] = CellScore(score, points, "kernel" if in_kernel else "judge", message,
                                               hidden_failed)


_NAME_ERROR = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def _undefined_name(error: dict) -> str | None:
    if error.get("ename") not in ("NameError", "UnboundLocalError"):
        return None
    match = _NAME_ERROR.search(str(error.get("evalue", "")))
    return match.group(1) if match else None


_SAFE_ERROR_NAMES = {name for name, obj in vars(builtins).items()
                     if isinstance(obj, type) and issubclass(obj, BaseException)} | {"LinAlgError", "CheckFailed"}


def failure_kind(failure: dict) -> str:
    """What a failed hidden test may tell the student: the kind of failure, never a message or output
    produced while hidden inputs were in play (an answer can put them into its exception's message)."""
    ename = str(failure.get("ename", ""))
    if ename in ("TimeoutError", "KeyboardInterrupt") or failure.get("alarm"):
        return "took too long"
    if ename in ("AssertionError", "CheckFailed"):
        return "wrong value"
    if ename == "KernelDied":
        return "the kernel stopped"
    if ename == "NotTransferable":
        return "returned something that is not plain data (numbers, arrays, strings, lists, dicts)"
    if ename == "StudentCodeError":  # "Kind: message" from the kernel: the kind only if it names a known class
        kind = str(failure.get("evalue", "")).split(":", 1)[0].strip()
        return f"{kind} raised" if kind in _SAFE_ERROR_NAMES else "an exception of a class of your own raised"
    return f"{ename} raised" if ename.isidentifier() else "an exception raised"


def feedback_notebook(autograded, secret_lines: set[str]) -> dict:
    """The autograded notebook as the student may see it (see feedback.student_view)."""
    return student_view(autograded, secret_lines)
