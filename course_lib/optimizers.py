"""What an adaptive optimizer does to a vanishing gradient (notebook 09, E16).

SGD moves each weight by lr * g: a layer whose gradient is a millionth of
another's moves a millionth as far. Adam (Kingma & Ba 2015, "Adam: a method
for stochastic optimization", ICLR) divides each coordinate's step by a
running estimate of its gradient's size,

    m <- b1 m + (1 - b1) g,   v <- b2 v + (1 - b2) g^2,
    w <- w - lr * m_hat / (sqrt(v_hat) + eps),   m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t),

so every layer moves about lr per step whatever its gradient's size: the
per-layer gradient norms still show the vanishing gradient, the update:data
ratios no longer do. Until the gradient falls below eps (1e-8 by default):
then sqrt(v_hat) + eps ~ eps and the step is lr * g / eps, proportional to the
gradient again.
"""

import numpy as np

from .datasets import load_digits
from .models import build_mlp
from .seeding import one_torch_thread
from .training import SGD, Adam, train


def layer_statistics_under(optimizer: str, *, depth: int = 10, width: int = 64, lr: float | None = None,
                           eps: float = 1e-8, num_steps: int = 100, every: int = 10, seed: int = 0) -> dict:
    """Train a deep sigmoid net (Xavier init) on the digits with `optimizer`, watched by a `GradientMonitor`.

    Returns per-layer means over the recorded steps (layer 1 first):
    {"grad_norm": ||dL/dW_k||, "grad_rms": ||dL/dW_k|| / sqrt(#weights), "update_data":
    std(step) / std(W), "final_loss"}. Default lr: 0.1 for ``"sgd"``, 1e-3 for ``"adam"``.
    """
    X, y = load_digits()
    net = build_mlp(depth, width, activation="sigmoid", init="xavier", in_features=64, out_features=10,
                    seed=seed)
    if optimizer == "adam":
        opt = Adam(net.parameters(), lr=1e-3 if lr is None else lr, eps=eps)  # torch.optim.Adam's numbers
    elif optimizer == "sgd":
        opt = SGD(net.parameters(), lr=0.1 if lr is None else lr)
    else:
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    with one_torch_thread():
        history = train(net, X, y, lr=0.0, num_steps=num_steps, optimizer=opt, monitor=every, seed=seed,
                        progress=False)
    sizes = np.array([block.linear.weight.numel() for block in net.blocks], dtype=float)
    grad_norm = np.nanmean(history.layers["grad_norm"], axis=0)
    return {"grad_norm": grad_norm, "grad_rms": grad_norm / np.sqrt(sizes),
            "update_data": np.nanmean(history.layers["update_data"], axis=0), "final_loss": history.final_loss}
