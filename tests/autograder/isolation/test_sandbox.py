"""The sandbox: the isolation probe, a kernel that runs cells and ends everything it started, sessions,
leftovers of dead owners (the file view, deadlines and cgroups have their own test files)."""

from pathlib import Path

import pytest

from autograder.isolation import machine, owners, sandbox, wire
from autograder.isolation.limits import Limits


def test_the_isolation_probe_describes_what_it_found():
    isolation = machine.probe()
    assert isolation.mode in ("root", "userns", "none")
    assert isolation.describe()


@pytest.mark.parametrize("mode", ["default", "none"])
def test_a_sandbox_runs_cells_and_ends_everything_it_started(mode):
    import select

    isolation = machine.probe() if mode == "default" else machine.probe(force_mode="none")
    if isolation.mode == "none" and mode == "default":
        pytest.skip("no namespaces on this machine")
    box = sandbox.Sandbox(isolation, Limits(memory_mb=512), notebook_name="nb.ipynb",
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


def test_the_kernel_cannot_leave_its_session_and_a_forked_child_never_answers():
    isolation = machine.probe()
    if not isolation.seccomp:
        pytest.skip("no seccomp on this machine")
    box = sandbox.Sandbox(isolation, Limits(memory_mb=1024), notebook_name="nb.ipynb",
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


def _dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has ended."""
    import subprocess

    child = subprocess.Popen(["sleep", "0.2"])
    started = owners.start_time(child.pid)
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
