"""Red team, round two: the file view, fair CPU, bad files and leftovers, through the real command line.

The checkout is copied to an unusual place (/data/.../x/y, else a temporary
folder) with a fresh marker in a solution cell and in a hidden test of
notebooks 01 and 04, and graded from there, pinned to one core:

  main run   an nbgrader submitted/ tree inside the course root: honest
             submissions of 01 and 04 (exact grades, one with a second of
             CPU work in a cell), a CPU burner (60 busy processes that try
             setsid, for longer than a cell's 15 s limit) graded beside
             them, a walker per notebook that searches the whole file system
             (/proc included) and its own memory for the course and the
             markers, and bad files
             (symbolic links, a FIFO, a hard link to a course file, a folder
             named like the notebook, malformed and valid timestamp.txt, a
             file naming another student). The grader is SIGKILLed three times
             (while its worker imports, during calibration, mid-batch); each
             next run, once started, finds nothing of the killed one left
             (process, cgroup, temporary folder, half-written file).
  zip run    the checkout then moved to /work/zz-... (else a temporary
             folder) grades an LMS zip: Canvas and Moodle names (first and
             last name into the gradebook), a Moodle folder holding a file
             that names another student, a corrupt (CRC) member, an
             encrypted one, an undecodable name, '../' and absolute names, a
             symlink member, a folder member, a zip bomb, two files claiming
             one student, and a walker from the new place.

Each case carries its expected outcome; every other submission is graded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder import REPO_ROOT
from autograder.build import read_source, solution_cells

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("autograder-redteam-round2")]

TIMEOUT = 15  # seconds per cell, in the time it had: below what a cell needs at a 1/61 share of the core
PROCESSES = 100
BURNERS, BURN_SECONDS = 60, 20  # the burn outlasts a cell's limit
SOLUTION_PREFIX, HIDDEN_PREFIX = "SOLUTION-MARKER-", "HIDDEN-MARKER-"
RUN = uuid.uuid4().hex  # this session's markers: only files written after it started can hold them
SOLUTION_MARKER, HIDDEN_MARKER = SOLUTION_PREFIX + RUN, HIDDEN_PREFIX + RUN[::-1]


@dataclass
class Assignment:
    """One course notebook as the cases use it: answers from its source, the first authored mistake per question."""

    name: str

    def __post_init__(self):
        self.source, variants = read_source(self.name)
        self.answers = solution_cells(self.source)
        self.mistakes = {v.grade_id: v.source for v in reversed(variants) if not v.right}
        self.questions = list(self.answers)
        self.points = {c.metadata["nbgrader"]["grade_id"][:-len("_test")]: float(c.metadata["nbgrader"]["points"])
                       for c in self.source.cells if c.metadata.get("nbgrader", {}).get("grade")}
        self.student = nbformat.read(REPO_ROOT / "notebooks" / f"{self.name}.ipynb", as_version=4)

    def earned(self, *right) -> dict[str, float]:
        return {q: (self.points[q] if q in right else 0.0) for q in self.questions}

    def full(self) -> dict[str, float]:
        return self.earned(*self.questions)

    def wrong(self, *questions) -> dict[str, str]:
        """The solution, with the authored mistake in `questions` (all of them when none are named)."""
        return {q: (self.mistakes[q] if q in (questions or self.questions) else a) for q, a in self.answers.items()}

    def build(self, answers: dict[str, str] | None = None, *, setup=()) -> bytes:
        nb = nbformat.from_dict(json.loads(json.dumps(self.student)))
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if answers and meta.get("grade_id") in answers and meta.get("solution"):
                cell.source = answers[meta["grade_id"]]
        position = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code") + 1
        for offset, source in enumerate(setup):
            nb.cells.insert(position + offset, nbformat.v4.new_code_cell(source))
        for index, cell in enumerate(nb.cells):
            cell["id"] = cell.get("id") or f"added-{index}"
        return nbformat.writes(nb).encode()


A01, A04 = Assignment("01_chain_rule"), Assignment("04_relu_and_friends")


# ---- what the attacks run inside the sandbox ----------------------------------------------------------

BURNER = f"""import os, time
for _i in range({BURNERS}):
    if os.fork() == 0:
        try:
            os.setsid()  # a session of its own: one more share of the CPU, were it allowed
        except OSError:
            pass
        _end = time.monotonic() + {BURN_SECONDS}
        while time.monotonic() < _end:
            pass
        os._exit(0)"""
BUSY = """import time
time.sleep(8)  # by now the burner next door burns
_total = sum(i * i for i in range(9_000_000))  # a second or so of CPU: at a 1/61 share, a minute"""

# Walks the whole file system and its own memory. A marker is found by its prefix and the hash of what
# follows, so the walker's own code (which must hold the needle) never counts as a find.
WALKER = r'''import ctypes, hashlib, json, os, re, stat, subprocess, sys, time
_T0, _TOP, _MEMORY = {t0!r}, {top!r}, {memory!r}
_PREFIXES = {prefixes!r}
_HASHES = {hashes!r}
_ROOTS = {roots!r}
_CAP = {cap!r}  # items kept per kind
_report = {{"names": [], "contents": [], "links": [], "memory": [], "finders": [], "seen": 0, "read": 0}}
_SKIP = {{"mem", "pagemap", "kcore", "kmsg", "clear_refs", "map_files", "task", "kpageflags", "kpagecount",
         "kpagecgroup", "sysrq-trigger", "timer_list", "ns"}}
def _note(kind, item):
    if len(_report[kind]) < _CAP:
        _report[kind].append(item)
def _markers(data):
    for prefix in _PREFIXES:
        at = data.find(prefix)
        while at >= 0:
            if hashlib.sha256(data[at:at + len(prefix) + 32]).hexdigest() in _HASHES:
                yield data[at:at + len(prefix) + 32].decode()
            at = data.find(prefix, at + 1)
def _search(data, where, kind, roots=True):
    for marker in set(_markers(data)):
        _note(kind, [where, marker])
    for root in _ROOTS if roots else []:
        if root.encode() in data:
            _note(kind, [where, root])
def _entries():
    """(kind, ctime, path) of everything under _TOP: find walks the file system at C speed, /proc is walked
    here (its files report no size and some must be skipped)."""
    found = subprocess.run(["find", _TOP, "-path", "/proc", "-prune", "-o", "-printf", "%y %C@ %p\\0"],
                           capture_output=True).stdout
    for record in found.split(b"\0"):
        if record:
            kind, ctime, path = record.split(b" ", 2)
            yield kind.decode(), float(ctime), path.decode(errors="replace")
    for root, dirs, files in os.walk("/proc" if _TOP == "/" else "/nonexistent", followlinks=False):
        dirs[:] = [d for d in dirs if d not in _SKIP]
        for name in dirs + files:
            try:
                info = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            kind = "l" if stat.S_ISLNK(info.st_mode) else "f" if stat.S_ISREG(info.st_mode) else "d"
            yield kind, info.st_ctime, os.path.join(root, name)
_start = time.monotonic()
for _kind, _ctime, _path in _entries():
    _name = os.path.basename(_path)
    _report["seen"] += 1
    _new = _ctime >= _T0
    if "autograder/source" in _path or any(_path == r or _path.startswith(r + "/") for r in _ROOTS) \
            or _new and _name in ("gradebook.db", ".grading.json"):
        _note("names", _path)
    if _kind == "l":
        try:
            _search(os.readlink(_path).encode(), _path, "links")
        except OSError:
            pass
        continue
    if _kind != "f" or _name in _SKIP or _path.startswith("/tmp/submission/"):
        continue  # the walker's own notebook holds the needles
    if _path.startswith("/proc/") or _new or _name.startswith("__editable__") \
            or _name.endswith((".pth", ".egg-link")) or _name == "direct_url.json":
        try:
            with open(_path, "rb") as _file:
                _data = _file.read(4 << 20)
        except OSError:
            continue
        _report["read"] += 1
        _search(_data, _path, "contents")
        if _new and _data.startswith(b"SQLite format 3"):
            _note("names", _path)
        if _name.startswith("__editable__") and _data:
            _note("finders", _path)
_report["walk_seconds"] = time.monotonic() - _start
_scanned = 0
for _line in open("/proc/self/maps").read().splitlines() if _MEMORY else []:  # its own memory, as an attacker reads it
    _fields = _line.split()
    if not _fields[1].startswith("rw") or (len(_fields) > 5 and not _fields[5].startswith("[heap")):
        continue
    _lo, _hi = (int(x, 16) for x in _fields[0].split("-"))
    if _hi - _lo > 1 << 30:
        continue
    for _at in range(_lo, _hi, 1 << 24):
        _chunk = ctypes.string_at(_at, min((1 << 24) + 64, _hi - _at))
        _scanned += len(_chunk)
        _search(_chunk, hex(_at), "memory", roots=False)
_report["memory_mb"] = _scanned >> 20
import course_lib
_report["python"] = {{"path": sys.path, "argv": sys.argv, "course_lib": course_lib.__file__,
                     "course_lib_readable": os.path.isfile(course_lib.__file__),
                     "modules": sorted(m for m in sys.modules if m.startswith(("autograder", "__editable__"))),
                     "meta_path": [getattr(f, "__module__", "") for f in sys.meta_path],
                     "environ": dict(os.environ), "cwd": os.getcwd(),
                     "cmdline": open("/proc/self/cmdline", "rb").read().decode(errors="replace"),
                     "mountinfo": open("/proc/self/mountinfo").read()}}
_report["seconds"] = time.monotonic() - _start
_shell = get_ipython  # the first round's attack: run a solution it found through an alias the inspection misses
for _where, _what in _report["contents"]:
    if _what.startswith(_PREFIXES[0].decode()):
        for _block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", open(_where, errors="replace").read(), re.S):
            _shell().run_cell(_block)
print("WALK-REPORT:" + json.dumps(_report))'''


def walker(roots: list[str], *, t0: float, top: str = "/", memory: bool = True, cap: int = 40) -> str:
    return WALKER.format(t0=t0, top=top, memory=memory, prefixes=[SOLUTION_PREFIX.encode(), HIDDEN_PREFIX.encode()],
                         hashes=[hashlib.sha256(m.encode()).hexdigest() for m in (SOLUTION_MARKER, HIDDEN_MARKER)],
                         roots=roots, cap=cap)


def walk_report(course: Path, student: str, assignment: str) -> dict:
    nb = nbformat.read(course / "autograded" / student / assignment / f"{assignment}.ipynb", as_version=4)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "")
            if "WALK-REPORT:" in text:
                return json.loads(text.split("WALK-REPORT:", 1)[1].splitlines()[0])
    raise AssertionError(f"no walk report in {student}'s {assignment}: the walker did not run")


# ---- the checkout, elsewhere ----------------------------------------------------------------------------

def unusual_place(preferred: Path, fallback: Path) -> tuple[Path, Path]:
    """(the checkout folder, the folder to remove afterwards): `preferred` where this user may create it."""
    top = Path(*preferred.parts[:3])  # /data/vg-..., /work/zz-...
    try:
        preferred.mkdir(parents=True)
        return preferred, top
    except OSError:
        fallback.mkdir(parents=True)
        return fallback, fallback


def copy_checkout(target: Path) -> Path:
    """The course's code and authored sources (nothing built, nothing graded), with the markers added."""
    ignore = shutil.ignore_patterns("__pycache__", "autograded", "feedback", "reports", "submitted", "gradebook.db",
                                    "grades*.csv", "*.ipynb", ".*")
    for folder in ("autograder", "course_lib"):
        shutil.copytree(REPO_ROOT / folder, target / folder, ignore=ignore, copy_function=shutil.copy)
    for assignment in (A01, A04):
        path = target / "autograder" / "source" / assignment.name / f"{assignment.name}.py"
        lines, out, added = path.read_text().splitlines(keepends=True), [], set()
        for line in lines:
            out.append(line)
            indent = line[:len(line) - len(line.lstrip())]
            for delimiter, marker in (("### BEGIN SOLUTION", SOLUTION_MARKER), ("### BEGIN HIDDEN TESTS", HIDDEN_MARKER)):
                if line.strip() == delimiter and marker not in added:
                    out.append(f"{indent}# {marker}\n")
                    added.add(marker)
        assert len(added) == 2, f"{path}: no solution or hidden test to mark"
        path.write_text("".join(out))
    return target


# ---- running and killing the grader ---------------------------------------------------------------------

def start_grader(checkout: Path, submissions: Path, log: Path, *, one_core: bool = True) -> subprocess.Popen:
    """The grader, pinned to one core (as taskset does: the affinity is inherited by everything it starts)."""
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--workers", "2", "--timeout",
               str(TIMEOUT), "--processes", str(PROCESSES), "--memory-mb", "1500", "--no-progress"]
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)} if one_core else cores)
    try:
        with open(log, "wb") as out:
            return subprocess.Popen(command, cwd=checkout, stdout=out, stderr=subprocess.STDOUT)
    finally:
        os.sched_setaffinity(0, cores)


def wait_for(process: subprocess.Popen, log: Path, text: str, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while text not in log.read_text(errors="replace"):
        assert process.poll() is None, f"the grader ended before {text!r}:\n{log.read_text()[-3000:]}"
        assert time.time() < deadline, f"no {text!r} within {timeout} s:\n{log.read_text()[-3000:]}"
        time.sleep(0.05)


def processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every process on the machine."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry)] = (int(fields[1]), int(fields[19]))
            except (OSError, IndexError, ValueError):
                pass
    return table


def tree(pid: int) -> set[tuple[int, int]]:
    """(pid, start time) of `pid` and all its descendants, sandboxes included."""
    table, found, todo = processes(), set(), [pid]
    while todo:
        current = todo.pop()
        if current in table:
            found.add((current, table[current][1]))
            todo += [p for p, (parent, _) in table.items() if parent == current]
    return found


def alive(pid: int, started: int) -> bool:
    table = processes()
    return pid in table and table[pid][1] == started


CGROUP_PARENTS = [Path("/sys/fs/cgroup", *parts, "vg-grader") for parts in (("memory",), ("pids",), ("cpu",), ())]


def cgroup_owners() -> set[tuple[int, int]]:
    """(pid, start time) of the owner of every grader cgroup (named "<pid>-<start time>-<n>", owners.py)."""
    owners = set()
    for parent in CGROUP_PARENTS:
        for child in parent.iterdir() if parent.is_dir() else []:
            match = re.match(r"^s?(\d+)-(\d+)-", child.name)
            if child.is_dir() and match:
                owners.add((int(match[1]), int(match[2])))
    return owners


def leftovers(killed: set[tuple[int, int]], course: Path) -> list[str]:
    """What is left of a grader process tree `killed`: processes, cgroups, temporary folders, half-written files.
    Processes, cgroups and folders are matched by pid and start time: another grader running meanwhile may
    have been given one of `killed`'s pids since (pids wrap around at 32768 on CI's machines)."""
    pids = {pid for pid, _ in killed}
    found = [f"process {pid}" for pid, started in killed if alive(pid, started)]
    found += [f"cgroup of {pid}" for pid, _ in cgroup_owners() & killed]
    for entry in Path(tempfile.gettempdir()).iterdir():
        match = re.match(r"^vg-[a-z-]+?-(\d+)-(\d+)-", entry.name)
        if match and (int(match[1]), int(match[2])) in killed:
            found.append(str(entry))
    for path in course.rglob(".*.tmp*"):  # the course is this test's own: no other grader writes there
        match = re.search(r"\.tmp(\d+)$", path.name)
        if match and int(match[1]) in pids:
            found.append(str(path))
    return found


def wait_clean(killed, course: Path, seconds: float = 10) -> list[str]:
    """Leftovers of `killed`, after up to `seconds` for its chain of kills (grader, worker, job, keeper, init)."""
    deadline = time.time() + seconds
    while (left := leftovers(killed, course)) and time.time() < deadline:
        time.sleep(0.2)
    return left


def markers(course: Path) -> int:
    return len(list((course / "autograded").glob("*/*/.grading.json")))


def read_grades(course: Path) -> dict[tuple[str, str], dict]:
    """(student, assignment) -> {"scores": {question: score}, "status": ..., "reason": ...} from grades.csv."""
    out = {}
    with open(course / "grades.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            entry = out.setdefault((row["student_id"], row["assignment"]),
                                   {"scores": {}, "status": row["status"], "reason": row["reason"]})
            entry["scores"][row["question"][:-len("_test")]] = float(row["score"]) if row["score"] != "" else None
            if row["status"] != "graded":
                entry["status"] = row["status"]
    return out


# ---- the cases ----------------------------------------------------------------------------------------------

@dataclass
class Case:
    scores: dict[str, float]  # exact per-question scores
    flagged: bool | None  # None: either
    reason: str = ""  # a word the flags must contain
    listed: str = ""  # a text the grader's listing of files must contain


def main_cases(course: Path, roots: list[str], t0: float) -> tuple[dict[tuple[str, str], Case], dict]:
    """(student, assignment) -> Case, and what to put where (folder -> file name -> bytes, or a callable)."""
    partial01, partial04 = A01.wrong(A01.questions[1], A01.questions[4]), A04.wrong(A04.questions[0], A04.questions[5])
    cases = {
        ("aaa_burner", A01.name): Case(A01.full(), True, "process"),
        ("aab_honest_busy", A01.name): Case(A01.full(), False),  # graded beside the burner, from the start
        ("honest_full", A01.name): Case(A01.full(), False),  # with a valid timestamp.txt
        ("honest_partial", A01.name): Case(A01.earned(*[q for q in A01.questions if q not in (
            A01.questions[1], A01.questions[4])]), False),
        ("bad_stamp", A01.name): Case(A01.full(), True, "timestamp", "bad_stamp/01_chain_rule/timestamp.txt: not a date"),
        ("walker", A01.name): Case(A01.earned(), None),
        ("link_to_source", A01.name): Case(A01.earned(), True, "symbolic link",
                                           "link_to_source/01_chain_rule/01_chain_rule.ipynb: a symbolic link"),
        ("link_to_honest", A01.name): Case(A01.earned(), True, "symbolic link", "link_to_honest/01_chain_rule/01"),
        ("fifo", A01.name): Case(A01.earned(), True, "not a regular file", "fifo/01_chain_rule/01_chain_rule.ipynb: "
                                                                            "not a regular file"),
        ("hard_link", A01.name): Case(A01.earned(), True, "hard link", "hard_link/01_chain_rule/01_chain_rule.ipynb: "
                                                                        "the same file as one of the course's"),
        ("folder_notebook", A01.name): Case(A01.earned(), True, "a folder", "folder_notebook/01_chain_rule/"
                                                                             "01_chain_rule.ipynb: a folder"),
        ("mallory", A01.name): Case(A01.earned(), True, "not submitted"),
        ("honest_full", A04.name): Case(A04.full(), False),
        ("honest_partial", A04.name): Case(A04.earned(*[q for q in A04.questions if q not in (
            A04.questions[0], A04.questions[5])]), False),
        ("walker", A04.name): Case(A04.earned(), None),
    }
    source01 = course / "source" / A01.name
    files = {
        ("aaa_burner", A01.name): {f"{A01.name}.ipynb": A01.build(A01.answers, setup=[BURNER])},
        ("aab_honest_busy", A01.name): {f"{A01.name}.ipynb": A01.build(A01.answers, setup=[BUSY])},
        ("honest_full", A01.name): {f"{A01.name}.ipynb": A01.build(A01.answers),
                                    "timestamp.txt": b"2024-05-01 10:00:00.000000 UTC"},
        ("honest_partial", A01.name): {f"{A01.name}.ipynb": A01.build(partial01)},
        ("bad_stamp", A01.name): {f"{A01.name}.ipynb": A01.build(A01.answers), "timestamp.txt": b"9999-99-99 99:99:99"},
        ("walker", A01.name): {f"{A01.name}.ipynb": A01.build(A01.wrong(), setup=[walker(roots, t0=t0)])},
        ("link_to_source", A01.name): {f"{A01.name}.ipynb": lambda p: p.symlink_to(source01 / f"{A01.name}.ipynb")},
        ("link_to_honest", A01.name): {f"{A01.name}.ipynb": lambda p: p.symlink_to(
            p.parents[2] / "honest_full" / A01.name / f"{A01.name}.ipynb")},
        ("fifo", A01.name): {f"{A01.name}.ipynb": lambda p: os.mkfifo(p)},
        ("hard_link", A01.name): {f"{A01.name}.ipynb": lambda p: os.link(source01 / f"{A01.name}.py", p)},
        ("folder_notebook", A01.name): {f"{A01.name}.ipynb/{A01.name}.ipynb": A01.build(A01.answers)},
        ("mallory", A01.name): {f"honest_full_{A01.name}.ipynb": A01.build(A01.wrong())},  # names another student
        ("honest_full", A04.name): {f"{A04.name}.ipynb": A04.build(A04.answers)},
        ("honest_partial", A04.name): {f"{A04.name}.ipynb": A04.build(partial04)},
        ("walker", A04.name): {f"{A04.name}.ipynb": A04.build(A04.wrong(), setup=[walker(roots, t0=t0)])},
    }
    return cases, files


def write_tree(submissions: Path, files: dict) -> None:
    for (student, assignment), content in files.items():
        for relative, data in content.items():
            path = submissions / student / assignment / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if callable(data):
                data(path)
            else:
                path.write_bytes(data)


def _set_central_flag(data: bytearray, name: bytes, bit: int) -> None:
    """Set a flag bit of the central-directory entry named `name` (and of its local header)."""
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        length, extra, comment = struct.unpack("<HHH", data[at + 28:at + 34])
        if bytes(data[at + 46:at + 46 + length]) == name:
            flags, = struct.unpack("<H", data[at + 8:at + 10])
            data[at + 8:at + 10] = struct.pack("<H", flags | bit)
            local, = struct.unpack("<I", data[at + 42:at + 46])
            flags, = struct.unpack("<H", data[local + 6:local + 8])
            data[local + 6:local + 8] = struct.pack("<H", flags | bit)
            return
        at = data.find(b"PK\x01\x02", at + 46 + length + extra + comment)
    raise AssertionError(f"no member {name!r}")


def lms_zip(path: Path, roots: list[str], t0: float) -> dict[str, Case]:
    """An LMS download with every kind of bad member; returns the expected outcome per student id."""
    nb = A01.name
    partial = A01.wrong(A01.questions[0])
    members = {
        f"smithjohn_12345_67890_{nb}.ipynb": A01.build(A01.answers),
        f"Jane Doe_4567_assignsubmission_file_/{nb}.ipynb": A01.build(partial),
        f"Mallory M_999_assignsubmission_file_/Jane Doe_4567_assignsubmission_file_{nb}.ipynb": A01.build(A01.answers),
        f"walker2_11111_22222_{nb}.ipynb": A01.build(A01.wrong(), setup=[walker(roots, t0=t0, memory=False)]),
        f"crc_13_14_{nb}.ipynb": A01.build(A01.answers),
        f"badXX_15_16_{nb}.ipynb": A01.build(A01.answers),
        f"enc_17_18_{nb}.ipynb": A01.build(A01.answers),
        f"../escape_{nb}.ipynb": A01.build(A01.answers),
        f"/abs_{nb}.ipynb": A01.build(A01.answers),
        f"dup_{nb}.ipynb": A01.build(A01.answers),
        f"{nb}_dup.ipynb": A01.build(),
    }
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_STORED if name.startswith("crc")
                             else zipfile.ZIP_DEFLATED)
        link = zipfile.ZipInfo(f"link_19_20_{nb}.ipynb")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
        archive.writestr(f"dir_21_22_{nb}.ipynb/", b"")
        archive.writestr(zipfile.ZipInfo(f"bomb_23_24_{nb}.ipynb"), b"\0" * (51 * 2**20),
                         compress_type=zipfile.ZIP_DEFLATED)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        crc = archive.getinfo(f"crc_13_14_{nb}.ipynb")
        start = crc.header_offset + 30 + len(crc.filename) + len(crc.extra)
    data[start + 100] ^= 0xFF  # one flipped byte: the member's CRC no longer matches
    _set_central_flag(data, f"enc_17_18_{nb}.ipynb".encode(), 0x1)  # "encrypted"
    _set_central_flag(data, f"badXX_15_16_{nb}.ipynb".encode(), 0x800)  # "UTF-8", then bytes that are not
    data = data.replace(b"badXX_15_16", b"bad\xff\xfe_15_16")
    path.write_bytes(bytes(data))
    return {
        "12345": Case(A01.full(), False),
        "4567": Case(A01.earned(*A01.questions[1:]), False),
        "11111": Case(A01.earned(), None),
        "23": Case(A01.earned(), True, "over the 50 MB limit"),
    }


ZIP_LISTED = [f"crc_13_14_{A01.name}.ipynb: corrupt in the zip", "its name is not valid UTF-8",
              f"enc_17_18_{A01.name}.ipynb: encrypted", f"../escape_{A01.name}.ipynb: an unsafe path",
              f"/abs_{A01.name}.ipynb: an unsafe path", f"link_19_20_{A01.name}.ipynb: a symbolic link",
              f"dir_21_22_{A01.name}.ipynb/: a folder", "names student '4567' but is in the folder of '999'",
              f"dup_{A01.name}.ipynb: 2 files for student 'dup'", f"{A01.name}_dup.ipynb: 2 files for student 'dup'"]


# ---- the runs -----------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")  # once per session: its tests are one xdist group (conftest.py)
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("redteam2")
    tag = f"vg-redteam2-{os.getpid()}"
    had_data = Path("/data").exists()
    checkout, cleanup_a = unusual_place(Path("/data") / tag / "x" / "y", base / "data" / "x" / "y")
    moved, cleanup_b = unusual_place(Path("/work") / f"zz-{tag}", base / "work" / "zz")
    try:
        yield _grade_everything(base, checkout, moved)
    finally:
        for folder in (cleanup_a, cleanup_b):
            shutil.rmtree(folder, ignore_errors=True)
        if not had_data and Path("/data").is_dir() and not any(Path("/data").iterdir()):
            Path("/data").rmdir()


def _grade_everything(base: Path, checkout: Path, moved: Path) -> dict:
    t0 = time.time() - 1
    copy_checkout(checkout)
    course = checkout / "autograder"
    roots = [str(checkout), str(moved)]
    cases, files = main_cases(course, roots, t0)
    submissions = course / "submitted"
    write_tree(submissions, files)
    kills, logs = [], []
    moments = [("while the worker imports", lambda p, log: time.sleep(0.5)),
               ("during calibration", lambda p, log: (wait_for(p, log, "Isolation:"), time.sleep(1.5))),
               ("mid-batch", lambda p, log: _wait_markers(p, course, 4))]
    previous, timings = None, {"start": time.time()}
    for number, (moment, wait) in enumerate(moments + [("never", None)]):
        log = base / f"run-{number}.log"
        timings[f"run {number}"] = time.time() - timings["start"]
        process = start_grader(checkout, submissions, log)
        if previous is not None:  # the next run has started: nothing of the killed one may be left
            wait_for(process, log, "Isolation:")
            kills.append({"moment": previous[0], "left": wait_clean(previous[1], course)})
        if wait is None:
            seen = set()
            while process.poll() is None:  # who worked for this run: nothing of theirs may outlive it either
                seen |= tree(process.pid)
                time.sleep(0.5)
            finished_left = wait_clean(seen, course)
            logs.append(log.read_text())
            break
        wait(process, log)
        killed = tree(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait()
        logs.append(log.read_text())
        previous = (moment, killed)
    main = {"cases": cases, "grades": read_grades(course), "log": logs[-1], "returncode": process.returncode,
            "kills": kills, "finished_left": finished_left,
            "walks": {a: walk_report(course, "walker", a) for a in (A01.name, A04.name)}}
    timings["zip run"] = time.time() - timings["start"]
    # the same checkout, moved: an LMS zip graded from there
    shutil.rmtree(moved)
    shutil.move(str(checkout), str(moved))
    archive = lms_zip(base / "download.zip", roots, t0)
    log = base / "zip.log"
    process = start_grader(moved, base / "download.zip", log, one_core=False)
    process.wait(timeout=1200)
    zipped = {"cases": archive, "grades": read_grades(moved / "autograder"), "log": log.read_text(),
              "returncode": process.returncode, "walk": walk_report(moved / "autograder", "11111", A01.name),
              "students": _students(moved / "autograder")}
    timings["control"] = time.time() - timings["start"]
    control = _control_walk(moved, roots, t0)
    timings["end"] = time.time() - timings.pop("start")
    timings["walks"] = [w.get("seconds") for w in (*main["walks"].values(), zipped["walk"])]
    (base / "timings.json").write_text(json.dumps(timings))  # kept with the logs: what the CI time goes to
    return {"main": main, "zip": zipped, "roots": roots, "control": control, "course": moved / "autograder"}


def _wait_markers(process, course: Path, count: int) -> None:
    deadline = time.time() + 900
    while markers(course) < count:
        assert process.poll() is None and time.time() < deadline, "the grader ended before it could be killed mid-batch"
        time.sleep(0.05)


def _students(course: Path) -> dict[str, tuple]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        return {s.id: (s.first_name, s.last_name) for s in gb.students}


def _control_walk(checkout: Path, roots: list[str], t0: float) -> dict:
    """The walker outside any sandbox, on the checkout alone: it must find what the sandboxed ones must not."""
    # every name kept: under a root, each path is one, and whether the sources came among the first 40
    # depended on the order `find` lists the copy in
    code = "get_ipython = None\n" + walker(roots, t0=t0, top=str(checkout), memory=False, cap=100_000).replace(
        "_shell().run_cell(_block)", "pass")
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300)
    assert "WALK-REPORT:" in result.stdout, result.stderr[-3000:]
    return json.loads(result.stdout.split("WALK-REPORT:", 1)[1])


# ---- the tests ----------------------------------------------------------------------------------------------

def test_every_case_of_the_main_run_gets_its_expected_outcome(runs):
    main = runs["main"]
    assert main["returncode"] == 1, main["log"][-3000:]  # files were listed
    problems = []
    for key, case in main["cases"].items():
        got = main["grades"].get(key)
        if got is None:
            problems.append(f"{key}: not graded")
            continue
        if got["scores"] != case.scores:
            problems.append(f"{key}: {got['scores']} != {case.scores} ({got['reason']})")
        if case.flagged is not None and (got["status"] == "flagged") != case.flagged:
            problems.append(f"{key}: status {got['status']} ({got['reason']})")
        if case.reason and case.reason.lower() not in got["reason"].lower():
            problems.append(f"{key}: reason {got['reason']!r} lacks {case.reason!r}")
        if case.listed and case.listed not in main["log"]:
            problems.append(f"{key}: {case.listed!r} not listed")
    assert not problems, "\n".join(problems) + "\n" + main["log"][-3000:]


def test_honest_submissions_beside_cpu_burners_on_one_core_get_their_clean_grades(runs):
    """The burner (60 busy processes trying setsid) ran first; its neighbours got exactly what they earned."""
    main = runs["main"]
    honest = [k for k in main["cases"] if re.match(r"^(aab_)?honest", k[0])]
    assert len(honest) >= 5
    for key in honest:
        assert main["grades"][key]["scores"] == main["cases"][key].scores, (key, main["grades"][key])
        assert main["grades"][key]["status"] == "graded", (key, main["grades"][key]["reason"])
    assert "cpu" in main["log"] and "setsid" in main["log"], "the isolation line names neither CPU weights nor setsid"


def test_the_walkers_find_nothing_of_the_course(runs):
    walks = [*runs["main"]["walks"].values(), runs["zip"]["walk"]]
    for report in walks:
        assert report["seen"] > 10_000 and report["read"] > 100, report  # it really walked, /proc included
        for kind in ("names", "contents", "links", "memory", "finders"):
            assert report[kind] == [], (kind, report[kind])
    for report in runs["main"]["walks"].values():
        assert report["memory_mb"] > 50, report["memory_mb"]
        python = json.dumps(report["python"])
        for root in runs["roots"]:
            assert root not in python, f"{root} named in what the kernel reads of itself: {python[:3000]}"
        assert report["python"]["modules"] == []
        assert "/vg-runtime-" in report["python"]["course_lib"] and report["python"]["course_lib_readable"]
        assert not any(m.startswith("__editable__") for m in report["python"]["meta_path"]), report["python"]
        assert "/tmp/submission" == report["python"]["cwd"]


def test_the_walk_finds_the_course_outside_the_sandbox(runs):
    """Control: the same walker, on the checkout itself, finds the markers, the sources and the gradebook."""
    control = runs["control"]
    found = {marker for _, marker in control["contents"]}
    assert {SOLUTION_MARKER, HIDDEN_MARKER} <= found, control["contents"]
    assert any("autograder/source" in name for name in control["names"])
    assert any(name.endswith("gradebook.db") for name in control["names"])


def test_a_killed_grader_leaves_nothing_once_the_next_run_starts(runs):
    kills = runs["main"]["kills"]
    assert [k["moment"] for k in kills] == ["while the worker imports", "during calibration", "mid-batch"]
    for kill in kills:
        assert kill["left"] == [], kill
    assert runs["main"]["finished_left"] == [], runs["main"]["finished_left"]
    assert "Resuming" in runs["main"]["log"]


def test_every_bad_zip_member_is_listed_and_the_rest_graded(runs):
    zipped = runs["zip"]
    assert zipped["returncode"] == 1, zipped["log"][-3000:]
    for text in ZIP_LISTED:
        assert text in zipped["log"], f"{text!r} not listed:\n{zipped['log'][-4000:]}"
    assert "Traceback" not in zipped["log"], zipped["log"][-4000:]
    for student, case in zipped["cases"].items():
        got = zipped["grades"].get((student, A01.name))
        assert got is not None, f"{student} not graded:\n{zipped['log'][-3000:]}"
        assert got["scores"] == case.scores, (student, got)
        if case.flagged is not None:
            assert (got["status"] == "flagged") == case.flagged, (student, got)
        assert case.reason.lower() in got["reason"].lower(), (student, got["reason"])
        assert case.listed in zipped["log"]
    assert not any(s in ("999", "dup", "13", "15", "17") for s, _ in zipped["grades"]), sorted(zipped["grades"])


def test_lms_names_reach_the_gradebook(runs):
    students = runs["zip"]["students"]
    assert students["4567"] == ("Jane", "Doe")  # Moodle's "Full Name"
    assert students["12345"] == (None, "smithjohn")  # Canvas's one-word "lastfirst"


def test_submission_times_are_kept_when_readable(runs):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{runs['course'] / 'gradebook.db'}") as gb:
        stamped = gb.find_submission(A01.name, "honest_full").timestamp
        bad = gb.find_submission(A01.name, "bad_stamp").timestamp
    assert stamped is not None and stamped.year == 2024 and bad is None
