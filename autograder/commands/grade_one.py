"""`python -m autograder grade-one NOTEBOOK --student ID`: one notebook file graded as one job, in this
process (the unit a cluster scheduler runs); with --commit also into the gradebook."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ..course.batch import Batch, InlineRunner, prepare, require_isolation, sources_of
from ..course.calibration import calibrate
from ..course.gradebook import commit
from ..course.root import Course, GradingError
from ..course.slurm import run_task
from ..course.submissions import Submission
from ..judging.worker import scratch_dir
from .options import add_course_root, add_limits, limits_from


def main(args) -> int:
    if args.job:  # a task of `grade --slurm`: its JobSpec is prepared and calibrated already
        try:
            return run_task(Path(args.job))
        except GradingError as error:
            print(f"grade-one: {error}", file=sys.stderr)
            return 2
    if not args.notebook or not args.student:
        print("grade-one: give a notebook and --student (or --job)", file=sys.stderr)
        return 2
    try:
        course = Course(args.course_root)
        isolation = require_isolation(unsafe=args.unsafe_no_sandbox, force_mode=args.isolation)
        notebooks = course.notebooks()
        name = args.notebook_name or Path(args.notebook).stem
        if name not in notebooks:
            raise GradingError(f"{name!r} is no notebook of this course; pass --notebook-name")
        assignment = notebooks[name]
        submission = Submission(args.student, assignment, {name: {"path": str(Path(args.notebook).resolve())}})
        sources = prepare(course, [submission]) if args.commit else sources_of(course, assignment)
        scratch = scratch_dir("grade-one")
        batch = Batch(isolation, limits_from(args, course),
                      [str(course.root), str(Path(args.notebook).resolve().parent), str(scratch)], scratch)
        try:
            plans = calibrate(course, InlineRunner(), {assignment: sorted(sources)}, sources, batch=batch,
                              log=lambda *a: print(*a, file=sys.stderr))
            spec = batch.spec(submission, sorted(sources), sources, plans, job_id=f"{args.student}/{assignment}",
                              key=batch.job_key(submission, sources, plans), cache=False,
                              result_path=Path(args.out).resolve() if args.out else None)
            result = InlineRunner().run([spec])[spec.job_id]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        changed = True
        if args.commit:
            with course.gradebook() as gb:
                changed = commit(course, gb, submission, result)
        for nb_name, data in result.notebooks.items():
            total = sum(s.score or 0 for s in data.scores.values())
            possible = sum(s.points for s in data.scores.values())
            print(f"{args.student} {nb_name}: {total:g}/{possible:g} {data.status}"
                  + (f" ({'; '.join(data.flags)})" if data.flags else "")
                  + ("" if changed else " (already in the gradebook: unchanged)"))
    except GradingError as error:
        print(f"grade-one: {error}", file=sys.stderr)
        return 2
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("grade-one", help="grade one notebook file as one job (cluster schedulers)")
    parser.add_argument("notebook", nargs="?", help="the submitted .ipynb")
    parser.add_argument("--student", help="student id")
    parser.add_argument("--job", help="a task file of `grade --slurm` (instead of a notebook and --student); "
                                      "graded and committed")
    parser.add_argument("--notebook-name", help="course notebook name (default: the file name)")
    parser.add_argument("--out", help="write the job's result JSON here")
    parser.add_argument("--commit", action="store_true", help="also write the gradebook, autograded and feedback files")
    add_course_root(parser)
    add_limits(parser)
    parser.set_defaults(run=main)
