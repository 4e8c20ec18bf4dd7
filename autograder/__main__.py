"""The course's instructor and author commands.

    python -m autograder build [--check] [NAMES...]   student notebooks from the authored sources
    python -m autograder run NAMES... [--grading]      execute solution notebooks, report time and errors
    python -m autograder grade SUBMISSIONS             grade a class (isolated, parallel, resumable)
    python -m autograder grade-one | report | feedback | export    (see --help of each)

Also installed as the console scripts `autograder` and `vg-grade`.
"""

import argparse
import sys

from . import CourseError
from .commands import COMMANDS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except CourseError as error:  # what to fix, in one line: never a traceback
        print(f"{args.command}: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a path given on the command line that cannot be read or written
        where = f": {error.filename}" if error.filename else ""
        print(f"{args.command}: {error.strerror or error}{where}", file=sys.stderr)
        return 2


def vg_grade() -> int:
    """The `vg-grade` console script: `vg-grade SUBMISSIONS [options]` is `python -m autograder grade ...`."""
    return main(["grade", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
