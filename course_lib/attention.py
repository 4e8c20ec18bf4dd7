"""The softmax's saturation, and why attention divides its logits by sqrt(d_k).

Attention weights are p = softmax(z) over logits z_j = q . k_j. When the
logits are spread widely, p is nearly one-hot and the softmax's Jacobian
dp/dz nearly vanishes: no gradient reaches the queries and keys. With q and
k of d_k independent unit-variance entries, q . k has variance d_k, so the
spread grows like sqrt(d_k); Vaswani et al. (2017, "Attention is all you
need", NeurIPS, section 3.2.1) divide by sqrt(d_k) to bring it back to 1:

    softmax(Q K^T / sqrt(d_k)) V

Taught in notebook 09 (E14). The Jacobians here are taken by autograd in
float64, one backward pass per output; the formula for them is an exercise.
"""

import numpy as np
import torch

from .seeding import one_torch_thread


@one_torch_thread()
def _softmax_jacobian_norms(logits: torch.Tensor) -> np.ndarray:
    """Spectral norm of d softmax(z)/dz for each row z of `logits` (float64, autograd)."""
    z = logits.detach().requires_grad_()
    p = torch.softmax(z, dim=-1)
    # row i of every example's Jacobian at once: p_i of one row depends on that row's z only (torch.func's
    # vmap/jacrev would do the same, but importing it costs torch._dynamo's import, about 1.4 s)
    rows = [torch.autograd.grad(p[..., i].sum(), z, retain_graph=True)[0] for i in range(p.shape[-1])]
    jacobians = torch.stack(rows, dim=-2)  # [..., i, j] = d p_i / d z_j
    return torch.linalg.matrix_norm(jacobians, ord=2).numpy()


def logit_scale_jacobian_norms(scales, *, num_keys: int = 16, trials: int = 200, seed: int = 0) -> np.ndarray:
    """Median spectral norm of the softmax Jacobian for logits z ~ N(0, scale^2), one value per scale.

    Near its largest value, about 1/4 to 1/2, for small scales, and falling toward 0 as the
    logits spread out and softmax(z) saturates to a one-hot vector.

    >>> norms = logit_scale_jacobian_norms([0.1, 100.0], trials=20)
    >>> bool(norms[1] < 0.01 < norms[0])
    True
    """
    generator = torch.Generator().manual_seed(seed)
    base = torch.randn(trials, num_keys, generator=generator, dtype=torch.float64)
    return np.array([np.median(_softmax_jacobian_norms(base * float(scale))) for scale in scales])


def attention_jacobian_norms(key_dims, *, scaled: bool, num_keys: int = 16, trials: int = 200,
                             seed: int = 0) -> dict[str, np.ndarray]:
    """E14: the softmax Jacobian's median spectral norm and the logits' std, for each d_k in `key_dims`.

    A query q and `num_keys` keys k_j with N(0, 1) entries; logits q . k_j, divided
    by sqrt(d_k) when `scaled` (Vaswani et al. 2017). Returns {"norm", "logit_std"}.
    """
    generator = torch.Generator().manual_seed(seed)
    norms, stds = [], []
    for d_k in key_dims:
        q = torch.randn(trials, 1, d_k, generator=generator, dtype=torch.float64)
        k = torch.randn(trials, num_keys, d_k, generator=generator, dtype=torch.float64)
        logits = (q * k).sum(-1) / (d_k ** 0.5 if scaled else 1.0)
        norms.append(np.median(_softmax_jacobian_norms(logits)))
        stds.append(logits.std().item())
    return {"norm": np.array(norms), "logit_std": np.array(stds)}
