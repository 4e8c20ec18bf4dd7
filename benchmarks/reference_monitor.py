"""The GradientMonitor as it was before issue 16 (commit 4d324f3), kept for the benchmarks only.

A verbatim copy of course_lib/monitoring.py at that commit (now the package course_lib/monitoring/;
imports made absolute): per-layer statistics summed in float64, one layer at a time, a hook per
weight. bench_notebooks.py times it against the library's monitor in one run and checks that both
record the same numbers. Not for use anywhere else: course_lib.monitoring is the monitor.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from course_lib.models import Block, activation_derivative

METRICS = ("grad_norm", "grad_std", "out_grad_norm", "act_mean", "act_std", "saturated", "dead",
           "grad_data", "update_data")
_COL = {name: i for i, name in enumerate(METRICS)}

VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


UPDATE_SAMPLE = 4096  # update:data is estimated from this many sampled weights per layer
_DEAD_FROM_INPUT = ("elu", "gelu", "silu")  # their derivative is not a function of the output


def _norm(x: torch.Tensor) -> torch.Tensor:
    """||x|| summed in float64: squares of float32 gradients below 1e-19 would underflow (or be
    flushed to 0, see `seeding.flush_denormals`) and report a vanishing gradient as exactly 0."""
    return torch.linalg.vector_norm(x, dtype=torch.float64)


def _std(x: torch.Tensor) -> torch.Tensor:
    """Sample std as the norm of the centred values (torch.std is several times slower on CPU)."""
    x = x.float()
    return _norm(x - x.mean()) / max(x.numel() - 1, 1) ** 0.5


@dataclass(frozen=True)
class Finding:
    """One diagnosis: `kind` in vanishing/exploding/non-finite/dead/saturated/slow-updates/large-updates."""

    kind: str
    layer: int | None
    value: float
    message: str


@dataclass
class _Layer:
    name: str
    module: nn.Module
    weight: nn.Parameter | None
    activation: str | None
    act_module: nn.Module


def _find_layers(model: nn.Module, layers) -> list[_Layer]:
    if layers is None:
        blocks = [m for m in model.modules() if isinstance(m, Block)]
        if blocks:
            layers = blocks
        else:
            layers = [m for m in model.modules()
                      if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNNBase))]
    if isinstance(layers, dict):
        items = list(layers.items())
    else:
        items = [(f"layer {i + 1}", m) for i, m in enumerate(layers)]
    if not items:
        raise ValueError("GradientMonitor found no layers to watch: pass layers=[...] "
                         "(modules with a weight), or use course_lib.models.build_mlp")
    found = []
    for name, module in items:
        if isinstance(module, Block):
            found.append(_Layer(name, module, module.linear.weight, module.activation, module.act))
        else:
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter):
                weight = next((p for p in module.parameters() if p.dim() >= 2), None)
            found.append(_Layer(name, module, weight, None, module))
    return found


class GradientMonitor:
    """Record per-layer gradient and activation statistics; use as a context manager.

    >>> from course_lib.models import build_mlp
    >>> net = build_mlp(4, 8, activation="sigmoid", in_features=3, out_features=1, seed=0)
    >>> with GradientMonitor(net) as monitor:
    ...     net(torch.randn(16, 3)).pow(2).mean().backward()
    >>> monitor.latest("grad_norm").shape
    (4,)

    Every hook is removed when the ``with`` block ends, also when it ends with
    an error. ``layers`` may be a list or a dict name -> module (default: the
    blocks of a `build_mlp` network, else every Linear/Conv/RNN module);
    ``every=k`` records one step in k (cheaper on long runs); ``keep_values``
    keeps the latest activations and output gradients for histograms;
    ``metrics`` limits the work to the listed metrics (the others stay NaN):
    an explorer that runs one pass and never steps skips ``update_data``.
    """

    def __init__(self, model: nn.Module, *, layers=None, every: int = 1, keep_values: bool = True,
                 metrics=METRICS):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if isinstance(metrics, str):
            raise ValueError(f"metrics takes a list of names, e.g. [{metrics!r}], not a string")
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; choose from {list(METRICS)}")
        self.metrics = frozenset(metrics)
        self.model = model
        self.layers = _find_layers(model, layers)
        self.names = [layer.name for layer in self.layers]
        self.every = every
        self.keep_values = keep_values
        self.steps: list[int] = []
        self.activations: list[torch.Tensor | None] = [None] * len(self.layers)
        self.output_grads: list[torch.Tensor | None] = [None] * len(self.layers)
        self._rows: list[np.ndarray] = []
        self._seen: list[np.ndarray] = []  # which entries of each row were measured (NaN may be a measurement)
        self._handles: list = []
        self._snapshots: dict | None = None
        self._pending: dict | None = None
        self._sample_at: dict[int, torch.Tensor | None] = {}
        self._pass = -1
        self._recording = False

    # -- lifecycle -------------------------------------------------------------
    def __enter__(self) -> "GradientMonitor":
        self.attach()
        return self

    def __exit__(self, *exc) -> None:
        self.detach()

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
            self._sample_at[index] = None if count <= UPDATE_SAMPLE else \
                torch.randperm(count, generator=torch.Generator().manual_seed(index))[:UPDATE_SAMPLE].to(flat.device)
        positions = self._sample_at[index]
        return flat.clone() if positions is None else flat[positions]

    def _activation_hook(self, index: int):
        def hook(module, inputs, output):
            if not (self._recording and torch.is_grad_enabled() and isinstance(output, torch.Tensor)):
                return
            self._pending["acts"][index] = output.detach()
            if self.layers[index].activation in _DEAD_FROM_INPUT and inputs and isinstance(inputs[0], torch.Tensor):
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
                    put(index, "act_std", _norm(acts - mean) / max(acts.numel() - 1, 1) ** 0.5)
                if kind == "sigmoid" and "saturated" in wanted:
                    put(index, "saturated", ((acts < 0.03) | (acts > 0.97)).float().mean())
                elif kind == "tanh" and "saturated" in wanted:
                    put(index, "saturated", (acts.abs() > 0.97).float().mean())
                dead = self._dead_fraction(kind, acts, pending["inputs"].get(index)) if "dead" in wanted else None
                if dead is not None:
                    put(index, "dead", dead)
            if "out_grad_norm" in wanted:
                for index, grad in pending["out_grads"].items():
                    put(index, "out_grad_norm", _norm(grad))
            for index, grad in pending["weight_grads"].items():
                if "grad_norm" in wanted:
                    put(index, "grad_norm", _norm(grad))
                if wanted & {"grad_std", "grad_data"}:
                    grad_std = _std(grad)
                    put(index, "grad_std", grad_std)
                    put(index, "grad_data", grad_std / (_std(self.layers[index].weight.detach()) + 1e-30))
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
            slope = activation_derivative(kind, inputs.float()).abs()
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
            ratios = [_std(self._sample(i) - before) / (_std(before) + 1e-30)
                      for i, before in self._snapshots.items()]
            for index, ratio in zip(indices, torch.stack(ratios).tolist() if ratios else []):
                self._store(step, index, "update_data", ratio)
        self._snapshots = None

    def _store(self, step: int, index: int, metric: str, value: float) -> None:
        self._rows[step][index, _COL[metric]] = value
        self._seen[step][index, _COL[metric]] = True

    # -- results ---------------------------------------------------------------
    def as_arrays(self) -> dict[str, np.ndarray]:
        """Every metric as an array of shape (recorded steps, layers)."""
        self._compute_pending()
        table = np.stack(self._rows) if self._rows else np.empty((0, len(self.layers), len(METRICS)))
        return {metric: table[:, :, column] for metric, column in _COL.items()}

    def latest(self, metric: str) -> np.ndarray:
        """The metric for each layer at the last recorded step (first layer first)."""
        if metric not in _COL:
            raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
        if not self._rows:
            raise RuntimeError("nothing recorded yet: run a forward and backward pass "
                               "(with gradients enabled) inside the monitor first")
        self._compute_pending()
        return self._rows[-1][:, _COL[metric]].copy()

    def diagnose(self) -> list[Finding]:
        """Findings about the last recorded step, worst first; empty when healthy.

        Vanishing and exploding are judged on two measures, the weight gradients
        ||dL/dW_k|| and the gradient arriving at each layer's output ||dL/dh_k||,
        and the more extreme first/last ratio is reported: dL/dW_k = delta_k h_{k-1}^T
        also carries the activations' scale, so when activations shrink with depth
        while the backpropagated gradient grows (or the reverse) the weight
        gradients can look even although the gradient signal is not.
        """
        findings = []
        weight_grads, flow = self.latest("grad_norm"), self.latest("out_grad_norm")
        if not (self._recorded("grad_norm").any() or self._recorded("out_grad_norm").any()):
            raise RuntimeError("no gradients recorded yet: call loss.backward() inside the monitor")
        bad = self._first_non_finite()
        grads = weight_grads if self._recorded("grad_norm").any() else flow
        if bad is not None:
            index, value, what = bad
            findings.append(Finding("non-finite", index + 1, value,
                                    f"{self.names[index]} has non-finite {what} ({value}): exploding "
                                    "(or a NaN loss); lower the learning rate or the init scale, or clip gradients"))
        elif len(grads) > 1 and grads[-1] == 0:
            # Say only what both printed measures show: a gradient can reach a layer's output and
            # still give its weights none (every unit dead, or all-zero inputs).
            arriving = flow[-1] if self._recorded("out_grad_norm")[-1] else 0.0
            if arriving > 0 and grads is weight_grads:
                below = ", nor do the layers below it" if not weight_grads[:-1].any() else ""
                message = (f"{arriving:.1e} arrives at {self.names[-1]}'s output ||dL/dh|| and stops there: its "
                           f"weights get no gradient (||dL/dW|| = 0){below}")
            else:
                message = f"{self.names[-1]} receives no gradient at all: nothing can learn"
            findings.append(Finding("vanishing", len(grads), 0.0, message))
        elif len(grads) > 1:
            ratios = []
            for values, what in ((weight_grads, "the weight gradient ||dL/dW|| of"),
                                 (flow, "the gradient ||dL/dh|| arriving at")):
                if np.isfinite(values[[0, -1]]).all() and values[-1] > 0:
                    ratios.append((float(values[0] / values[-1]), what))
            if ratios:
                ratio, what = max(ratios, key=lambda r: math.inf if r[0] == 0 else abs(math.log10(r[0])))
                if ratio < VANISHING_RATIO:
                    findings.append(Finding("vanishing", 1, ratio,
                                            f"{what} {self.names[0]} is {ratio:.1e} of {self.names[-1]}'s: "
                                            "vanishing"))
                elif ratio > EXPLODING_RATIO:
                    findings.append(Finding("exploding", 1, ratio,
                                            f"{what} {self.names[0]} is {ratio:.1e} times {self.names[-1]}'s: "
                                            "exploding"))
        for metric, kind, text in (("dead", "dead", "of its units pass no gradient on any example (dead)"),
                                   ("saturated", "saturated", "of its activations in the flat, saturated zone")):
            if bad is not None and bad[2] == "activations":
                break  # fractions of NaN activations mean nothing
            values = self.latest(metric)
            if np.nanmax(values, initial=0.0) > 0.5:
                worst = int(np.nanargmax(values))
                findings.append(Finding(kind, worst + 1, float(values[worst]),
                                        f"{self.names[worst]} has {values[worst]:.0%} {text}"))
        updates = self.latest("update_data")
        if np.isfinite(updates).any() and np.nanmax(updates) > 0:
            low, high = float(np.nanmin(updates)), float(np.nanmax(updates))
            if low < 1e-5:
                worst = int(np.nanargmin(updates))
                change = "does not change at all" if low == 0 else f"changes by {low:.0e} of its size"
                findings.append(Finding("slow-updates", worst + 1, low,
                                        f"{self.names[worst]} {change} per step "
                                        "(about 1e-3 is healthy): it barely learns"))
            if high > 1e-1:
                worst = int(np.nanargmax(updates))
                findings.append(Finding("large-updates", worst + 1, high,
                                        f"{self.names[worst]} changes by {high:.0e} of its size per step "
                                        "(about 1e-3 is healthy): the learning rate is too high"))
        return findings

    def report(self) -> str:
        """A plain-language health report of the last recorded step: the measurements, then the findings."""
        lines = []
        for metric, label in (("grad_norm", "Gradient norms by layer"),
                              ("out_grad_norm", "Gradient at layer outputs ||dL/dh||"),
                              ("act_std", "Activation std by layer")):
            if self._recorded(metric).any():
                values = self.latest(metric)
                lines.append(f"{label}: {values[0]:.1e} ({self.names[0]}) ... {values[-1]:.1e} ({self.names[-1]})")
        findings = self.diagnose()
        lines += [f"- {f.message}" for f in findings]
        if not findings:
            lines.append(f"- healthy: gradients within {EXPLODING_RATIO:.0f}x across layers, "
                         "no dead or saturated layers")
        return "\n".join(lines)

    def _recorded(self, metric: str) -> np.ndarray:
        """Which layers measured `metric` at the last recorded step (a NaN there can be a real NaN)."""
        self._compute_pending()
        if not self._seen:
            raise RuntimeError("nothing recorded yet: run a forward and backward pass "
                               "(with gradients enabled) inside the monitor first")
        return self._seen[-1][:, _COL[metric]].copy()

    def _first_non_finite(self) -> tuple[int, float, str] | None:
        """(layer index, value, what) of the first NaN/inf activation or gradient measured, else None."""
        for metric, what in (("act_std", "activations"), ("out_grad_norm", "gradients"),
                             ("grad_norm", "weight gradients")):
            values, recorded = self.latest(metric), self._recorded(metric)
            bad = np.flatnonzero(recorded & ~np.isfinite(values))
            if bad.size:
                return int(bad[0]), float(values[bad[0]]), what
        return None
