"""`python -m autograder export`: the grades CSV from the gradebook (manual grades included), and with
--totals one row per student for an LMS."""

from __future__ import annotations

from pathlib import Path

from ..course.export import write_csv, write_totals
from ..course.root import Course
from .options import add_course_root


def main(args) -> int:
    course = Course(args.course_root)
    path = Path(args.out) if args.out else course.root / "grades.csv"
    rows = write_csv(course, path, assignment=args.assignment)
    print(f"wrote {path} ({rows} rows)")
    if args.totals:
        totals_path = path.with_name(path.stem + "_totals.csv")
        write_totals(course, totals_path, assignment=args.assignment)
        print(f"wrote {totals_path}")
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("export", help="grades CSV from the gradebook (manual grades included)")
    parser.add_argument("--assignment")
    parser.add_argument("--out", help="CSV path (default: <course root>/grades.csv)")
    parser.add_argument("--totals", action="store_true", help="also a one-row-per-student totals CSV for an LMS")
    add_course_root(parser)
    parser.set_defaults(run=main)
