"""The course's instructor and author commands.

    python -m autograder build [--check] [NAMES...]   student notebooks from the authored sources
    python -m autograder run NAMES... [--grading]      execute solution notebooks, report time and errors
    python -m autograder grade SUBMISSIONS             grade a class (isolated, parallel, resumable)
    python -m autograder grade-one | report | feedback | export    (see --help of each)
"""

import argparse
import sys

from .build import main_build
from .execute import main_run
from .grade import add_commands


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="turn autograder/source/NN/NN.py into notebooks/NN.ipynb")
    build.add_argument("names", nargs="*", help="assignments to build (default: all), e.g. 01_chain_rule")
    build.add_argument("--check", action="store_true",
                       help="change nothing; exit 1 naming each student notebook that is out of sync")
    build.set_defaults(run=main_build)
    run = commands.add_parser("run", help="execute solution notebooks top to bottom; report time and errors")
    run.add_argument("names", nargs="+", help="assignments to run, e.g. 01_chain_rule")
    run.add_argument("--grading", action="store_true", help="skip demo cells, as grading does")
    run.set_defaults(run=main_run)
    add_commands(commands)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
