"""The course's autograder: an nbgrader course root plus `python -m autograder` commands.

This folder is a plain nbgrader course root (see nbgrader_config.py):
instructors can ``cd autograder`` and use ``nbgrader`` commands directly.
"""

import os
import sys
from pathlib import Path

COURSE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = COURSE_ROOT.parent
SOURCE_DIR = COURSE_ROOT / "source"
STUDENT_DIR = REPO_ROOT / "notebooks"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}  # every notebook's


class CourseError(Exception):
    """Input an instructor or author can fix (a missing course root, an unknown notebook, a malformed
    source): `python -m autograder` prints its message as one line and exits 2."""


def ensure_tools_on_path() -> None:
    """Put this Python's bin/ first on PATH: nbgrader runs `alembic` by name."""
    bin_dir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bin_dir:
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")


def nbgrader_config(root: Path):
    """The nbgrader config of the course root `root` (its own nbgrader_config.py, else this course's), with
    the root set to `root`: the one place that loads nbgrader's config."""
    from traitlets.config.loader import PyFileConfigLoader

    root = Path(root)
    folder = root if (root / "nbgrader_config.py").is_file() else COURSE_ROOT
    config = PyFileConfigLoader("nbgrader_config.py", path=str(folder)).load_config()
    config.CourseDirectory.root = str(root)
    return config
