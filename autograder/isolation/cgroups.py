"""Per-sandbox cgroups (v1 or v2): memory, pids and an equal CPU weight per sandbox, where the machine lets
the grader write them. A cgroup is named after the process that owns it (pid and start time, see
owners.py); `sweep_cgroups` ends the processes of those whose owner died and removes them."""

from __future__ import annotations

import itertools
import os
import re
import signal
import time
from pathlib import Path

from .limits import Limits
from .owners import owner_alive, owner_tag

CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "vg-grader"


def writable_flavour() -> str:
    """"v1" or "v2": the cgroup hierarchy this process may write memory and pids limits into; "" if none."""
    if os.geteuid() != 0:
        return ""
    v1 = CGROUP_ROOT / "memory", CGROUP_ROOT / "pids"
    if all((p / "cgroup.procs").is_file() for p in v1) and all(os.access(p, os.W_OK) for p in v1):
        return "v1"
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.is_file() and {"memory", "pids"} <= set(controllers.read_text().split()) \
            and os.access(CGROUP_ROOT, os.W_OK):
        return "v2"
    return ""


def cpu_controller(flavour: str) -> bool:
    """Whether that hierarchy has a CPU controller the grader can give each sandbox an equal weight in."""
    if flavour == "v1":
        cpu = CGROUP_ROOT / "cpu"
        return (cpu / "cpu.shares").is_file() and os.access(cpu, os.W_OK)
    if flavour == "v2":
        return "cpu" in (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    return False


_SEQUENCE = itertools.count()
_CGROUP_NAME = re.compile(r"^(\d+)-(\d+)-\d+$")  # owner pid, owner start time, sequence
_OLD_CGROUP_NAME = re.compile(r"^s(\d+)-\d+$")  # before owners had a start time


def _cgroup_parents(flavour: str) -> list[Path]:
    if flavour == "v1":
        return [CGROUP_ROOT / controller / CGROUP_PARENT for controller in ("memory", "pids", "cpu")]
    if flavour == "v2":
        return [CGROUP_ROOT / CGROUP_PARENT]
    return []


class Cgroups:
    """Per-sandbox memory, pids and cpu cgroups (v1 or v2); `paths` is empty when unavailable."""

    def __init__(self, flavour: str, limits: Limits, *, cpu: bool):
        self.flavour, self.paths = flavour, []
        if not flavour:
            return
        name = f"{owner_tag()}-{next(_SEQUENCE)}"
        memory = limits.memory_mb * 2**20
        try:
            if flavour == "v1":
                mem = CGROUP_ROOT / "memory" / CGROUP_PARENT / name
                pids = CGROUP_ROOT / "pids" / CGROUP_PARENT / name
                for path in (mem, pids):
                    path.mkdir(parents=True, exist_ok=True)
                    self.paths.append(path)
                (mem / "memory.limit_in_bytes").write_text(str(memory))
                try:
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(memory))
                except OSError:
                    pass  # no swap accounting: fine, this machine has no swap to escape to
                (pids / "pids.max").write_text(str(limits.processes))
                if cpu:
                    parent = CGROUP_ROOT / "cpu" / CGROUP_PARENT
                    parent.mkdir(exist_ok=True)
                    # the grader's sandboxes together weigh as much as one session per core
                    (parent / "cpu.shares").write_text(str(1024 * (os.cpu_count() or 1)))
                    path = parent / name
                    path.mkdir(exist_ok=True)
                    self.paths.append(path)
                    (path / "cpu.shares").write_text("1024")
            else:
                parent = CGROUP_ROOT / CGROUP_PARENT
                parent.mkdir(exist_ok=True)
                wanted = "+memory +pids" + (" +cpu" if cpu else "")
                (CGROUP_ROOT / "cgroup.subtree_control").write_text(wanted)
                (parent / "cgroup.subtree_control").write_text(wanted)
                if cpu:
                    (parent / "cpu.weight").write_text(str(min(10000, 100 * (os.cpu_count() or 1))))
                path = parent / name
                path.mkdir(exist_ok=True)
                self.paths.append(path)
                (path / "memory.max").write_text(str(memory))
                (path / "memory.swap.max").write_text("0")
                (path / "pids.max").write_text(str(limits.processes))
                if cpu:
                    (path / "cpu.weight").write_text("100")
        except OSError:
            self.remove()
            self.paths = []

    def add(self, pid: int) -> None:
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def oom_killed(self) -> bool:
        for path in self.paths:
            for name in ("memory.oom_control", "memory.events"):
                file = path / name
                if file.is_file():
                    for line in file.read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill" and value.strip() not in ("", "0"):
                            return True
            failcnt = path / "memory.failcnt"
            if failcnt.is_file() and int(failcnt.read_text() or 0) > 0 and \
                    int((path / "memory.max_usage_in_bytes").read_text()) >= \
                    int((path / "memory.limit_in_bytes").read_text()) - 2**20:
                return True
        return False

    def pids_exhausted(self) -> bool:
        for path in self.paths:
            events = path / "pids.events"
            if events.is_file():
                for line in events.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "max" and value.strip() not in ("", "0"):
                        return True
        return False

    def kill(self) -> None:
        _kill_cgroups(self.paths)

    def remove(self) -> None:
        _remove_cgroups(self.paths)


def _cgroup_pids(paths) -> list[int]:
    pids = []
    for path in paths:
        try:
            pids += [int(p) for p in (path / "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pass
    return pids


def _kill_cgroups(paths) -> None:
    """SIGKILL every process in these cgroups, by pid: a new session or process group changes nothing."""
    for path in paths:
        try:
            (path / "cgroup.kill").write_text("1")  # cgroup v2, Linux 5.14+: atomic
        except OSError:
            pass
    for _ in range(50):
        pids = _cgroup_pids(paths)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


def _remove_cgroups(paths) -> None:
    for path in paths:
        for _ in range(50):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                _kill_cgroups([path])
                time.sleep(0.02)


def sweep_cgroups() -> int:
    """End and remove the sandbox cgroups whose owner died (a grader or job killed before it could
    clean up); returns how many were removed. Another grader's live sandboxes are left alone."""
    removed = 0
    for parent in _cgroup_parents(writable_flavour()):
        try:
            children = [c for c in parent.iterdir() if c.is_dir()]
        except OSError:
            continue
        for child in children:
            match = _CGROUP_NAME.match(child.name)
            old = _OLD_CGROUP_NAME.match(child.name)
            if match:
                alive = owner_alive(int(match[1]), int(match[2]))
            elif old:
                alive = owner_alive(int(old[1]), None)
            else:
                continue
            if not alive:
                _remove_cgroups([child])
                removed += not child.exists()
    return removed
