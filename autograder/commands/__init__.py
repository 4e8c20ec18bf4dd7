"""The subcommands of `python -m autograder`, one per module; each only wires the other zones together
(argparse in, a call into course/, judging/ or the authoring modules, a message out)."""

from . import build, export, feedback, grade, grade_one, report, run

COMMANDS = (build, run, grade, grade_one, report, feedback, export)  # the order of `--help`
