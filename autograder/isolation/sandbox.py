"""Run one submission's code isolated: what Linux provides, and a loud refusal where it cannot.

A sandbox is a process tree forked from the (pre-imported, secret-free)
worker, so it starts in milliseconds with torch already imported:

    judge (trusted)
     └─ keeper: joins the sandbox's cgroups; unshare(mount, pid, net, ipc, uts [, user]);
        │       builds the file view and pivots into it
         └─ init, PID 1 of a new PID namespace: reaps, relays interrupts
             └─ kernel (PID 2): unprivileged uid, no capabilities, seccomp, rlimits,
                                  runs the student's cells (shell.py)

- **Files: deny by default**: the kernel sees only the file view (file_view.py).
- **Identity**: as root, the kernel runs as a uid of its own (`UID_BASE` +
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
  writable (cgroups.py), else RLIMIT_AS; always RLIMIT_CPU, RLIMIT_NPROC,
  RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0 (limits.py).
- **Time**: `Sandbox.deadline` measures a limit in the time a test had
  (clock.py), so a busy machine does not shorten anyone's limit.
- **Leftovers**: cgroups are named after the process that owns them (owners.py);
  `cgroups.sweep_cgroups` ends those whose owner died and removes them.

machine.py says which of these this machine supports; linux.py holds the
system calls. This module ties them together and is the only importer of
shell.py, the code that runs inside.
"""

from __future__ import annotations

import errno
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from . import file_view, shell  # shell before any fork: the kernel's view no longer shows the grader's code
from .cgroups import Cgroups, sweep_cgroups
from .clock import Deadline
from .file_view import View, enter_root, forget_origins, stage_root
from .limits import Limits, apply_rlimits
from .linux import PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG, SandboxError, die_with_parent, drop_capabilities, \
    enter_namespaces, prctl, refuse_new_sessions, sanitize_fds
from .machine import Isolation
from .owners import owner_tag

UID_BASE = 2_000_000


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
        self._view = file_view.view(self._hide)
        judge_sock, kernel_sock = socket.socketpair()
        status_r, status_w = os.pipe()
        sweep_cgroups()
        self._cgroups = Cgroups(self.isolation.cgroups, self.limits, cpu=self.isolation.cpu_weights)
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
        enter_namespaces(self.isolation.mode)
        stage = stage_root(self._view, self.limits.tmp_mb)
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
            enter_root(stage)
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
            drop_capabilities()
            prctl(PR_SET_NO_NEW_PRIVS, 1)
            if self.isolation.seccomp:
                refuse_new_sessions()
            self._set_limits()
            sanitize_fds(keep=sock_fd)
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
        isolation = self.isolation
        apply_rlimits(self.limits, processes=isolation.separate_uid or isolation.mode == "none",
                      address_space=not isolation.cgroups)

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
                    refuse_new_sessions()  # so killpg reaches every process it starts
                self._set_limits()
                sanitize_fds(keep=kernel_sock.fileno())
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
            forget_origins(python_path)
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
