"""`python -m autograder feedback`: feedback pages re-rendered from the gradebook (after manual grading),
never with hidden tests."""

from __future__ import annotations

from ..course.gradebook import write_feedback_pages
from ..course.root import Course
from .options import add_course_root


def main(args) -> int:
    course = Course(args.course_root)
    count = write_feedback_pages(course, assignment=args.assignment, student=args.student)
    print(f"wrote {count} feedback page(s) under {course.feedback}")
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("feedback", help="re-render feedback pages from the gradebook (after manual grading)")
    parser.add_argument("--assignment")
    parser.add_argument("--student")
    add_course_root(parser)
    parser.set_defaults(run=main)
