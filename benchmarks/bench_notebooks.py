"""Time each notebook's full solution run, and GradientMonitor's cost on a training step.

    python benchmarks/bench_notebooks.py [--only notebooks|monitor] [--repeats 3] [--rounds 7]

Targets (issue 16): every notebook under 15 s, the course under 2 minutes; the monitor recording
every step under 10% of a bare SGD step on three ReLU networks, before (the monitor before issue 16,
benchmarks/reference_monitor.py) and after measured in one run. Writes the "notebooks" and
"monitor" sections of benchmarks/README.md (each part only its own); the monitor part takes a
few minutes.
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.reference_monitor import GradientMonitor as ReferenceMonitor  # noqa: E402
from benchmarks.host import probe, sgd_steps, speed_note  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402
from course_lib.datasets import load_digits  # noqa: E402
from course_lib.models import build_mlp  # noqa: E402
from course_lib.monitoring import METRICS, GradientMonitor  # noqa: E402


def time_notebooks(repeats: int) -> list[tuple[str, float, float]]:
    """Each solution notebook's median run, full and in grading mode. The notebooks take turns, one run each
    per round: the host's speed moves within minutes, and a slow spell then spreads over every notebook
    instead of inflating the few that ran in it."""
    from autograder.build import assignment_names, read_source  # only this part needs the autograder
    from autograder.execute import execute

    names = assignment_names()
    full: dict[str, list[float]] = {name: [] for name in names}
    grading: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        for name in names:
            nb, _ = read_source(name)
            with tempfile.TemporaryDirectory() as scratch:
                run = execute(nb, cwd=Path(scratch))
                assert not run.errors, run.errors
                full[name].append(run.seconds)
                grading[name].append(execute(nb, cwd=Path(scratch), grading=True).seconds)
            print(f"round {round_ + 1}, {name}: full {full[name][-1]:.1f} s, grading mode {grading[name][-1]:.1f} s",
                  flush=True)
    return [(name, statistics.median(full[name]), statistics.median(grading[name])) for name in names]


NETWORKS = [(10, 256, 128), (20, 64, 256), (50, 256, 256)]  # ReLU depth x width, batch (issue 16)


class HooksOnly:
    """The least any per-layer monitor built on hooks does, computing nothing: a forward hook per block
    keeping its output and a gradient hook per output keeping dL/dh, on the recorded steps. Its cost
    is the floor under GradientMonitor's (PyTorch runs a Python call per hook, each a few microseconds)."""

    def __init__(self, net, *, every: int = 1):
        self.net, self.every, self.handles, self.passes = net, every, [], -1
        self.outputs, self.grads = [None] * len(net.blocks), [None] * len(net.blocks)

    def __enter__(self):
        def count(module, args):
            self.passes += 1

        def keep(index):
            def on_grad(grad):
                self.grads[index] = grad

            def hook(module, args, output):
                if self.passes % self.every == 0:
                    self.outputs[index] = output
                    output.register_hook(on_grad)
            return hook
        self.handles = [self.net.register_forward_pre_hook(count)]
        self.handles += [block.register_forward_hook(keep(i)) for i, block in enumerate(self.net.blocks)]
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


def time_monitor(depth: int, width: int, batch: int, *, rounds: int, seconds: float,
                 every: int = 1) -> tuple[float, float, float, float, int]:
    """Median seconds per SGD step: bare, with the monitor before issue 16 (ReferenceMonitor), with
    GradientMonitor, with hooks alone (HooksOnly); and the steps per round (as many as take about
    `seconds` bare, at least 2 * every).

    The three alternate round by round, so that they share the machine's noise; each round's
    time is the thread's CPU time (time.thread_time), which other processes on a busy machine
    do not inflate the way they do wall time.
    """
    torch.set_flush_denormal(True)
    torch.set_num_threads(1)  # as the notebooks and tests run the course's small networks
    X, y = load_digits()
    X, y = X[:batch], y[:batch]
    net = build_mlp(depth, width, activation="relu", init="he", in_features=64, out_features=10, seed=0)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)

    def run(n):
        return sgd_steps(net, opt, X, y, n)

    steps = max(2 * every, round(seconds / run(3)))
    bare, before, after, hooks = [], [], [], []
    for _ in range(rounds):
        bare.append(run(steps))
        for monitor_class, times in ((ReferenceMonitor, before), (GradientMonitor, after), (HooksOnly, hooks)):
            with monitor_class(net, every=every):
                run(1)  # the first recorded step sets up (samples, buffers)
                times.append(run(steps))
    return (statistics.median(bare), statistics.median(before), statistics.median(after), statistics.median(hooks),
            steps)


def step_tensors(depth: int, width: int, batch: int) -> dict[str, list[torch.Tensor]]:
    """One SGD step's tensors a monitor reduces: each block's activations and dL/dh, each weight and dL/dW."""
    X, y = load_digits()
    net = build_mlp(depth, width, activation="relu", init="he", in_features=64, out_features=10, seed=0)
    with HooksOnly(net) as hooks:
        torch.nn.functional.cross_entropy(net(X[:batch]), y[:batch]).backward()
    weights = [block.linear.weight for block in net.blocks]
    return {"acts": [a.detach() for a in hooks.outputs], "outs": hooks.grads,
            "weights": [w.detach() for w in weights], "grads": [w.grad for w in weights]}


def reductions_alone(depth: int, width: int, batch: int, repeats: int = 200) -> tuple[float, float]:
    """Seconds per step of the arithmetic behind the monitor's moments alone (no hooks, no bookkeeping, tensors
    in the cache): (one call per statistic and tensor: column sums and sum of squares of the activations, sum of
    squares of dL/dh, sum and sum of squares of W and dL/dW; the same batched across layers: tensors of one
    shape stacked, or torch._foreach_norm). A lower bound on any per-layer monitor computing these numbers."""
    t = step_tensors(depth, width, batch)

    def per_tensor():
        for a in t["acts"]:
            a.reshape(-1, a.shape[-1]).sum(0), torch.dot(a.reshape(-1), a.reshape(-1))
        for g in t["outs"]:
            torch.dot(g.reshape(-1), g.reshape(-1))
        for w in (*t["weights"], *t["grads"]):
            w.sum(), torch.dot(w.reshape(-1), w.reshape(-1))

    def batched():
        shapes: dict = {}
        for kind in ("acts", "weights", "grads"):
            for x in t[kind]:
                shapes.setdefault((kind, x.shape), []).append(x)
        for (kind, _), same in shapes.items():
            block = torch.stack(same)
            block.sum(1) if kind == "acts" else block.flatten(1).sum(1)
        torch._foreach_norm(t["acts"]), torch._foreach_norm(t["outs"])
        torch._foreach_norm(t["weights"]), torch._foreach_norm(t["grads"])

    def seconds(run):
        run()
        start = time.thread_time()
        for _ in range(repeats):
            run()
        return (time.thread_time() - start) / repeats
    return statistics.median(seconds(per_tensor) for _ in range(5)), statistics.median(seconds(batched)
                                                                                        for _ in range(5))


def same_numbers(depth: int, width: int, batch: int, steps: int = 3) -> float:
    """Largest relative difference between the reference monitor's and GradientMonitor's numbers."""
    X, y = load_digits()
    worst = 0.0
    runs = []
    for monitor_class in (ReferenceMonitor, GradientMonitor):
        net = build_mlp(depth, width, activation="relu", init="he", in_features=64, out_features=10, seed=0)
        opt = torch.optim.SGD(net.parameters(), lr=1e-2)
        with monitor_class(net) as monitor:
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(net(X[:batch]), y[:batch]).backward()
                opt.step()
        runs.append(monitor.as_arrays())
    for metric in METRICS:
        a, b = runs[0][metric], runs[1][metric]
        assert (np.isnan(a) == np.isnan(b)).all(), metric
        both = ~np.isnan(a)
        worst = max(worst, float(np.max(np.abs(a[both] - b[both]) / np.maximum(np.abs(a[both]), 1e-300),
                                        initial=0.0)))
    return worst


def machine() -> str:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, one torch thread. Load average when the run started: {load} "
            "(1/5/15 min; above ~1 other jobs shared the cores and every figure is inflated).")


def notebooks_section(repeats: int) -> str:
    start = probe()
    rows = time_notebooks(repeats)
    end = probe()
    lines = ["## Notebooks\n", machine() + " Command: `python benchmarks/bench_notebooks.py --only notebooks`.\n",
             "| notebook | full solution run (s) | grading mode (s) | target |", "|---|---|---|---|"]
    lines += [f"| {n} | {full:.1f} | {grading:.1f} | < 15 s {'ok' if full < 15 else 'MISSED'} |"
              for n, full, grading in rows]
    total, grading = sum(full for _, full, _ in rows), sum(g for _, _, g in rows)
    lines.append(f"| all | {total:.1f} | {grading:.1f} | < 120 s {'ok' if total < 120 else 'MISSED'} |")
    lines.append(f"\nMedian of {repeats} runs each (the notebooks take turns, one run each per round), wall time "
                 "from kernel start to last cell (nbclient); grading mode skips cells tagged `demo`. "
                 + speed_note(start, end))
    return "\n".join(lines)


def monitor_section(rounds: int, seconds: float) -> str:
    started, start = time.perf_counter(), probe()
    lines = ["## GradientMonitor\n",
             machine() + " Command: `python benchmarks/bench_notebooks.py --only monitor`.\n",
             "| network (ReLU, batch) | records | bare step (ms) | before: issue-16 reference (ms) | overhead | "
             "after: GradientMonitor (ms) | overhead | target | hooks alone: overhead | "
             "arithmetic alone: per tensor / batched | numbers differ by |",
             "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for depth, width, batch in NETWORKS:
        differ = same_numbers(depth, width, batch)
        per_tensor, batched = reductions_alone(depth, width, batch)
        for every in (1, 10):
            bare, before, after, hooks, steps = time_monitor(depth, width, batch, every=every, rounds=rounds,
                                                             seconds=seconds)
            lines.append(f"| {depth} x {width}, batch {batch} | every {'step' if every == 1 else f'{every} steps'} | "
                         f"{bare * 1e3:.2f} | {before * 1e3:.2f} | {before / bare - 1:+.1%} | {after * 1e3:.2f} | "
                         f"{after / bare - 1:+.1%} | < 10% {'ok' if after / bare - 1 < 0.10 else 'MISSED'} | "
                         f"{hooks / bare - 1:+.1%} | {per_tensor / every / bare:+.1%} / "
                         f"{batched / every / bare:+.1%} | {differ:.0e} |")
            print(lines[-1], f"({steps} steps a round)", flush=True)
    lines.append(f"\nSGD step = zero_grad, forward, cross-entropy, backward, step. CPU time of the thread (not wall "
                 f"time), median over {rounds} rounds of about {seconds:g} s each (at least 2 recorded steps), bare, "
                 "before and after alternating round by round, one torch thread; the run took "
                 f"{time.perf_counter() - started:.0f} s. Before: `benchmarks/reference_monitor.py`, the monitor as "
                 "it was before issue 16 (per-layer statistics summed in float64, one layer at a time, a hook per "
                 "weight). Hooks alone: `HooksOnly` in bench_notebooks.py, a forward hook per block and a gradient "
                 "hook per block output that only keep references: what any per-layer monitor built on PyTorch hooks "
                 "costs before it computes a statistic (each hook is a Python call of a few microseconds; the "
                 "statistics then add a few torch calls per layer, each also microseconds on CPU however small). "
                 "Arithmetic alone: `reductions_alone` in bench_notebooks.py, the reductions behind the recorded "
                 "moments on one step's tensors with nothing else (no hooks, no bookkeeping, tensors in the cache), "
                 "one call per statistic and tensor, and batched across layers (tensors of one shape stacked, "
                 "`torch._foreach_norm`), divided by `every`: a lower bound on the cost of any monitor that computes "
                 "these numbers with PyTorch calls; where it is above 10% so is every such monitor. "
                 "Numbers differ by: the largest relative difference between the two monitors' recorded statistics "
                 "over 3 steps (every metric, every layer). " + speed_note(start, probe()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("notebooks", "monitor"), help="run one part (default: both)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each notebook")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds per monitor figure")
    parser.add_argument("--seconds", type=float, default=0.3, help="bare training time per round")
    args = parser.parse_args()
    if args.only != "monitor":
        write_section("notebooks", notebooks_section(args.repeats))
    if args.only != "notebooks":
        write_section("monitor", monitor_section(args.rounds, args.seconds))


if __name__ == "__main__":
    main()
