"""The course root: an nbgrader course directory (config, gradebook, source/, autograded/, feedback/)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat

from .. import COURSE_ROOT, CourseError, ensure_tools_on_path, nbgrader_config
from ..build import read_source
from ..files import write_atomic

MARKER = ".grading.json"


class GradingError(CourseError):
    """A problem the instructor must fix before grading (message says what)."""


class Course:
    """An nbgrader course root: config, gradebook, source/, autograded/, feedback/."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root or COURSE_ROOT).resolve()
        if not self.root.is_dir():
            raise GradingError(f"no course root at {self.root}")
        self.config = nbgrader_config(self.root)
        from nbgrader.coursedir import CourseDirectory

        self.coursedir = CourseDirectory(config=self.config)
        self.course_id = self.coursedir.course_id
        self.db_url = self.coursedir.db_url
        self.autograded = self.root / "autograded"
        self.feedback = self.root / "feedback"
        self.calibration = self.autograded / ".calibration"

    def gradebook(self):
        from nbgrader.api import Gradebook

        ensure_tools_on_path()
        return Gradebook(self.db_url, self.course_id)

    def notebooks(self) -> dict[str, str]:
        """Every gradable notebook name -> its assignment (from source/; the authored .py counts too)."""
        out = {}
        source = self.root / "source"
        if source.is_dir():
            for folder in sorted(p for p in source.iterdir() if p.is_dir()):
                names = {p.stem for p in folder.glob("*.ipynb")}
                if self.root == COURSE_ROOT:
                    names |= {p.stem for p in folder.glob("*.py") if p.stem == folder.name}
                for name in sorted(names):
                    out[name] = folder.name
        return out

    def source_path(self, assignment: str, notebook: str) -> Path:
        """The nbgrader source notebook; for this repository's course it is rebuilt from the authored .py."""
        path = self.root / "source" / assignment / f"{notebook}.ipynb"
        authored = path.with_suffix(".py")
        if self.root == COURSE_ROOT and authored.is_file() and notebook == assignment:
            nb, _ = read_source(notebook)
            text = nbformat.writes(nb)
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                write_atomic(path, text)
        if not path.is_file():
            raise GradingError(f"no source notebook {path}")
        return path

    def marker(self, student: str, assignment: str) -> Path:
        """The file written last for a graded submission (course/gradebook.commit): its key and results."""
        return self.autograded / student / assignment / MARKER

    def read_marker(self, student: str, assignment: str) -> dict | None:
        try:
            return json.loads(self.marker(student, assignment).read_text())
        except (OSError, ValueError):
            return None
