"""`python -m autograder build [--check] [NAMES...]`: build the student notebooks."""

import argparse
import sys

from .build import main_build


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="turn autograder/source/NN/NN.py into notebooks/NN.ipynb")
    build.add_argument("names", nargs="*", help="assignments to build (default: all), e.g. 01_chain_rule")
    build.add_argument("--check", action="store_true",
                       help="change nothing; exit 1 naming each student notebook that is out of sync")
    build.set_defaults(run=main_build)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
