"""Chains of layers: the products of local derivatives behind vanishing gradients.

Backprop through L layers multiplies L local derivatives (Jacobians). These
functions build such chains and measure the product with autograd, so the
formulas of notebook 01 (0.25^L, s^L) are checked against real backward passes.
"""

import numpy as np
import torch

from .initialization import orthogonal_
from .seeding import one_torch_thread


def sigmoid_chain_gradient(depth: int, *, weight: float = 1.0, x: float = 0.0) -> float:
    """d h_L / d h_0 for h_k = sigmoid(weight * h_{k-1}) - 1/2, measured by autograd in float64.

    Subtracting 1/2 keeps every pre-activation at 0 when x = 0, where
    sigmoid'(0) = 1/4 is largest: this is the best case, weight^L / 4^L.
    """
    h0 = torch.tensor(float(x), dtype=torch.float64, requires_grad=True)
    h = h0
    for _ in range(depth):
        h = torch.sigmoid(weight * h) - 0.5
    (grad,) = torch.autograd.grad(h, h0) if depth > 0 else (torch.tensor(1.0),)
    return float(grad)


def orthogonal_chain_gradients(depth: int, factor: float, *, width: int = 16, seed: int = 0) -> np.ndarray:
    """||dL/dh_k|| for k = 0 (input) .. depth (output) through h_k = factor * Q_k h_{k-1}.

    Each Q_k is a random orthogonal matrix, so each layer scales the
    backpropagated gradient's norm by exactly `factor`; the upstream gradient
    dL/dh_L has norm 1. The result is factor^(depth - k), measured by autograd.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = [factor * orthogonal_(torch.empty(width, width, dtype=torch.float64), generator=generator)
               for _ in range(depth)]
    states = [torch.randn(width, dtype=torch.float64, generator=generator).requires_grad_()]
    upstream = torch.randn(width, dtype=torch.float64, generator=generator)
    for weight in weights:
        states.append(weight @ states[-1])
        states[-1].retain_grad()
    (states[-1] * upstream / upstream.norm()).sum().backward()
    return np.array([state.grad.norm().item() for state in states])


def random_product_norms(depth: int, std: float, *, width: int = 64, trials: int = 20,
                         seed: int = 0) -> np.ndarray:
    """||W_k ... W_1 v|| / ||v|| for k = 0..depth, W_k ~ N(0, std^2 / width), over `trials` draws.

    Returns shape (trials, depth + 1). E||W v||^2 = std^2 ||v||^2, so the norm
    moves by about `std` per layer: shrinks for std < 1, blows up for std > 1
    (the same product backprop computes, with transposes).
    """
    generator = torch.Generator().manual_seed(seed)
    v = torch.randn(trials, width, dtype=torch.float64, generator=generator)
    v = v / v.norm(dim=1, keepdim=True)
    norms = [torch.ones(trials, dtype=torch.float64)]
    with one_torch_thread():  # small batched products: a second thread only waits (2.5x the CPU time)
        for _ in range(depth):
            weight = torch.randn(trials, width, width, dtype=torch.float64, generator=generator) * std / width**0.5
            v = torch.einsum("tij,tj->ti", weight, v)
            norms.append(v.norm(dim=1))
    return torch.stack(norms, dim=1).numpy()
