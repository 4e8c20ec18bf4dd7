"""A grading run (`python -m autograder grade`): a class graded in minutes, isolated, resumable, into
nbgrader's gradebook.

    submissions (nbgrader tree / folder / LMS zip)   find_submissions (course/submissions.discover)
      -> calibration: the solution, graded like a student, must get full marks    course/calibration
      -> one job per submission not yet graded (jobs_to_run), N at a time,
         forked from a warm worker (course/batch.Runner) or as Slurm tasks         run_jobs
         (sandboxed kernel computes, trusted judge decides: judging/)
      -> per finished submission, in ONE database transaction: its grades          course/gradebook.commit
         then the autograded notebooks, feedback pages, and a marker file
      -> grades CSV and the summary line                                           finish

Only this process writes the gradebook (on Slurm, each task writes its own submission). A submission is
either completely in it or not at all; the marker file (written last) carries a key over the submitted
bytes, the source, the grading plan and the grader version, so a re-run after a kill grades exactly what
is missing and ends with the grades an uninterrupted run gives.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

from ..isolation.limits import Limits
from ..judging.jobs import JobSpec
from ..judging.worker import clear_leftovers, scratch_dir
from .batch import Batch, Runner, hidden_paths, job_timeout, note_extra_files, prepare, require_isolation
from .calibration import calibrate
from .export import write_csv
from .gradebook import commit, graded_pairs
from .root import Course, GradingError
from .slurm import SlurmOptions, SlurmRunner
from .submissions import Submission, Unplaced, discover


def grade(path: Path, *, course: Course, assignment: str | None = None, workers: int | None = None,
          limits: Limits | None = None, unsafe: bool = False, force: bool = False, feedback: bool = True,
          csv_path: Path | None = None, progress: bool = True, isolation_mode: str | None = None,
          test_cache: bool = True, slurm: SlurmOptions | None = None, log=print) -> dict:
    """Grade every submission under `path` into `course`; returns a summary: graded, flagged, skipped,
    unplaced, submissions, isolation, and (once something was graded) csv, seconds; with `slurm`,
    not_graded and arrays.

    With `slurm`, calibration runs here and the submissions as the tasks of ONE Slurm array, each task
    committing its own result (course/slurm.SlurmRunner; README "On a cluster").

    With `test_cache`, a test that reads only plain answers and makes no call into the kernel
    runs once per distinct answer in the batch (judging/cache.TestCache); without it, once per submission.
    """
    start = time.perf_counter()
    path = Path(path)
    isolation = require_isolation(unsafe=unsafe, force_mode=isolation_mode, log=log)
    runner = Runner(workers or os.cpu_count() or 1, job_timeout=3600)  # its worker imports torch & co. meanwhile
    scratch = None
    try:
        submissions, unplaced = find_submissions(course, path, assignment, log=log)
        summary = {"graded": 0, "flagged": 0, "skipped": 0, "unplaced": [asdict(u) for u in unplaced],
                   "submissions": len(submissions), "isolation": isolation.describe()}
        if not submissions:
            log("No submissions found.")
            return summary
        sources = prepare(course, submissions)
        clear_leftovers(course.root)  # what a grader killed earlier left behind
        scratch = scratch_dir("grade")
        batch = Batch(isolation, limits or Limits(), hidden_paths(course, path, scratch), scratch,
                      cache_dir=str(scratch / "test-cache") if test_cache else None)
        runner.job_timeout = job_timeout(batch.limits, sources)
        grade_batch(course, runner, batch, submissions, sources, summary, force=force, feedback=feedback,
                    progress=progress, slurm=slurm, log=log)
    finally:
        runner.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    finish(course, summary, csv_path or course.root / "grades.csv", assignment=assignment, start=start, log=log)
    return summary


def find_submissions(course: Course, path: Path, assignment: str | None, *,
                     log=print) -> tuple[list[Submission], list[Unplaced]]:
    """The submissions under `path` (of `assignment` only, if given), and the files that could not be
    placed (each listed in the log: they are not graded)."""
    notebooks = course.notebooks()
    if assignment and assignment not in set(notebooks.values()):
        raise GradingError(f"no assignment {assignment!r} in {course.root / 'source'}")
    submissions, unplaced = discover(path, notebooks, assignment=assignment, protected=[course.root])
    if unplaced:
        log(f"Could not place {len(unplaced)} file(s) (not graded):")
        for item in unplaced:
            log(f"  - {item.where}: {item.why}")
    return submissions, unplaced


def grade_batch(course: Course, runner: Runner, batch: Batch, submissions: list[Submission], sources: dict,
                summary: dict, *, force: bool, feedback: bool, progress: bool, slurm: SlurmOptions | None,
                log=print) -> None:
    """Calibrate, then grade every submission not graded yet (all with `force`) here or on Slurm,
    counting into `summary`."""
    log(f"Isolation: {batch.isolation.describe()}")
    plans = calibrate(course, runner, targets_of(sources), sources, batch=batch, log=log)
    specs, by_job, summary["skipped"] = jobs_to_run(course, batch, submissions, sources, plans, force=force,
                                                    feedback=feedback)
    if summary["skipped"]:
        log(f"Resuming: {summary['skipped']} submission(s) already graded, {len(specs)} to go.")
    bar = ProgressBar(len(specs) if progress else 0)
    if slurm is not None and specs:
        runner.close()  # calibrated: the tasks grade on the nodes
        cluster = SlurmRunner(course, slurm, submissions=by_job, job_timeout=runner.job_timeout, log=log)
        run_jobs(course, cluster, specs, by_job, summary, bar, force=force)
        bar.close()
        report_cluster(cluster, summary, log=log)
    else:
        run_jobs(course, runner, specs, by_job, summary, bar, force=force)
        bar.close()


def targets_of(sources: dict) -> dict[str, list[str]]:
    """assignment -> the names of its source notebooks (what calibration calibrates)."""
    targets = {}
    for name, source in sources.items():
        targets.setdefault(source["assignment"], []).append(name)
    return targets


def jobs_to_run(course: Course, batch: Batch, submissions: list[Submission], sources: dict, plans: dict, *,
                force: bool, feedback: bool) -> tuple[list[JobSpec], dict[str, Submission], int]:
    """A JobSpec per submission to grade, job id -> its submission, and how many were skipped: those whose
    marker carries the same job key and that the gradebook holds (none skipped with `force`)."""
    with course.gradebook() as gb:
        done = graded_pairs(gb)
    specs, by_job, skipped = [], {}, 0
    for index, submission in enumerate(sorted(submissions, key=lambda s: s.key)):
        key = batch.job_key(submission, sources, plans)
        if not force and already_graded(course, submission, key, done):
            skipped += 1
            continue
        names = sorted(n for n, s in sources.items() if s["assignment"] == submission.assignment)
        spec = batch.spec(submission, names, sources, plans, job_id=f"{submission.student}/{submission.assignment}",
                          key=key, feedback=feedback, result_path=batch.scratch / f"job-{index}.json")
        specs.append(spec)
        by_job[spec.job_id] = submission
    return specs, by_job, skipped


def already_graded(course: Course, submission: Submission, key: str, done: set[tuple[str, str]]) -> bool:
    """The submission is in the gradebook (`done`: graded_pairs) and its marker carries this job key."""
    marker = course.read_marker(submission.student, submission.assignment)
    return bool(marker and marker.get("key") == key and submission.key in done)


class ProgressBar:
    """The progress bar on stderr (tqdm), flagged submissions and the queue beside it; nothing for 0 jobs."""

    def __init__(self, total: int):
        self.bar = None
        if total:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="submission", desc="grading", file=sys.stderr)

    def graded(self, flagged: int) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(flagged=flagged)

    def queue(self, flagged: int, counts: dict[str, int]) -> None:
        """squeue's view of the tasks left: pending, running."""
        if self.bar is not None:
            self.bar.set_postfix(flagged=flagged, **counts)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_jobs(course: Course, runner: Runner | SlurmRunner, specs: list[JobSpec], by_job: dict[str, Submission],
             summary: dict, bar: ProgressBar, *, force: bool) -> None:
    """Run `specs` on `runner` and commit each result as it comes (a Slurm task commits its own), counting
    graded and flagged submissions into `summary`."""
    on_slurm = isinstance(runner, SlurmRunner)
    with course.gradebook() as gb:
        def on_result(spec, result):
            submission = by_job[spec.job_id]
            if not on_slurm:
                note_extra_files(submission, result)
                commit(course, gb, submission, result, force=force)
            summary["flagged" if result.flagged else "graded"] += 1
            bar.graded(summary["flagged"])

        if on_slurm:
            runner.run(specs, on_result=on_result, progress=lambda done, counts: bar.queue(summary["flagged"], counts))
        else:
            runner.run(specs, on_result=on_result)


def report_cluster(cluster: SlurmRunner, summary: dict, *, log=print) -> None:
    """What the Slurm run left: the isolation on its nodes, and the submissions it could not grade."""
    summary["not_graded"], summary["arrays"] = cluster.pending_problems, cluster.submitted_arrays
    for line in sorted(cluster.isolation):
        log(f"Isolation on the nodes: {line}")
    if cluster.pending_problems:
        log(f"{len(cluster.pending_problems)} submission(s) not graded (run the same command again to grade them):")
        for line in cluster.pending_problems:
            log(f"  - {line}")


def finish(course: Course, summary: dict, csv_path: Path, *, assignment: str | None, start: float,
           log=print) -> None:
    """The grades CSV, and the summary line."""
    rows = write_csv(course, csv_path, assignment=assignment)
    summary["csv"] = str(csv_path)
    summary["seconds"] = time.perf_counter() - start
    log(f"Graded {summary['graded'] + summary['flagged']} submission(s) in {summary['seconds']:.1f} s "
        f"({summary['flagged']} flagged for review, {summary['skipped']} already graded, "
        f"{len(summary['unplaced'])} file(s) not placed). Grades: {csv_path} ({rows} rows).")
