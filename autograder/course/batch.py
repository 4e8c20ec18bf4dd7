"""A batch of grading jobs: the assignments' sources prepared, one JobSpec per submission (built only
here, `Batch.spec`), its key, and the runners that run the specs: a warm pool of workers, or inline."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from ..files import read_bytes
from ..isolation import machine
from ..isolation.limits import Limits
from ..isolation.machine import Isolation
from ..judging.jobs import JobResult, JobSpec
from ..judging.judge import zero_result
from ..judging.plan import Plan
from ..judging.source import SourceModel
from ..judging.version import GRADER_VERSION
from ..judging.worker import Pool, run_job
from .gradebook import ensure_in_gradebook
from .root import Course, GradingError
from .submissions import Submission


def require_isolation(*, unsafe: bool, force_mode: str | None = None, log=print) -> Isolation:
    """The strongest isolation this machine gives; without any, a refusal unless `unsafe`."""
    isolation = machine.probe(force_mode=force_mode)
    if isolation.mode == "none":
        banner = "!" * 78
        message = (f"{banner}\n  {isolation.describe()}\n"
                   "  Student code could read the solutions, hidden tests and gradebook, use the network,\n"
                   "  and leave processes behind. Run as root, or enable unprivileged user namespaces\n"
                   "  (sysctl kernel.unprivileged_userns_clone=1), or grade inside a container.\n")
        if not unsafe:
            raise GradingError(message + "  Refusing to grade. To grade anyway (trusted submissions only), "
                                         f"pass --unsafe-no-sandbox.\n{banner}")
        log(message + f"  --unsafe-no-sandbox given: grading WITHOUT isolation.\n{banner}")
    return isolation


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sources_of(course: Course, assignment: str) -> dict[str, dict]:
    """name -> {"path", "sha", "assignment"} of each source notebook of `assignment`."""
    sources = {}
    for name in sorted(n for n, a in course.notebooks().items() if a == assignment):
        path = course.source_path(assignment, name)
        sources[name] = {"path": str(path), "sha": sha256(path.read_bytes()), "assignment": assignment}
    return sources


def prepare(course: Course, submissions: list[Submission]) -> dict[str, dict]:
    """The source notebooks (sources_of) of every assignment being graded, each in the gradebook."""
    sources = {}
    for assignment in sorted({s.assignment for s in submissions}):
        found = sources_of(course, assignment)
        ensure_in_gradebook(course, assignment, {name: Path(s["path"]) for name, s in found.items()})
        sources.update(found)
    return sources


def hidden_paths(course: Course, submitted: Path, scratch: Path) -> list[str]:
    """What no kernel may see: the course root, the submissions (and the folder a submitted file is in),
    the run's scratch folder and a SQLite gradebook's folder."""
    submitted = submitted.resolve()
    hide = [str(course.root), str(submitted), str(scratch), str(submitted.parent if submitted.is_file() else submitted)]
    if course.db_url.startswith("sqlite:///"):
        hide.append(str(Path(course.db_url[len("sqlite:///"):]).resolve().parent))
    return hide


def job_timeout(limits: Limits, sources: dict) -> float:
    """A whole job's time limit: the cell time limit for each cell of the longest notebook, and some slack."""
    max_cells = max(len(nbformat.read(s["path"], as_version=4).cells) for s in sources.values())
    return limits.cell_timeout * (max_cells + 10) + 120


@dataclass
class Batch:
    """What every job of one grading run shares, and the one place a JobSpec is built."""

    isolation: Isolation
    limits: Limits
    hide: list[str]
    scratch: Path
    cache_dir: str | None = None  # the test cache of graded jobs (never of calibration's)

    def settings(self) -> dict:
        """What, besides the code and the files, decides a result (part of every job key)."""
        return {"limits": asdict(self.limits)}

    def spec(self, submission: Submission, names: list[str], sources: dict, plans: dict[str, Plan], *,
             job_id: str, key: str | None = None, feedback: bool = True, cache: bool = True,
             result_path: Path | str | None = None) -> JobSpec:
        return JobSpec(job_id=job_id, student=submission.student, assignment=submission.assignment,
                       notebooks={n: submission.notebooks.get(n) for n in names},
                       sources={n: sources[n]["path"] for n in names}, plans={n: plans[n] for n in names},
                       isolation=self.isolation, limits=self.limits, hide=list(self.hide), key=key, feedback=feedback,
                       cache_dir=self.cache_dir if cache else None,
                       result_path=str(result_path) if result_path else None, problems=list(submission.problems))

    def job_key(self, submission: Submission, sources: dict, plans: dict[str, Plan]) -> str:
        """A hash of everything that decides a submission's result: grader version, settings, sources,
        plans, the submitted bytes, the extra files and problems found when listing it."""
        digest = hashlib.sha256(f"{GRADER_VERSION}|{json.dumps(self.settings(), sort_keys=True)}".encode())
        for name in sorted(n for n, s in sources.items() if s["assignment"] == submission.assignment):
            plan = plans[name].to_json() if name in plans else None
            digest.update(f"|{name}|{sources[name]['sha']}|{json.dumps(plan, sort_keys=True)}|".encode())
            location = submission.notebooks.get(name)
            try:
                digest.update(sha256(read_bytes(location)).encode() if location else b"missing")
            except (OSError, KeyError) as error:
                digest.update(f"unreadable:{error}".encode())
        digest.update(json.dumps([sorted(submission.extra_files), submission.problems]).encode())
        return digest.hexdigest()


def failed_result(spec: JobSpec, reason: str) -> JobResult:
    """A result for a job that could not grade: every question 0, flagged with the reason."""
    notebooks = {}
    for name in spec.notebooks:
        model = SourceModel.from_notebook(name, nbformat.read(spec.sources[name], as_version=4))
        notebooks[name] = zero_result(model, name, f"grader problem: {reason}")
    return JobResult(spec.job_id, spec.student, spec.assignment, spec.key, notebooks, 0.0)


def note_extra_files(submission: Submission, result: JobResult) -> None:
    """Files shipped next to a notebook never reach the sandbox; one that shadows a module is flagged."""
    if not submission.extra_files:
        return
    shadowing = []
    for relative in submission.extra_files:
        stem = Path(relative).parts[0].split(".")[0]
        if relative.endswith((".py", ".pth", ".so")) or "/" in relative and relative.split("/")[0] == stem:
            try:
                if stem in sys.builtin_module_names or importlib.util.find_spec(stem) is not None:
                    shadowing.append(relative)
            except (ImportError, ValueError):
                pass
    for data in result.notebooks.values():
        data.notes.append(f"extra files ignored (not given to the kernel): {submission.extra_files[:10]}")
        if shadowing:
            data.flags.append(f"extra files would shadow real modules: {shadowing[:10]}")


# ---- running jobs ---------------------------------------------------------------------------------

class Runner:
    """Runs job specs N at a time in a warm worker; results come back from the result files."""

    def __init__(self, workers: int, *, job_timeout: float):
        self.workers, self.job_timeout = max(1, workers), job_timeout
        self.pool = Pool()  # spawned now: it imports torch & co. while the caller does other work

    def run(self, specs: list[JobSpec], on_result=None) -> dict[str, JobResult]:
        queue, running, results, attempts, timed_out = list(specs), {}, {}, {}, set()
        while queue or running:
            while queue and len(running) < self.workers:
                spec = queue.pop(0)
                Path(spec.result_path).unlink(missing_ok=True)
                self.pool.submit(spec)
                running[spec.job_id] = (spec, time.monotonic())
                attempts[spec.job_id] = attempts.get(spec.job_id, 0) + 1
            for job_id, code in self.pool.finished(timeout=0.1):
                spec, _ = running.pop(job_id, (None, None))
                if spec is None:
                    continue
                result = JobResult.load(spec.result_path)
                if result is None and attempts[job_id] < 2 and job_id not in timed_out:
                    queue.insert(0, spec)  # a crashed job is retried once before it counts as failed
                    continue
                if result is None:
                    why = (f"grading did not finish within {self.job_timeout:.0f} s" if job_id in timed_out
                           else f"the grading job ended without a result (exit code {code})")
                    result = failed_result(spec, why)
                results[job_id] = result
                if on_result:
                    on_result(spec, result)
            now = time.monotonic()
            for job_id, (spec, started) in list(running.items()):
                if job_id not in timed_out and now - started > self.job_timeout:
                    timed_out.add(job_id)
                    self.pool.kill(job_id)  # its "done" message follows
        return results

    def close(self):
        self.pool.close()


class InlineRunner(Runner):
    """Runs jobs one by one in this process (grade-one, tests): no pool, same job code."""

    def __init__(self):
        self.workers = 1

    def run(self, specs: list[JobSpec], on_result=None) -> dict[str, JobResult]:
        results = {}
        for spec in specs:
            result = run_job(spec)
            results[spec.job_id] = result
            if on_result:
                on_result(spec, result)
        return results

    def close(self):
        pass
