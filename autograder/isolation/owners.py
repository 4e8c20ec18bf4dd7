"""Owners: who made a cgroup or a scratch folder, and is it still alive? A pid with its start time names
one process for good, so the leftovers of a grader killed with SIGKILL can be told from a live one's."""

from __future__ import annotations

import os
from pathlib import Path


def start_time(pid: int) -> int | None:
    """A process's start time (clock ticks after boot): with the pid, it names one process for good."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_tag() -> str:
    """"<pid>-<start time>" of this process: what leftovers are named after."""
    return f"{os.getpid()}-{start_time(os.getpid()) or 0}"


def owner_alive(pid: int, started: int | None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)
