"""`python -m autograder run NAMES [--grading]`: the solution notebooks executed top to bottom, with
their time and errors."""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..build import read_source
from ..execute import execute


def main(args) -> int:
    notebooks = {name: read_source(name)[0] for name in args.names}  # every name read before anything runs
    status = 0
    for name, nb in notebooks.items():
        with tempfile.TemporaryDirectory(prefix="vg-run-") as scratch:
            run = execute(nb, cwd=Path(scratch), grading=args.grading)
        mode = "grading mode" if args.grading else "full run"
        print(f"{name} ({mode}): {run.seconds:.1f} s, {len(run.errors)} errors")
        for seconds, label in run.cell_seconds[:5]:
            print(f"  {seconds:6.2f} s  {label}")
        for error in run.errors:
            print(f"  ERROR {error}")
        status = status or (1 if run.errors else 0)
    return status


def add_parser(commands) -> None:
    parser = commands.add_parser("run", help="execute solution notebooks top to bottom; report time and errors")
    parser.add_argument("names", nargs="+", help="assignments to run, e.g. 01_chain_rule")
    parser.add_argument("--grading", action="store_true", help="skip demo cells, as grading does")
    parser.set_defaults(run=main)
