"""Low precision: where a vanishing gradient becomes exactly zero (notebook 09, E17).

float16 has 5 exponent bits: its smallest normal number is 2^-14 ~ 6.1e-5, its
smallest subnormal 2^-24 ~ 6.0e-8, and anything below half of that rounds to
0. A gradient that is merely small in float32 is gone in float16. Loss scaling
(Micikevicius et al. 2018, "Mixed precision training", ICLR) multiplies the
loss by S before backward, so every gradient is S times larger while it is in
float16, and divides the float32 result by S; `torch.amp.GradScaler` picks S
dynamically (start 2^16, halve on an inf or NaN and skip that step, double
after 2,000 good steps). bfloat16 keeps float32's 8 exponent bits (nothing
flushes above ~1e-38) and pays with 8 bits of precision instead of 11.
"""

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .datasets import load_digits
from .models import build_mlp
from .seeding import one_torch_thread
from .training import SGD

PRECISIONS = ("float32", "float16", "float16 + loss scaling", "bfloat16")


@dataclass(frozen=True)
class FloatFormat:
    """The numbers a floating-point type can hold (from ``torch.finfo``)."""

    name: str
    largest: float
    smallest_normal: float
    smallest_subnormal: float
    epsilon: float  # the gap between 1 and the next number: relative precision


def float_format(dtype: torch.dtype) -> FloatFormat:
    """`FloatFormat` of a floating dtype; the smallest subnormal is smallest_normal * eps.

    >>> float_format(torch.float16).smallest_subnormal == 2.0 ** -24
    True
    """
    info = torch.finfo(dtype)
    return FloatFormat(str(dtype).removeprefix("torch."), info.max, info.smallest_normal,
                       info.smallest_normal * info.eps, info.eps)


def first_layer_gradients(*, depth: int = 8, width: int = 64, batch_size: int = 256,
                          seed: int = 0) -> dict[str, torch.Tensor]:
    """dL/dW of layer 1 of a deep sigmoid net (Xavier init) on digits, computed in each of ``PRECISIONS``.

    float16 and bfloat16 run the forward and backward under ``torch.autocast`` (CPU),
    weights kept in float32, so only the low-precision arithmetic differs.
    "float16 + loss scaling" scales the loss with ``torch.amp.GradScaler`` (S = 2^16)
    and unscales the float32 gradients before reading them, as a training loop does.
    """
    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:batch_size]
    X, y = X[index], y[index]
    net = build_mlp(depth, width, activation="sigmoid", init="xavier", in_features=64, out_features=10, seed=seed)
    weight = net.blocks[0].linear.weight
    grads = {}
    with one_torch_thread():
        grads["float32"] = torch.autograd.grad(nn.functional.cross_entropy(net(X), y), weight)[0]
        for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
            with torch.autocast("cpu", dtype=dtype):
                loss = nn.functional.cross_entropy(net(X), y)
            grads[name] = torch.autograd.grad(loss, weight)[0]
        scaler = torch.amp.GradScaler("cpu")
        optimizer = SGD(net.parameters(), lr=0.0)  # only for unscale_; torch.optim would import torch._dynamo
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.float16):
            loss = nn.functional.cross_entropy(net(X), y)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)  # divides the float32 gradients by S
        grads["float16 + loss scaling"] = weight.grad.detach().clone()
    return {name: grads[name] for name in PRECISIONS}


def flushed_fraction(grad: torch.Tensor, reference: torch.Tensor) -> float:
    """Share of the reference's nonzero entries that are exactly 0 in `grad` (flushed to zero)."""
    nonzero = reference != 0
    return float(((grad == 0) & nonzero).sum() / nonzero.sum().clamp(min=1))


def relative_error(grad: torch.Tensor, reference: torch.Tensor) -> float:
    """||grad - reference|| / ||reference||, in float64."""
    grad, reference = grad.double(), reference.double()
    return float(torch.linalg.vector_norm(grad - reference) / torch.linalg.vector_norm(reference))


def rounding_errors(values: np.ndarray) -> dict[str, np.ndarray]:
    """|round(x) - x| / |x| for each value rounded to float16 and to bfloat16 (inf where it overflows or flushes).

    Shows the two formats' trade: bfloat16 keeps every magnitude float32 can
    hold with about 2-3 correct digits, float16 keeps 3-4 digits only between
    ~6e-5 and 65504 and loses everything outside.
    """
    x = torch.as_tensor(np.asarray(values, dtype=np.float64))
    out = {}
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        rounded = x.to(dtype).double()
        error = ((rounded - x).abs() / x.abs())
        out[name] = torch.where(torch.isfinite(rounded) & (rounded != 0), error, torch.inf).numpy()
    return out
