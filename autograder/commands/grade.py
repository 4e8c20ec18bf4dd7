"""`python -m autograder grade`: a class graded in minutes, isolated, resumable, into nbgrader's gradebook.

    submissions (nbgrader tree / folder / LMS zip)   course/submissions.discover
      -> calibration: the solution, graded like a student, must get full marks    course/calibration
      -> one job per submission, N at a time, forked from a warm worker           course/batch.Runner
         (sandboxed kernel computes, trusted judge decides: judging/)
      -> per finished submission, in ONE database transaction: its grades          course/gradebook.commit
         then the autograded notebooks, feedback pages, and a marker file
      -> grades CSV                                                                course/export.write_csv

Only this process writes the gradebook. A submission is either completely in
it or not at all; the marker file (written last) carries a key over the
submitted bytes, the source, the grading plan and the grader version, so a
re-run after a kill grades exactly what is missing and ends with the grades
an uninterrupted run gives.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path

import nbformat

from ..course.batch import Batch, Runner, note_extra_files, prepare, require_isolation
from ..course.calibration import calibrate
from ..course.export import write_csv
from ..course.gradebook import commit, graded_pairs
from ..course.root import Course, GradingError
from ..course.slurm import SlurmError, SlurmOptions, SlurmRunner
from ..course.submissions import discover
from ..isolation.limits import Limits
from ..judging.worker import clear_leftovers, scratch_dir
from .options import add_course_root, add_limits, limits_from


def grade(path: Path, *, course: Course, assignment: str | None = None, workers: int | None = None,
          limits: Limits | None = None, unsafe: bool = False, force: bool = False, feedback: bool = True,
          csv_path: Path | None = None, progress: bool = True, isolation_mode: str | None = None,
          test_cache: bool = True, slurm: SlurmOptions | None = None, log=print) -> dict:
    """Grade every submission under `path` into `course`; returns a summary (see main).

    With `slurm`, calibration runs here and the submissions as the tasks of ONE Slurm array, each task
    committing its own result (course/slurm.SlurmRunner; README "On a cluster").

    With `test_cache`, a test that reads only plain answers and makes no call into the kernel
    runs once per distinct answer in the batch (judging/cache.TestCache); without it, once per submission.
    """
    start = time.perf_counter()
    isolation = require_isolation(unsafe=unsafe, force_mode=isolation_mode, log=log)
    limits = limits or Limits()
    workers = workers or os.cpu_count() or 1
    runner = Runner(workers, job_timeout=3600)  # the worker imports torch & co. while we find and prepare
    try:
        notebooks = course.notebooks()
        if assignment and assignment not in set(notebooks.values()):
            raise GradingError(f"no assignment {assignment!r} in {course.root / 'source'}")
        submissions, unplaced = discover(Path(path), notebooks, assignment=assignment, protected=[course.root])
        if unplaced:
            log(f"Could not place {len(unplaced)} file(s) (not graded):")
            for item in unplaced:
                log(f"  - {item.where}: {item.why}")
        summary = {"graded": 0, "flagged": 0, "skipped": 0, "unplaced": [asdict(u) for u in unplaced],
                   "submissions": len(submissions), "isolation": isolation.describe()}
        if not submissions:
            log("No submissions found.")
            runner.close()
            return summary
        sources = prepare(course, submissions)
    except BaseException:
        runner.close()
        raise
    clear_leftovers(course.root)  # what a grader killed earlier left behind
    scratch = scratch_dir("grade")
    hide = [str(course.root), str(Path(path).resolve()), str(scratch), str(Path(path).resolve().parent)
            if Path(path).is_file() else str(Path(path).resolve())]
    if course.db_url.startswith("sqlite:///"):
        hide.append(str(Path(course.db_url[len("sqlite:///"):]).resolve().parent))
    batch = Batch(isolation, limits, hide, scratch, cache_dir=str(scratch / "test-cache") if test_cache else None)
    max_cells = max(len(nbformat.read(s["path"], as_version=4).cells) for s in sources.values())
    runner.job_timeout = limits.cell_timeout * (max_cells + 10) + 120
    try:
        targets = {}
        for name, source in sources.items():
            targets.setdefault(source["assignment"], []).append(name)
        log(f"Isolation: {isolation.describe()}")
        plans = calibrate(course, runner, targets, sources, batch=batch, log=log)
        with course.gradebook() as gb:
            done = graded_pairs(gb)
        specs, by_job = [], {}
        for index, submission in enumerate(sorted(submissions, key=lambda s: s.key)):
            key = batch.job_key(submission, sources, plans)
            marker = course.read_marker(submission.student, submission.assignment)
            if not force and marker and marker.get("key") == key and submission.key in done:
                summary["skipped"] += 1
                continue
            names = sorted(n for n, s in sources.items() if s["assignment"] == submission.assignment)
            spec = batch.spec(submission, names, sources, plans, job_id=f"{submission.student}/{submission.assignment}",
                              key=key, feedback=feedback, result_path=scratch / f"job-{index}.json")
            specs.append(spec)
            by_job[spec.job_id] = submission
        if summary["skipped"]:
            log(f"Resuming: {summary['skipped']} submission(s) already graded, {len(specs)} to go.")
        bar = None
        if progress and specs:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(specs), unit="submission", desc="grading", file=sys.stderr)
        cluster = None
        if slurm is not None and specs:
            runner.close()  # calibrated: the tasks grade on the nodes
            cluster = SlurmRunner(course, slurm, submissions=by_job, job_timeout=runner.job_timeout, log=log)
        with course.gradebook() as gb:
            def on_result(spec, result):
                submission = by_job[spec.job_id]
                if cluster is None:  # a Slurm task commits its own
                    note_extra_files(submission, result)
                    commit(course, gb, submission, result, force=force)
                summary["flagged" if result.flagged else "graded"] += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(flagged=summary["flagged"])

            if cluster is None:
                runner.run(specs, on_result=on_result)
            else:
                def queue_progress(done, counts):  # squeue's view: pending, running
                    if bar is not None:
                        bar.set_postfix(flagged=summary["flagged"], **counts)

                cluster.run(specs, on_result=on_result, progress=queue_progress)
        if bar is not None:
            bar.close()
        if cluster is not None:
            summary["not_graded"], summary["arrays"] = cluster.pending_problems, cluster.submitted_arrays
            for line in sorted(cluster.isolation):
                log(f"Isolation on the nodes: {line}")
            if cluster.pending_problems:
                log(f"{len(cluster.pending_problems)} submission(s) not graded (run the same command again to "
                    "grade them):")
                for line in cluster.pending_problems:
                    log(f"  - {line}")
    finally:
        runner.close()
        shutil.rmtree(scratch, ignore_errors=True)
    csv_path = csv_path or course.root / "grades.csv"
    rows = write_csv(course, csv_path, assignment=assignment)
    summary["csv"] = str(csv_path)
    summary["seconds"] = time.perf_counter() - start
    log(f"Graded {summary['graded'] + summary['flagged']} submission(s) in {summary['seconds']:.1f} s "
        f"({summary['flagged']} flagged for review, {summary['skipped']} already graded, "
        f"{len(unplaced)} file(s) not placed). Grades: {csv_path} ({rows} rows).")
    return summary


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(args) -> int:
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops as cleanly as Ctrl-C
    try:
        course = Course(args.course_root)
        summary = grade(Path(args.submissions), course=course, assignment=args.assignment, workers=args.workers,
                        limits=limits_from(args, course), unsafe=args.unsafe_no_sandbox, force=args.force,
                        feedback=not args.no_feedback, csv_path=Path(args.csv) if args.csv else None,
                        progress=not args.no_progress, isolation_mode=args.isolation,
                        test_cache=not args.no_test_cache, slurm=_slurm_options(args))
    except (GradingError, FileNotFoundError, SlurmError) as error:
        print(f"grade: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ngrade: interrupted. Every submission already written is complete; run the same command "
              "again to grade the rest.", file=sys.stderr)
        return 130
    return 0 if not summary["unplaced"] and not summary.get("not_graded") else 1


def _slurm_options(args) -> SlurmOptions | None:
    if not args.slurm:
        return None
    if not shutil.which("sbatch"):  # said before anything is prepared or calibrated
        raise SlurmError("--slurm: no sbatch on PATH (run it on the cluster's login node, where Slurm's clients are)")
    return SlurmOptions(partition=args.partition, account=args.account, max_parallel=args.max_parallel,
                        sbatch_args=list(args.sbatch_arg or []), unsafe=args.unsafe_no_sandbox,
                        isolation_mode=args.isolation)


def add_parser(commands) -> None:
    parser = commands.add_parser("grade", help="grade a folder, zip or nbgrader submitted/ tree of submissions")
    parser.add_argument("submissions", help="nbgrader submitted/ folder, a folder or a .zip of notebooks from an LMS")
    parser.add_argument("--assignment", help="grade only this assignment, e.g. 01_chain_rule")
    parser.add_argument("--workers", type=int, default=None, help="parallel jobs (default: one per core)")
    parser.add_argument("--force", action="store_true", help="regrade submissions already graded")
    parser.add_argument("--no-feedback", action="store_true", help="skip the feedback pages")
    parser.add_argument("--csv", help="grades CSV path (default: <course root>/grades.csv)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-test-cache", action="store_true",
                        help="run every test for every submission (default: a test that reads only plain answers "
                             "runs once per distinct answer in the batch)")
    parser.add_argument("--slurm", action="store_true",
                        help="grade on a Slurm cluster: one array job, a task per submission, each committing "
                             "into the shared gradebook (README: On a cluster)")
    parser.add_argument("--partition", help="Slurm partition (with --slurm)")
    parser.add_argument("--account", help="Slurm account (with --slurm)")
    parser.add_argument("--max-parallel", type=int, help="at most this many tasks at once (with --slurm)")
    parser.add_argument("--sbatch-arg", action="append", metavar="ARG",
                        help="passed on to sbatch, e.g. --sbatch-arg=--mem=4G (repeatable; with --slurm)")
    add_course_root(parser)
    add_limits(parser, all_limits=True)
    parser.set_defaults(run=main)
