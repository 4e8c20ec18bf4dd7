"""Run one submission's code isolated: what Linux provides, and a loud refusal where it cannot.

A sandbox is a process tree forked from the (pre-imported, secret-free)
worker, so it starts in milliseconds with torch already imported:

    judge (trusted)
     └─ keeper: unshare(mount, pid, net, ipc, uts [, user]); builds the file view
         └─ init, PID 1 of a new PID namespace: reaps, relays interrupts
             └─ kernel (PID 2): unprivileged uid, no capabilities, rlimits,
                                  runs the student's cells (kernel.py)

- **Files**: a private mount namespace. The repository, the course root
  (sources with solutions and hidden tests, gradebook), the submissions, the
  grader's output, /tmp, /root, /home, /run ... are covered by empty read-only
  tmpfs; only the Python installation, the virtual environment and
  ``course_lib`` are bound back, read-only, at their own paths (so the
  editable install still imports). The kernel's working directory is a
  fresh, size-limited tmpfs holding only the student's notebook.
- **Identity**: as root, the kernel runs as a uid of its own (2,000,000 +
  keeper pid) with no groups and no capabilities, so it can read only
  world-readable files and signal only its own processes. Without root, an
  unprivileged user namespace gives the same file view (same uid, no caps).
- **Network**: a new network namespace with no interfaces up.
- **Processes**: a PID namespace; killing its init ends every process the
  student started, detached or not. The keeper and init die with their parent
  (PR_SET_PDEATHSIG), so a killed grader leaves nothing behind.
- **Limits**: cgroups (memory, pids) when writable, else RLIMIT_AS; always
  RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0.

`probe()` says which of these this machine supports; the grader refuses to run
student code without namespaces unless the instructor passes
``--unsafe-no-sandbox``.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
UID_BASE = 2_000_000
WRITABLE = ("/tmp", "/var/tmp", "/dev/shm")  # fresh, private, size-limited; everything else hidden is read-only
DEFAULT_HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/dev/shm", "/run", "/mnt", "/media", "/srv", "/opt")

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """The sandbox could not be set up (the message says which step failed)."""


@dataclass
class Limits:
    """Per-submission resource limits (see `python -m autograder grade --help`)."""

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

    def describe(self) -> str:
        if self.mode == "none":
            return ("NO ISOLATION: student code would run as you, with access to your files and the "
                    "network (" + "; ".join(self.problems) + ")")
        parts = ["mount+pid+net+ipc+uts namespaces"]
        parts.append("separate unprivileged uid" if self.separate_uid else "same uid in a user namespace")
        parts.append(f"cgroup {self.cgroups} memory/pids limits" if self.cgroups else "rlimit memory limit (no cgroups)")
        parts.append("rlimits on CPU time, processes, file size, open files")
        return "; ".join(parts)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(code)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def _mount(source, target, fstype, flags, data=None) -> None:
    enc = lambda s: s.encode() if isinstance(s, str) else s  # noqa: E731
    _check(_libc.mount(enc(source), enc(str(target)), enc(fstype), flags, enc(data)), f"mount {target}")


def _prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent dies, and exit now if `parent` (its pid before the fork)
    already died: PR_SET_PDEATHSIG set after that moment would never fire."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
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


# ---- what the machine supports ---------------------------------------------------------------

def _cgroup_flavour() -> str:
    if os.geteuid() != 0:
        return ""
    v1 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/pids")
    if all((p / "cgroup.procs").is_file() for p in v1) and all(os.access(p, os.W_OK) for p in v1):
        return "v1"
    root = Path("/sys/fs/cgroup")
    controllers = (root / "cgroup.controllers")
    if controllers.is_file() and {"memory", "pids"} <= set(controllers.read_text().split()) \
            and os.access(root, os.W_OK):
        return "v2"
    return ""


_PROBED: list[Isolation] = []


def probe(*, force_mode: str | None = None) -> Isolation:
    """Find out (once, in a throwaway child) whether namespaces work here; never raises."""
    if _PROBED and not force_mode:
        return _PROBED[0]
    problems = []
    if force_mode == "none":
        return Isolation("none", False, False, "", ["isolation switched off"])
    if not sys.platform.startswith("linux"):
        result = Isolation("none", False, False, "", [f"{sys.platform} has no Linux namespaces"])
    else:
        modes = [force_mode] if force_mode else (["root", "userns"] if os.geteuid() == 0 else ["userns"])
        result = None
        for mode in modes:
            error = _try_namespaces(mode)
            if error is None:
                result = Isolation(mode, True, mode == "root", _cgroup_flavour() if mode == "root" else "")
                break
            problems.append(f"{mode}: {error}")
        if result is None:
            result = Isolation("none", False, False, "", problems)
    if not force_mode:
        _PROBED.append(result)
    return result


def _try_namespaces(mode: str) -> str | None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        message = b"ok"
        try:
            _enter_namespaces(mode)
            _mount(None, "/", None, MS_REC | MS_PRIVATE)
            _mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
            child = os.fork()
            if child == 0:
                try:
                    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                    os._exit(0 if os.getpid() == 1 else 3)
                except BaseException:
                    os._exit(4)
            _, status = os.waitpid(child, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                message = b"cannot mount /proc in a new PID namespace"
        except BaseException as error:  # noqa: BLE001
            message = str(error).encode()[:500]
        os.write(write_end, message)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return None if message == "ok" else message or "the probe process died"


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


# ---- cgroups ---------------------------------------------------------------------------------

class _Cgroups:
    """Per-sandbox memory and pids cgroups (v1 or v2); `paths` is empty when unavailable."""

    def __init__(self, flavour: str, name: str, limits: Limits):
        self.flavour, self.paths = flavour, []
        if not flavour:
            return
        memory = limits.memory_mb * 2**20
        try:
            if flavour == "v1":
                mem = Path("/sys/fs/cgroup/memory/vg-grader") / name
                pids = Path("/sys/fs/cgroup/pids/vg-grader") / name
                for path in (mem, pids):
                    path.mkdir(parents=True, exist_ok=True)
                    self.paths.append(path)
                (mem / "memory.limit_in_bytes").write_text(str(memory))
                try:
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(memory))
                except OSError:
                    pass  # no swap accounting: fine, this machine has no swap to escape to
                (pids / "pids.max").write_text(str(limits.processes))
            else:
                parent = Path("/sys/fs/cgroup/vg-grader")
                parent.mkdir(exist_ok=True)
                (Path("/sys/fs/cgroup") / "cgroup.subtree_control").write_text("+memory +pids")
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
                path = parent / name
                path.mkdir(exist_ok=True)
                self.paths.append(path)
                (path / "memory.max").write_text(str(memory))
                (path / "memory.swap.max").write_text("0")
                (path / "pids.max").write_text(str(limits.processes))
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

    def remaining(self) -> list[int]:
        pids = []
        for path in self.paths:
            procs = path / "cgroup.procs"
            if procs.is_file():
                pids += [int(p) for p in procs.read_text().split()]
        return pids

    def remove(self) -> None:
        for path in self.paths:
            for _ in range(50):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    for pid in self.remaining():
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except OSError:
                            pass
                    time.sleep(0.02)


# ---- the sandbox itself ----------------------------------------------------------------------

def keep_paths() -> list[str]:
    """What the student's kernel must still see: the Python installation, the venv, course_lib."""
    keep = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    try:
        import course_lib

        keep.add(str(Path(course_lib.__file__).resolve().parent))
    except ImportError:  # pragma: no cover
        pass
    return sorted(str(Path(p).resolve()) for p in keep if p and Path(p).exists())


def hidden_paths(extra=()) -> list[str]:
    """Directories covered by an empty read-only tmpfs in the sandbox (the course and more)."""
    from . import REPO_ROOT

    paths = set(DEFAULT_HIDDEN) | {str(REPO_ROOT), os.getcwd(), os.path.expanduser("~")}
    paths |= {str(Path(p).resolve()) for p in extra if p}
    existing = sorted(p for p in {str(Path(p).resolve()) for p in paths} if os.path.isdir(p) and p != "/")
    # a path inside another hidden path is hidden with it
    return [p for p in existing if not any(p != q and p.startswith(q.rstrip("/") + "/") for q in existing)]


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
    """One isolated kernel process tree; `sock` talks to the kernel (see kernel.py)."""

    def __init__(self, isolation: Isolation, limits: Limits, *, hide=(), notebook_name: str = "notebook.ipynb",
                 notebook_bytes: bytes = b"", env_extra: dict | None = None):
        self.isolation, self.limits = isolation, limits
        self.sock: socket.socket | None = None
        self.keeper_pid = self.init_pid = None
        self.exit: Exit | None = None
        self._hide = hidden_paths(hide)
        self._notebook = (Path(notebook_name).name or "notebook.ipynb", notebook_bytes)
        self._env_extra = env_extra or {}
        self._cgroups = None

    # the judge's side ---------------------------------------------------------------------------
    def start(self) -> "Sandbox":
        if self.isolation.mode == "none":
            return self._start_unsandboxed()
        judge_sock, kernel_sock = socket.socketpair()
        status_r, status_w = os.pipe()
        name = f"s{os.getpid()}-{time.monotonic_ns()}"
        self._cgroups = _Cgroups(self.isolation.cgroups, name, self.limits)
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
                os.killpg(self.init_pid, signal.SIGKILL)  # no PID namespace: end its process group
            except OSError:
                pass
        for pid in (self.init_pid, self.keeper_pid):
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
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
        if getattr(self, "_workdir", None):
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
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        _enter_namespaces(self.isolation.mode)
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        keep_fds = {p: os.open(p, os.O_PATH | os.O_DIRECTORY) for p in keep_paths()}  # before hiding them
        self._build_file_view(keep_fds)
        uid = UID_BASE + os.getpid() if self.isolation.separate_uid else os.getuid()
        gid = uid if self.isolation.separate_uid else os.getgid()
        workdir = Path("/tmp/submission")
        workdir.mkdir(mode=0o700)
        (workdir / self._notebook[0]).write_bytes(self._notebook[1])
        for path in [workdir, *workdir.iterdir()]:
            os.chown(path, uid, gid)
        for folder in ("/tmp/.ipython", "/tmp/.matplotlib", "/tmp/.cache"):
            os.mkdir(folder, 0o700)
            os.chown(folder, uid, gid)
        go_r, go_w = os.pipe()
        init = os.fork()
        if init == 0:
            os.close(go_w)
            os.close(status_w)
            self._init(kernel_sock, go_r, uid, gid, str(workdir))
        os.close(go_r)
        if self._cgroups is not None:
            self._cgroups.add(init)
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
        os._exit(min(255, abs(os.waitstatus_to_exitcode(status)) + (128 if os.waitstatus_to_exitcode(status) < 0 else 0)))

    def _build_file_view(self, keep_fds: dict[str, int]) -> None:
        hidden = self._hide
        for path in hidden:
            writable = path in WRITABLE
            size = f"{self.limits.tmp_mb if path == '/tmp' else 32}m" if writable else "4m"
            mode = "1777" if writable else "755"
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size},mode={mode}")
        for path, fd in keep_fds.items():
            if any(path == h or path.startswith(h.rstrip("/") + "/") for h in hidden):
                os.makedirs(path, mode=0o755, exist_ok=True)
                _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
                _mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
            os.close(fd)
        for path in hidden:
            if path not in WRITABLE:
                _mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)

    def _init(self, kernel_sock, go_r, uid: int, gid: int, workdir: str) -> None:
        """PID 1 of the sandbox: start the kernel, reap orphans, relay interrupts, exit with the kernel."""
        try:
            _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
            os.read(go_r, 1)
            os.close(go_r)
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
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
            _prctl(PR_SET_NO_NEW_PRIVS, 1)
            self._set_limits()
            _sanitize_fds(keep=sock_fd)
            os.chdir(workdir)
            os.environ.clear()
            os.environ.update({"PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
                               "HOME": workdir, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
                               "IPYTHONDIR": "/tmp/.ipython", "MPLCONFIGDIR": "/tmp/.matplotlib",
                               "XDG_CACHE_HOME": "/tmp/.cache", "MPLBACKEND": "agg",
                               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                               "NBGRADER_EXECUTION": "autograde", **self._env_extra})
        except BaseException:  # noqa: BLE001
            os._exit(72)
        _run_kernel(kernel_sock, workdir)

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
    def _start_unsandboxed(self) -> "Sandbox":
        import tempfile

        judge_sock, kernel_sock = socket.socketpair()
        workdir = tempfile.mkdtemp(prefix="vg-unsafe-")
        (Path(workdir) / self._notebook[0]).write_bytes(self._notebook[1])
        pid = os.fork()
        if pid == 0:
            try:
                judge_sock.close()
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                os.setsid()
                self._set_limits()
                _sanitize_fds(keep=kernel_sock.fileno())
                os.environ.update({"MPLBACKEND": "agg", "NBGRADER_EXECUTION": "autograde"})
            except BaseException:  # noqa: BLE001
                os._exit(72)
            _run_kernel(kernel_sock, workdir)
        kernel_sock.close()
        self.keeper_pid = self.init_pid = pid
        self.sock = judge_sock
        self._workdir = workdir
        return self


def _run_kernel(kernel_sock, workdir: str) -> None:
    code = 0
    try:
        from .kernel import main

        main(kernel_sock, workdir)
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
        _prctl(PR_SET_DUMPABLE, 0)
    except SandboxError:
        pass

