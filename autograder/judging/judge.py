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
import re
import time

import nbformat

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
from .outcome import Outcome, failure_kind, returned_score
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
    result.flags += inspection_flags(steps)
    client = KernelClient(sandbox, call_timeout=cell_timeout)
    cache = TestCache(cache_dir, f"{GRADER_VERSION}:{model.sha256}:{json.dumps(plan.to_json(), sort_keys=True)}")
    judge = Judge(model, plan, client, cell_timeout, cache)
    judge.name_notes.update(name_notes)
    result.scores.update(judge.run(steps, skipped))
    exit_ = _end_kernel(client, sandbox)
    result.scores.update(judge.scores)
    for cell in model.graded():
        if cell.grade_id not in result.scores:
            result.scores[cell.grade_id] = CellScore(0.0, cell.points, "none", "test cell not run")
    result.flags += judge.flags + kernel_flags(client, exit_, cell_timeout)
    _withhold_kernel_credit(result)
    result.autograded = autograded_notebook([step.cell for step in steps])
    result.feedback = feedback_notebook(result.autograded, model.hidden_test_lines())
    result.seconds = time.perf_counter() - start
    return result


def inspection_flags(steps: list[Step]) -> list[str]:
    """A flag per suspicious construct static inspection finds in the cells the student wrote (20 at most)."""
    written = [(i, s.cell["source"]) for i, s in enumerate(steps) if s.student_written and s.kind == "student"]
    findings = inspection.inspect_cells(written)
    flags = [f"suspicious code: {finding.describe()}" for finding in findings[:20]]
    if len(findings) > 20:
        flags.append(f"... and {len(findings) - 20} more suspicious constructs")
    return flags


def _end_kernel(client: KernelClient, sandbox):
    """Say goodbye to a kernel still alive, then close the sandbox; how it ended."""
    if client.dead is None:
        try:
            wire.send(sandbox.sock, {"op": "bye"})
        except OSError:
            pass
    return sandbox.close()


def kernel_flags(client: KernelClient, exit_, cell_timeout: float) -> list[str]:
    """What the kernel did that the instructor should see: stopped early, hit a limit, ran out of time,
    tampered with the channel."""
    flags = []
    if client.dead:
        flags.append(f"the kernel stopped early: {client.dead}")
    elif exit_.oom:
        flags.append("the kernel hit the memory limit")
    if exit_.pids_exhausted:
        flags.append("the kernel hit the process limit")
    if client.timeouts:
        flags.append(f"student code ran past the {cell_timeout:.0f} s time limit {client.timeouts} time(s) "
                     "and was interrupted")
    if client.tampered:
        flags.append(f"tampering with the grader's channel: {client.tampered}")
    return flags


def _withhold_kernel_credit(result: NotebookResult) -> None:
    """Tests run inside the kernel of a submission that tampers (or looks like it does) score 0 until reviewed."""
    kernel_judged = [gid for gid, s in result.scores.items() if s.mode == "kernel"]
    tamper = any(f.startswith(("suspicious code", "tampering")) for f in result.flags)
    if not (kernel_judged and tamper):
        return
    for gid in kernel_judged:
        score = result.scores[gid]
        if score.score:
            score.score = 0.0
            score.error = "not credited: this test ran inside the kernel, which this submission tampers with"
    result.flags.append(f"tests {kernel_judged} ran inside the kernel: no credit given until reviewed")


def autograded_notebook(cells: list[dict]):
    """The graded cells, with their outputs, as a notebook (every cell with an id of its own)."""
    autograded = nbformat.v4.new_notebook()
    autograded.metadata = {"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}}
    autograded.cells = [nbformat.from_dict(c) for c in cells]
    for position, cell in enumerate(autograded.cells):
        cell.setdefault("id", f"cell-{position:03d}")
        if not cell.get("id") or not isinstance(cell.get("id"), str):
            cell["id"] = f"cell-{position:03d}"
    _unique_ids(autograded)
    return autograded


def _manual_score(cell: SourceCell, step: Step) -> CellScore:
    """A manually graded cell: 0 and "no response" when left as released, else for the instructor."""
    unchanged = step.cell["source"].strip() == "" or step.cell["source"] == _released_stub(cell)
    return CellScore(0.0 if unchanged else None, cell.points, "manual", "no response" if unchanged else None)


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

    def run(self, steps: list[Step], skipped: set[int]) -> dict[str, CellScore]:
        """Each step in the submission's order: student cells in the kernel (those grading skips noted as
        such), tests here (scores in self.scores); returns the scores of the manually graded cells."""
        manual = {}
        for position, step in enumerate(steps):
            if step.kind == "student" and position in skipped:
                step.cell["outputs"] = [_stream("stdout", "(not run during grading: no answer or test uses it)\n")]
            elif step.kind == "student":
                self.run_student(position, step)
            elif step.kind == "demo":
                step.cell["outputs"] = [_stream("stdout", SKIPPED_SOURCE.lstrip("# ") + "\n")]
            elif step.kind == "test":
                self.run_test(step)
            elif step.kind == "manual":
                manual[step.grade_id] = _manual_score(self.model.by_id(step.grade_id), step)
        return manual

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
        """Run a test cell (here, or in the kernel if the plan says so) and score it: full points, the
        number it returns (clipped to its points), or 0 with the failure."""
        cell_model = self.model.by_id(step.grade_id)
        self._catch_up(cell_model.index)
        segments = hidden.split_hidden(cell_model.source)
        in_kernel = step.grade_id in self.plan.kernel_tests
        if self.client.dead:
            self._not_run(step, cell_model.points, in_kernel)
            return
        outcome = Outcome()
        if in_kernel:
            self._run_segments(step, segments, outcome, in_kernel=True)
        else:
            try:
                self._refresh_answers()
            except KernelDied as died:
                outcome.fail({"ename": "KernelDied", "evalue": str(died), "traceback": ""}, hidden=False)
            if outcome.ok and not hidden.segments_compile(cell_model.source):
                segments = [(cell_model.source, True)]
            self._judge_test(step, cell_model, segments, outcome)
        self._score(step, cell_model.points, outcome, in_kernel)

    def _not_run(self, step: Step, points: float, in_kernel: bool) -> None:
        error = f"not run: the kernel had stopped ({self.client.dead})"
        step.cell["outputs"] = [_stream("stderr", error + "\n")]
        self.scores[step.grade_id] = CellScore(0.0, points, "kernel" if in_kernel else "judge", error)
        step.cell["metadata"]["autograder"] = {"visible_outputs": 1, "hidden_failed": None}

    def _judge_test(self, step: Step, cell_model: SourceCell, segments: list, outcome: Outcome) -> None:
        """A test run here, from a random state no student influenced; its outcome taken from the test cache
        when a submission with the same answers had it, and stored there when it only read plain answers."""
        rng = save_rng()
        cacheable = outcome.ok and not cell_model.exports
        hit = self.cache.lookup(step.grade_id, self.namespace) if cacheable else None
        if hit is not None:
            restore_rng(rng)
            outcome.restore(hit)
            return
        calls_before = self.client.remote_calls
        if cacheable:
            self.namespace.start_recording()
        self._run_segments(step, segments if outcome.ok else [], outcome, in_kernel=False)
        reads = self.namespace.stop_recording()
        restore_rng(rng)
        if cacheable and reads is not None and self.client.remote_calls == calls_before and not self.client.dead \
                and not (outcome.failure and outcome.failure.get("ename") in ("TimeoutError", "KernelDied")):
            fingerprints = sorted(reads.items())
            try:
                stored = outcome.to_cache()
            except wire.NotPlainData:
                return
            if all(fp is not None for _, fp in fingerprints):
                self.cache.store(step.grade_id, fingerprints, stored)

    def _run_segments(self, step: Step, segments: list, outcome: Outcome, *, in_kernel: bool) -> None:
        """Run the test's segments in order until one fails; what runs once hidden inputs are in play is
        kept apart (never shown); the last segment's value is the test's."""
        hidden_seen = False
        for number, (code, is_hidden) in enumerate(segments):
            hidden_seen = hidden_seen or is_hidden
            run = self._exec_in_kernel(code) if in_kernel else self._exec_here(code, step.grade_id)
            (outcome.hidden if hidden_seen else outcome.visible).extend(_run_outputs(run))
            if not run.ok:
                outcome.fail(run.error, hidden=hidden_seen)
                return
            if number == len(segments) - 1:
                outcome.value = run.value

    def _exec_in_kernel(self, code: str) -> Execution:
        try:
            reply = self.client.exec_test(code, timeout=self.timeout)
            return Execution(reply.get("error") is None, str(reply.get("stdout", "")), str(reply.get("stderr", "")),
                             reply.get("error") if isinstance(reply.get("error"), dict) else None)
        except KernelDied as died:
            return Execution(False, error={"ename": "KernelDied", "evalue": str(died), "traceback": ""})

    def _exec_here(self, code: str, grade_id: str) -> Execution:
        run = run_trusted(code, self.namespace, filename=f"<test {grade_id}>", timeout=self.timeout + 10,
                          deadline=self.client.sandbox.deadline(self.timeout + 10))
        if run.error and run.error.pop("alarm", False):
            self.client.die(f"a test did not finish within {self.timeout + 10:.0f} s")  # channel state unknown
        return run

    def _score(self, step: Step, points: float, outcome: Outcome, in_kernel: bool) -> None:
        """The test's score and message, its outputs in the cell, and what feedback may say of a hidden failure."""
        score = float(points) if outcome.ok else 0.0
        partial = returned_score(outcome.value, points) if outcome.ok else None
        if partial is not None:
            score = partial
            outcome.visible.append({"output_type": "execute_result", "execution_count": None,
                                    "metadata": {}, "data": {"text/plain": repr(outcome.value)}})
        failure = outcome.failure
        message = None if outcome.ok else f"{failure['ename']}: {failure['evalue']}"
        explained = None if outcome.ok or failure.get("ename") != "NameError" else self._explain_name_error(failure)
        if explained:
            message = f"NameError: {explained}"
            if not outcome.hidden_failed:
                for output in outcome.visible:
                    if output.get("output_type") == "error":
                        output.update(evalue=explained, traceback=[f"NameError: {explained}"])
        step.cell["outputs"] = outcome.visible + outcome.hidden
        hidden_summary = None
        if outcome.hidden_failed and failure:
            hidden_summary = failure_kind(failure) + (f": {explained}" if explained else "")
        step.cell["metadata"]["autograder"] = {"visible_outputs": len(outcome.visible),
                                               "hidden_failed": hidden_summary}
        self.scores[step.grade_id] = CellScore(score, points, "kernel" if in_kernel else "judge", message,
                                               outcome.hidden_failed)


def _run_outputs(run: Execution) -> list[dict]:
    outputs = [_stream("stdout", run.stdout)] if run.stdout else []
    if run.stderr:
        outputs.append(_stream("stderr", run.stderr))
    if run.error:
        outputs.append(_error_output(run.error))
    return outputs


_NAME_ERROR = re.compile(r"name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")


def _undefined_name(error: dict) -> str | None:
    if error.get("ename") not in ("NameError", "UnboundLocalError"):
        return None
    match = _NAME_ERROR.search(str(error.get("evalue", "")))
    return match.group(1) if match else None


def feedback_notebook(autograded, secret_lines: set[str]) -> dict:
    """The autograded notebook as the student may see it (see feedback.student_view)."""
    return student_view(autograded, secret_lines)
