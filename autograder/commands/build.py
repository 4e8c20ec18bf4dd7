"""`python -m autograder build [--check] [NAMES]`: student notebooks from the authored sources."""

from __future__ import annotations

import sys

from ..build import assignment_names, build


def main(args) -> int:
    problems = build(args.names or None, check=args.check)  # a BuildError: one line from __main__
    if problems:
        print("Student notebooks are not in sync with their sources:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Run `python -m autograder build` and commit notebooks/.", file=sys.stderr)
        return 1
    built = args.names or assignment_names()
    print(("in sync: " if args.check else "built: ") + ", ".join(f"notebooks/{n}.ipynb" for n in built))
    return 0


def add_parser(commands) -> None:
    parser = commands.add_parser("build", help="turn autograder/source/NN/NN.py into notebooks/NN.ipynb")
    parser.add_argument("names", nargs="*", help="assignments to build (default: all), e.g. 01_chain_rule")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 naming each student notebook that is out of sync")
    parser.set_defaults(run=main)
