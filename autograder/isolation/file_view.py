"""The kernel's file view: deny by default. Its root is an empty read-only tmpfs into which only what it
needs is bound, read-only, at its own path: the system's /usr (and /bin, /lib... as on the host), the
Python installation and the directories on ``sys.path`` that hold packages, and ``course_lib`` (a plain
copy when the checkout's would show the repository, see worker.Pool). Its working directory is a fresh,
size-limited tmpfs /tmp holding only the notebook; /dev holds null, zero, full, random, urandom and a
private /dev/shm; /proc is the sandbox's own. The course root, the repository and the submissions are
never bound; if one lies inside a bound tree it is covered by an empty folder. Files that name the
repository (an editable install's finder and ``.pth``, ``direct_url.json``) are shown empty, and the
kernel's environment, arguments, ``sys.path`` and import hooks are rewritten (`forget_origins`) so they
name nothing outside the view (what it inherited in memory from the fork may still hold paths; nothing
under them is readable).

`view()` computes the view in the trusted process; `stage_root` builds it in the keeper's new mount
namespace and `enter_root` makes it the root in PID 1 of the new PID namespace."""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .linux import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC, MS_REMOUNT, \
    mount, pivot_root
from .owners import owner_tag

SYSTEM_TREES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom")


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


def stage_root(the_view: View, tmp_mb: int) -> str:
    """In the keeper's new mount namespace: a tmpfs with `the_view` in it, to become the root (`enter_root`);
    returns where it is."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    sources = {}
    for path in the_view.binds + [f"/dev/{d}" for d in DEVICES if os.path.exists(f"/dev/{d}")]:
        sources[path] = os.open(path, os.O_PATH | os.O_CLOEXEC)  # before the staging tmpfs covers anything
    null = sources.get("/dev/null")
    stage = "/tmp"  # any folder: it is covered by the new root's tmpfs, then left behind with the old root
    mount("tmpfs", stage, "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=755")
    os.mkdir(stage + "/tmp", 0o755)  # first: a bind under /tmp (a copy of course_lib) goes on top of it
    mount("tmpfs", stage + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_mb}m,mode=1777")
    for path, fd in sources.items():
        target = stage + path
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if os.path.isdir(f"/proc/self/fd/{fd}"):
            os.makedirs(target, mode=0o755, exist_ok=True)
        elif not os.path.exists(target):
            open(target, "w").close()
        mount(f"/proc/self/fd/{fd}", target, None, MS_BIND)
        if not path.startswith("/dev/"):
            mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    for path in the_view.masks:
        mount("tmpfs", stage + path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k,mode=755")
    for path in the_view.blanks:
        if null is not None and os.path.isfile(stage + path):
            mount(f"/proc/self/fd/{null}", stage + path, None, MS_BIND)
    for link, target in the_view.symlinks.items():
        os.symlink(target, stage + link)
    for fd in sources.values():
        os.close(fd)
    os.makedirs(stage + "/dev/shm", mode=0o755, exist_ok=True)
    mount("tmpfs", stage + "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=32m,mode=1777")
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{stage}/dev/{name}")
    os.makedirs(stage + "/proc", mode=0o755, exist_ok=True)
    return stage


def enter_root(stage: str) -> None:
    """In PID 1 of the new PID namespace: its /proc, then the staged root becomes everyone's root (the keeper's
    too) and the old one is detached. /proc first: in a user namespace, Linux mounts a new proc only while
    the old one is still visible."""
    mount("proc", stage + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(stage)
    pivot_root()
    mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def forget_origins(python_path: list[str]) -> None:
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
    frame = sys._getframe(2)  # the caller of sandbox.py's _run_kernel and everything above it
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
