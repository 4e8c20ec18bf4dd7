"""Time each notebook's full solution run, and GradientMonitor's cost on a training step.

    python benchmarks/bench_notebooks.py [--repeats 3]

Targets: every notebook under 30 s; the monitor under 10% of a bare step.
Writes the "notebooks" section of benchmarks/README.md.
"""

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.build import assignment_names, read_source  # noqa: E402
from autograder.execute import execute  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402
from course_lib.datasets import load_digits  # noqa: E402
from course_lib.models import build_mlp  # noqa: E402
from course_lib.monitoring import GradientMonitor  # noqa: E402


def time_notebooks(repeats: int) -> list[tuple[str, float, float]]:
    rows = []
    for name in assignment_names():
        nb, _ = read_source(name)
        full, grading = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as scratch:
                run = execute(nb, cwd=Path(scratch))
                assert not run.errors, run.errors
                full.append(run.seconds)
                grading.append(execute(nb, cwd=Path(scratch), grading=True).seconds)
        rows.append((name, statistics.median(full), statistics.median(grading)))
        print(f"{name}: full {rows[-1][1]:.1f} s, grading mode {rows[-1][2]:.1f} s", flush=True)
    return rows


def time_monitor(depth: int, width: int, batch: int, steps: int = 100, rounds: int = 5,
                 every: int = 1) -> tuple[float, float]:
    """Median seconds per SGD step without and with a GradientMonitor, interleaved to share noise."""
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # as the notebooks and tests run the course's small networks
    X, y = load_digits()
    X, y = X[:batch], y[:batch]
    net = build_mlp(depth, width, activation="relu", init="he", in_features=64, out_features=10, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def run(n):
        start = time.perf_counter()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
        return (time.perf_counter() - start) / n

    run(20)
    bare, watched = [], []
    for _ in range(rounds):
        bare.append(run(steps))
        with GradientMonitor(net, every=every):
            watched.append(run(steps))
    return statistics.median(bare), statistics.median(watched)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-notebooks", action="store_true")
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    lines = [f"## Notebooks and GradientMonitor\n",
             f"Load average when measured: {load} (other jobs shared the 2 cores; idle figures are lower).\n",
             f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
             f"torch {torch.__version__}. Command: `python benchmarks/bench_notebooks.py`.\n"]
    if not args.skip_notebooks:
        rows = time_notebooks(args.repeats)
        lines += ["| notebook | full solution run (s) | grading mode (s) | target |", "|---|---|---|---|"]
        lines += [f"| {n} | {full:.1f} | {grading:.1f} | < 30 s {'ok' if full < 30 else 'MISSED'} |"
                  for n, full, grading in rows]
        lines.append(f"\nMedian of {args.repeats} runs each, wall time from kernel start to last cell "
                     "(nbclient); grading mode skips cells tagged `demo`.\n")
    lines += ["| network (ReLU, batch) | records | bare step (ms) | with GradientMonitor (ms) | overhead | target |",
              "|---|---|---|---|---|---|"]
    for depth, width, batch in [(10, 256, 128), (20, 64, 256), (50, 256, 256)]:
        for every in (1, 10):
            bare, watched = time_monitor(depth, width, batch, every=every)
            overhead = watched / bare - 1
            lines.append(f"| {depth} x {width}, batch {batch} | every {'step' if every == 1 else f'{every} steps'} | "
                         f"{bare * 1e3:.2f} | {watched * 1e3:.2f} | {overhead:+.1%} | "
                         f"< 10% {'ok' if overhead < 0.10 else 'MISSED'} |")
            print(lines[-1], flush=True)
    lines.append("\nSGD step = zero_grad, forward, cross-entropy, backward, step; median over 5 interleaved "
                 "rounds of 100 steps, one torch thread.")
    write_section("notebooks", "\n".join(lines))


if __name__ == "__main__":
    main()
