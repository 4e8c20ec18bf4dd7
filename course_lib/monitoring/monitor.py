"""The `GradientMonitor` class: hooks that keep each layer's tensors during a pass, turned into a row of
statistics per recorded step (the package docstring lists the metrics)."""

import numpy as np
import torch
from torch import nn

from ..models import Block
from ..verdicts import EXPLODING_RATIO
from .activity import _DEAD_FROM_INPUT, _fractions
from .findings import Finding, fraction_findings, no_gradient_finding, non_finite_finding, ratio_findings, \
    update_findings
from .layers import _find_layers
from .moments import _STACK, _moments, _reductions, _std

METRICS = ("grad_norm", "grad_std", "out_grad_norm", "act_mean", "act_std", "saturated", "dead",
           "grad_data", "update_data")
_COL = {name: i for i, name in enumerate(METRICS)}


UPDATE_SAMPLE = 4096  # update:data is estimated from this many sampled weights per layer


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
    an explorer that runs one pass and never steps skips ``update_data``, and
    with ``keep_values=False`` the weight-gradient metrics alone hook no layer.
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
        self._layer_handles: list = []  # with every > 1, registered for the recorded passes only
        # this pass: each layer's activations, the inputs of activations whose slope needs them, dL/dh
        self._acts: list[torch.Tensor | None] = [None] * len(self.layers)
        self._inputs: list[torch.Tensor | None] = [None] * len(self.layers)
        self._out_grads: list[torch.Tensor | None] = [None] * len(self.layers)
        self._act_done: dict = {}  # layer index -> `_reductions` of its activations, dL/dh
        self._out_done: dict = {}
        self._grad_done: dict = {}  # layer index -> `_reductions` of dL/dW, W (large weights)
        self._weight_done: dict = {}
        self._pending = False  # this pass has values not yet turned into statistics
        self._queued = False  # a callback at the end of the running backward pass will do it
        self._backward = False  # a backward pass went through this pass
        self._snapshots: list[tuple[list[int], torch.Tensor]] | None = None
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
        self._handles.append(self.model.register_forward_hook(self._on_model_output))
        if self.every == 1:
            self._add_layer_hooks()
        return self

    def _add_layer_hooks(self) -> None:
        """The per-layer hooks. A module with a hook takes PyTorch's slow call path, so with ``every`` > 1
        they are there only for the recorded passes (and the backward pass that follows)."""
        handles = self._layer_handles
        # activations and dL/dh only where a metric reads them: ||dL/dW|| alone needs no forward hook
        acts = bool(self.metrics & {"act_mean", "act_std", "saturated", "dead"}) or self.keep_values
        outs = "out_grad_norm" in self.metrics or self.keep_values
        for index, layer in enumerate(self.layers):
            module = layer.module
            # A plain block returns its activation's output: one hook sees both (fewer Python calls per step).
            if acts and outs and (layer.act_module is module or (isinstance(module, Block) and not module.residual
                                                                 and layer.activation not in _DEAD_FROM_INPUT)):
                handles.append(module.register_forward_hook(self._layer_hook(index, acts=True, outs=True)))
            else:
                if acts:
                    handles.append(layer.act_module.register_forward_hook(self._layer_hook(index, acts=True)))
                if outs:
                    handles.append(module.register_forward_hook(self._layer_hook(index, outs=True)))
            weight = layer.weight
            if weight is not None and weight.numel() > _STACK and self.metrics & {"grad_norm", "grad_std", "grad_data"}:
                handles.append(weight.register_post_accumulate_grad_hook(self._weight_hook(index)))

    def _remove_layer_hooks(self) -> None:
        for handle in self._layer_handles:
            handle.remove()
        self._layer_handles.clear()

    def detach(self) -> None:
        """Remove every hook and close the pending update:data measurement."""
        try:
            self._flush()
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
            self._remove_layer_hooks()
            self._snapshots = None
            self._forget_pass()

    # -- hooks ---------------------------------------------------------------
    # Hooks only keep references; statistics are computed once backward is complete (a callback
    # queued when the model's output gets its gradient), batched across layers with one
    # synchronisation, and only for `metrics`.
    def _on_model_forward(self, module, args) -> None:
        if not torch.is_grad_enabled():
            self._recording = False
            return
        after = self._flush()
        self._pass += 1
        self._recording = self._pass % self.every == 0
        if self.every > 1 and self._recording != bool(self._layer_handles):
            self._add_layer_hooks() if self._recording else self._remove_layer_hooks()
        if self._recording:
            self.steps.append(self._pass)
            self._rows.append(np.full((len(self.layers), len(METRICS)), np.nan))
            self._seen.append(np.zeros((len(self.layers), len(METRICS)), dtype=bool))
            self._forget_pass()
            self._pending, self._backward = True, False
            if "update_data" in self.metrics:
                with torch.no_grad():  # the weights now are the ones just sampled after the last step
                    self._snapshots = after if after is not None else self._snapshot()

    def _on_model_output(self, module, args, output) -> None:
        if not self._recording:
            return
        for tensor in (output,) if isinstance(output, torch.Tensor) else \
                output.values() if isinstance(output, dict) else output if isinstance(output, (list, tuple)) else ():
            if isinstance(tensor, torch.Tensor) and tensor.requires_grad:
                tensor.register_hook(self._on_backward)

    def _on_backward(self, grad) -> None:
        # the first gradient of a backward pass: compute once every weight has its gradient
        self._backward = True
        if not self._queued:
            self._queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._on_backward_end)

    def _on_backward_end(self) -> None:
        self._queued = False
        self._pending = True  # a second backward through the same pass measures the summed gradients
        self._compute_pending()

    def _layer_hook(self, index: int, *, acts: bool = False, outs: bool = False):
        kind = self.layers[index].activation
        keep_input = acts and kind in _DEAD_FROM_INPUT
        relu_dead = "dead" in self.metrics and kind == "relu"
        measure_acts = acts and bool(self.metrics & {"act_mean", "act_std"} or relu_dead)
        measure_outs = outs and "out_grad_norm" in self.metrics

        # Larger tensors are reduced here, while they are still in the cache (after backward they are
        # not); small ones are stacked and reduced together at the end.
        def on_grad(grad):
            self._out_grads[index] = grad
            if measure_outs and grad.numel() > _STACK:
                self._out_done[index] = _reductions(grad.detach(), sums=False)

        def hook(module, inputs, output):
            if not self._recording or not isinstance(output, torch.Tensor):
                return
            if acts:
                self._acts[index] = output
                if keep_input and inputs and isinstance(inputs[0], torch.Tensor):
                    self._inputs[index] = inputs[0]
                if measure_acts and output.numel() > _STACK:
                    self._act_done[index] = _reductions(output.detach(), columns=relu_dead and output.dim() >= 2)
            if outs and output.requires_grad:
                output.register_hook(on_grad)
        return hook

    def _weight_hook(self, index: int):
        grad_sums = bool(self.metrics & {"grad_std", "grad_data"})  # else ||dL/dW|| alone
        weights = "grad_data" in self.metrics

        def hook(weight):  # dL/dW has just been accumulated, W just read: both in the cache
            if self._recording and weight.grad is not None:
                self._grad_done[index] = _reductions(weight.grad.detach(), sums=grad_sums)
                if weights:
                    self._weight_done[index] = _reductions(weight.detach())
        return hook

    def _sample(self, index: int) -> torch.Tensor:
        """The layer's weights at fixed sampled positions (all of them, not copied, for small layers)."""
        flat = self.layers[index].weight.detach().reshape(-1)
        if index not in self._sample_at:
            count = flat.numel()
            self._sample_at[index] = None if count <= UPDATE_SAMPLE else \
                torch.randperm(count, generator=torch.Generator().manual_seed(index))[:UPDATE_SAMPLE].sort().values.to(
                    flat.device)  # sorted: the same sample, gathered in memory order
        positions = self._sample_at[index]
        return flat if positions is None else flat.index_select(0, positions)

    def _snapshot(self) -> list[tuple[list[int], torch.Tensor]]:
        """Copies of every layer's sampled weights, stacked by sample size: [(layer indices, matrix)]."""
        groups: dict[int, tuple[list[int], list[torch.Tensor]]] = {}
        for i, layer in enumerate(self.layers):
            if layer.weight is not None:
                sample = self._sample(i)
                index, samples = groups.setdefault(sample.numel(), ([], []))
                index.append(i)
                samples.append(sample)
        return [(index, torch.stack(samples)) for index, samples in groups.values()]

    def _compute_pending(self) -> None:
        """Turn this pass's activations and gradients into statistics, batched across layers."""
        if not self._pending or not self._rows:
            return
        self._pending = False
        with torch.no_grad():
            acts, outs, weights = self._pass_tensors()
            wants = self._wants(acts, outs, weights)
            groups = self._moment_groups(wants, acts, outs, weights)
            dead_from_sums = {k for k, (i, a) in enumerate(acts)
                              if wants["relu_dead"] and self.layers[i].activation == "relu" and a.dim() >= 2}
            moments, columns = _moments([t for group in groups[:3] for t in group],
                                        norms=[t for group in groups[3:] for t in group], columns=dead_from_sums,
                                        done=self._done_reductions(groups, acts, outs, weights))
            fractions = _fractions(self.layers, self.metrics, acts, self._inputs,
                                   {acts[k][0]: sums for k, sums in columns.items()})
            # let go of this pass's tensors now: the next pass's outputs then reuse their (cached) memory
            self._forget_pass()
        self._put_moments(wants, groups, moments, acts, outs, weights)
        for metric, (index, values) in fractions.items():
            self._put(metric, index, values)

    def _pass_tensors(self) -> tuple[list, list, list]:
        """This pass's [(layer, activations)], [(layer, dL/dh)] and [(layer, W, dL/dW)], the first two kept
        (`activations`, `output_grads`) when `keep_values`."""
        acts = [(i, a.detach()) for i, a in enumerate(self._acts) if a is not None]
        outs = [(i, g) for i, g in enumerate(self._out_grads) if g is not None]
        # weight gradients count only once a backward pass went through this pass (not stale ones)
        weights = [(i, layer.weight.detach(), layer.weight.grad) for i, layer in enumerate(self.layers)
                   if layer.weight is not None and layer.weight.grad is not None] \
            if self._backward or outs else []
        if self.keep_values:
            for i, a in acts:
                self.activations[i] = a
            for i, g in outs:
                self.output_grads[i] = g
        return acts, outs, weights

    def _wants(self, acts, outs, weights) -> dict[str, bool]:
        """Which moments this pass needs, from `metrics` and what the pass holds."""
        wanted = self.metrics
        return {"acts": bool(wanted & {"act_mean", "act_std"}) and bool(acts),
                # a ReLU unit is dead where its outputs sum to 0 over the batch: the column sums the means need
                "relu_dead": "dead" in wanted and any(self.layers[i].activation == "relu" for i, _ in acts),
                "outs": "out_grad_norm" in wanted and bool(outs),
                "grads": bool(wanted & {"grad_norm", "grad_std", "grad_data"}) and bool(weights),
                "weights": "grad_data" in wanted and bool(weights),
                "grad_sums": bool(wanted & {"grad_std", "grad_data"})}  # else ||dL/dW|| alone: no sums needed

    @staticmethod
    def _moment_groups(wants: dict[str, bool], acts, outs, weights) -> list[list[torch.Tensor]]:
        """The tensors `_moments` measures, in five groups: activations, dL/dW (with sums), W, then the
        ones of which only the sum of squares is needed: dL/dh, dL/dW (for ||dL/dW|| alone)."""
        grads, grad_sums = wants["grads"], wants["grad_sums"]
        return [[a for _, a in acts] if wants["acts"] or wants["relu_dead"] else [],
                [g for _, _, g in weights] if grads and grad_sums else [],
                [w for _, w, _ in weights] if wants["weights"] else [],
                [g for _, g in outs] if wants["outs"] else [],  # ||dL/dh||: squares only
                [g for _, _, g in weights] if grads and not grad_sums else []]

    def _done_reductions(self, groups, acts, outs, weights) -> dict:
        """The `_reductions` the hooks made while the tensors were in the cache, by index in `_moments`."""
        done = {k: self._act_done[i] for k, (i, _) in enumerate(acts) if groups[0] and i in self._act_done}
        for group, found, start in ((1, self._grad_done, len(groups[0])),
                                    (2, self._weight_done, len(groups[0]) + len(groups[1])),
                                    (4, self._grad_done, sum(len(group) for group in groups[:4]))):
            if groups[group]:
                done.update({start + k: found[i] for k, (i, _, _) in enumerate(weights) if i in found})
        first = sum(len(group) for group in groups[:3])
        done.update({first + k: self._out_done[i] for k, (i, _) in enumerate(outs)
                     if groups[3] and i in self._out_done})
        return done

    def _put_moments(self, wants, groups, moments: np.ndarray, acts, outs, weights) -> None:
        """Record the statistics made of `_moments`' rows (`groups` as `_moment_groups` made them)."""
        ends = np.cumsum([len(group) for group in groups])
        act_m, grad_m, weight_m, out_m, grad_norm_m = np.split(moments, ends[:-1])
        grad_m = grad_m if wants["grad_sums"] else grad_norm_m
        if wants["acts"]:
            index = [i for i, _ in acts]
            self._put("act_mean", index, act_m[:, 1] / np.maximum(act_m[:, 0], 1))
            self._put("act_std", index, _std(act_m))
        if wants["outs"]:
            self._put("out_grad_norm", [i for i, _ in outs], np.sqrt(out_m[:, 2]))
        if wants["grads"]:
            index = [i for i, _, _ in weights]
            self._put("grad_norm", index, np.sqrt(grad_m[:, 2]))
            self._put("grad_std", index, _std(grad_m))
            if wants["weights"]:
                self._put("grad_data", index, _std(grad_m) / (_std(weight_m) + 1e-30))

    def _put(self, metric: str, indices: list[int], values) -> None:
        """Record a metric of these layers at the last recorded step (if it is one of `metrics`)."""
        if metric in self.metrics and len(indices):
            self._rows[-1][indices, _COL[metric]] = values
            self._seen[-1][indices, _COL[metric]] = True

    def _forget_pass(self) -> None:
        """Let go of the tensors the hooks kept of this pass and of their reductions."""
        self._acts[:] = self._inputs[:] = self._out_grads[:] = [None] * len(self.layers)
        self._act_done, self._out_done, self._grad_done, self._weight_done = {}, {}, {}, {}

    def _flush(self) -> list[tuple[list[int], torch.Tensor]] | None:
        """Finish the recorded step: pending statistics, then std(update)/std(W) of the step taken.

        Returns the weights sampled after the step (the next recorded step's snapshot when it starts now).
        """
        self._compute_pending()
        if not self._snapshots or not self._rows:
            self._snapshots = None
            return None
        with torch.no_grad():
            before = self._snapshots
            after = self._snapshot()
            moments, _ = _moments(matrices=[now - then for (_, now), (_, then) in zip(after, before)]
                                  + [then for _, then in before])
        updates, weights = np.split(moments, 2)
        index = [i for members, _ in before for i in members]
        row, seen = self._rows[-1], self._seen[-1]
        row[index, _COL["update_data"]] = _std(updates) / (_std(weights) + 1e-30)
        seen[index, _COL["update_data"]] = True
        self._snapshots = None
        return after

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
            findings.append(non_finite_finding(self.names, *bad))
        elif len(grads) > 1 and grads[-1] == 0:
            arriving = flow[-1] if self._recorded("out_grad_norm")[-1] else 0.0
            findings.append(no_gradient_finding(self.names, weight_grads, arriving, grads is weight_grads))
        elif len(grads) > 1:
            findings += ratio_findings(self.names, weight_grads, flow)
        if bad is None or bad[2] != "activations":  # fractions of NaN activations mean nothing
            findings += fraction_findings(self.names, self.latest("dead"), self.latest("saturated"))
        return findings + update_findings(self.names, self.latest("update_data"))

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
