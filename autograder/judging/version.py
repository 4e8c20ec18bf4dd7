"""GRADER_VERSION: a hash of the code that decides a verdict; calibrations, test-cache entries and
finished-job markers carry it, so none survives a change of that code."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # autograder/
VERDICT_MODULES = ("judging/judge.py", "judging/outcome.py", "judging/names.py", "judging/alignment.py",
                   "judging/kernel_client.py", "judging/trusted.py", "judging/cache.py", "judging/plan.py",
                   "judging/rng.py", "judging/source.py", "judging/hidden.py", "judging/inspection.py",
                   "judging/demo.py", "judging/ipython.py",
                   "isolation/wire.py", "isolation/shell.py", "isolation/output.py")


def grader_version() -> str:
    """A hash of the code that decides a verdict: the judge, the inspection, the wire, the kernel's side,
    the grading mode, and course_lib (the checks and reference functions the tests call)."""
    files = [(name, PACKAGE / name) for name in VERDICT_MODULES]
    spec = importlib.util.find_spec("course_lib")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        # subpackages too (course_lib/widgets/): a name is its path, as two modules may share a file name
        files += [(str(path.relative_to(folder)), path) for path in sorted(Path(folder).rglob("*.py"))]
    digest = hashlib.sha256()
    for name, path in files:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


GRADER_VERSION = grader_version()
