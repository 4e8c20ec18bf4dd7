"""The Linux calls the sandbox is built from, through libc: namespaces, mounts, pivot_root, prctl,
capabilities, a seccomp filter, and closing inherited descriptors. Each raises SandboxError naming the
step that failed; nothing here decides policy (sandbox.py, file_view.py and machine.py do)."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import signal
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP, PR_SET_NO_NEW_PRIVS = 1, 4, 22, 38
# machine -> (audit arch, setsid, setpgid) for the seccomp filter
SYSCALLS = {"x86_64": (0xC000003E, 112, 109), "aarch64": (0xC00000B7, 157, 154)}

_libc = ctypes.CDLL(None, use_errno=True)


class SandboxError(RuntimeError):
    """The sandbox could not be set up (the message says which step failed)."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(code)}")


def _unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source, target, fstype, flags, data=None) -> None:
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


def drop_capabilities() -> None:
    """capset(all zero): no capability left in any user namespace (so no umount of the hiding mounts)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def pivot_root() -> None:
    """Make the current directory the root and detach the old one (pivot_root(".", "."), as runc does)."""
    number = {"x86_64": 155, "aarch64": 41}.get(platform.machine())
    if number is None:
        raise SandboxError(f"pivot_root: unknown system call number on {platform.machine()}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "umount the old root")
    os.chdir("/")


def refuse_new_sessions() -> None:
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



def enter_namespaces(mode: str) -> None:
    flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
    if mode == "userns":
        uid, gid = os.getuid(), os.getgid()
        _unshare(CLONE_NEWUSER | flags)
        Path("/proc/self/setgroups").write_text("deny")
        Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
        Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    else:
        _unshare(flags)



def sanitize_fds(*, keep: int) -> None:
    """Close every inherited descriptor but the kernel's socket; stdin/stdout/stderr go to /dev/null."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != keep:
            os.dup2(null, fd)
    if null > 2 and null != keep:
        os.close(null)
    os.closerange(3, keep)
    os.closerange(keep + 1, 65536)


def make_undumpable() -> None:
    """Trusted grader processes: no /proc/PID/{mem,environ,cwd,fd} access for other processes of this uid."""
    try:
        prctl(PR_SET_DUMPABLE, 0)
    except SandboxError:
        pass
