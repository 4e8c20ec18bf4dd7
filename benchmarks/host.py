"""How fast the host runs right now: two figures every benchmark section can print beside its own.

This machine is a virtual machine whose speed moves by up to ~40% from hour to hour with what else its
host runs (one notebook took 12.5 to 18.2 s within an hour, the machine otherwise idle). Two sections
measured in different hours compare only through a workload both timed: a torch training step (the
course's arithmetic) and a fresh Python importing torch and pyplot (what every notebook and grading
kernel pays first: disk, imports, the interpreter).
"""

import statistics
import subprocess
import sys
import time

import torch


def reference_step_ms(seconds: float = 2.0) -> float:
    """CPU milliseconds of one SGD step of a 20 x 64 ReLU MLP on 256 digits (one torch thread), the median of
    rounds of 25 steps over about `seconds`."""
    from course_lib.datasets import load_digits
    from course_lib.models import build_mlp

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        X, y = load_digits()
        X, y = X[:256], y[:256]
        net = build_mlp(20, 64, activation="relu", init="he", in_features=64, out_features=10, seed=0)
        opt = torch.optim.SGD(net.parameters(), lr=1e-3)
        rounds = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(rounds) < 5:
            rounds.append(sgd_steps(net, opt, X, y, 25) * 1e3)
        return statistics.median(rounds)
    finally:
        torch.set_num_threads(threads)


def sgd_steps(net, opt, X, y, steps: int) -> float:
    """Run `steps` SGD steps (zero_grad, forward, cross-entropy, backward, step); CPU seconds of this thread
    per step (other processes on a busy machine do not inflate it as they do wall time)."""
    start = time.thread_time()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return (time.thread_time() - start) / steps


def fresh_import_s(repeats: int = 3) -> float:
    """Wall seconds for a new Python to import torch and matplotlib.pyplot (median of `repeats`)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, matplotlib.pyplot"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def probe() -> tuple[float, float]:
    """(reference step in ms, fresh import in s), measured now."""
    return reference_step_ms(), fresh_import_s()


HOST_SPEED = ("Host speed (`benchmarks/host.py`: ms per reference SGD step, s per fresh import of torch and pyplot; "
              "compare them with another section's before comparing its figures)")


def speed(p: tuple[float, float]) -> str:
    """A `probe` as text: '3.07 ms, 2.80 s'."""
    return f"{p[0]:.2f} ms, {p[1]:.2f} s"


def speed_note(start: tuple[float, float], end: tuple[float, float] | None = None) -> str:
    """One sentence for a section: the host's speed when the run started (and ended)."""
    return f"{HOST_SPEED}: {speed(start)} at the start" + (f", {speed(end)} at the end." if end else ".")
