"""`python -m autograder report`: per-question score distributions and the hardest questions, as plots."""

from __future__ import annotations

import os
from pathlib import Path

from ..course.report import write_report
from ..course.root import Course
from .options import add_course_root


def main(args) -> int:
    course = Course(args.course_root)
    folder = Path(args.out) if args.out else course.root / "reports"
    os.environ.setdefault("MPLBACKEND", "Agg")
    page = write_report(course, folder, assignment=args.assignment)
    print(f"wrote {page} and its plots")
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("report", help="plots: per-question score distributions, hardest questions")
    parser.add_argument("--assignment", help="only this assignment")
    parser.add_argument("--out", help="output folder (default: <course root>/reports)")
    add_course_root(parser)
    parser.set_defaults(run=main)
