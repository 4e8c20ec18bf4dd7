"""The file view: a kernel sees only what is bound, never the course, the checkout or a hidden folder."""

import json
from pathlib import Path

import pytest

from autograder.isolation import file_view, machine, sandbox, wire
from autograder.isolation.limits import Limits


def _sandbox_run(box, source: str) -> dict:
    import select

    wire.send(box.sock, {"op": "run", "source": source})
    assert select.select([box.sock], [], [], 120)[0], "no reply from the kernel"
    return wire.recv(box.sock)


def test_the_file_view_denies_by_default(tmp_path):
    isolation = machine.probe()
    if isolation.mode == "none":
        pytest.skip("no namespaces on this machine")
    from autograder import COURSE_ROOT

    hidden, unlisted = tmp_path / "course", tmp_path / "elsewhere"
    for folder in (hidden, unlisted):
        folder.mkdir()
        (folder / "secret.txt").write_text("the answer")
    box = sandbox.Sandbox(isolation, Limits(memory_mb=1024), hide=[str(hidden)],
                          notebook_name="nb.ipynb", notebook_bytes=b"{}").start()
    try:
        paths = [str(hidden / "secret.txt"), str(unlisted / "secret.txt"), str(COURSE_ROOT / "source"),
                 str(COURSE_ROOT / "nbgrader_config.py"), "/etc/passwd", "/sys/fs/cgroup", "/run"]
        reply = _sandbox_run(box, f"import json, os\nprint(json.dumps([os.path.exists(p) for p in {paths!r}]))\n"
                                  "print(json.dumps(sorted(os.listdir('/'))))\n"
                                  "import numpy, torch, course_lib.checks\n"
                                  "print(os.path.isfile(course_lib.checks.__file__))\n"
                                  "print(open('/proc/self/mountinfo').read())")
        assert reply["error"] is None, reply["error"]
        exists, top = (json.loads(line) for line in reply["stdout"].splitlines()[:2])
        assert exists == [False] * len(paths)
        assert reply["stdout"].splitlines()[2] == "True"  # course_lib's files are there to read
        the_view = file_view.view((str(hidden),))
        shown = {"dev", "proc", "tmp"} | {Path(p).parts[1] for p in the_view.binds + list(the_view.symlinks)}
        assert set(top) <= shown, top  # nothing but what is bound (and the folders leading to it)
        assert str(tmp_path) not in reply["stdout"]
        for finder in the_view.blanks:
            assert _sandbox_run(box, f"print(len(open({finder!r}, 'rb').read()))")["stdout"].strip() == "0"
    finally:
        box.kill()
