"""Shared fixtures: built and executed notebooks are computed once and reused across tests.

With pytest-xdist, workers share them through a cache folder guarded by a file
lock, so each notebook is executed once per test session, not once per test.
"""

import hashlib
import json
import os
import pickle
import sys
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autograder import ensure_tools_on_path  # noqa: E402
from autograder.build import assignment_names, read_source  # noqa: E402

ensure_tools_on_path()  # nbgrader runs `alembic` by name
# pytest-xdist runs one worker per core: one thread each (kernels inherit it) avoids
# oversubscription, which makes the course's tiny networks many times slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")

NAMES = assignment_names()

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """pytest exits 5 when nothing ran; make an empty selection of notebooks an error too."""
    if not NAMES:
        raise pytest.UsageError("no authored notebooks found under autograder/source")


_browser: list = []


def pytest_runtest_setup(item):
    """A browser test with no Chromium or Chrome fails in one line that says what to install (never skips)."""
    if item.get_closest_marker("browser") is None:
        return
    if not _browser:
        from scripts.setup_system import find_browser

        _browser.append(find_browser())
    path, problem = _browser[0]
    if path is None:
        pytest.fail(problem, pytrace=False)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory, worker_id) -> Path:
    """A folder shared by all xdist workers of this session."""
    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent
    folder = root / "shared-cache"
    folder.mkdir(exist_ok=True)
    return folder


def cached(cache: Path, key: str, compute):
    """Compute once per session across workers; later callers load the pickled result."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = cache / f"{digest}.pkl"
    with FileLock(str(target) + ".lock"):
        if target.exists():
            return pickle.loads(target.read_bytes())
        value = compute()
        target.write_bytes(pickle.dumps(value))
        return value


def source_key(name: str) -> str:
    """Changes whenever the notebook's source or the library changes."""
    parts = [(REPO / "autograder" / "source" / name / f"{name}.py").read_bytes()]
    parts += [p.read_bytes() for p in sorted((REPO / "course_lib").glob("*.py"))]
    return name + hashlib.sha256(b"".join(parts)).hexdigest()


@pytest.fixture(scope="session")
def executed(shared_cache, tmp_path_factory):
    """executed(name, grading=False) -> autograder.execute.Run of the solution notebook."""
    from autograder.execute import execute

    def run(name: str, *, grading: bool = False):
        def compute():
            nb, _ = read_source(name)
            return execute(nb, cwd=tmp_path_factory.mktemp(f"run-{name}"), grading=grading)
        return cached(shared_cache, f"executed:{grading}:{source_key(name)}", compute)
    return run


@pytest.fixture(scope="session")
def built_students(shared_cache, tmp_path_factory):
    """name -> the student notebook JSON the build produces now (all notebooks built once)."""
    from autograder.build import generate_student_notebooks

    def compute():
        sources = {name: read_source(name)[0] for name in NAMES}
        return generate_student_notebooks(sources, tmp_path_factory.mktemp("build"))
    return cached(shared_cache, "built:" + json.dumps([source_key(n) for n in NAMES]), compute)
