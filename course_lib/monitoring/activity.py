"""The saturated and dead fractions of layers' activations (the ``saturated`` and ``dead`` metrics)."""

import numpy as np
import torch

from ..models import activation_derivative
from .moments import _FLOATS, _one_array

_DEAD_FROM_INPUT = ("elu", "gelu", "silu")  # their derivative is not a function of the output


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


def _fractions(layers: list, metrics: frozenset, acts, inputs: list,
               columns: dict[int, np.ndarray]) -> dict[str, tuple[list[int], np.ndarray]]:
    """Saturated and dead fractions per layer (of those in `metrics`), from each layer's activations `acts`
    [(layer index, activations)] and, for activations in `_DEAD_FROM_INPUT`, its `inputs` (by layer
    index); `columns`: ReLU layers' outputs summed over the batch."""
    found: dict[str, tuple[list[int], list]] = {"saturated": ([], []), "dead": ([], [])}
    sizes = []
    for index, a in acts:
        kind = layers[index].activation
        if "saturated" in metrics and kind in ("sigmoid", "tanh"):
            found["saturated"][0].append(index)
            found["saturated"][1].append(_saturated_count(kind, a))
            sizes.append(max(a.numel(), 1))
        if "dead" in metrics:
            sums = columns.get(index)
            # ReLU: slope 1 exactly where the output is positive; outputs >= 0 sum to 0 only if all are 0
            dead = np.count_nonzero(sums == 0) / sums.size if kind == "relu" and sums is not None else \
                _dead_fraction(kind, a, inputs[index])
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
