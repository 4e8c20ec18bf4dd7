"""`python -m autograder feedback`: feedback pages re-rendered from the gradebook (after manual grading),
never with hidden tests."""

from __future__ import annotations

import sys

from ..course.gradebook import write_feedback_pages
from ..course.root import Course
from .options import add_course_root


def main(args) -> int:
    course = Course(args.course_root)
    count = write_feedback_pages(course, assignment=args.assignment, student=args.student)
    if not count and (args.student or args.assignment):  # a typo in a name must not read as success
        which = " and ".join(f"{kind} {name!r}" for kind, name in (("student", args.student),
                                                                    ("assignment", args.assignment)) if name)
        print(f"feedback: no graded submission with a feedback page for {which} in {course.root}; "
              "`python -m autograder export` lists who is graded", file=sys.stderr)
        return 1
    print(f"wrote {count} feedback page(s) under {course.feedback}")
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("feedback", help="re-render feedback pages from the gradebook (after manual grading)")
    parser.add_argument("--assignment")
    parser.add_argument("--student")
    add_course_root(parser)
    parser.set_defaults(run=main)
