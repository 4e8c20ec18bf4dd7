"""Find the submissions in what an instructor actually has: an nbgrader tree, a folder, or an LMS zip.

Recognised layouts (the student id and the notebook come from the names):

- nbgrader: ``submitted/<student>/<assignment>/<notebook>.ipynb`` (+ ``timestamp.txt``);
- a folder per student: ``<student>/<notebook>.ipynb``;
- Canvas "Download submissions": ``<name>[_LATE]_<userid>_<submissionid>_<notebook>[-N].ipynb``;
- Moodle: ``<Full Name>_<id>_assignsubmission_file_/<notebook>.ipynb`` (folder or prefix);
- Blackboard: ``<assignment>_<user>_attempt_<YYYY-MM-DD-HH-MM-SS>_<notebook>.ipynb``;
- generic: ``<student>_<notebook>.ipynb`` or ``<notebook>_<student>.ipynb`` (also ``-`` or ``.``).

The notebook must be one of the course's (``autograder/source``), and the
student id what is left of the name. A file that matches no notebook, whose
student cannot be read from its name, or that collides with another file for
the same student and notebook is *listed*, never guessed.

A bad file is listed with its reason and never stops the rest: a symbolic
link (never followed), a FIFO or device, a folder named like a notebook, a
hard link to one of the course's own files, a zip member that is corrupt,
encrypted, has an undecodable or unsafe (``../``, absolute) name, a
``timestamp.txt`` that is not a date (the submission is graded and flagged).
Where students have folders (nbgrader's tree, ``<student>/``, Moodle's), the
folder decides whose a file is: a file in Mallory's folder whose name names
another student is listed, never attributed to that student.
"""

from __future__ import annotations

import datetime
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..files import MAX_NOTEBOOK_BYTES, open_zip

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
CANVAS = re.compile(r"^(?P<name>[a-z0-9]+?)(?P<late>_late)?_(?P<uid>\d+)_(?P<sid>\d+)_(?P<rest>.+)$", re.IGNORECASE)
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<uid>\d+)_assignsubmission_(?:file|onlinetext)_?(?P<rest>.*)$", re.IGNORECASE)
BLACKBOARD = re.compile(r"^(?P<assignment>.+?)_(?P<user>[^_]+)_attempt_"
                        r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})_?(?P<rest>.*)$", re.IGNORECASE)
COPY_SUFFIX = re.compile(r"(?:[-_ ]\d{1,2}|\s*\(\d{1,2}\)|[-_ ]copy\d*)$", re.IGNORECASE)
SEPARATORS = "_-. "
SYMLINK = "a symbolic link: not followed, not graded"
NOT_REGULAR = "not a regular file (a FIFO, socket or device): not read, not graded"
A_FOLDER = "a folder, not a notebook file: not graded"
COURSE_FILE = "the same file as one of the course's own files (a hard link): not graded"


@dataclass
class Submission:
    """One student's work on one assignment: notebook name -> where its bytes are."""

    student: str
    assignment: str
    notebooks: dict[str, dict] = field(default_factory=dict)
    extra_files: list[str] = field(default_factory=list)
    timestamp: str | None = None
    name: str = ""  # the student's name when the LMS gives one
    lms_user_id: str | None = None
    first_name: str = ""
    last_name: str = ""
    problems: list[str] = field(default_factory=list)  # flagged on every notebook of the submission

    @property
    def key(self) -> tuple[str, str]:
        return self.student, self.assignment


@dataclass
class Unplaced:
    where: str
    why: str


def discover(path: Path, notebooks: dict[str, str], *, assignment: str | None = None, protected=()
             ) -> tuple[list[Submission], list[Unplaced]]:
    """Submissions under `path` (folder or .zip). `notebooks` maps each notebook name to its assignment;
    a file that is the same file (hard link) as one under a `protected` folder (the course root) is refused."""
    path = Path(path)
    if assignment:
        notebooks = {nb: a for nb, a in notebooks.items() if a == assignment}
    if path.is_file() and zipfile.is_zipfile(path):
        entries, unplaced = _zip_entries(path)
        found, more = place_flat(entries, notebooks)
        return found, unplaced + more
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a folder nor a zip file")
    course_files = _inodes(protected, skip=path.resolve())
    tree = _nbgrader_tree(path, notebooks, course_files)
    if tree is not None:
        return tree
    entries, unplaced = [], []
    for relative, entry in _walk(path):
        why = _refuse(entry, course_files)
        if why:
            unplaced.append(Unplaced(relative, why))
        else:
            entries.append((relative, {"path": os.path.abspath(entry.path)}))
    found, more = place_flat(entries, notebooks)
    return found, unplaced + more


# ---- files on disk -------------------------------------------------------------------------------

def _junk(parts) -> bool:
    """Folders and files an OS or Jupyter adds (.DS_Store, __MACOSX, .ipynb_checkpoints): skipped quietly."""
    return any(p.startswith(("__MACOSX", ".")) for p in parts) or ".ipynb_checkpoints" in parts


def _walk(root: Path):
    """(relative posix path, os.DirEntry) of every entry under `root` that is not a folder to descend
    into; symbolic links are reported, never followed; junk is skipped."""
    stack = [(str(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        for entry in entries:
            relative = prefix + entry.name
            if _junk(PurePosixPath(relative).parts):
                continue
            if entry.is_dir(follow_symlinks=False) and not entry.name.endswith(".ipynb"):
                stack.append((entry.path, relative + "/"))
            else:
                yield relative, entry


def _inodes(folders, *, skip: Path) -> set[tuple[int, int]]:
    """(device, inode) of every regular file under `folders`, except under `skip` (the submissions)."""
    found = set()
    for folder in folders:
        for parent, dirs, files in os.walk(folder):
            if Path(parent).resolve() == skip:
                dirs[:] = []
                continue
            for name in files:
                try:
                    info = os.lstat(os.path.join(parent, name))
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found.add((info.st_dev, info.st_ino))
    return found


def _refuse(entry: os.DirEntry, course_files: set) -> str | None:
    """Why this entry cannot be a submitted file, or None."""
    if entry.is_symlink():
        return SYMLINK
    if entry.is_dir(follow_symlinks=False):
        return A_FOLDER
    if not entry.is_file(follow_symlinks=False):
        return NOT_REGULAR
    try:
        info = entry.stat(follow_symlinks=False)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if (info.st_dev, info.st_ino) in course_files:
        return COURSE_FILE
    return None


def submission_time(text: str) -> tuple[str | None, str | None]:
    """(the time as given, or None; what is wrong with it, or None), read as nbgrader reads timestamp.txt."""
    from nbgrader.utils import parse_utc

    text = text.strip()[:64]
    if not text:
        return None, None
    try:
        when = parse_utc(text)
    except (ValueError, OverflowError, TypeError, AttributeError) as error:
        return None, f"not a date and time ({type(error).__name__}: {str(error)[:80]})"
    if when > datetime.datetime.now(datetime.UTC).replace(tzinfo=None) + datetime.timedelta(days=1):
        return None, "in the future"
    return text, None


def _nbgrader_tree(root: Path, notebooks: dict[str, str], course_files: set):
    """`root` as submitted/<student>/<assignment>/..., or None when it does not look like one."""
    assignments = set(notebooks.values())
    top = sorted((e for e in os.scandir(root) if not e.name.startswith(".")), key=lambda e: e.name)
    students = [e for e in top if e.is_dir(follow_symlinks=False)]
    if not students or not any(os.path.isdir(os.path.join(d.path, a)) and not os.path.islink(os.path.join(d.path, a))
                               for d in students for a in assignments):
        return None
    found, unplaced = [], []
    for entry in top:
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            unplaced.append(Unplaced(entry.name, SYMLINK if entry.is_symlink() else "not in a student's folder"))
            continue
        if not STUDENT_ID.match(entry.name):
            unplaced.append(Unplaced(entry.name, "not a valid student id"))
            continue
        for folder in sorted(os.scandir(entry.path), key=lambda e: e.name):
            where = f"{entry.name}/{folder.name}"
            if folder.name.startswith("."):
                continue
            if folder.is_symlink() or not folder.is_dir(follow_symlinks=False):
                unplaced.append(Unplaced(where, SYMLINK if folder.is_symlink() else "not in an assignment folder"))
                continue
            if folder.name not in assignments:
                unplaced.append(Unplaced(where, "not an assignment of this course"))
                continue
            found.append(_tree_submission(entry.name, Path(folder.path), notebooks, course_files, unplaced))
    return found, unplaced


def _tree_submission(student: str, folder: Path, notebooks: dict[str, str], course_files: set,
                     unplaced: list[Unplaced]) -> Submission:
    submission = Submission(student, folder.name)
    for relative, entry in _walk(folder):
        where = f"{student}/{folder.name}/{relative}"
        why = _refuse(entry, course_files)
        is_notebook = "/" not in relative and relative.endswith(".ipynb") \
            and notebooks.get(relative[:-len(".ipynb")]) == folder.name
        if why:
            unplaced.append(Unplaced(where, why))
            if is_notebook or relative == "timestamp.txt":
                submission.problems.append(f"{relative} refused: {why}")
        elif relative == "timestamp.txt":
            try:
                with open(entry.path, "rb") as file:
                    text = file.read(4096).decode("utf-8", errors="replace")
            except OSError as error:
                text, why = "", f"cannot be read ({error.strerror})"
            submission.timestamp, why = submission_time(text) if not why else (None, why)
            if why:
                unplaced.append(Unplaced(where, f"{why}: graded without a submission time"))
                submission.problems.append(f"timestamp.txt unusable ({why}): check the submission time by hand")
        elif is_notebook:
            submission.notebooks[relative[:-len(".ipynb")]] = {"path": os.path.abspath(entry.path)}
        else:
            submission.extra_files.append(relative)
    return submission


# ---- zip files ---------------------------------------------------------------------------------

def _zip_entries(path: Path) -> tuple[list, list[Unplaced]]:
    entries, unplaced, undecodable = [], [], set()
    location = str(path.resolve())
    with open_zip(path, undecodable) as archive:
        for index, info in enumerate(archive.infolist()):
            name = info.filename
            parts = PurePosixPath(name).parts
            why = None
            if index in undecodable:
                why = "its name is not valid UTF-8: cannot tell whose it is"
            elif name.startswith("/") or ".." in parts or "\\" in name or "\0" in name:
                why = "an unsafe path in the zip (absolute, '..' or '\\'): not graded"
            elif _junk(parts):
                continue
            elif info.is_dir():
                if name.rstrip("/").endswith(".ipynb"):
                    unplaced.append(Unplaced(name, A_FOLDER))
                continue
            elif stat.S_ISLNK(info.external_attr >> 16):
                why = SYMLINK
            elif name.endswith(".ipynb"):
                why = _unreadable_member(archive, info, MAX_NOTEBOOK_BYTES)
            if why:
                unplaced.append(Unplaced(name, why))
            else:
                entries.append((name, {"zip": location, "member": name, "index": index}))
    return entries, unplaced


def _unreadable_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> str | None:
    """Why a zip member cannot be read (encrypted, corrupt), or None; a member larger than a notebook
    may be is left to the judge (which flags it), without being decompressed here."""
    if info.flag_bits & 0x1:
        return "encrypted in the zip: cannot be read, not graded"
    if info.file_size > limit:
        return None
    try:
        with archive.open(info) as member:
            while member.read(1 << 20):
                pass
    except Exception as error:  # noqa: BLE001 - BadZipFile (CRC), zlib.error, EOFError, NotImplementedError
        return f"corrupt in the zip ({type(error).__name__}: {str(error)[:80]}): not graded"
    return None


# ---- placing files by their names ----------------------------------------------------------------

@dataclass
class _Name:
    """What a file name says: the notebook, the student it names (if any), LMS details, or why not."""

    notebook: str | None = None
    student: str | None = None
    info: dict = field(default_factory=dict)
    lms: bool = False  # the student comes from an LMS pattern (Canvas, Moodle, Blackboard)
    why: str = ""


def _match_notebook(text: str, notebooks: dict[str, str]) -> list[tuple[str, str, str]]:
    """(notebook, text before it, text after it) for each course notebook named in `text` as a word."""
    matches = []
    lowered = text.lower()
    for name in notebooks:
        for found in re.finditer(re.escape(name.lower()), lowered):
            before = lowered[:found.start()]
            after = lowered[found.end():]
            if (not before or before[-1] in SEPARATORS) and (not after or after[0] in SEPARATORS
                                                              or COPY_SUFFIX.fullmatch(after)):
                matches.append((name, text[:found.start()], text[found.end():]))
    return matches


def _one_notebook(text: str, notebooks: dict[str, str]):
    found = _match_notebook(text, notebooks)
    names = {n for n, _, _ in found}
    if len(names) > 1:
        return None, f"names several notebooks: {sorted(names)}"
    if not names:
        return None, "names no notebook of this course"
    return found[0], ""


def _read_name(stem: str, notebooks: dict[str, str]) -> _Name:
    """The notebook and the student a file name (without .ipynb) gives."""
    for pattern, kind in ((CANVAS, "canvas"), (MOODLE, "moodle"), (BLACKBOARD, "blackboard")):
        match = pattern.match(stem)
        if not match:
            continue
        found, why = _one_notebook(match["rest"], notebooks)
        if found is None:
            found, why = _one_notebook(stem, notebooks)
        if found is None:
            return _Name(why=why)
        if kind == "canvas":
            student, info = match["uid"], {"name": match["name"], "lms_user_id": match["uid"]}
        elif kind == "moodle":
            student, info = match["uid"], {"name": match["name"].strip(), "lms_user_id": match["uid"]}
        else:
            student, info = match["user"], {"timestamp": _blackboard_time(match["ts"])}
        if not STUDENT_ID.match(student):
            return _Name(found[0], why=f"{student!r} is not a valid student id")
        return _Name(found[0], student, info, lms=True)
    found, why = _one_notebook(stem, notebooks)
    if found is None:
        return _Name(why=why)
    notebook, before, after = found
    before = before.strip(SEPARATORS)
    after = "" if COPY_SUFFIX.fullmatch(after) else after.strip(SEPARATORS)  # "-1", " (2)": a re-download
    if before and after:
        return _Name(notebook, why=f"cannot tell the student from {before!r} and {after!r}")
    rest = (before or after).strip(SEPARATORS + " ")
    if rest and not STUDENT_ID.match(rest):
        return _Name(notebook, why=f"cannot tell the student from {rest!r}")
    return _Name(notebook, rest or None)


def _folder_owner(folder: str) -> tuple[str | None, dict]:
    """The student a folder belongs to: a Moodle submission folder's id, or a folder named as a student id."""
    match = MOODLE.match(folder)
    if match and not match["rest"]:
        return match["uid"], {"name": match["name"].strip(), "lms_user_id": match["uid"]}
    if STUDENT_ID.match(folder):
        return folder, {}
    return None, {}


def _wrapper_depth(files, notebooks: dict[str, str]) -> int:
    """How many leading folders every file shares that belong to no student ("submissions/" in a zip)."""
    folders = [parts[:-1] for _, _, parts in files]
    if not folders:
        return 0
    depth = 0
    while all(len(f) > depth for f in folders) and len({f[depth] for f in folders}) == 1:
        if MOODLE.match(folders[0][depth]):
            break
        depth += 1
    if depth and any(len(parts) == depth + 1 and _read_name(parts[-1][:-len(".ipynb")], notebooks).student is None
                     for _, _, parts in files):
        depth -= 1  # the last shared folder holds a student's own files ("alice/01.ipynb"): it is hers
    return depth


def place_flat(entries, notebooks: dict[str, str]) -> tuple[list[Submission], list[Unplaced]]:
    """Submissions from (relative path, location) entries, whose student and notebook their folder and
    file names give; what cannot be placed is listed with its reason."""
    files, unplaced = _notebook_files(entries)
    placed, meta = _attribute(_readings(files, notebooks), unplaced)
    return _build_submissions(placed, meta, notebooks, unplaced), unplaced


def _notebook_files(entries) -> tuple[list, list[Unplaced]]:
    """(relative, location, parts) of each notebook file; any other file listed; junk skipped."""
    files, unplaced = [], []
    for relative, location in entries:
        parts = PurePosixPath(relative).parts
        if _junk(parts):
            continue
        if not parts[-1].endswith(".ipynb"):
            unplaced.append(Unplaced(relative, "not a notebook (.ipynb)"))
            continue
        files.append((relative, location, parts))
    return files, unplaced


def _readings(files, notebooks: dict[str, str]) -> list[tuple]:
    """(relative, location, what its file name says, the student its folder names, their details) per file."""
    depth = _wrapper_depth(files, notebooks)
    readings = []
    for relative, location, parts in files:
        name = _read_name(parts[-1][:-len(".ipynb")], notebooks)
        owner, info = None, {}
        for position, folder in enumerate(parts[depth:-1]):  # the outermost folder decides; Moodle's anywhere
            moodle = MOODLE.match(folder)
            if moodle and not moodle["rest"] or position == 0:
                owner, info = _folder_owner(folder)
        readings.append((relative, location, name, owner, info))
    return readings


def _attribute(readings: list[tuple], unplaced: list[Unplaced]) -> tuple[dict, dict]:
    """(student, notebook) -> its files, and student -> details (name, LMS id, time); a file whose name
    and folder give different students, or no student, is listed in `unplaced`."""
    known = {owner for *_, owner, _ in readings if owner} | {n.student for _, _, n, owner, _ in readings
                                                              if not owner and n.student}
    placed: dict[tuple[str, str], list] = {}
    meta: dict[str, dict] = {}
    for relative, location, name, owner, info in readings:
        if name.notebook is None:
            unplaced.append(Unplaced(relative, name.why))
            continue
        student = owner or name.student
        if owner and name.student and name.student.lower() != owner.lower() and (name.lms or name.student in known):
            unplaced.append(Unplaced(relative, f"names student {name.student!r} but is in the folder of "
                                               f"{owner!r}: not graded for either"))
            continue
        if student is None:
            unplaced.append(Unplaced(relative, name.why or "no student id in the file or folder name"))
            continue
        if owner is None and name.why:
            unplaced.append(Unplaced(relative, name.why))
            continue
        placed.setdefault((student, name.notebook), []).append((relative, location))
        details = meta.setdefault(student, {})
        details.update({k: v for k, v in (name.info if not owner or name.student == owner else {}).items()})
        details.update(info)
    return placed, meta


def _build_submissions(placed: dict, meta: dict, notebooks: dict[str, str],
                       unplaced: list[Unplaced]) -> list[Submission]:
    """One Submission per student and assignment; two files for one notebook are both listed, not graded."""
    submissions: dict[tuple[str, str], Submission] = {}
    for (student, notebook), files_ in sorted(placed.items()):
        if len(files_) > 1:
            for relative, _ in files_:
                unplaced.append(Unplaced(relative, f"{len(files_)} files for student {student!r} and notebook "
                                                   f"{notebook!r}: keep one and grade again"))
            continue
        assignment = notebooks[notebook]
        submission = submissions.setdefault((student, assignment), Submission(student, assignment))
        submission.notebooks[notebook] = files_[0][1]
        details = meta.get(student, {})
        submission.name = details.get("name", "")
        submission.first_name, submission.last_name = _split_name(submission.name)
        submission.lms_user_id = details.get("lms_user_id")
        if details.get("timestamp") and not submission.timestamp:
            submission.timestamp, why = submission_time(details["timestamp"])
            if why:
                unplaced.append(Unplaced(files_[0][0], f"the time in its name is {why}: graded without one"))
                submission.problems.append(f"submission time unusable ({why}): check it by hand")
    return list(submissions.values())


def _split_name(name: str) -> tuple[str, str]:
    """(first, last) for nbgrader's Student row: Moodle's "Full Name" splits at its last space; Canvas's
    one-word "lastfirst" is kept whole as the last name (it sorts as Canvas sorts)."""
    name = " ".join(name.split())[:128]
    if " " in name:
        first, last = name.rsplit(" ", 1)
        return first, last
    return "", name


def _blackboard_time(text: str) -> str:
    date, time = text[:10], text[11:].replace("-", ":")
    return f"{date} {time}"
