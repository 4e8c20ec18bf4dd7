"""What this machine lets the grader do: `probe()` tries namespaces (as root, else in a user namespace),
cgroups, seccomp and schedstat once, in throwaway children, and `Isolation` says what it found. The grader
refuses to run student code without namespaces unless the instructor passes ``--unsafe-no-sandbox``."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .cgroups import cpu_controller, writable_flavour
from .clock import BACKSTOP
from .file_view import enter_root
from .linux import MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_REC, PR_SET_NO_NEW_PRIVS, SYSCALLS, SandboxError, \
    enter_namespaces, mount, prctl, refuse_new_sessions


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
                flavour = writable_flavour() if mode == "root" else ""
                result = Isolation(mode, True, mode == "root", flavour, cpu_weights=cpu_controller(flavour),
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
        refuse_new_sessions()
        try:
            os.setsid()
        except PermissionError:
            return
        raise SandboxError("setsid still allowed")

    return _in_child(body) is None


def _try_namespaces(mode: str) -> str | None:
    def body():
        enter_namespaces(mode)
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
        os.mkdir("/tmp/proc")
        child = os.fork()
        if child == 0:
            try:
                enter_root("/tmp")
                os._exit(0 if os.getpid() == 1 else 3)
            except BaseException:  # noqa: BLE001
                os._exit(4)
        _, status = os.waitpid(child, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SandboxError("cannot mount /proc in a new PID namespace, or pivot into a new root")

    return _in_child(body)
