"""Cgroups left by dead owners are emptied and removed; a live owner's are kept."""

from pathlib import Path

import pytest

from autograder.isolation import cgroups, machine, owners


def _dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has ended."""
    import subprocess

    child = subprocess.Popen(["sleep", "0.2"])
    started = owners.start_time(child.pid)
    child.wait()
    return child.pid, started


def test_cgroups_of_dead_owners_are_emptied_and_removed():
    import subprocess

    flavour = machine.probe().cgroups
    if flavour != "v1":
        pytest.skip(f"needs writable cgroup v1 hierarchies (this machine: {flavour or 'none'})")
    pid, started = _dead_process()
    parent = Path("/sys/fs/cgroup/pids/vg-grader")
    parent.mkdir(exist_ok=True)
    dead, live = parent / f"{pid}-{started}-0", parent / f"{owners.owner_tag()}-999"
    dead.mkdir()
    live.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (dead / "cgroup.procs").write_text(str(sleeper.pid))
        cgroups.sweep_cgroups()  # (another grader's sweep may have been first: the outcome is the same)
        assert sleeper.wait(timeout=10) == -9 and not dead.exists() and live.exists()
    finally:
        sleeper.kill()
        for folder in (dead, live):
            if folder.exists():
                folder.rmdir()
