"""Calibration: the solution, graded like a student, must get full marks; the grading plan of each
notebook (judging/plan.Plan) is the first way of running its tests that gives them. Cached per source
version and grader version."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
from nbgrader.utils import is_grade, is_solution

from ..files import write_atomic
from ..judging.hidden import strip_hidden
from ..judging.jobs import JobSpec
from ..judging.plan import Plan
from ..judging.version import GRADER_VERSION
from .batch import Batch, Runner
from .root import Course, GradingError
from .submissions import Submission

REFERENCE_STUDENT = "__reference__"


def _reference_file(source: Path, scratch: Path, name: str) -> Path:
    """The solution notebook as a submission (hidden tests stripped from its copy: the kernel never needs them)."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        if is_grade(cell) and not is_solution(cell):
            cell.source = strip_hidden(cell.source)
    path = scratch / "reference" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


LADDER = ["judge, pruned", "judge", "failing tests in the kernel", "all tests in the kernel"]  # the plans tried


def calibrate(course: Course, runner: Runner, targets: dict[str, list[str]], sources: dict, *, batch: Batch,
              log=print) -> dict[str, Plan]:
    """Find how each notebook's tests can run (see judging/plan.Plan): the solution must get full marks.

    Tries, in order (LADDER): judge everything (skipping trusted cells no test needs);
    judge everything; run the failing tests inside the kernel; run all tests
    inside the kernel (plain nbgrader). Cached per source version.
    """
    plans, pending = {}, {}
    for assignment, names in targets.items():
        for name in names:
            cached = _cached_plan(course, name, sources[name]["sha"])
            if cached is not None:
                plans[name] = cached
            else:
                pending[name] = {"assignment": assignment, "plan": Plan(), "step": 0}
    while pending:
        specs = [_reference_spec(batch, sources, name, state) for name, state in pending.items()]
        results = runner.run(specs)
        for spec in specs:
            name = next(iter(spec.notebooks))
            result = results.get(spec.job_id)
            if result is None:
                raise GradingError(f"calibration of {name} failed: the grading job did not finish")
            scores = result.notebooks[name].scores
            failing = sorted(gid for gid, s in scores.items() if s.mode != "manual" and s.score != s.points)
            if failing:
                _step_down(name, pending[name], failing, scores)
                continue
            state = pending.pop(name)
            plans[name] = state["plan"]
            _save_plan(course, name, sources[name]["sha"], plans[name])
            if state["step"]:
                log(f"  {name}: tests graded as '{LADDER[state['step']]}' "
                    f"(kernel tests: {plans[name].kernel_tests or 'none'})")
    return plans


def _cached_plan(course: Course, name: str, sha: str) -> Plan | None:
    """The plan calibration found for this version of the source under this grader version, if any."""
    cache = course.calibration / f"{name}.plan.json"
    if not cache.is_file():
        return None
    try:
        cached = json.loads(cache.read_text())
        if cached["key"] == f"{GRADER_VERSION}:{sha}":
            return Plan(**cached["plan"])
    except (ValueError, KeyError, TypeError):
        pass
    return None


def _save_plan(course: Course, name: str, sha: str, plan: Plan) -> None:
    write_atomic(course.calibration / f"{name}.plan.json",
                 json.dumps({"key": f"{GRADER_VERSION}:{sha}", "plan": plan.to_json()}))


def _reference_spec(batch: Batch, sources: dict, name: str, state: dict) -> JobSpec:
    """The job grading the solution of `name` with the plan of its current step."""
    reference = _reference_file(Path(sources[name]["path"]), batch.scratch, name)
    submission = Submission(REFERENCE_STUDENT, state["assignment"], {name: {"path": str(reference)}})
    return batch.spec(submission, [name], sources, {name: state["plan"]},
                      job_id=f"calibrate:{name}:{state['step']}", feedback=False, cache=False,
                      result_path=batch.scratch / f"calibrate-{name}-{state['step']}.json")


def _step_down(name: str, state: dict, failing: list[str], scores: dict) -> None:
    """The solution failed `failing` with this step's plan: the next step of the ladder; past the last,
    the solution does not pass its own tests (GradingError)."""
    state["step"] += 1
    if state["step"] >= len(LADDER):
        details = "; ".join(f"{gid}: {scores[gid].error}" for gid in failing)
        raise GradingError(f"the solution of {name} does not pass its own tests in grading mode "
                           f"({details}). Fix the notebook (python -m autograder run {name} --grading).")
    plan = state["plan"]
    if state["step"] == 1:
        plan.prune = False
    elif state["step"] == 2:
        plan.kernel_tests = failing
    else:
        plan.kernel_tests = sorted(scores)
