"""GradientMonitor: watch every layer of a network while it trains.

Forward and backward hooks record, per layer and per training step:

============== ==================================================================
metric         meaning
============== ==================================================================
grad_norm      ||dL/dW||, the weight gradient's norm (what the optimizer uses)
grad_std       std of dL/dW
out_grad_norm  ||dL/dh||, the gradient arriving at the layer's output
act_mean       mean of the layer's activations
act_std        std of the layer's activations
saturated      fraction of sigmoid outputs < 0.03 or > 0.97, tanh |a| > 0.97
dead           fraction of units whose activation derivative is 0 (< 1e-6) on
               every example of the batch (a dead ReLU passes no gradient)
grad_data      std(dL/dW) / std(W)
update_data    std(W_after - W_before) / std(W) for the optimizer step that
               followed (Karpathy's rule of thumb: about 1e-3 is healthy)
============== ==================================================================

A step is one forward pass of the whole model with gradients enabled (passes
under ``torch.no_grad()``, such as evaluation, are not recorded). Taught in
notebook 02, used throughout; the capstone (08) reads its ``report()``.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .models import Block, activation_derivative

METRICS = ("grad_norm", "grad_std", "out_grad_norm", "act_mean", "act_std", "saturated", "dead",
           "grad_data", "update_data")
_COL = {name: i for i, name in enumerate(METRICS)}

VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


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
    keeps the latest activations and output gradients for histograms.
    """

    def __init__(self, model: nn.Module, *, layers=None, every: int = 1, keep_values: bool = True):
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.model = model
        self.layers = _find_layers(model, layers)
        self.names = [layer.name for layer in self.layers]
        self.every = every
        self.keep_values = keep_values
        self.steps: list[int] = []
        self.activations: list[torch.Tensor | None] = [None] * len(self.layers)
        self.output_grads: list[torch.Tensor | None] = [None] * len(self.layers)
        self._rows: list[np.ndarray] = []
        self._handles: list = []
        self._snapshots: list[torch.Tensor | None] | None = None
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
            self._finish_update()
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
            self._snapshots = None

    # -- hooks -----------------------------------------------------------------
    def _on_model_forward(self, module, args) -> None:
        if not torch.is_grad_enabled():
            self._recording = False
            return
        self._finish_update()
        self._pass += 1
        self._recording = self._pass % self.every == 0
        if self._recording:
            self.steps.append(self._pass)
            self._rows.append(np.full((len(self.layers), len(METRICS)), np.nan))
            self._snapshots = [None if layer.weight is None else layer.weight.detach().clone()
                               for layer in self.layers]

    def _finish_update(self) -> None:
        """Measure std(update)/std(W) for the step whose weights were snapshotted."""
        if not self._snapshots or not self._rows:
            return
        row = self._rows[-1]
        with torch.no_grad():
            for index, (layer, before) in enumerate(zip(self.layers, self._snapshots)):
                if before is None:
                    continue
                after = layer.weight.detach()
                if not torch.equal(after, before):
                    row[index, _COL["update_data"]] = ((after - before).std() / (before.std() + 1e-30)).item()
                else:
                    row[index, _COL["update_data"]] = 0.0
        self._snapshots = None

    def _activation_hook(self, index: int):
        def hook(module, inputs, output):
            if not (self._recording and torch.is_grad_enabled() and isinstance(output, torch.Tensor)):
                return
            kind = self.layers[index].activation
            with torch.no_grad():
                out = output.detach().float()
                std, mean = torch.std_mean(out)
                saturated = dead = torch.tensor(math.nan)
                if kind == "sigmoid":
                    saturated = ((out < 0.03) | (out > 0.97)).float().mean()
                elif kind == "tanh":
                    saturated = (out.abs() > 0.97).float().mean()
                if kind is not None and inputs and isinstance(inputs[0], torch.Tensor):
                    slope = activation_derivative(kind, inputs[0].detach().float())
                    units = slope.reshape(-1, slope.shape[-1])
                    dead = (units.abs() < 1e-6).all(dim=0).float().mean()
                values = torch.stack([mean, std, saturated, dead]).tolist()
            row = self._rows[-1]
            for metric, value in zip(("act_mean", "act_std", "saturated", "dead"), values):
                row[index, _COL[metric]] = value
            if self.keep_values:
                self.activations[index] = out.cpu()
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
        row = self._rows[-1]

        def hook(grad):
            row[index, _COL["out_grad_norm"]] = torch.linalg.vector_norm(grad.detach().float()).item()
            if self.keep_values:
                self.output_grads[index] = grad.detach().float().cpu()
        return hook

    def _weight_hook(self, index: int):
        def hook(param):
            if not self._recording or param.grad is None:
                return
            with torch.no_grad():
                grad = param.grad.detach().float()
                grad_std = grad.std()
                values = torch.stack([torch.linalg.vector_norm(grad), grad_std,
                                      grad_std / (param.detach().float().std() + 1e-30)]).tolist()
            row = self._rows[-1]
            for metric, value in zip(("grad_norm", "grad_std", "grad_data"), values):
                row[index, _COL[metric]] = value
        return hook

    # -- results ---------------------------------------------------------------
    def as_arrays(self) -> dict[str, np.ndarray]:
        """Every metric as an array of shape (recorded steps, layers)."""
        table = np.stack(self._rows) if self._rows else np.empty((0, len(self.layers), len(METRICS)))
        return {metric: table[:, :, column] for metric, column in _COL.items()}

    def latest(self, metric: str) -> np.ndarray:
        """The metric for each layer at the last recorded step (first layer first)."""
        if metric not in _COL:
            raise ValueError(f"unknown metric {metric!r}; choose one of {list(METRICS)}")
        if not self._rows:
            raise RuntimeError("nothing recorded yet: run a forward and backward pass "
                               "(with gradients enabled) inside the monitor first")
        return self._rows[-1][:, _COL[metric]].copy()

    def diagnose(self) -> list[Finding]:
        """Findings about the last recorded step, worst first; empty when healthy."""
        findings = []
        grads = self.latest("grad_norm")
        if np.isnan(grads).all():
            grads = self.latest("out_grad_norm")
        if np.isnan(grads).all():
            raise RuntimeError("no gradients recorded yet: call loss.backward() inside the monitor")
        if not np.isfinite(grads[~np.isnan(grads)]).all():
            bad = int(np.flatnonzero(~np.isfinite(grads) & ~np.isnan(grads))[0])
            findings.append(Finding("non-finite", bad + 1, float(grads[bad]),
                                    f"{self.names[bad]} has a non-finite gradient ({grads[bad]}): "
                                    "exploding (or a NaN loss); lower the learning rate or clip gradients"))
        elif len(grads) > 1 and grads[-1] > 0:
            ratio = grads[0] / grads[-1]
            if ratio < VANISHING_RATIO:
                findings.append(Finding("vanishing", 1, float(ratio),
                                        f"{self.names[0]} receives {ratio:.1e} of the last layer's "
                                        "gradient: vanishing"))
            elif ratio > EXPLODING_RATIO:
                findings.append(Finding("exploding", 1, float(ratio),
                                        f"{self.names[0]} receives {ratio:.1e} times the last layer's "
                                        "gradient: exploding"))
        elif len(grads) > 1 and grads[-1] == 0:
            findings.append(Finding("vanishing", len(grads), 0.0,
                                    f"{self.names[-1]} receives no gradient at all: nothing can learn"))
        for metric, kind, text in (("dead", "dead", "of its units pass no gradient on any example (dead)"),
                                   ("saturated", "saturated", "of its activations in the flat, saturated zone")):
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
        """A plain-language health report of the last recorded step."""
        grads = self.latest("grad_norm")
        lines = [f"Gradient norms by layer: {grads[0]:.1e} ({self.names[0]}) ... "
                 f"{grads[-1]:.1e} ({self.names[-1]})"]
        findings = self.diagnose()
        lines += [f"- {f.message}" for f in findings]
        if not findings:
            lines.append(f"- healthy: gradients within {EXPLODING_RATIO:.0f}x across layers, "
                         "no dead or saturated layers")
        return "\n".join(lines)
