"""Gradient checking: compare a backward pass with central differences.

Taught in notebook 01 (E12) and used to check BatchNorm and LayerNorm in 06.
As in CS231n: work in float64, and trust a backward pass whose relative error
is below about 1e-7.
"""

import numpy as np


def numerical_gradient(f, x: np.ndarray, *, eps: float = 1e-6) -> np.ndarray:
    """df/dx of a scalar function by central differences, one coordinate at a time.

    df/dx_i ~ (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), error O(eps^2)
    (a forward difference has error O(eps)). `x` is restored after each probe.
    """
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, flat_grad = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + eps
        f_plus = float(f(x))
        flat[i] = saved - eps
        f_minus = float(f(x))
        flat[i] = saved
        flat_grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad


def relative_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|), safe when both are zero: the usual gradient-check measure."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    scale = np.max(np.abs(a) + np.abs(b), initial=0.0)
    return float(np.max(np.abs(a - b), initial=0.0) / max(scale, 1e-300))
