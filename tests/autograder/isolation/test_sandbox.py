"""The sandbox: the isolation probe, a kernel that runs cells and ends everything it started, the file
view denying by default, sessions, deadlines in the time a test had, leftovers of dead owners."""

import json
from pathlib import Path

import pytest

from autograder.isolation import sandbox, wire

def test_the_isolation_probe_describes_what_it_found():
    isolation = sandbox.probe()
    assert isolation.mode in ("root", "userns", "none")
    assert isolation.describe()


@pytest.mark.parametrize("mode", ["default", "none"])
def test_a_sandbox_runs_cells_and_ends_everything_it_started(mode):
    import select

    isolation = sandbox.probe() if mode == "default" else sandbox.probe(force_mode="none")
    if isolation.mode == "none" and mode == "default":
        pytest.skip("no namespaces on this machine")
    box = sandbox.Sandbox(isolation, sandbox.Limits(memory_mb=512), notebook_name="nb.ipynb",
                          notebook_bytes=b"{}").start()

    def run(source):
        wire.send(box.sock, {"op": "run", "source": source})
        assert select.select([box.sock], [], [], 60)[0]
        return wire.recv(box.sock)

    reply = run("import os, subprocess\nchild = subprocess.Popen(['sleep', '77777'])\nprint(sorted(os.listdir('.')))")
    assert reply["error"] is None and "nb.ipynb" in reply["stdout"]
    pid = int(run("print(child.pid)")["stdout"]) if isolation.mode == "none" else None
    box.kill()
    import subprocess

    left = subprocess.run(["pgrep", "-f", "sleep 77777"], capture_output=True, text=True).stdout.split()
    assert left == [], f"processes left: {left} (pid {pid})"


def _sandbox_run(box, source: str) -> dict:
    import select

    wire.send(box.sock, {"op": "run", "source": source})
    assert select.select([box.sock], [], [], 120)[0], "no reply from the kernel"
    return wire.recv(box.sock)


def test_the_file_view_denies_by_default(tmp_path):
    isolation = sandbox.probe()
    if isolation.mode == "none":
        pytest.skip("no namespaces on this machine")
    from autograder import COURSE_ROOT

    hidden, unlisted = tmp_path / "course", tmp_path / "elsewhere"
    for folder in (hidden, unlisted):
        folder.mkdir()
        (folder / "secret.txt").write_text("the answer")
    box = sandbox.Sandbox(isolation, sandbox.Limits(memory_mb=1024), hide=[str(hidden)],
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
        the_view = sandbox.view((str(hidden),))
        shown = {"dev", "proc", "tmp"} | {Path(p).parts[1] for p in the_view.binds + list(the_view.symlinks)}
        assert set(top) <= shown, top  # nothing but what is bound (and the folders leading to it)
        assert str(tmp_path) not in reply["stdout"]
        for finder in the_view.blanks:
            assert _sandbox_run(box, f"print(len(open({finder!r}, 'rb').read()))")["stdout"].strip() == "0"
    finally:
        box.kill()


def test_the_kernel_cannot_leave_its_session_and_a_forked_child_never_answers():
    isolation = sandbox.probe()
    if not isolation.seccomp:
        pytest.skip("no seccomp on this machine")
    box = sandbox.Sandbox(isolation, sandbox.Limits(memory_mb=1024), notebook_name="nb.ipynb",
                          notebook_bytes=b"{}").start()
    try:
        reply = _sandbox_run(box, "import os\nfor call in (os.setsid, lambda: os.setpgid(0, 0)):\n    try:\n"
                                  "        call()\n        print('allowed')\n    except PermissionError:\n"
                                  "        print('refused')")
        assert reply["stdout"].split() == ["refused", "refused"], reply
        reply = _sandbox_run(box, "import os\nif os.fork() == 0:\n    raise ValueError('the child')\nprint('parent')")
        assert reply["stdout"].strip() == "parent" and reply["error"] is None, reply
        assert _sandbox_run(box, "print(6 * 7)")["stdout"].strip() == "42"  # the channel is still in step
    finally:
        box.kill()


def test_a_deadline_counts_wall_time_minus_waiting_for_a_cpu(tmp_path):
    import time

    schedstat = tmp_path / "schedstat"
    schedstat.write_text("0 1000000000 1")
    deadline = sandbox.Deadline(10.0, lambda: [str(schedstat)])
    time.sleep(0.3)
    schedstat.write_text("0 1250000000 5")  # 0.25 s of the last 0.3 s spent waiting for a CPU
    assert 0.0 <= deadline.elapsed() < 0.3
    assert 9.7 < deadline.remaining() <= 10.0
    starved = sandbox.Deadline(0.05, lambda: [str(schedstat)])
    time.sleep(0.1)
    schedstat.write_text("0 99000000000 9")  # waited for longer than it ran: only the backstop ends it
    assert starved.remaining() > 0
    time.sleep(0.05 * sandbox.BACKSTOP)
    assert starved.remaining() <= 0


def _dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has ended."""
    import subprocess

    child = subprocess.Popen(["sleep", "0.2"])
    started = sandbox.start_time(child.pid)
    child.wait()
    return child.pid, started


def test_leftovers_of_dead_owners_are_removed_and_live_ones_kept(tmp_path):
    import os
    import shutil
    import tempfile

    from autograder.judging import worker

    pid, started = _dead_process()
    dead = Path(tempfile.gettempdir()) / f"vg-grade-{pid}-{started}-test"
    live = worker.scratch_dir("grade")
    old, recent = (Path(tempfile.mkdtemp(prefix="vg-grade-")) for _ in range(2))  # before owners were named
    os.utime(old, (0, 0))
    dead.mkdir()
    (tmp_path / "autograded" / "s").mkdir(parents=True)
    half = tmp_path / "autograded" / "s" / f".nb.ipynb.tmp{pid}"
    half.write_text("{")
    try:
        worker.clear_leftovers(tmp_path)
        assert not dead.exists() and live.is_dir() and not half.exists()
        assert not old.exists() and recent.is_dir()  # an untagged folder goes after a day
    finally:
        for folder in (live, dead, old, recent):
            shutil.rmtree(folder, ignore_errors=True)


def test_cgroups_of_dead_owners_are_emptied_and_removed():
    import subprocess

    flavour = sandbox.probe().cgroups
    if flavour != "v1":
        pytest.skip(f"needs writable cgroup v1 hierarchies (this machine: {flavour or 'none'})")
    pid, started = _dead_process()
    parent = Path("/sys/fs/cgroup/pids/vg-grader")
    parent.mkdir(exist_ok=True)
    dead, live = parent / f"{pid}-{started}-0", parent / f"{sandbox.owner_tag()}-999"
    dead.mkdir()
    live.mkdir()
    sleeper = subprocess.Popen(["sleep", "300"])
    try:
        (dead / "cgroup.procs").write_text(str(sleeper.pid))
        sandbox.sweep_cgroups()  # (another grader's sweep may have been first: the outcome is the same)
        assert sleeper.wait(timeout=10) == -9 and not dead.exists() and live.exists()
    finally:
        sleeper.kill()
        for folder in (dead, live):
            if folder.exists():
                folder.rmdir()
