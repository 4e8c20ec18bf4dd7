"""Activation functions side by side: gradient flow, dead units, and the fixes.

Backprop multiplies the incoming gradient by the activation's derivative f'(z)
at every unit (`course_lib.models.activation_derivative`). That one factor
decides a lot:

- sigmoid' <= 1/4 and tanh' <= 1 shrink with |z| (saturation), so deep
  sigmoid nets starve their first layers;
- ReLU' is exactly 1 on the active side (z > 0): the gradient passes through
  unchanged, however large z is (Nair & Hinton 2010; Glorot, Bordes & Bengio
  2011);
- ReLU' is exactly 0 on the other side: a unit with z <= 0 on every input is
  *dead*. Its incoming weights get a zero gradient, so it never comes back;
- Leaky ReLU (Maas, Hannun & Ng 2013: slope a = 0.01 for z < 0), ELU (Clevert,
  Unterthiner & Hochreiter 2016: e^z - 1), GELU (Hendrycks & Gimpel 2016:
  z * Phi(z)) and SiLU (Elfwing, Uchibe & Doya 2018; "Swish", Ramachandran et
  al. 2017: z * sigmoid(z)) keep a nonzero slope for z < 0.

Taught in notebook 04. The runners below are seeded and return plain numbers
and arrays; the notebook asserts on them and `tests/test_experiments_04.py`
re-runs them over several seeds.
"""

import math

import numpy as np
import torch
from torch import nn

from .datasets import load_digits
from .models import MLP, activation_derivative, build_mlp
from .monitoring import GradientMonitor
from .seeding import one_torch_thread
from .training import accuracy, train

DEAD_SLOPE = 1e-6
"""A unit is dead on a batch when |f'(z)| < DEAD_SLOPE on every example (as in `GradientMonitor`)."""

RECOMMENDED_INIT = {"sigmoid": "xavier", "tanh": "xavier", "relu": "he", "leaky_relu": "he",
                    "elu": "he", "gelu": "he", "silu": "he", "linear": "lecun"}
"""The usual init per activation: Glorot & Bengio 2010 for sigmoid/tanh, He et al. 2015 for ReLU-like units."""


def _digits(num_examples: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    X, y = load_digits()
    if num_examples is None or num_examples >= len(X):
        return X, y
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:num_examples]
    return X[index], y[index]


def build_digits_net(activation: str, *, depth: int, width: int = 64, init: str | None = None,
                     bias: float = 0.0, seed: int = 0) -> MLP:
    """A `build_mlp` classifier for the 8x8 digits (64 inputs, 10 outputs).

    `init` defaults to ``RECOMMENDED_INIT[activation]`` (with the activation's
    gain); `bias` sets every hidden layer's bias to that constant (a negative
    bias pushes units toward z < 0: the way to kill ReLUs on purpose).
    """
    init = RECOMMENDED_INIT.get(activation, "he") if init is None else init
    net = build_mlp(depth, width, activation=activation, init=init, in_features=64, out_features=10, seed=seed)
    if bias != 0.0:
        with torch.no_grad():
            for block in net.blocks:
                block.linear.bias.fill_(bias)
    return net


@torch.no_grad()
@one_torch_thread()
def unit_activity(model: MLP, X: torch.Tensor) -> dict[str, np.ndarray]:
    """Per hidden layer of a `build_mlp` network, over the examples in `X`:

    - ``"dead"``: fraction of units with |f'(z)| < `DEAD_SLOPE` on every example:
      they pass no gradient at all (the `GradientMonitor` measure);
    - ``"inactive"``: fraction of units with z <= 0 on every example: never on
      the active side. For ReLU this is the same set as "dead"; for Leaky
      ReLU, ELU, GELU and SiLU such units still pass some gradient;
    - ``"active"``: mean fraction of examples on which a unit has z > 0.

    >>> net = build_digits_net("relu", depth=3, bias=-5.0)
    >>> unit_activity(net, load_digits()[0])["dead"]
    array([1., 1., 1.])
    """
    dead, inactive, active = [], [], []
    h = X
    for block in model.blocks:
        z = block.norm(block.linear(h))
        h = block(h)
        slope = activation_derivative(block.activation, z)
        dead.append((slope.abs() < DEAD_SLOPE).all(dim=0).float().mean().item())
        inactive.append((z <= 0).all(dim=0).float().mean().item())
        active.append((z > 0).float().mean().item())
    return {"dead": np.array(dead), "inactive": np.array(inactive), "active": np.array(active)}


@one_torch_thread()
def gradient_norms(model: MLP, X: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """||dL/dW|| of each hidden layer (layer 1 first) for one cross-entropy backward pass on (X, y)."""
    model.zero_grad(set_to_none=True)
    with GradientMonitor(model, keep_values=False) as monitor:
        nn.functional.cross_entropy(model(X), y).backward()
    model.zero_grad(set_to_none=True)
    return monitor.latest("grad_norm")


@one_torch_thread()
def compare_depth(activation: str, *, depth: int = 10, width: int = 64, init: str | None = None,
                  bias: float = 0.0, lr: float = 0.1, num_steps: int = 300, batch_size: int = 128,
                  momentum: float = 0.0, seed: int = 0) -> dict:
    """Train a deep digits classifier with `activation`; gradient norms before and after.

    Returns {"grad_init", "grad_trained"} (per-layer ||dL/dW|| on 512 digits,
    layer 1 first), "loss" (per step), "final_loss" and "accuracy" (all
    1,797 digits). Glorot & Bengio (2010) saw deep sigmoid nets stall; ReLU
    nets of the same depth train (Glorot, Bordes & Bengio 2011). `bias` sets
    every hidden bias (see `build_digits_net`).
    """
    X, y = load_digits()
    X_probe, y_probe = _digits(512, seed)
    net = build_digits_net(activation, depth=depth, width=width, init=init, bias=bias, seed=seed)
    grad_init = gradient_norms(net, X_probe, y_probe)
    history = train(net, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                    seed=seed, progress=False)
    grad_trained = gradient_norms(net, X_probe, y_probe)
    return {"grad_init": grad_init, "grad_trained": grad_trained, "loss": history.loss,
            "final_loss": history.final_loss,
            "accuracy": math.nan if history.diverged else accuracy(net, X, y)}


@one_torch_thread()
def dead_fraction_by_bias(activation: str, biases, *, depth: int = 4, width: int = 64,
                          seed: int = 0) -> np.ndarray:
    """Dead fraction per layer at initialization on all digits, for each constant hidden bias.

    Returns shape (len(biases), depth). A negative bias shifts every
    pre-activation down, so more ReLUs sit at z <= 0 on every input.
    """
    X, _ = load_digits()
    return np.stack([unit_activity(build_digits_net(activation, depth=depth, width=width, bias=float(b),
                                                    seed=seed), X)["dead"] for b in biases])


@one_torch_thread()
def revival_experiment(activation: str, *, bias: float = -1.0, depth: int = 3, width: int = 64,
                       lr: float = 0.05, momentum: float = 0.9, num_steps: int = 300, seed: int = 0) -> dict:
    """Start with layer 1's bias at `bias` (many units off), train, and see which units come back.

    Only layer 1 gets the bias, so the rest of the network can still learn.
    Layer 1's input is the data itself, so a ReLU unit that is dead on every
    training example gets exactly zero gradient on every batch: its weights
    can never change. Returns:

    - ``"before"``, ``"after"``: `unit_activity` of all digits at the start and end;
    - ``"moved"``: fraction of layer-1 units whose incoming weights changed at all;
    - ``"off_moved"``: the same among layer-1 units that started inactive
      (z <= 0 on every example): 0 for ReLU, 1 when the negative side has a slope;
    - ``"off_revived"``: fraction of those units active on some example at the end;
    - ``"final_loss"``, ``"accuracy"``.
    """
    X, y = load_digits()
    net = build_digits_net(activation, depth=depth, width=width, seed=seed)
    with torch.no_grad():
        net.blocks[0].linear.bias.fill_(bias)
        off = (net.blocks[0].linear(X) <= 0).all(dim=0)
    before = unit_activity(net, X)
    start = net.blocks[0].linear.weight.detach().clone()
    history = train(net, X, y, lr=lr, num_steps=num_steps, momentum=momentum, seed=seed, progress=False)
    with torch.no_grad():
        moved = (net.blocks[0].linear.weight != start).any(dim=1)
        on_now = (net.blocks[0].linear(X) > 0).any(dim=0)
    n_off = int(off.sum())
    return {"before": before, "after": unit_activity(net, X), "moved": moved.float().mean().item(),
            "off": n_off / width,
            "off_moved": moved[off].float().mean().item() if n_off else math.nan,
            "off_revived": on_now[off].float().mean().item() if n_off else math.nan,
            "final_loss": history.final_loss,
            "accuracy": math.nan if history.diverged else accuracy(net, X, y)}


@one_torch_thread()
def learning_rate_experiment(activation: str, *, lr: float, depth: int = 4, width: int = 64,
                             momentum: float = 0.9, clip: float | None = 1.0, num_steps: int = 300,
                             monitor_every: int = 10, seed: int = 0) -> dict:
    """Train a digits classifier at learning rate `lr` and record how many units die on the way.

    Returns ``"dead_per_step"`` (steps recorded every `monitor_every`, shape
    (records, depth): the `GradientMonitor` dead fraction on each 128-example
    batch), ``"steps"``, ``"dead"`` (per layer on all 1,797 digits at the
    end), ``"final_loss"``, ``"accuracy"`` and ``"diverged"``. Clipping the
    gradient norm (default 1) keeps a large step from overflowing, so a
    dying unit is not confused with a diverging run.
    """
    X, y = load_digits()
    net = build_digits_net(activation, depth=depth, width=width, seed=seed)
    history = train(net, X, y, lr=lr, num_steps=num_steps, momentum=momentum, clip=clip, seed=seed,
                    monitor=monitor_every, progress=False)
    return {"dead_per_step": history.layers["dead"], "steps": np.array(history.monitor.steps),
            "dead": unit_activity(net, X)["dead"], "final_loss": history.final_loss,
            "accuracy": math.nan if history.diverged else accuracy(net, X, y), "diverged": history.diverged}
