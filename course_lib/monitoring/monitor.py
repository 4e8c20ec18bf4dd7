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
               followed (Karpathy's rule of thumb: about 1e-3 is healthy),
               estimated on 4,096 sampled weights of larger layers
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
from .verdicts import EXPLODING_RATIO, classify_ratio, gradient_ratio

METRICS = ("grad_norm", "grad_std", "out_grad_norm", "act_mean", "act_std", "saturated", "dead",
           "grad_data", "update_data")
_COL = {name: i for i, name in enumerate(METRICS)}


UPDATE_SAMPLE = 4096  # update:data is estimated from this many sampled weights per layer
_DEAD_FROM_INPUT = ("elu", "gelu", "silu")  # their derivative is not a function of the output
_FLUSHED = 1.2e-30  # float32 sums of squares below n * this may have lost squares to underflow (1.2e-38)
_FLOATS = (torch.float32, torch.float64)
_STACK = 4096  # tensors of one shape up to this size are stacked and reduced together
_CHUNK = 1 << 16  # BLAS dots over at most this many float32 values stay within ~4e-7 of the exact sum


def _sum_squares(flat: torch.Tensor) -> torch.Tensor:
    """sum(x**2) of a flat float32 tensor in float32, in chunks whose dots stay precise."""
    if flat.numel() <= _CHUNK:
        return torch.dot(flat, flat)
    return torch.stack([torch.dot(part, part) for part in flat.split(_CHUNK)]).sum()


def _reductions(t: torch.Tensor, *, columns: bool = False,
                sums: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The float32 sum (or column sums, over all but the last dim) and sum of squares of one tensor, as
    `_moments` adds them up; hooks call it while the tensor is still in the cache."""
    t = t if t.dtype in _FLOATS else t.float()
    total = (t.reshape(-1, t.shape[-1]).sum(0) if columns else t.sum()) if sums else None
    return total, _sum_squares(t.reshape(-1))


def _moments(tensors=(), matrices=(), norms=(), *, columns=frozenset(),
             done=None) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Rows (count, sum, sum of squares, sum of squared deviations from the mean) in float64: one per
    tensor, then one per row of each matrix, then one per tensor of `norms` (of which only the sum
    of squares is needed); and the column sums (over all but the last dim) of the tensors whose
    index is in `columns` (a ReLU unit is dead where its column sums to 0). `done`: the `_reductions`
    of some of them, by index (tensors first, then norms), computed earlier.

    Fast path, about two calls per tensor and one conversion to NumPy: float32 sums (cascade sum,
    BLAS dots), small tensors of one shape stacked and reduced together (on CPU a foreach call costs
    as much per tensor as a call of its own, and a copy of large ones as much as their reduction),
    and the centred sum as sum(x**2) - sum(x)**2 / n. A row is measured again where that is not
    exact to ~1e-6: centred in float32 when its mean is large against its spread (the subtraction
    would cancel), and in float64 when its float32 squares may have underflowed (values below
    ~1e-19, see `seeding.flush_denormals`) or overflowed, so that a vanishing gradient reads as its
    size, not 0.
    """
    items = [t if t.dtype in _FLOATS else t.float() for t in (*tensors, *norms)]
    # row of each item: tensors, then the matrices' rows, then norms
    first = len(tensors) + sum(len(matrix) for matrix in matrices)
    where = list(range(len(tensors))) + list(range(first, first + len(norms)))
    n = np.array([t.numel() for t in tensors] + [m.shape[1] for m in matrices for _ in range(len(m))]
                 + [t.numel() for t in norms], dtype=float)
    if not len(n):
        return np.zeros((0, 4)), {}
    groups: dict[tuple, list[int]] = {}
    singles, wide = [], []
    done = done or {}
    for i, t in enumerate(items):
        if t.numel() <= _STACK and i not in columns and i not in done:
            groups.setdefault((t.shape, t.dtype, i < len(tensors)), []).append(i)
        else:
            singles.append(i)
    parts, layout = [], []  # float tensors concatenated for the one conversion; (row indices, target)
    for (_, _, sums), members in groups.items():
        block = torch.stack([items[i].reshape(-1) for i in members]) if len(members) > 1 else \
            items[members[0]].reshape(1, -1)
        if sums:
            parts.append(block.sum(1))
            layout.append(([where[i] for i in members], 1))
        parts.append(torch.linalg.vector_norm(block, dim=1).square())  # no temporary as large as the block
        layout.append(([where[i] for i in members], 2))
    if singles:
        reduced = [done[i] if i in done else _reductions(items[i], columns=i in columns, sums=i < len(tensors))
                   for i in singles]
        parts.append(torch.stack([squares for _, squares in reduced]))
        layout.append(([where[i] for i in singles], 2))
        plain = [k for k, i in enumerate(singles) if i < len(tensors) and i not in columns]
        if plain:
            parts.append(torch.stack([reduced[k][0] for k in plain]))
            layout.append(([where[singles[k]] for k in plain], 1))
        wide = [k for k, i in enumerate(singles) if i in columns]
        if wide:  # one float32 sum per column, added up in float64 below
            parts.append(torch.cat([reduced[k][0] for k in wide]))
        wide = [singles[k] for k in wide]
    at = len(tensors)
    for matrix in matrices:
        rows = list(range(at, at + len(matrix)))
        parts += [matrix.sum(1), torch.linalg.vector_norm(matrix, dim=1).square()]
        layout += [(rows, 1), (rows, 2)]
        at += len(matrix)
    values = torch.cat(parts).double().numpy()  # the one conversion
    sums = np.zeros((3, len(n)))
    at = 0
    for rows, target in layout:
        sums[target, rows] = values[at:at + len(rows)]
        at += len(rows)
    found = {}
    for i in wide:
        width = items[i].shape[-1]
        found[i] = values[at:at + width]
        sums[1, i] = found[i].sum()
        at += width
    s1, s2 = sums[1], sums[2]
    out = np.stack([n, s1, s2, s2 - s1 * s1 / np.maximum(n, 1)], axis=1)

    def row(r: int) -> torch.Tensor:
        if r in where:
            return items[where.index(r)].reshape(-1)
        r -= len(tensors)
        for matrix in matrices:
            if r < len(matrix):
                return matrix[r]
            r -= len(matrix)
    unsafe = ~(np.isfinite(s2) & (s2 >= n * _FLUSHED)) & (n > 0)
    cancels = ~unsafe & (out[:, 3] < 0.5 * s2)  # mean**2 > variance: the difference loses digits
    for i in np.flatnonzero(unsafe | cancels):
        flat = row(i)
        if cancels[i]:  # about the mean rounded to float32, then corrected for that rounding
            deviation = flat - float(s1[i] / n[i])
            offset, squares = float(deviation.sum()), float(_sum_squares(deviation))
            out[i, 3] = squares - offset * offset / n[i]
            if np.isfinite(squares) and squares >= n[i] * _FLUSHED:
                continue
        x = flat.double()
        out[i, 1] = float(x.sum())
        deviation = x - out[i, 1] / n[i]
        out[i, 2], out[i, 3] = float(torch.dot(x, x)), float(torch.dot(deviation, deviation))
    return out, found


def _saturated_count(kind: str, acts: torch.Tensor) -> torch.Tensor:
    """How many sigmoid outputs are < 0.03 or > 0.97 (tanh: |a| > 0.97), as a float tensor.

    The comparisons write 0/1 floats in place: on CPU a comparison that makes a bool tensor takes
    about 3x as long, and a float32 sum of 0s and 1s is exact up to 2**24 entries.
    """
    acts = acts if acts.dtype in _FLOATS else acts.float()
    if kind == "tanh":
        return torch.abs(acts).gt_(0.97).sum()
    flags = torch.empty_like(acts)
    return torch.lt(acts, 0.03, out=flags).sum() + torch.gt(acts, 0.97, out=flags).sum()


def _one_array(values: list) -> np.ndarray:
    """Numbers, 0-d tensors or one 1-d tensor of them, as one float64 array (tensors of one dtype
    converted in one call)."""
    if len(values) == 1 and isinstance(values[0], torch.Tensor) and values[0].dim() == 1:
        return values[0].double().numpy()
    if all(isinstance(v, torch.Tensor) for v in values) and len({v.dtype for v in values}) == 1:
        return torch.stack(values).double().numpy()
    return np.array([float(v) for v in values], dtype=float)


def _std(moments: np.ndarray) -> np.ndarray:
    """Sample std from `_moments` rows."""
    return np.sqrt(np.maximum(moments[:, 3], 0.0) / np.maximum(moments[:, 0] - 1, 1))


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
        for index, layer in enumerate(self.layers):
            module = layer.module
            # A plain block returns its activation's output: one hook sees both (fewer Python calls per step).
            if layer.act_module is module or (isinstance(module, Block) and not module.residual
                                              and layer.activation not in _DEAD_FROM_INPUT):
                handles.append(module.register_forward_hook(self._layer_hook(index, acts=True, outs=True)))
            else:
                handles.append(layer.act_module.register_forward_hook(self._layer_hook(index, acts=True)))
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
            self._acts[:] = self._inputs[:] = self._out_grads[:] = [None] * len(self.layers)
            self._act_done, self._out_done, self._grad_done, self._weight_done = {}, {}, {}, {}

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
            self._acts[:] = self._inputs[:] = self._out_grads[:] = [None] * len(self.layers)
            self._act_done, self._out_done, self._grad_done, self._weight_done = {}, {}, {}, {}
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
        row, seen = self._rows[-1], self._seen[-1]
        wanted = self.metrics

        def put(metric, indices, values):
            if metric in wanted and len(indices):
                row[indices, _COL[metric]] = values
                seen[indices, _COL[metric]] = True

        with torch.no_grad():
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
            want_acts = bool(wanted & {"act_mean", "act_std"}) and acts
            # a ReLU unit is dead where its outputs sum to 0 over the batch: the column sums the means need
            relu_dead = "dead" in wanted and any(self.layers[i].activation == "relu" for i, _ in acts)
            want_outs = "out_grad_norm" in wanted and outs
            want_grads = bool(wanted & {"grad_norm", "grad_std", "grad_data"}) and weights
            want_weights = "grad_data" in wanted and weights
            grad_sums = bool(wanted & {"grad_std", "grad_data"})  # else ||dL/dW|| alone: no sums needed
            groups = [[a for _, a in acts] if want_acts or relu_dead else [],
                      [g for _, _, g in weights] if want_grads and grad_sums else [],
                      [w for _, w, _ in weights] if want_weights else [],
                      [g for _, g in outs] if want_outs else [],  # ||dL/dh||: squares only
                      [g for _, _, g in weights] if want_grads and not grad_sums else []]
            dead_from_sums = {k for k, (i, a) in enumerate(acts)
                              if relu_dead and self.layers[i].activation == "relu" and a.dim() >= 2}
            done = {k: self._act_done[i] for k, (i, _) in enumerate(acts) if groups[0] and i in self._act_done}
            for group, found, start in ((1, self._grad_done, len(groups[0])),
                                        (2, self._weight_done, len(groups[0]) + len(groups[1])),
                                        (4, self._grad_done, sum(len(group) for group in groups[:4]))):
                if groups[group]:
                    done.update({start + k: found[i] for k, (i, _, _) in enumerate(weights) if i in found})
            first = sum(len(group) for group in groups[:3])
            done.update({first + k: self._out_done[i] for k, (i, _) in enumerate(outs)
                         if groups[3] and i in self._out_done})
            moments, columns = _moments([t for group in groups[:3] for t in group],
                                        norms=[t for group in groups[3:] for t in group], columns=dead_from_sums,
                                        done=done)
            ends = np.cumsum([len(group) for group in groups])
            act_m, grad_m, weight_m, out_m, grad_norm_m = np.split(moments, ends[:-1])
            grad_m = grad_m if grad_sums else grad_norm_m
            fractions = self._fractions(acts, {acts[k][0]: sums for k, sums in columns.items()})
            # let go of this pass's tensors now: the next pass's outputs then reuse their (cached) memory
            self._acts[:] = self._inputs[:] = self._out_grads[:] = [None] * len(self.layers)
            self._act_done, self._out_done, self._grad_done, self._weight_done = {}, {}, {}, {}
        if want_acts:
            index = [i for i, _ in acts]
            put("act_mean", index, act_m[:, 1] / np.maximum(act_m[:, 0], 1))
            put("act_std", index, _std(act_m))
        if want_outs:
            put("out_grad_norm", [i for i, _ in outs], np.sqrt(out_m[:, 2]))
        if want_grads:
            index = [i for i, _, _ in weights]
            put("grad_norm", index, np.sqrt(grad_m[:, 2]))
            put("grad_std", index, _std(grad_m))
            if want_weights:
                put("grad_data", index, _std(grad_m) / (_std(weight_m) + 1e-30))
        for metric, (index, values) in fractions.items():
            put(metric, index, values)

    def _fractions(self, acts, columns: dict[int, np.ndarray]) -> dict[str, tuple[list[int], np.ndarray]]:
        """Saturated and dead fractions per layer; `columns`: ReLU layers' outputs summed over the batch."""
        found: dict[str, tuple[list[int], list]] = {"saturated": ([], []), "dead": ([], [])}
        sizes = []
        for index, a in acts:
            kind = self.layers[index].activation
            if "saturated" in self.metrics and kind in ("sigmoid", "tanh"):
                found["saturated"][0].append(index)
                found["saturated"][1].append(_saturated_count(kind, a))
                sizes.append(max(a.numel(), 1))
            if "dead" in self.metrics:
                sums = columns.get(index)
                # ReLU: slope 1 exactly where the output is positive; outputs >= 0 sum to 0 only if all are 0
                dead = np.count_nonzero(sums == 0) / sums.size if kind == "relu" and sums is not None else \
                    self._dead_fraction(kind, a, self._inputs[index])
                if dead is not None:
                    found["dead"][0].append(index)
                    found["dead"][1].append(dead)
        if sizes:  # one division for every layer, in the counts' precision as one per layer would be
            counts = found["saturated"][1]
            if len({count.dtype for count in counts}) == 1:
                found["saturated"][1][:] = [torch.stack(counts) / torch.tensor(sizes, dtype=counts[0].dtype)]
            else:
                found["saturated"][1][:] = [count / size for count, size in zip(counts, sizes)]
        return {metric: (index, _one_array(values)) for metric, (index, values) in found.items() if index}

    @staticmethod
    def _dead_fraction(kind, acts: torch.Tensor, inputs: torch.Tensor | None) -> torch.Tensor | None:
        """Fraction of units whose activation derivative is < 1e-6 on every example (None: not defined)."""
        if kind is None:
            return None
        if kind == "relu":  # slope 1 exactly where the output is positive
            return (acts.reshape(-1, acts.shape[-1]).amax(dim=0) <= 0).float().mean()
        if kind == "sigmoid":
            slope = acts * (1 - acts)
        elif kind == "tanh":  # 1 - a**2 is largest where |a| is smallest (the same float32 number)
            smallest = acts.reshape(-1, acts.shape[-1]).abs().amin(dim=0)
            return (1 - smallest**2 < 1e-6).float().mean()
        elif kind in ("leaky_relu", "linear", "identity"):
            return torch.zeros(())
        elif inputs is not None:
            slope = activation_derivative(kind, inputs.detach().float()).abs()
        else:
            return None
        # a unit is dead when no example of the batch gives it a usable slope
        return (slope.reshape(-1, slope.shape[-1]).amax(dim=0) < 1e-6).float().mean()

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
                ratio = gradient_ratio(values)  # NaN when an end is not finite or the last is 0
                if not math.isnan(ratio):
                    ratios.append((ratio, what))
            if ratios:
                ratio, what = max(ratios, key=lambda r: math.inf if r[0] == 0 else abs(math.log10(r[0])))
                kind = classify_ratio(ratio)
                if kind == "vanishing":
                    findings.append(Finding("vanishing", 1, ratio,
                                            f"{what} {self.names[0]} is {ratio:.1e} of {self.names[-1]}'s: "
                                            "vanishing"))
                elif kind == "exploding":
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
