"""Gradient checking: compare a backward pass with central differences.

Taught in notebook 01 (E12) and used to check BatchNorm and LayerNorm in 06.
As in CS231n: work in float64, and trust a backward pass whose relative error
is below about 1e-7. The error is taken per tensor: one normaliser for a whole
network would hide a wrong gradient in any tensor much smaller than the
largest one, which in a network with vanishing gradients is the first layers'.
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


def _is_tensor_collection(a) -> bool:
    return isinstance(a, dict) or (isinstance(a, (list, tuple)) and len(a) > 0 and
                                   all(hasattr(t, "shape") and len(t.shape) > 0 for t in a))


def relative_errors(a, b) -> np.ndarray:
    """One relative error per tensor, max |a_k - b_k| / max(|a_k| + |b_k|), for two lists (or dicts) of tensors.

    Each tensor gets its own normaliser, so a 1e-6-sized gradient that is 50%
    wrong shows an error of about 0.3, not 1e-6 times that.
    """
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise ValueError(f"names differ: {sorted(a)} vs {sorted(b)}")
        a, b = list(a.values()), [b[name] for name in a]
    if len(a) != len(b):
        raise ValueError(f"numbers of tensors differ: {len(a)} vs {len(b)}")
    return np.array([_one_relative_error(x, y) for x, y in zip(a, b)])


def _one_relative_error(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    scale = np.max(np.abs(a) + np.abs(b), initial=0.0)
    return float(np.max(np.abs(a - b), initial=0.0) / max(scale, 1e-300))


def relative_error(a, b) -> float:
    """max |a - b| / max(|a| + |b|), safe when both are zero: the usual gradient-check measure.

    For one array (or tensor) that is the error; for a list or dict of tensors
    (a network's gradients) it is the largest per-tensor error of `relative_errors`.
    """
    if _is_tensor_collection(a) or _is_tensor_collection(b):
        return float(relative_errors(a, b).max())
    return _one_relative_error(a, b)


def sigmoid_layer_backward(W, x, grad_h, *, forget_slope: bool = False) -> np.ndarray:
    """dL/dW of h = sigmoid(W x), given dL/dh, written by hand (float64 NumPy).

    dL/dW = (dL/dh * sigma'(W x)) x^T. ``forget_slope=True`` is the classic bug
    of leaving out sigma'(W x), so the result is 4 or more times too large.
    """
    W, x, grad_h = (np.asarray(a, dtype=np.float64) for a in (W, x, grad_h))
    s = 1 / (1 + np.exp(-(W @ x)))
    delta = grad_h if forget_slope else grad_h * s * (1 - s)
    return np.outer(delta, x)


def deep_sigmoid_gradcheck(depth: int = 14, width: int = 6, *, seed: int = 0) -> dict[str, float]:
    """Gradient-check a deep sigmoid chain whose first layer's backward is written by hand (notebook 01).

    The chain h_k = sigmoid(W_k h_{k-1}), W_k ~ N(0, 1/width), loss sum(h_L^2),
    float64. Layers 2..L come from autograd; layer 1 from `sigmoid_layer_backward`,
    once right and once with the forgotten slope. Returns relative errors
    against central differences (eps = 1e-6):

    - ``global_bug``: one normaliser over all tensors, the buggy backward (the
      first layer's gradient is so small that the bug hides);
    - ``layer1_bug`` / ``layer1_right``: layer 1's own relative error, buggy and
      right (central differences cannot resolve a gradient this small: rounding
      in f(x +- eps) is about 1e-10 here, so even the right backward fails);
    - ``local_bug`` / ``local_right``: layer 1 checked on its own, as
      sum(r * sigmoid(W_1 x)) with a random r of order 1;
    - ``layer1_over_last``: the largest |dL/dW_1| over the largest |dL/dW_L|.
    """
    import torch  # only this experiment needs torch; the checks themselves are NumPy

    g = torch.Generator().manual_seed(seed)
    Ws = [torch.randn(width, width, dtype=torch.float64, generator=g) / width**0.5 for _ in range(depth)]
    x = torch.randn(width, dtype=torch.float64, generator=g)
    r = torch.randn(width, dtype=torch.float64, generator=g)

    def loss(weights):
        h = x
        for W in weights:
            h = torch.sigmoid(W @ h)
        return h.pow(2).sum()

    params = [W.clone().requires_grad_() for W in Ws]
    h1 = torch.sigmoid(params[0] @ x)
    h1.retain_grad()
    h = h1
    for W in params[1:]:
        h = torch.sigmoid(W @ h)
    h.pow(2).sum().backward()
    autograd = [p.grad.numpy() for p in params]
    numeric = [numerical_gradient(lambda w, k=k: loss([torch.as_tensor(w) if i == k else W
                                                       for i, W in enumerate(Ws)]).item(), Ws[k].numpy().copy())
               for k in range(depth)]
    right = [sigmoid_layer_backward(Ws[0], x, h1.grad)] + autograd[1:]
    buggy = [sigmoid_layer_backward(Ws[0], x, h1.grad, forget_slope=True)] + autograd[1:]
    flat = lambda tensors: np.concatenate([np.ravel(t) for t in tensors])  # noqa: E731 - one use
    local = numerical_gradient(lambda w: float((r * torch.sigmoid(torch.as_tensor(w) @ x)).sum()), Ws[0].numpy().copy())
    return {"global_bug": relative_error(flat(numeric), flat(buggy)),
            "global_right": relative_error(flat(numeric), flat(right)),
            "layer1_bug": relative_errors(numeric, buggy)[0], "layer1_right": relative_errors(numeric, right)[0],
            "local_bug": relative_error(local, sigmoid_layer_backward(Ws[0], x, r, forget_slope=True)),
            "local_right": relative_error(local, sigmoid_layer_backward(Ws[0], x, r)),
            "layer1_over_last": float(np.abs(autograd[0]).max() / np.abs(autograd[-1]).max())}
