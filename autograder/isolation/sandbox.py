"""Run one submission's code isolated: what Linux provides, and a loud refusal where it cannot.

A sandbox is a process tree forked from the (pre-imported, secret-free)
worker, so it starts in milliseconds with torch already imported:

    judge (trusted)
     └─ keeper: joins the sandbox's cgroups; unshare(mount, pid, net, ipc, uts [, user]);
        │       builds the file view and pivots into it
         └─ init, PID 1 of a new PID namespace: reaps, relays interrupts
             └─ kernel (PID 2): unprivileged uid, no capabilities, seccomp, rlimits,
                                  runs the student's cells (shell.py)

- **Files: deny by default.** The kernel's root is an empty read-only tmpfs
  into which only what it needs is bound, read-only, at its own path: the
  system's /usr (and /bin, /lib... as on the host), the Python installation
  and the directories on ``sys.path`` that hold packages, and ``course_lib``
  (the grader imports it from a plain copy, see worker.Pool). Its working
  directory is a fresh, size-limited tmpfs /tmp holding only the notebook;
  /dev holds null, zero, full, random, urandom and a private /dev/shm; /proc
  is the sandbox's own. The course root, the repository and the submissions
  are never bound; if one lies inside a bound tree it is covered by an empty
  folder. Files that name the repository (an editable install's finder and
  ``.pth``, ``direct_url.json``) are shown empty, and the kernel's
  environment, arguments, ``sys.path`` and import hooks are rewritten so they
  name nothing outside the view (what it inherited in memory from the fork
  may still hold paths; nothing under them is readable).
- **Identity**: as root, the kernel runs as a uid of its own (2,000,000 +
  keeper pid) with no groups and no capabilities, so it can read only
  world-readable files and signal only its own processes. Without root, an
  unprivileged user namespace gives the same file view (same uid, no caps).
  A seccomp filter refuses setsid and setpgid: no process of the sandbox
  leaves its session (nor starts the scheduler autogroups that setsid makes).
- **Network**: a new network namespace with no interfaces up.
- **Processes**: a PID namespace; killing its init ends every process the
  student started, detached or not; the cgroups are emptied by pid too. The
  keeper and init die with their parent (PR_SET_PDEATHSIG).
- **Limits**: cgroups (memory, pids, and an equal CPU weight per sandbox) when
  writable, else RLIMIT_AS; always RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE,
  RLIMIT_NOFILE, RLIMIT_CORE=0.
- **Time**: `Sandbox.deadline` measures a limit in the time a test had: wall
  time minus the time the kernel's and the judge's threads waited for a CPU
  (Linux schedstat), so a busy machine does not shorten anyone's limit; a
  wall-clock backstop of `BACKSTOP` times the limit still applies.
- **Leftovers**: cgroups are named after the process that owns them (pid and
  start time); `sweep_cgroups` ends the processes of those whose owner died
  (a grader killed with SIGKILL) and removes them.

`probe()` says which of these this machine supports; the grader refuses to run
student code without namespaces unless the instructor passes
``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import importlib.util
import itertools
import json
import os
import platform
import re
import resource
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import shell  # imported before any fork: the kernel's view no longer shows the grader's code

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
UID_BASE = 2_000_000
SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")
BACKSTOP = 10  # a time limit lasts at most this many times its length in wall-clock time
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_PARENT = "vg-grader"
# machine -> (audit arch, setsid, setpgid) for the seccomp filter
SYSCALLS = {"x86_64": (0xC000003E, 112, 109), "aarch64": (0xC00000B7, 157, 154)}

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """The sandbox could not be set up (the message says which step failed)."""


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


@dataclass
class Isolation:
    """What this machine lets the grader do; `mode` is "root", "userns" or "none"."""

    mode: str
    namespaces: bool
    separate_uid: bool
    cgroups: str  # "v1", "v2" or "" (then memory is limited by RLIMIT_AS)
    problems: list[str] = field(default_factory=list)
    cpu_weights: bool = False  # each sandbox its own cgroup CPU weight, all equal
    seccomp: bool = False  # setsid/setpgid refused inside the sandbox
    fair_clock: bool = False  # time limits count the time a test had (schedstat), not wall-clock time

    def describe(self) -> str:
        if self.mode == "none":
            return ("NO ISOLATION: student code would run as you, with access to your files and the "
                    "network (" + "; ".join(self.problems) + ")")
        parts = ["mount+pid+net+ipc+uts namespaces",
                 "default-deny file view (Python, its packages and course_lib read-only; a private /tmp)",
                 "separate unprivileged uid" if self.separate_uid else "same uid in a user namespace",
                 f"cgroup {self.cgroups} memory/pids limits" if self.cgroups else "rlimit memory limit (no cgroups)"]
        if self.cpu_weights:
            parts.append(f"an equal CPU weight per sandbox (cgroup {self.cgroups} cpu)")
        else:
            parts.append("no CPU weights (no writable cgroup cpu controller): CPU shared per session")
        if self.seccomp:
            parts.append("setsid/setpgid refused (seccomp)")
        parts.append("time limits count the time a test had (wall time minus waiting for a CPU), "
                     f"at most {BACKSTOP}x in wall time" if self.fair_clock else "time limits in wall-clock time")
        parts.append("rlimits on CPU time, processes, file size, open files")
        return "; ".join(parts)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(code)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source, target, fstype, flags, data=None) -> None:
    def enc(s):
        return s.encode() if isinstance(s, str) else s

    _check(_libc.mount(enc(source), enc(str(target)), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies, and exit now if `parent` (its pid before the fork)
    already died: PR_SET_PDEATHSIG set after that moment would never fire."""
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(75)


def _drop_capabilities() -> None:
    """capset(all zero): no capability left in any user namespace (so no umount of the hiding mounts)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def _pivot_root() -> None:
    """Make the current directory the root and detach the old one (pivot_root(".", "."), as runc does)."""
    number = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
    if number is None:
        raise SandboxError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def _refuse_new_sessions() -> None:
    """A seccomp filter: setsid and setpgid fail with EPERM, as does any syscall of a foreign ABI
    (x32, i386) that could name them by another number. Needs PR_SET_NO_NEW_PRIVS first."""
    arch, setsid, setpgid = SYSCALLS[platform.machine()]

    class Instruction(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                    ("k", ctypes.c_uint32)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction))]

    load, equal, at_least, ret = 0x20, 0x15, 0x35, 0x06
    allow, refuse = 0x7FFF0000, 0x00050000 | errno.EPERM
    program = [(load, 0, 0, 4), (equal, 1, 0, arch), (ret, 0, 0, refuse),  # seccomp_data.arch
               (load, 0, 0, 0), (at_least, 0, 1, 0x40000000), (ret, 0, 0, refuse),  # seccomp_data.nr; x32
               (equal, 0, 1, setsid), (ret, 0, 0, refuse), (equal, 0, 1, setpgid), (ret, 0, 0, refuse),
               (ret, 0, 0, allow)]
    instructions = (Instruction * len(program))(*[Instruction(*i) for i in program])
    filter_ = Program(len(program), instructions)
    _check(_libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(filter_), 0, 0), "seccomp")


# ---- what the machine supports ---------------------------------------------------------------

def _cgroup_flavour() -> str:
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


def _cpu_controller(flavour: str) -> bool:
    if flavour == "v1":
        cpu = CGROUP_ROOT / "cpu"
        return (cpu / "cpu.shares").is_file() and os.access(cpu, os.W_OK)
    if flavour == "v2":
        return "cpu" in (CGROUP_ROOT / "cgroup.controllers").read_text().split()
    return False


_PROBED: list[Isolation] = []


def probe(*, force_mode: str | None = None) -> Isolation:
    """Find out (once, in a throwaway child) whether namespaces work here; never raises."""
    if _PROBED and not force_mode:
        return _PROBED[0]
    problems = []
    fair_clock = Path("/proc/self/schedstat").is_file()
    if force_mode == "none":
        return Isolation("none", False, False, "", ["isolation switched off"], seccomp=_try_seccomp(),
                         fair_clock=fair_clock)
    if not sys.platform.startswith("linux"):
        result = Isolation("none", False, False, "", [f"{sys.platform} has no Linux namespaces"])
    else:
        modes = [force_mode] if force_mode else (["root", "userns"] if os.geteuid() == 0 else ["userns"])
        result = None
        for mode in modes:
            error = _try_namespaces(mode)
            if error is None:
                flavour = _cgroup_flavour() if mode == "root" else ""
                result = Isolation(mode, True, mode == "root", flavour, cpu_weights=_cpu_controller(flavour),
                                   seccomp=_try_seccomp(), fair_clock=fair_clock)
                break
            problems.append(f"{mode}: {error}")
        if result is None:
            result = Isolation("none", False, False, "", problems, seccomp=_try_seccomp(), fair_clock=fair_clock)
    if not force_mode:
        _PROBED.append(result)
    return result


def _in_child(body) -> str | None:
    """Run `body()` in a forked child; None if it returned, else what went wrong."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        message = b"ok"
        try:
            body()
        except BaseException as error:  # noqa: BLE001
            message = str(error).encode()[:500] or b"failed"
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return None if message == "ok" else message or "the probe process died"


def _try_seccomp() -> bool:
    if platform.machine() not in SYSCALLS or not sys.platform.startswith("linux"):
        return False

    def body():
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        _refuse_new_sessions()
        try:
            os.setsid()
        except PermissionError:
            return
        raise SandboxError("setsid still allowed")

    return _in_child(body) is None


def _try_namespaces(mode: str) -> str | None:
    def body():
        _enter_namespaces(mode)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        os.mkdir("/tmp/proc")
        child = os.fork()
        if child == 0:
            try:
                _enter_root("/tmp")
                os._exit(0 if os.getpid() == 1 else 3)
            except BaseException:  # noqa: BLE001
                os._exit(4)
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SandboxError("cannot mount /proc in a new PID namespace, or pivot into a new root")

    return _in_child(body)


def _enter_namespaces(mode: str) -> None:
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if mode == "userns":
        uid, gid = os.getuid(), os.getgid()
        _unshare(CLONE_NEWUSER | flags)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    else:
        _unshare(flags)


# ---- owners: who made a cgroup or a temporary folder, and is it still alive? ------------------

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


# ---- cgroups ---------------------------------------------------------------------------------

_SEQUENCE = itertools.count()
_CGROUP_NAME = re.compile(r"^(\d+)-(\d+)-\d+$")  # owner pid, owner start time, sequence
_OLD_CGROUP_NAME = re.compile(r"^s(\d+)-\d+$")  # before owners had a start time


def _cgroup_parents(flavour: str) -> list[Path]:
    if flavour == "v1":
        return [CGROUP_ROOT / controller / CGROUP_PARENT for controller in ("memory", "pids", "cpu")]
    if flavour == "v2":
        return [CGROUP_ROOT / CGROUP_PARENT]
    return []


class _Cgroups:
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
    for parent in _cgroup_parents(_cgroup_flavour()):
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


# ---- the file view ------------------------------------------------------------------------------

@dataclass
class View:
    """What the kernel's root holds (see the module docstring)."""

    binds: list[str]  # shown read-only at their own paths
    symlinks: dict[str, str]  # top-level links of the host, e.g. /bin -> usr/bin
    masks: list[str]  # folders inside a bind, covered by an empty folder
    blanks: list[str]  # files inside a bind, shown empty
    python_path: list[str]  # the sys.path entries the kernel keeps


def _resolved(path) -> str:
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _course_lib_folder() -> str | None:
    module = sys.modules.get("course_lib")
    if module is not None and getattr(module, "__path__", None):
        return _resolved(next(iter(module.__path__)))
    try:
        spec = importlib.util.find_spec("course_lib")
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec else []
    return _resolved(locations[0]) if locations else None


def course_lib_copy() -> Path | None:
    """A plain, world-readable copy of the course_lib this process would import, in a scratch folder named
    after this process (`vg-runtime-<owner>-...`): what kernels import instead of the checkout's."""
    import shutil
    import tempfile

    source = _course_lib_folder()
    if source is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"vg-runtime-{owner_tag()}-"))
    shutil.copytree(source, folder / "course_lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@functools.cache
def _own_course_lib_copy() -> Path | None:
    """One copy for this process's kernels, removed when it exits (or by the next run's sweep if killed)."""
    import atexit
    import shutil

    folder = course_lib_copy()
    if folder is not None:
        atexit.register(shutil.rmtree, folder, True)
    return folder


def hidden_paths(extra=()) -> list[str]:
    """What must never be visible: the repository and course root of this grader, the home folder and
    `extra` (the course root, submissions, scratch and gradebook of a run)."""
    from .. import COURSE_ROOT, REPO_ROOT

    paths = {str(REPO_ROOT), str(COURSE_ROOT), os.path.expanduser("~"), *(str(p) for p in extra if p)}
    return sorted({_resolved(p) for p in paths} - {"/"})


@functools.lru_cache(maxsize=16)
def _site_candidates(site: str) -> tuple[tuple[str, str | None], ...]:
    """(path, text or None) of the files in a site-packages folder that can name a checkout: an editable
    install's finder (and its compiled copy), egg-links, .pth files, direct_url.json. Read once per process
    (the zygote warms it), so a job computes its view in a millisecond."""
    found = []
    for folder in (site, os.path.join(site, "__pycache__")):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("__editable__") or entry.name.endswith(".egg-link"):
                found.append((entry.path, None))
            elif entry.name.endswith(".pth"):
                found.append((entry.path, Path(entry.path).read_text(errors="replace")[:100_000]))
            elif entry.name.endswith((".dist-info", ".egg-info")) and os.path.isfile(entry.path + "/direct_url.json"):
                found.append((entry.path + "/direct_url.json",
                              Path(entry.path, "direct_url.json").read_text(errors="replace")))
    return tuple(found)


def _blanks_in(site: str, hidden: list[str]) -> list[str]:
    """The files of `_site_candidates` that name the course's checkout: every finder and egg-link, a .pth
    naming a hidden path or an editable finder, the direct_url.json of a local install."""
    def names_it(path: str, text: str | None) -> bool:
        if text is None:
            return True
        if path.endswith(".pth"):
            return "__editable__" in text or any(h in text for h in hidden)
        return '"file:' in text

    return [path for path, text in _site_candidates(site) if names_it(path, text)]


@functools.lru_cache(maxsize=8)
def view(hide: tuple[str, ...] = ()) -> View:
    """The kernel's file view for this process's Python, with `hide` (and the grader's own
    checkout) never visible."""
    hidden = hidden_paths(hide)
    binds, symlinks = [], {}
    for tree in SYSTEM_TREES:
        if os.path.islink(tree):
            symlinks[tree] = os.readlink(tree)
        elif os.path.isdir(tree):
            binds.append(tree)
    prefixes = {_resolved(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix) if p}
    binds += sorted(p for p in prefixes if os.path.isdir(p))
    python_path = []
    for entry in sys.path:
        if not entry:
            continue
        real = _resolved(entry)
        if not os.path.exists(real):
            continue
        if any(_inside(real, p) for p in prefixes):
            python_path.append(entry)
        elif not any(_inside(h, real) for h in hidden) and (  # not the checkout, nor a folder holding it
                not any(_inside(real, h) for h in hidden)  # nor one inside it (tests/, say)
                or os.path.basename(real) in ("site-packages", "dist-packages")):  # a user site in ~
            binds.append(real)
            python_path.append(entry)
    course_lib = _course_lib_folder()
    if course_lib and "course_lib" not in sys.modules and any(_inside(course_lib, h) for h in hidden):
        copy = _own_course_lib_copy()  # not imported yet here (grade-one): kernels import a copy
        course_lib = str(copy / "course_lib") if copy else course_lib
    if course_lib:
        binds.append(course_lib)
        parent = os.path.dirname(course_lib)
        if not any(_resolved(e) == parent for e in python_path if e):
            python_path.append(parent)  # found by name in the kernel, from its copy or its checkout
    unique = []
    for path in sorted(set(binds), key=lambda p: (p.count("/"), p)):
        covering = next((b for b in unique if _inside(path, b)), None)
        if covering is None or os.stat(path).st_dev != os.stat(covering).st_dev:
            unique.append(path)  # a folder on another file system needs its own bind
    masks = sorted({h for h in hidden if any(_inside(h, b) and h != b for b in unique)
                    and not any(_inside(b, h) for b in unique) and os.path.isdir(h)})
    blanks = []
    for entry in python_path:
        real = _resolved(entry)
        if os.path.isdir(real) and os.path.basename(real) in ("site-packages", "dist-packages"):
            blanks += _blanks_in(real, hidden)
    return View(unique, symlinks, masks, sorted(set(blanks)), python_path)


def _stage_root(the_view: View, limits: Limits) -> str:
    """In the keeper's new mount namespace: a tmpfs with `the_view` in it, to become the root (`_enter_root`);
    returns where it is."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    sources = {}
    for path in the_view.binds + [f"/dev/{d}" for d in DEVICES if os.path.exists(f"/dev/{d}")]:
        sources[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)  # before the staging tmpfs covers anything
    null = sources.get("/dev/null")
    stage = "/tmp"  # any folder: it is covered by the new root's tmpfs, then left behind with the old root
    _mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    os.mkdir(stage + "/tmp", 0o755)  # first: a bind under /tmp (a copy of course_lib) goes on top of it
    _mount("tmpfs", stage + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.tmp_mb}m,mode=1777")
    for path, fd in sources.items():
        target = stage + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            open(target, "w").close()
        _mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        if not path.startswith("/dev/"):
            _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for path in the_view.masks:
        _mount("tmpfs", stage + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
    for path in the_view.blanks:
        if null is not None and os.path.isfile(stage + path):
            _mount(f"/proc/self/fd/{null}", stage + path, None, MS_BIND)
    for link, target in the_view.symlinks.items():
        os.symlink(target, stage + link)
    for fd in sources.values():
        os.close(fd)
    os.makedirs(stage + "/dev/shm", mode=0o755, exist_ok=True)
    _mount("tmpfs", stage + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=32m,mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{stage}/dev/{name}")
    os.makedirs(stage + "/proc", mode=0o755, exist_ok=True)
    return stage


def _enter_root(stage: str) -> None:
    """In PID 1 of the new PID namespace: its /proc, then the staged root becomes everyone's root (the keeper's
    too) and the old one is detached. /proc first: in a user namespace, Linux mounts a new proc only while
    the old one is still visible."""
    _mount("proc", stage + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(stage)
    _pivot_root()
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _forget_origins(python_path: list[str]) -> None:
    """In the kernel, before any student code: nothing in what it can read names the grader's checkout.
    /proc/self/environ and cmdline are overwritten in memory, sys.path keeps only the view's entries,
    the editable-install finder and the grader's own modules are dropped, and the frames of the
    trusted code that forked this process (job specs, paths) lose their locals."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        arg_start, arg_end, env_start, env_end = (int(fields[n - 3]) for n in (48, 49, 50, 51))
        if 0 < env_start < env_end:
            ctypes.memset(env_start, 0, env_end - env_start)
        if 0 < arg_start < arg_end:
            name = b"python3\0"[:arg_end - arg_start]
            ctypes.memset(arg_start, 0, arg_end - arg_start)
            ctypes.memmove(arg_start, name, len(name))
    except (OSError, IndexError, ValueError):
        pass
    sys.argv, sys.orig_argv = [""], [os.path.basename(sys.executable)]
    sys.path[:] = python_path
    sys.path_importer_cache.clear()
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    for name in [n for n in sys.modules if n.startswith(("__editable__", "autograder"))]:
        del sys.modules[name]
    frame = sys._getframe(2)  # the caller of _run_kernel and everything above it
    while frame is not None:
        _clear_locals(frame)
        frame = frame.f_back
    # no gc.collect(): it would touch, and so copy, every page the fork shares (seconds with torch)


def _clear_locals(frame) -> None:
    names = list(frame.f_locals)
    locals_to_fast = getattr(ctypes.pythonapi, "PyFrame_LocalsToFast", None)
    if locals_to_fast is not None:  # CPython up to 3.12
        frame.f_locals.clear()
        locals_to_fast(ctypes.py_object(frame), ctypes.c_int(1))
    else:  # 3.13+: f_locals writes through
        for name in names:
            try:
                frame.f_locals[name] = None
            except (KeyError, TypeError, ValueError):
                pass


# ---- time a test had ------------------------------------------------------------------------------

def _waited(path: str) -> float | None:
    """Seconds the task spent runnable but waiting for a CPU (the second field of its schedstat)."""
    try:
        with open(path) as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class Deadline:
    """`seconds` of the time a test had: wall time minus the time its tasks (the judge's thread, the
    kernel's main thread) spent waiting for a CPU. CPU burners beside it, in other sandboxes or
    elsewhere on the machine, slow it down but do not use up its limit. Never more than
    `BACKSTOP` x `seconds` of wall time."""

    def __init__(self, seconds: float, tasks):
        self.seconds, self._tasks = seconds, tasks  # tasks(): the schedstat files to count
        self._wall = time.monotonic()
        self._base: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._elapsed = 0.0
        self._sample()

    def _sample(self) -> float:
        waited = 0.0
        for path in self._tasks():
            value = _waited(path)
            if value is None:
                value = self._last.get(path)  # the task ended: its waiting stays counted
            if value is None:
                continue
            self._last[path] = value
            waited += value - self._base.setdefault(path, value)
        return waited

    def elapsed(self) -> float:
        wall = time.monotonic() - self._wall
        self._elapsed = max(self._elapsed, min(wall, wall - self._sample()))
        return self._elapsed

    def remaining(self) -> float:
        """Seconds left (<= 0: the limit is reached); re-check after at most this many wall seconds."""
        return min(self.seconds - self.elapsed(), BACKSTOP * self.seconds - (time.monotonic() - self._wall))


# ---- the sandbox itself ----------------------------------------------------------------------

@dataclass
class Exit:
    """How a sandbox ended."""

    code: int | None = None  # the kernel's exit code, or -signal
    oom: bool = False
    pids_exhausted: bool = False
    killed_by_grader: bool = False

    def describe(self) -> str:
        if self.oom:
            return "ran out of memory (memory limit reached) and was killed"
        if self.killed_by_grader:
            return "was stopped by the grader (time limit, or it ignored the interrupt)"
        if self.code is None:
            return "ended"
        if self.code == -signal.SIGXCPU or self.code == 128 + signal.SIGXCPU:
            return "used up its CPU time limit and was killed"
        if self.code == -signal.SIGKILL or self.code == 128 + signal.SIGKILL:
            return "was killed (SIGKILL: memory limit, or a kill from its own code)"
        if self.code < 0 or self.code > 128:
            number = -self.code if self.code < 0 else self.code - 128
            try:
                name = signal.Signals(number).name
            except ValueError:
                name = f"signal {number}"
            return f"died from {name}"
        return f"exited with code {self.code} (os._exit or a crash)"


class Sandbox:
    """One isolated kernel process tree; `sock` talks to the kernel (see shell.py)."""

    def __init__(self, isolation: Isolation, limits: Limits, *, hide=(), notebook_name: str = "notebook.ipynb",
                 notebook_bytes: bytes = b"", env_extra: dict | None = None):
        self.isolation, self.limits = isolation, limits
        self.sock: socket.socket | None = None
        self.keeper_pid = self.init_pid = None
        self.exit: Exit | None = None
        self._hide = tuple(sorted(str(p) for p in hide if p))
        self._notebook = (Path(notebook_name).name or "notebook.ipynb", notebook_bytes)
        self._env_extra = env_extra or {}
        self._cgroups = None
        self._view: View | None = None
        self._workdir = None
        self._kernel_pid = None

    # the judge's side ---------------------------------------------------------------------------
    def start(self) -> Sandbox:
        if self.isolation.mode == "none":
            return self._start_unsandboxed()
        self._view = view(self._hide)
        judge_sock, kernel_sock = socket.socketpair()
        status_r, status_w = os.pipe()
        sweep_cgroups()
        self._cgroups = _Cgroups(self.isolation.cgroups, self.limits, cpu=self.isolation.cpu_weights)
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # keeper
            try:
                die_with_parent(parent)
                os.close(status_r)
                judge_sock.close()
                self._keeper(kernel_sock, status_w)
            except BaseException as error:  # noqa: BLE001
                try:
                    os.write(status_w, json.dumps({"error": f"{type(error).__name__}: {error}"}).encode() + b"\n")
                finally:
                    os._exit(70)
            os._exit(0)
        self.keeper_pid = pid
        os.close(status_w)
        kernel_sock.close()
        status = _read_line(status_r, timeout=30)
        os.close(status_r)
        if not status or "init" not in status:
            self.kill()
            raise SandboxError((status or {}).get("error", "the sandbox did not start"))
        self.init_pid = status["init"]
        self.sock = judge_sock
        return self

    def deadline(self, seconds: float) -> Deadline:
        """A time limit of `seconds` in the time a test had (see Deadline), starting now."""
        if not self.isolation.fair_clock:
            return Deadline(seconds, list)
        judge_thread = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        return Deadline(seconds, lambda: [judge_thread] + ([f"/proc/{k}/schedstat"] if (k := self._kernel()) else []))

    def _kernel(self) -> int | None:
        """The kernel's pid as this process sees it (init's first child; in mode "none" the process itself)."""
        if self._kernel_pid is None and self.init_pid:
            if self.isolation.mode == "none":
                self._kernel_pid = self.init_pid
            else:
                try:
                    children = Path(f"/proc/{self.init_pid}/task/{self.init_pid}/children").read_text().split()
                    self._kernel_pid = int(children[0]) if children else None
                except (OSError, ValueError):
                    pass
        return self._kernel_pid

    def interrupt(self) -> None:
        """Ask the kernel to stop what it is doing (KeyboardInterrupt in the student's code)."""
        target = self.init_pid
        if target:
            try:
                os.kill(target, signal.SIGUSR1 if self.isolation.mode != "none" else signal.SIGINT)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        """End every process of this sandbox."""
        if self.exit is None:
            self.exit = Exit(killed_by_grader=True)
        if self.isolation.mode == "none" and self.init_pid:
            try:
                os.killpg(self.init_pid, signal.SIGKILL)  # no PID namespace: its process group (setpgid refused)
            except OSError:
                pass
        for pid in (self.init_pid, self.keeper_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self._cgroups is not None:
            self._cgroups.kill()
        self.close()

    def close(self) -> Exit:
        """Wait for the sandbox to end (it ends when the kernel does), remove its cgroups; returns how it ended."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        code = None
        if self.keeper_pid:
            deadline = time.monotonic() + 5
            while True:
                try:
                    done, status = os.waitpid(self.keeper_pid, os.WNOHANG)
                except ChildProcessError:
                    break
                if done:
                    code = os.waitstatus_to_exitcode(status)
                    break
                if time.monotonic() > deadline:
                    for pid in (self.init_pid, self.keeper_pid):
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except (ProcessLookupError, TypeError):
                            pass
                    deadline = time.monotonic() + 5
                time.sleep(0.005)
            self.keeper_pid = None
        if self._workdir:
            import shutil

            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        exit_ = self.exit or Exit()
        if code is not None and exit_.code is None and not exit_.killed_by_grader:
            exit_.code = code
        if self._cgroups is not None:
            exit_.oom = exit_.oom or self._cgroups.oom_killed()
            exit_.pids_exhausted = self._cgroups.pids_exhausted()
            self._cgroups.remove()
            self._cgroups = None
        self.exit = exit_
        return exit_

    # the keeper (trusted code, in the new namespaces) -----------------------------------------------
    def _keeper(self, kernel_sock, status_w) -> None:
        if self._cgroups is not None:
            self._cgroups.add(os.getpid())  # init and the kernel inherit them; /sys is not in the view
        _enter_namespaces(self.isolation.mode)
        stage = _stage_root(self._view, self.limits)
        uid = UID_BASE + os.getpid() if self.isolation.separate_uid else os.getuid()
        gid = uid if self.isolation.separate_uid else os.getgid()
        workdir = Path(stage + "/tmp/submission")
        workdir.mkdir(mode=0o700)
        (workdir / self._notebook[0]).write_bytes(self._notebook[1])
        for path in [workdir, *workdir.iterdir()]:
            os.chown(path, uid, gid)
        for folder in ("/tmp/.ipython", "/tmp/.matplotlib", "/tmp/.cache"):
            os.mkdir(stage + folder, 0o700)
            os.chown(stage + folder, uid, gid)
        os.chdir(stage)  # init's pivot then makes the new root this process's root and working directory too
        go_r, go_w = os.pipe()
        init = os.fork()
        if init == 0:
            os.close(go_w)
            os.close(status_w)
            self._init(kernel_sock, go_r, uid, gid, "/tmp/submission", stage)
        os.close(go_r)
        os.write(go_w, b"x")
        os.close(go_w)
        kernel_sock.close()
        os.write(status_w, json.dumps({"init": init}).encode() + b"\n")
        os.close(status_w)
        while True:
            try:
                _, status = os.waitpid(init, 0)
                break
            except ChildProcessError:
                status = 0
                break
        code = os.waitstatus_to_exitcode(status)
        os._exit(min(255, abs(code) + (128 if code < 0 else 0)))

    def _init(self, kernel_sock, go_r, uid: int, gid: int, workdir: str, stage: str) -> None:
        """PID 1 of the sandbox: start the kernel, reap orphans, relay interrupts, exit with the kernel."""
        try:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.read(go_r, 1) != b"x":
                os._exit(75)  # the keeper died before it let us go: PR_SET_PDEATHSIG came too late
            os.close(go_r)
            _enter_root(stage)
            kernel = os.fork()
            if kernel == 0:
                self._become_student(kernel_sock, uid, gid, workdir)
            kernel_sock.close()
            signal.signal(signal.SIGUSR1, lambda *_: _kill_quietly(kernel, signal.SIGINT))
            while True:
                pid, status = os.wait()
                if pid == kernel:
                    code = os.waitstatus_to_exitcode(status)
                    os._exit(128 + (-code) if code < 0 else min(code, 127))
        except ChildProcessError:
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(71)

    def _become_student(self, kernel_sock, uid: int, gid: int, workdir: str) -> None:
        try:
            signal.signal(signal.SIGUSR1, signal.SIG_DFL)
            os.setsid()  # its own session and process group: killpg(0) reaches nothing of the grader's
            sock_fd = kernel_sock.fileno()
            if self.isolation.separate_uid:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            _drop_capabilities()
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            if self.isolation.seccomp:
                _refuse_new_sessions()
            self._set_limits()
            _sanitize_fds(keep=sock_fd)
            os.chdir(workdir)
            os.environ.clear()
            os.environ.update(self._kernel_environment(workdir))
        except BaseException:  # noqa: BLE001
            os._exit(72)
        _run_kernel(kernel_sock, workdir, self._view.python_path)

    def _kernel_environment(self, workdir: str) -> dict:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin",  # not the venv's bin/: it may name the checkout
                "HOME": workdir, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                "IPYTHONDIR": "/tmp/.ipython", "MPLCONFIGDIR": "/tmp/.matplotlib",
                "XDG_CACHE_HOME": "/tmp/.cache", "MPLBACKEND": "agg",
                "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "NBGRADER_EXECUTION": "autograde", **self._env_extra}

    def _set_limits(self) -> None:
        limits = self.limits
        settings = [(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5)),
                    (resource.RLIMIT_FSIZE, (limits.file_size_mb * 2**20,) * 2),
                    (resource.RLIMIT_NOFILE, (limits.open_files,) * 2),
                    (resource.RLIMIT_CORE, (0, 0))]
        if self.isolation.separate_uid or self.isolation.mode == "none":
            settings.append((resource.RLIMIT_NPROC, (limits.processes,) * 2))
        if not self.isolation.cgroups:
            settings.append((resource.RLIMIT_AS, (_address_space() + limits.memory_mb * 2**20,) * 2))
        for which, value in settings:
            resource.setrlimit(which, value)

    # without namespaces (only with --unsafe-no-sandbox) ----------------------------------------------
    def _start_unsandboxed(self) -> Sandbox:
        import tempfile

        judge_sock, kernel_sock = socket.socketpair()
        workdir = tempfile.mkdtemp(prefix=f"vg-unsafe-{owner_tag()}-")
        (Path(workdir) / self._notebook[0]).write_bytes(self._notebook[1])
        pid = os.fork()
        if pid == 0:
            try:
                judge_sock.close()
                prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                os.setsid()
                prctl(PR_SET_NO_NEW_PRIVS, 1)
                if self.isolation.seccomp:
                    _refuse_new_sessions()  # so killpg reaches every process it starts
                self._set_limits()
                _sanitize_fds(keep=kernel_sock.fileno())
                os.environ.update({"MPLBACKEND": "agg", "NBGRADER_EXECUTION": "autograde"})
            except BaseException:  # noqa: BLE001
                os._exit(72)
            _run_kernel(kernel_sock, workdir, None)
        kernel_sock.close()
        self.keeper_pid = self.init_pid = pid
        self.sock = judge_sock
        self._workdir = workdir
        return self


def _run_kernel(kernel_sock, workdir: str, python_path: list[str] | None) -> None:
    code = 0
    try:
        if python_path is not None:
            _forget_origins(python_path)
        shell.main(kernel_sock, workdir)
    except BaseException:  # noqa: BLE001
        code = 73
    finally:
        sys.stdout.flush() if hasattr(sys.stdout, "flush") else None
        os._exit(code)


def _kill_quietly(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _sanitize_fds(*, keep: int) -> None:
    """Close every inherited descriptor but the kernel's socket; stdin/stdout/stderr go to /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != keep:
            os.dup2(null, fd)
    if null > 2 and null != keep:
        os.close(null)
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)


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


def _read_line(fd: int, *, timeout: float) -> dict | None:
    data, deadline = b"", time.monotonic() + timeout
    while not data.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            return None
        try:
            chunk = os.read(fd, 4096)
        except OSError as error:
            if error.errno == errno.EINTR:
                continue
            return None
        if not chunk:
            break
        data += chunk
    try:
        return json.loads(data.decode())
    except ValueError:
        return None


def make_undumpable() -> None:
    """Trusted grader processes: no /proc/PID/{mem,environ,cwd,fd} access for other processes of this uid."""
    try:
        prctl(PR_SET_DUMPABLE, 0)
    except SandboxError:
        pass
