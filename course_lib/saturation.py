"""Saturating activations in deep networks: the experiments of notebook 02.

A sigmoid's slope sigma'(z) = sigma(z)(1 - sigma(z)) is at most 1/4 and almost 0
once |z| > 4; tanh' = 1 - tanh^2 is at most 1 and flat in the same way. Backprop
multiplies one such slope per layer, so deep sigmoid/tanh networks starve their
first layers of gradient, and saturated units pass almost none at all.
Glorot & Bengio (2010), "Understanding the difficulty of training deep
feedforward neural networks" (AISTATS), measured both effects; the functions
here re-run their measurements on small, seeded setups and return plain numbers.
"""

import numpy as np
import torch
from torch import nn

from .datasets import load_digits, make_gaussian_inputs
from .models import build_mlp
from .monitoring import GradientMonitor
from .seeding import one_torch_thread
from .training import accuracy, train


def _linear_weights(net) -> list[torch.Tensor]:
    """The weight matrices of a `build_mlp` net, first block first, head last."""
    weights = [block.linear.weight for block in net.blocks]
    return weights + ([net.head.weight] if net.head is not None else [])


def relative_weight_changes(before: list[torch.Tensor], after: list[torch.Tensor]) -> np.ndarray:
    """||W_after - W_before|| / ||W_before|| for each layer: how far training moved it from init."""
    return np.array([(torch.linalg.vector_norm(a.detach() - b.detach()) /
                      torch.linalg.vector_norm(b.detach())).item() for b, a in zip(before, after)])


def backprop_gradient_stds(init: str, *, depth: int = 5, width: int = 500, n: int = 256,
                           activation: str = "tanh", gain: float | None = 1.0, classes: int = 10,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """Per-layer std of the back-propagated gradients dL/dh_k and of dL/dW_k at initialization (E1).

    Glorot & Bengio 2010, Fig. 7: with the "standard" init W ~ U(-1/sqrt(n), 1/sqrt(n))
    (variance 1/(3n)) each tanh layer scales the back-propagated gradient by
    about 1/sqrt(3), so it shrinks toward the input; the "normalized" init
    U(-a, a), a = sqrt(6/(n_in + n_out)) (``init="xavier"``, gain 1 as in the
    paper) keeps it nearly constant. The weight gradients dL/dW_k = delta_k h_{k-1}^T
    stay similar across layers in both cases (the paper's section 4.2.1).

    The network: `depth` x `width` `activation` layers and a linear head to
    `classes` logits; `n` standard-normal inputs with random labels; cross-entropy.
    Returns ``{"activation_grad": (depth,), "weight_grad": (depth,)}``, layer 1 first.
    """
    generator = torch.Generator().manual_seed(seed + 1)
    X = make_gaussian_inputs(n, width, seed=seed + 1)
    y = torch.randint(0, classes, (n,), generator=generator)
    net = build_mlp(depth, width, activation=activation, init=init, gain=gain, out_features=classes, seed=seed)
    with one_torch_thread(), GradientMonitor(net) as monitor:
        nn.functional.cross_entropy(net(X), y).backward()
    return {"activation_grad": np.array([g.double().std().item() for g in monitor.output_grads]),
            "weight_grad": monitor.latest("grad_std")}


def train_sigmoid_on_digits(*, depth: int = 4, width: int = 256, init: str = "standard", lr: float = 0.1,
                            batch_size: int = 10, num_steps: int = 1500, record_every: int = 10,
                            activation: str = "sigmoid", seed: int = 0) -> dict:
    """Train a deep sigmoid net on the digits and record each layer's mean activation (E2).

    Glorot & Bengio 2010, Fig. 2: with standard init, the top hidden layer's
    sigmoid outputs are driven to 0 early in training (saturated, so they pass
    almost no gradient) while the lower layers stay around 0.5, and the network
    stays near chance for a long time. The defaults are notebook 02's E2 setup.

    Returns a dict: ``steps`` (recorded steps), ``act_mean`` (steps, depth),
    ``saturated`` (steps, depth), ``loss`` (per step), ``accuracy`` (training set,
    after training), ``weight_change`` (depth + 1,: relative change of each
    layer's weights from init, head last) and ``grad_norm`` (steps, depth).
    """
    X, y = load_digits()
    net = build_mlp(depth, width, activation=activation, init=init, in_features=X.shape[1], out_features=10,
                    seed=seed)
    initial = [w.detach().clone() for w in _linear_weights(net)]
    with one_torch_thread():  # tiny batches: one thread is fastest, and immune to a busy CPU
        history = train(net, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, monitor=record_every,
                        seed=seed, progress=False)
    return {"steps": np.array(history.monitor.steps), "act_mean": history.layers["act_mean"],
            "saturated": history.layers["saturated"], "grad_norm": history.layers["grad_norm"],
            "loss": history.loss, "accuracy": accuracy(net, X, y),
            "weight_change": relative_weight_changes(initial, _linear_weights(net))}


def layer_gradients(depth: int, *, activation: str = "sigmoid", weight_scale: float = 1.0, width: int = 64,
                    n: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-layer ||dL/dW_k|| and saturated fraction of a fresh net on a batch of digits.

    Weights W ~ N(0, weight_scale^2 / fan_in) (LeCun's init times `weight_scale`),
    biases 0; cross-entropy against the true labels. Used by the notebook 02
    explorer: large scales saturate the units, sigmoid's 1/4 shrinks the rest.
    """
    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n]
    net = build_mlp(depth, width, activation=activation, init="lecun", weight_scale=weight_scale,
                    in_features=X.shape[1], out_features=10, seed=seed)
    with one_torch_thread(), GradientMonitor(net) as monitor:
        nn.functional.cross_entropy(net(X[index]), y[index]).backward()
    return {"grad_norm": monitor.latest("grad_norm"), "saturated": monitor.latest("saturated"),
            "act_std": monitor.latest("act_std")}



def pre_activations(net, X: torch.Tensor) -> list[torch.Tensor]:
    """Each block's pre-activation z_k = W_k h_{k-1} + b_k of a `build_mlp` net, for inputs X (no grad).

    The histogram of z_k shows saturation directly: sigmoid'(z) < 0.03 once |z| > 3.5.
    """
    found = []
    handles = [block.linear.register_forward_hook(lambda module, args, output: found.append(output.detach()))
               for block in net.blocks]
    try:
        with torch.no_grad(), one_torch_thread():
            net(X)
    finally:
        for handle in handles:
            handle.remove()
    return found
