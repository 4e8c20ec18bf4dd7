"""`python -m autograder grade`: the command line of a grading run (course/grading.grade: discover,
calibrate, grade isolated and resumably into nbgrader's gradebook, the grades CSV); its exit code says
whether every submission was placed and graded."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from ..course.grading import grade
from ..course.root import Course
from ..course.slurm import SlurmError, SlurmOptions
from .options import add_course_root, add_limits, limits_from


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
    except KeyboardInterrupt:  # bad input (CourseError, OSError) is one line from __main__
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
