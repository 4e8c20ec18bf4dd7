"""Per-submission limits: their defaults (the one place; the CLI's come from here) and the rlimits that
apply them in the kernel process. Memory and processes are also capped by cgroups when the machine
allows (cgroups.py); RLIMIT_AS stands in for the memory cgroup where there is none."""

from __future__ import annotations

import resource
from dataclasses import dataclass


@dataclass
class Limits:
    """Per-submission limits: the one place of their defaults (the CLI's come from here)."""

    cell_timeout: float = 60.0  # seconds per cell and per test (nbgrader's Execute.timeout, when it sets one)
    memory_mb: int = 2048
    cpu_seconds: int = 600
    processes: int = 64
    file_size_mb: int = 64
    tmp_mb: int = 256
    open_files: int = 512


def apply_rlimits(limits: Limits, *, processes: bool, address_space: bool) -> None:
    """Set the rlimits in this process (the kernel, before student code): CPU time, file size, open files, no
    core dumps; RLIMIT_NPROC if `processes` (per uid: only where the kernel has a uid of its own, or no
    sandbox); RLIMIT_AS above the current size if `address_space` (no memory cgroup)."""
    settings = [(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5)),
                (resource.RLIMIT_FSIZE, (limits.file_size_mb * 2**20,) * 2),
                (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
                (resource.RLIMIT_CORE, (0, 0))]
    if processes:
        settings.append((resource.RLIMIT_NPROC, (limits.processes,) * 2))
    if address_space:
        settings.append((resource.RLIMIT_AS, (_address_space() + limits.memory_mb * 2**20,) * 2))
    for which, value in settings:
        resource.setrlimit(which, value)


def _address_space() -> int:
    """The current virtual size (torch alone maps ~1 GB): RLIMIT_AS is set above it."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 2 * 2**30
