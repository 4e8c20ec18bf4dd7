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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.build import assignment_names, read_source  # noqa: E402
from autograder.execute import execute  # noqa: E402
from benchmarks.sections import write_section  # noqa: E402
from course_lib.datasets import load_digits  # noqa: E402
from course_lib.models import build_mlp  # noqa: E402
from course_lib import monitoring  # noqa: E402
from course_lib.monitoring import METRICS, GradientMonitor  # noqa: E402


def _ref_norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dtype=torch.float64)


def _ref_std(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return _ref_norm(x - x.mean()) / max(x.numel() - 1, 1) ** 0.5


class ReferenceMonitor(GradientMonitor):
    """The monitor's recording path before issue 16 (a hook per weight, per-layer statistics summed in
    float64, one layer at a time), kept here only to time it against the library's in one run."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending, self._snapshots = None, None

    def attach(self) -> "GradientMonitor":
        """Register the hooks (``with`` does this for you)."""
        if self._handles:
            return self
        self._handles.append(self.model.register_forward_pre_hook(self._on_model_forward))
        for index, layer in enumerate(self.layers):
            self._handles.append(layer.act_module.register_forward_hook(self._activation_hook(index)))
            if layer.act_module is not layer.module:
                self._handles.append(layer.module.register_forward_hook(self._output_hook(index)))
            if layer.weight is not None:
                self._handles.append(layer.weight.register_post_accumulate_grad_hook(self._weight_hook(index)))
        return self

    def detach(self) -> None:
        """Remove every hook and close the pending update:data measurement."""
        try:
            self._flush()
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
            self._snapshots = None

    # -- hooks ---------------------------------------------------------------
    # Hooks only keep references; statistics are computed once backward is
    # complete, in one pass with a single sync, and only for `metrics`.
    def _on_model_forward(self, module, args) -> None:
        if not torch.is_grad_enabled():
            self._recording = False
            return
        self._flush()
        self._pass += 1
        self._recording = self._pass % self.every == 0
        if self._recording:
            self.steps.append(self._pass)
            self._rows.append(np.full((len(self.layers), len(METRICS)), np.nan))
            self._seen.append(np.zeros((len(self.layers), len(METRICS)), dtype=bool))
            self._pending = {"acts": {}, "inputs": {}, "out_grads": {}, "weight_grads": {}}
            self._snapshots = {i: self._sample(i) for i, layer in enumerate(self.layers)
                               if layer.weight is not None} if "update_data" in self.metrics else None

    def _sample(self, index: int) -> torch.Tensor:
        """A copy of the layer's weights at fixed sampled positions (all of them for small layers)."""
        flat = self.layers[index].weight.detach().reshape(-1)
        if index not in self._sample_at:
            count = flat.numel()
            generator = torch.Generator().manual_seed(index)
            self._sample_at[index] = None if count <= monitoring.UPDATE_SAMPLE else \
                torch.randperm(count, generator=generator)[:monitoring.UPDATE_SAMPLE].to(flat.device)
        positions = self._sample_at[index]
        return flat.clone() if positions is None else flat[positions]

    def _activation_hook(self, index: int):
        def hook(module, inputs, output):
            if not (self._recording and torch.is_grad_enabled() and isinstance(output, torch.Tensor)):
                return
            self._pending["acts"][index] = output.detach()
            if (self.layers[index].activation in monitoring._DEAD_FROM_INPUT and inputs
                    and isinstance(inputs[0], torch.Tensor)):
                self._pending["inputs"][index] = inputs[0].detach()
            if self.keep_values:
                self.activations[index] = output.detach()
            if module is self.layers[index].module and output.requires_grad:
                output.register_hook(self._output_grad_hook(index))
        return hook

    def _output_hook(self, index: int):
        def hook(module, inputs, output):
            if self._recording and torch.is_grad_enabled() and isinstance(output, torch.Tensor) \
                    and output.requires_grad:
                output.register_hook(self._output_grad_hook(index))
        return hook

    def _output_grad_hook(self, index: int):
        pending = self._pending

        def hook(grad):
            pending["out_grads"][index] = grad.detach()
            if self.keep_values:
                self.output_grads[index] = grad.detach()
        return hook

    def _weight_hook(self, index: int):
        def hook(param):
            if not self._recording or param.grad is None:
                return
            self._pending["weight_grads"][index] = param.grad.detach()
            if len(self._pending["weight_grads"]) == self._weight_count:
                self._compute_pending()  # backward is complete: every weight has its gradient
        return hook

    @property
    def _weight_count(self) -> int:
        return sum(layer.weight is not None for layer in self.layers)

    def _compute_pending(self) -> None:
        """Turn the references kept by the hooks into statistics, with one sync at the end."""
        pending = getattr(self, "_pending", None)
        if not pending or not self._rows or not any(pending.values()):
            return
        step = len(self._rows) - 1
        entries: list[tuple[int, str]] = []
        values: list[torch.Tensor] = []

        wanted = self.metrics

        def put(index, metric, value):
            if metric not in wanted:  # computed along with a wanted one (act_mean for act_std, say)
                return
            entries.append((index, metric))
            values.append(value.double().reshape(()))  # float64: a tiny norm must not flush to 0

        with torch.no_grad():
            for index, acts in pending["acts"].items():
                kind = self.layers[index].activation
                if wanted & {"act_mean", "act_std"}:
                    mean = acts.mean()  # mean and norm of the centred values: far cheaper than var_mean on CPU
                    put(index, "act_mean", mean)
                    put(index, "act_std", _ref_norm(acts - mean) / max(acts.numel() - 1, 1) ** 0.5)
                if kind == "sigmoid" and "saturated" in wanted:
                    put(index, "saturated", ((acts < 0.03) | (acts > 0.97)).float().mean())
                elif kind == "tanh" and "saturated" in wanted:
                    put(index, "saturated", (acts.abs() > 0.97).float().mean())
                dead = self._dead_fraction(kind, acts, pending["inputs"].get(index)) if "dead" in wanted else None
                if dead is not None:
                    put(index, "dead", dead)
            if "out_grad_norm" in wanted:
                for index, grad in pending["out_grads"].items():
                    put(index, "out_grad_norm", _ref_norm(grad))
            for index, grad in pending["weight_grads"].items():
                if "grad_norm" in wanted:
                    put(index, "grad_norm", _ref_norm(grad))
                if wanted & {"grad_std", "grad_data"}:
                    grad_std = _ref_std(grad)
                    put(index, "grad_std", grad_std)
                    put(index, "grad_data", grad_std / (_ref_std(self.layers[index].weight.detach()) + 1e-30))
            numbers = torch.stack(values).tolist() if values else []
        for (index, metric), number in zip(entries, numbers):
            self._store(step, index, metric, number)
        for key in pending:
            pending[key] = {}

    @staticmethod
    def _dead_fraction(kind, acts: torch.Tensor, inputs: torch.Tensor | None) -> torch.Tensor | None:
        """Fraction of units whose activation derivative is < 1e-6 on every example (None: not defined)."""
        if kind is None:
            return None
        if kind == "relu":  # slope 1 exactly where the output is positive
            return (acts.reshape(-1, acts.shape[-1]).amax(dim=0) <= 0).float().mean()
        if kind == "sigmoid":
            slope = acts * (1 - acts)
        elif kind == "tanh":
            slope = 1 - acts**2
        elif kind in ("leaky_relu", "linear", "identity"):
            return torch.zeros(())
        elif inputs is not None:
            slope = monitoring.activation_derivative(kind, inputs.float()).abs()
        else:
            return None
        # a unit is dead when no example of the batch gives it a usable slope
        return (slope.reshape(-1, slope.shape[-1]).amax(dim=0) < 1e-6).float().mean()

    def _flush(self) -> None:
        """Finish the recorded step: pending statistics, then std(update)/std(W) of the step taken."""
        self._compute_pending()
        if not self._snapshots or not self._rows:
            return
        step = len(self._rows) - 1
        with torch.no_grad():
            indices = list(self._snapshots)
            ratios = [_ref_std(self._sample(i) - before) / (_ref_std(before) + 1e-30)
                      for i, before in self._snapshots.items()]
            for index, ratio in zip(indices, torch.stack(ratios).tolist() if ratios else []):
                self._store(step, index, "update_data", ratio)
        self._snapshots = None

    def _store(self, step: int, index: int, metric: str, value: float) -> None:
        self._rows[step][index, monitoring._COL[metric]] = value
        self._seen[step][index, monitoring._COL[metric]] = True


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
                 every: int = 1) -> tuple[float, float, float]:
    """Median seconds per SGD step: bare, with the reference (pre-issue-16) monitor, with GradientMonitor.

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
        start = time.thread_time()
        for _ in range(n):
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(net(X), y).backward()
            opt.step()
        return (time.thread_time() - start) / n

    run(20)
    bare, before, after = [], [], []
    for _ in range(rounds):
        bare.append(run(steps))
        with ReferenceMonitor(net, every=every):
            before.append(run(steps))
        with GradientMonitor(net, every=every):
            after.append(run(steps))
    return statistics.median(bare), statistics.median(before), statistics.median(after)


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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    load = " ".join(f"{x:.1f}" for x in __import__("os").getloadavg())
    lines = ["## Notebooks and GradientMonitor\n",
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
    lines += ["| network (ReLU, batch) | records | bare step (ms) | before: reference monitor (ms) | overhead | "
              "after: GradientMonitor (ms) | overhead | target | numbers differ by |",
              "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for depth, width, batch in [(10, 256, 128), (20, 64, 256), (50, 256, 256)]:
        differ = same_numbers(depth, width, batch)
        for every in (1, 10):
            bare, before, after = time_monitor(depth, width, batch, every=every, steps=args.steps,
                                               rounds=args.rounds)
            lines.append(f"| {depth} x {width}, batch {batch} | every {'step' if every == 1 else f'{every} steps'} | "
                         f"{bare * 1e3:.2f} | {before * 1e3:.2f} | {before / bare - 1:+.1%} | {after * 1e3:.2f} | "
                         f"{after / bare - 1:+.1%} | < 10% {'ok' if after / bare - 1 < 0.10 else 'MISSED'} | "
                         f"{differ:.0e} |")
            print(lines[-1], flush=True)
    lines.append(f"\nSGD step = zero_grad, forward, cross-entropy, backward, step; CPU time of the thread (not wall "
                 f"time), median over {args.rounds} rounds of {args.steps} steps, bare, reference and GradientMonitor "
                 "alternating round by round, one torch thread. Before: `ReferenceMonitor` in this script, the "
                 "recording path before issue 16 (per-layer statistics summed in float64, one layer at a time). "
                 "Numbers differ by: the largest relative difference between the two monitors' recorded "
                 "statistics over 3 steps (every metric, every layer).")
    write_section("notebooks", "\n".join(lines))


if __name__ == "__main__":
    main()
