"""The command line's limits: defaults from the one Limits dataclass, the cell timeout from --timeout,
else from the course's nbgrader config (c.Execute.timeout), else Limits' default."""

import argparse
from dataclasses import fields

import pytest

from autograder import files
from autograder.commands.options import add_limits, limits_from
from autograder.course.root import Course
from autograder.isolation.limits import Limits


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_limits(parser, all_limits=True)
    return parser.parse_args(argv)


def _course(tmp_path, config: str) -> Course:
    (tmp_path / "source").mkdir()
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n" + config)
    return Course(tmp_path)


def test_the_cli_defaults_are_the_limits_defaults(tmp_path):
    limits = limits_from(_parse([]), _course(tmp_path, ""))
    assert limits == Limits()
    assert {f.name for f in fields(Limits)} >= {"cell_timeout", "memory_mb", "cpu_seconds", "processes"}


@pytest.mark.parametrize("argv, config, timeout", [
    ([], "c.Execute.timeout = 90\n", 90.0),  # what plain nbgrader allows a cell
    (["--timeout", "7"], "c.Execute.timeout = 90\n", 7.0),  # the command line wins
    ([], "c.Execute.timeout = None\n", Limits().cell_timeout),  # nbgrader's "no limit": ours applies
])
def test_the_cell_timeout_honours_nbgraders_execute_timeout(tmp_path, argv, config, timeout):
    assert limits_from(_parse(argv + ["--memory-mb", "300"]), _course(tmp_path, config)) == \
        Limits(cell_timeout=timeout, memory_mb=300)


def test_an_atomic_write_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "a" / "grades.csv"
    files.write_atomic(path, "x,y\r\n")
    files.write_atomic(path, b"z")
    assert path.read_bytes() == b"z" and sorted(p.name for p in path.parent.iterdir()) == ["grades.csv"]
    assert files.HALF_WRITTEN.match(f".grades.csv.tmp{123}")  # what clear_leftovers removes after a kill
