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


def train_on_random_first_layer(*, depth: int = 4, width: int = 256, first_scale: float = 32.0,
                                hidden_scale: float = 4.0, lr: float = 0.1, momentum: float = 0.9,
                                batch_size: int = 64, num_steps: int = 300, seed: int = 0) -> dict:
    """A deep sigmoid net that learns the digits on top of a first layer that never learns (notebook 02).

    Weights start at LeCun's N(0, 1/fan_in) times `first_scale` in layer 1 (so
    most of its units saturate: their outputs are nearly 0 or 1, a random binary
    code of the image, and their slope, which every gradient into layer 1 is
    multiplied by, is nearly 0), times `hidden_scale` in layers 2..depth (about
    4 makes up for the sigmoid's slope of at most 1/4, so these layers learn
    fast) and times 1 in the head, so the loss at init is near ln 10, as a
    well-initialized classifier's should be. SGD with momentum on all layers.

    Returns a dict: ``initial_loss`` (whole training set, at init), ``loss`` (per
    step), ``accuracy`` (training set, trained), ``reset_accuracy`` (layer 1
    reset to its initial weights, nothing else changed), ``redrawn_accuracy``
    (layer 1 replaced by a fresh draw from the same distribution),
    ``weight_change`` (relative change per layer, head last), ``saturated``
    (layer 1's saturated fraction at init) and ``grad_ratio`` (||dL/dW_1|| /
    ||dL/dW_depth||, layer 1 over the last hidden layer, at init).
    """
    X, y = load_digits()
    net = build_mlp(depth, width, activation="sigmoid", init="lecun", in_features=X.shape[1], out_features=10,
                    seed=seed)
    with torch.no_grad():
        for k, block in enumerate(net.blocks):
            block.linear.weight.mul_(first_scale if k == 0 else hidden_scale)
    initial = [w.detach().clone() for w in _linear_weights(net)]
    with one_torch_thread():
        with GradientMonitor(net) as monitor:
            initial_loss = nn.functional.cross_entropy(net(X), y)
            initial_loss.backward()
        net.zero_grad(set_to_none=True)
        grad_norm = monitor.latest("grad_norm")
        with torch.no_grad():
            s = torch.sigmoid(net.blocks[0].linear(X))
            saturated = ((s < 0.03) | (s > 0.97)).float().mean().item()
        history = train(net, X, y, lr=lr, momentum=momentum, num_steps=num_steps, batch_size=batch_size,
                        seed=seed, progress=False)
        trained_accuracy = accuracy(net, X, y)
        first = net.blocks[0].linear.weight
        trained_first = first.detach().clone()
        with torch.no_grad():
            first.copy_(initial[0])
            reset_accuracy = accuracy(net, X, y)
            redraw = build_mlp(depth, width, activation="sigmoid", init="lecun", in_features=X.shape[1],
                               out_features=10, seed=seed + 1000).blocks[0].linear.weight * first_scale
            first.copy_(redraw)
            redrawn_accuracy = accuracy(net, X, y)
            first.copy_(trained_first)
    return {"initial_loss": initial_loss.item(), "loss": history.loss, "accuracy": trained_accuracy,
            "reset_accuracy": reset_accuracy, "redrawn_accuracy": redrawn_accuracy,
            "weight_change": relative_weight_changes(initial, _linear_weights(net)), "saturated": saturated,
            "grad_ratio": float(grad_norm[0] / grad_norm[-1])}
