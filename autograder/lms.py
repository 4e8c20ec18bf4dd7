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
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
CANVAS = re.compile(r"^(?P<name>[a-z0-9]+?)(?P<late>_late)?_(?P<uid>\d+)_(?P<sid>\d+)_(?P<rest>.+)$", re.I)
MOODLE = re.compile(r"^(?P<name>.+?)_(?P<uid>\d+)_assignsubmission_(?:file|onlinetext)_?(?P<rest>.*)$", re.I)
BLACKBOARD = re.compile(r"^(?P<assignment>.+?)_(?P<user>[^_]+)_attempt_"
                        r"(?P<ts>\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2})_?(?P<rest>.*)$", re.I)
COPY_SUFFIX = re.compile(r"(?:[-_ ]\d{1,2}|\s*\(\d{1,2}\)|[-_ ]copy\d*)$", re.I)
SEPARATORS = "_-. "


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

    @property
    def key(self) -> tuple[str, str]:
        return self.student, self.assignment


@dataclass
class Unplaced:
    where: str
    why: str


def discover(path: Path, notebooks: dict[str, str], *, assignment: str | None = None
             ) -> tuple[list[Submission], list[Unplaced]]:
    """Submissions under `path` (folder or .zip). `notebooks` maps each notebook name to its assignment."""
    path = Path(path)
    if assignment:
        notebooks = {nb: a for nb, a in notebooks.items() if a == assignment}
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            entries = [(info.filename, {"zip": str(path.resolve()), "member": info.filename})
                       for info in archive.infolist() if not info.is_dir()]
        return _place_flat(entries, notebooks)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is neither a folder nor a zip file")
    tree = _nbgrader_tree(path, notebooks)
    if tree is not None:
        return tree
    entries = [(p.relative_to(path).as_posix(), {"path": str(p.resolve())})
               for p in sorted(path.rglob("*")) if p.is_file()]
    return _place_flat(entries, notebooks)


def _nbgrader_tree(root: Path, notebooks: dict[str, str]):
    """`root` as submitted/<student>/<assignment>/..., or None when it does not look like one."""
    assignments = set(notebooks.values())
    students = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if not students or not any((d / a).is_dir() for d in students for a in assignments):
        return None
    found, unplaced = [], []
    for student_dir in students:
        if not STUDENT_ID.match(student_dir.name):
            unplaced.append(Unplaced(student_dir.name, "not a valid student id"))
            continue
        for assignment_dir in sorted(p for p in student_dir.iterdir() if p.is_dir()):
            if assignment_dir.name not in assignments:
                unplaced.append(Unplaced(f"{student_dir.name}/{assignment_dir.name}", "not an assignment of this course"))
                continue
            submission = Submission(student_dir.name, assignment_dir.name)
            stamp = assignment_dir / "timestamp.txt"
            if stamp.is_file():
                submission.timestamp = stamp.read_text(errors="replace").strip()[:64] or None
            for file in sorted(p for p in assignment_dir.rglob("*") if p.is_file()):
                relative = file.relative_to(assignment_dir).as_posix()
                if file.suffix == ".ipynb" and file.parent == assignment_dir and notebooks.get(file.stem) == assignment_dir.name:
                    submission.notebooks[file.stem] = {"path": str(file.resolve())}
                elif relative != "timestamp.txt" and ".ipynb_checkpoints" not in relative:
                    submission.extra_files.append(relative)
            found.append(submission)
    return found, unplaced


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


def _place_flat(entries, notebooks: dict[str, str]) -> tuple[list[Submission], list[Unplaced]]:
    placed: dict[tuple[str, str], list] = {}
    unplaced = []
    meta: dict[str, dict] = {}
    extras: dict[str, list[str]] = {}
    for relative, location in entries:
        parts = PurePosixPath(relative).parts
        if any(p.startswith(("__MACOSX", ".")) for p in parts) or ".ipynb_checkpoints" in parts:
            continue
        file_name = parts[-1]
        if not file_name.endswith(".ipynb"):
            unplaced.append(Unplaced(relative, "not a notebook (.ipynb)"))
            continue
        stem = file_name[:-len(".ipynb")]
        folders = list(parts[:-1])
        student, info, notebook, why = _identify(stem, folders, notebooks)
        if notebook is None or student is None:
            unplaced.append(Unplaced(relative, why))
            continue
        placed.setdefault((student, notebook), []).append((relative, location))
        meta.setdefault(student, {}).update(info)
    submissions: dict[tuple[str, str], Submission] = {}
    for (student, notebook), files in sorted(placed.items()):
        if len(files) > 1:
            for relative, _ in files:
                unplaced.append(Unplaced(relative, f"{len(files)} files for student {student!r} and notebook "
                                                   f"{notebook!r}: keep one and grade again"))
            continue
        assignment = notebooks[notebook]
        submission = submissions.setdefault((student, assignment), Submission(student, assignment))
        submission.notebooks[notebook] = files[0][1]
        info = meta.get(student, {})
        submission.name = info.get("name", "")
        submission.lms_user_id = info.get("lms_user_id")
        submission.timestamp = submission.timestamp or info.get("timestamp")
        submission.extra_files = extras.get(student, [])
    return list(submissions.values()), unplaced


def _identify(stem: str, folders: list[str], notebooks: dict[str, str]):
    """(student, info, notebook, why-not) from a file name and its folders."""
    info = {}
    for text in [stem] + folders[::-1]:
        for pattern, kind in ((CANVAS, "canvas"), (MOODLE, "moodle"), (BLACKBOARD, "blackboard")):
            match = pattern.match(text)
            if not match:
                continue
            if kind == "canvas":
                student, info = match["uid"], {"name": match["name"], "lms_user_id": match["uid"]}
            elif kind == "moodle":
                student, info = match["uid"], {"name": match["name"].strip(), "lms_user_id": match["uid"]}
            else:
                student, info = match["user"], {"timestamp": _blackboard_time(match["ts"])}
            rest = match["rest"] if text == stem else stem
            found = _match_notebook(rest, notebooks) or _match_notebook(stem, notebooks)
            names = {n for n, _, _ in found}
            if len(names) != 1:
                return None, {}, None, ("names no notebook of this course" if not names
                                        else f"names several notebooks: {sorted(names)}")
            if not STUDENT_ID.match(student):
                return None, {}, None, f"{student!r} is not a valid student id"
            return student, info, names.pop(), ""
    found = _match_notebook(stem, notebooks)
    names = {n for n, _, _ in found}
    if len(names) > 1:
        return None, {}, None, f"names several notebooks: {sorted(names)}"
    if not names:
        return None, {}, None, "names no notebook of this course"
    notebook, before, after = found[0]
    before = before.strip(SEPARATORS)
    after = "" if COPY_SUFFIX.fullmatch(after) else after.strip(SEPARATORS)  # "-1", " (2)": a re-download
    if before and after:
        return None, {}, None, f"cannot tell the student from {before!r} and {after!r}"
    rest = before or after
    candidates = [c for c in [rest] + folders[::-1] if c]
    for candidate in candidates:
        candidate = candidate.strip(SEPARATORS + " ")
        if candidate and STUDENT_ID.match(candidate):
            return candidate, info, notebook, ""
        if candidate:
            return None, {}, None, f"cannot tell the student from {candidate!r}"
    return None, {}, None, "no student id in the file or folder name"


def _blackboard_time(text: str) -> str:
    date, time = text[:10], text[11:].replace("-", ":")
    return f"{date} {time}"
