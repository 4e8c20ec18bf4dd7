"""Shared fixtures: built and executed notebooks are computed once and reused across tests.

With pytest-xdist, workers share them through a cache folder guarded by a file
lock, so each notebook is executed once per test session, not once per test.
"""

import hashlib
import json
import os
import pickle
import sys
import tempfile
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
    _publish_groups(config, items)


# ---- xdist groups ----------------------------------------------------------------------------------------
# pytest-xdist 3.8 marks a group by appending "@group" to `item._nodeid`, which pytest 9 no longer reads
# (node ids live in `_id`), so `--dist loadgroup` silently spreads a group over every worker and each one
# repeats the group's session fixtures (several minutes of grading, and two graders racing on one machine).
# Workers therefore publish {node id: group} to a file the controller names, and the scheduler reads it.
_GROUPS_ENV = "VG_XDIST_GROUPS"


def pytest_configure(config):
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "loadgroup":
        handle, path = tempfile.mkstemp(prefix="vg-xdist-groups-", suffix=".json")
        os.close(handle)
        os.environ[_GROUPS_ENV] = path  # workers are spawned after this and inherit it


def pytest_unconfigure(config):
    if not hasattr(config, "workerinput") and _GROUPS_ENV in os.environ:
        Path(os.environ.pop(_GROUPS_ENV)).unlink(missing_ok=True)


def _publish_groups(config, items) -> None:
    path = os.environ.get(_GROUPS_ENV)
    if not hasattr(config, "workerinput") or not path:
        return
    groups = {}
    for item in items:
        names = {str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                 for m in item.iter_markers("xdist_group")}
        if names:
            groups[item.nodeid] = "_".join(sorted(names))
    partial = f"{path}.{os.getpid()}"  # every worker collects the same items: last writer wins, whole
    Path(partial).write_text(json.dumps(groups))
    os.replace(partial, path)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        """One work unit per xdist_group (read from the workers' file), one per test otherwise."""

        groups: dict | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                self.groups = json.loads(Path(os.environ[_GROUPS_ENV]).read_text() or "{}")
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


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


@pytest.fixture(autouse=True)
def _environment_kept():
    """Each test leaves os.environ as it found it. Commands run in-process set what their own process needs
    (`report` MPLBACKEND=Agg, the worker's preload OMP_NUM_THREADS); a notebook kernel this worker starts
    later inherits the environment, and with MPLBACKEND=Agg it shows no figure."""
    saved = dict(os.environ)
    yield
    if os.environ != saved:
        os.environ.clear()
        os.environ.update(saved)


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
    parts += [p.read_bytes() for p in sorted((REPO / "course_lib").rglob("*.py"))]
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
