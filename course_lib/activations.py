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
  *dead*. Its incoming weights get a zero gradient. In layer 1, whose input
  is the fixed data, it never comes back; in a higher layer it can, when the
  layers below move its input (`revival_experiments` measures both);
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
from .training import SGD, AdamW, History, accuracy, train

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


class _SideBySide(nn.Module):
    """Networks side by side: one forward returns their outputs stacked, shape (networks, batch, classes)."""

    def __init__(self, nets):
        super().__init__()
        self.members = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([net(x) for net in self.members])


class _ClipEachSGD(SGD):
    """SGD that first clips each parameter group's gradient (one group per network) to norm `clip`."""

    def __init__(self, groups, *, clip: float, **options):
        super().__init__(groups, **options)
        self.clip = clip

    def step(self) -> None:
        for group in self.param_groups:
            nn.utils.clip_grad_norm_(group["params"], self.clip)
        super().step()


def train_together(nets, X: torch.Tensor, y: torch.Tensor, *, lr: float, num_steps: int,
                   momentum: float = 0.0, groups: list[dict] | None = None, clip: float | None = None,
                   monitor: int = 0, batch_size: int = 128, seed: int = 0) -> list[History]:
    """Train several networks on the same batches in one `train` run (SGD); one `History` each.

    The loss is the sum of the networks' cross-entropies, so each network's
    gradient is exactly its own (the other terms do not depend on its
    weights), and SGD updates every weight on its own: the weights end up
    bit-for-bit those of separate runs with the same `seed`, in about 2/3 of
    the time for small networks (one optimizer step, one backward call).
    `groups` gives each network's own SGD options (``{"lr": 0.5}``,
    ``{"weight_decay": 5e-4}``); parameters with ``requires_grad=False`` are
    left out (frozen). `clip` clips each network's gradient norm on its own,
    as `train` does for one; ``monitor=k`` gives each network a
    `GradientMonitor` recording every k-th step. If one network's loss stops
    being finite, every run stops there (``History.diverged``).
    ``History.grad_norm`` is the total over all networks, before clipping.
    Networks of one architecture train faster stacked (`stacked.train_stacked`).
    """
    groups = [{"params": [p for p in net.parameters() if p.requires_grad], **options}
              for net, options in zip(nets, groups or [{} for _ in nets])]
    optimizer = (SGD(groups, lr=lr, momentum=momentum) if clip is None
                 else _ClipEachSGD(groups, clip=clip, lr=lr, momentum=momentum))
    monitors = [GradientMonitor(net, every=monitor) for net in nets] if monitor else []
    per_step = []

    def summed_loss(outputs, target):
        losses = torch.stack([nn.functional.cross_entropy(out, target) for out in outputs])
        per_step.append(losses.detach())
        return losses.sum()

    try:
        for watcher in monitors:
            watcher.attach()
        history = train(_SideBySide(nets), X, y, lr=lr, num_steps=num_steps, batch_size=batch_size,
                        loss=summed_loss, optimizer=optimizer, seed=seed, progress=False)
    finally:
        for watcher in monitors:
            watcher.detach()
    losses = torch.stack(per_step).numpy()[:len(history.loss)] if per_step else np.zeros((0, len(nets)))
    return [History(loss=losses[:, k].astype(np.float64), grad_norm=history.grad_norm, diverged=history.diverged,
                    monitor=monitors[k] if monitors else None, layers=monitors[k].as_arrays() if monitors else {})
            for k in range(len(nets))]


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
    return compare_activations([activation], depth=depth, width=width, init=init, bias=bias, lr=lr,
                               num_steps=num_steps, batch_size=batch_size, momentum=momentum, seed=seed)[activation]


@one_torch_thread()
def compare_activations(activations, *, depth: int = 10, width: int = 64, init: str | None = None,
                        bias: float = 0.0, lr: float = 0.1, num_steps: int = 300, batch_size: int = 128,
                        momentum: float = 0.0, seed: int = 0) -> dict[str, dict]:
    """`compare_depth` for several activations at once: {activation: its result}.

    The networks train side by side on the same batches (`train_together`),
    so each result equals a separate `compare_depth` run with the same seed.
    """
    X, y = load_digits()
    X_probe, y_probe = _digits(512, seed)
    nets = [build_digits_net(name, depth=depth, width=width, init=init, bias=bias, seed=seed) for name in activations]
    grad_init = [gradient_norms(net, X_probe, y_probe) for net in nets]
    histories = train_together(nets, X, y, lr=lr, num_steps=num_steps, momentum=momentum, batch_size=batch_size,
                               seed=seed)
    return {name: {"grad_init": g, "grad_trained": gradient_norms(net, X_probe, y_probe), "loss": history.loss,
                   "final_loss": history.final_loss,
                   "accuracy": math.nan if history.diverged else accuracy(net, X, y)}
            for name, net, g, history in zip(activations, nets, grad_init, histories)}


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
def revival_experiment(activation: str, *, bias: float = -1.0, upper_bias: float = 0.0, depth: int = 3,
                       width: int = 64, lr: float = 0.05, momentum: float = 0.9, num_steps: int = 300,
                       seed: int = 0) -> dict:
    """One `revival_experiments` setting: SGD with momentum, nothing frozen."""
    return revival_experiments({activation: {"activation": activation, "upper_bias": upper_bias}}, bias=bias,
                               depth=depth, width=width, lr=lr, momentum=momentum, num_steps=num_steps,
                               seed=seed)[activation]


@one_torch_thread()
def revival_experiments(settings: dict[str, dict], *, bias: float = -1.0, depth: int = 3, width: int = 64,
                        lr: float = 0.05, momentum: float = 0.9, num_steps: int = 300, seed: int = 0) -> dict:
    """Start with many units off, train, and see which units come back, layer by layer.

    Each setting (label -> options) is a digits classifier of `activation`
    whose layer-1 bias is `bias` and whose layer-2 bias is ``upper_bias``
    (default 0), trained with SGD (lr, `momentum`, optional
    ``weight_decay``), or with ``optimizer="adamw"`` (PyTorch's defaults,
    lr 1e-3 and weight decay 1e-2: Loshchilov & Hutter 2019), optionally with
    layer 1 frozen (``freeze_first=True``). The SGD settings train side by
    side on the same batches (`train_together`). A unit is *off* when
    z <= 0 on all 1,797 digits. Layer 1's input is the data itself, so an
    off ReLU there gets exactly zero gradient on every batch; momentum
    and Adam only replay gradients it got before (none), and weight decay,
    coupled or decoupled, multiplies its weights and bias by the same
    positive factor, which never changes the sign of z. A unit in layer 2
    reads layer 1, which moves. Returns per setting, with one entry per
    hidden layer (layer 1 first):

    - ``"off"``: fraction of units off at the start;
    - ``"off_moved"``: among those, the fraction whose incoming weights changed at all
      (0 for ReLU without weight decay, 1 when the negative side has a slope);
    - ``"off_revived"``: among those, the fraction active on some digit at the end (nan if none was off);
    - ``"before"``, ``"after"``: `unit_activity` at the start and end; ``"final_loss"``, ``"accuracy"``.
    """
    X, y = load_digits()
    nets = {label: _revival_net(options, bias=bias, depth=depth, width=width, seed=seed)
            for label, options in settings.items()}
    starts = {label: [block.linear.weight.detach().clone() for block in net.blocks] for label, net in nets.items()}
    offs = {label: _inactive_units(net, X) for label, net in nets.items()}
    before = {label: unit_activity(net, X) for label, net in nets.items()}
    histories = _train_revivals(settings, nets, X, y, lr=lr, momentum=momentum, num_steps=num_steps, seed=seed)
    return {label: {"before": before[label], "after": unit_activity(net, X),
                    **_revived(net, X, starts[label], offs[label]),
                    "final_loss": histories[label].final_loss,
                    "accuracy": math.nan if histories[label].diverged else accuracy(net, X, y)}
            for label, net in nets.items()}


def _revival_net(options: dict, *, bias: float, depth: int, width: int, seed: int) -> MLP:
    """A digits classifier of ``options["activation"]`` with layer 1's bias `bias`, layer 2's
    ``options["upper_bias"]`` (default 0), layer 1 frozen if ``options["freeze_first"]``."""
    net = build_digits_net(options["activation"], depth=depth, width=width, seed=seed)
    with torch.no_grad():
        net.blocks[0].linear.bias.fill_(bias)
        net.blocks[1].linear.bias.fill_(options.get("upper_bias", 0.0))
    if options.get("freeze_first", False):
        net.blocks[0].requires_grad_(False)
    return net


def _train_revivals(settings: dict[str, dict], nets: dict[str, MLP], X: torch.Tensor, y: torch.Tensor, *,
                    lr: float, momentum: float, num_steps: int, seed: int) -> dict:
    """Train each setting's net: the SGD ones side by side (`train_together`), the AdamW ones alone; a History each."""
    sgd = [label for label in settings if settings[label].get("optimizer", "sgd") == "sgd"]
    histories = dict(zip(sgd, train_together([nets[label] for label in sgd], X, y, lr=lr, num_steps=num_steps,
                                             momentum=momentum, seed=seed,
                                             groups=[{"weight_decay": settings[label].get("weight_decay", 0.0)}
                                                     for label in sgd])))
    for label in settings:
        if label not in histories:
            net = nets[label]
            adamw = AdamW([p for p in net.parameters() if p.requires_grad])
            histories[label] = train(net, X, y, lr=adamw.param_groups[0]["lr"], num_steps=num_steps, optimizer=adamw,
                                     seed=seed, progress=False)
    return histories


def _revived(net: MLP, X: torch.Tensor, start: list[torch.Tensor], off: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Per hidden layer: the fraction of units `off` at the start, and among those the fraction whose incoming
    weights moved from `start`, and the fraction active now on some example of `X`."""
    on_now = [~o for o in _inactive_units(net, X)]
    moved = [(block.linear.weight.detach() != w).any(dim=1) for block, w in zip(net.blocks, start)]
    return {"off": np.array([o.float().mean().item() for o in off]),
            "off_moved": np.array([m[o].float().mean().item() if o.any() else math.nan for m, o in zip(moved, off)]),
            "off_revived": np.array([a[o].float().mean().item() if o.any() else math.nan
                                     for a, o in zip(on_now, off)])}


@torch.no_grad()
def _inactive_units(model: MLP, X: torch.Tensor) -> list[torch.Tensor]:
    """Per hidden layer, a boolean per unit: z <= 0 on every example of `X`."""
    off, h = [], X
    for block in model.blocks:
        off.append((block.norm(block.linear(h)) <= 0).all(dim=0))
        h = block(h)
    return off


@one_torch_thread()
def learning_rate_experiment(activation: str, *, lr: float, depth: int = 4, width: int = 64,
                             momentum: float = 0.9, clip: float | None = 1.0, num_steps: int = 300,
                             monitor_every: int = 10, seed: int = 0) -> dict:
    """One `learning_rate_experiments` setting."""
    return learning_rate_experiments({activation: {"activation": activation, "lr": lr}}, depth=depth, width=width,
                                     momentum=momentum, clip=clip, num_steps=num_steps,
                                     monitor_every=monitor_every, seed=seed)[activation]


@one_torch_thread()
def learning_rate_experiments(settings: dict[str, dict], *, depth: int = 4, width: int = 64, momentum: float = 0.9,
                              clip: float | None = 1.0, num_steps: int = 300, monitor_every: int = 10,
                              seed: int = 0) -> dict[str, dict]:
    """Train digits classifiers at large and small learning rates and record how many units die on the way.

    `settings` maps a label to ``{"activation": ..., "lr": ...}``; all train
    side by side on the same batches (`train_together`), each exactly as on
    its own. Returns per label ``"dead_per_step"`` (steps recorded every
    `monitor_every`, shape (records, depth): the `GradientMonitor` dead
    fraction on each 128-example batch), ``"steps"``, ``"dead"`` (per layer
    on all 1,797 digits at the end), ``"final_loss"``, ``"accuracy"`` and
    ``"diverged"``. Clipping each network's gradient norm (default 1) keeps
    a large step from overflowing, so a dying unit is not confused with a
    diverging run.
    """
    X, y = load_digits()
    nets = [build_digits_net(options["activation"], depth=depth, width=width, seed=seed)
            for options in settings.values()]
    histories = train_together(nets, X, y, lr=min(o["lr"] for o in settings.values()), num_steps=num_steps,
                               momentum=momentum, groups=[{"lr": o["lr"]} for o in settings.values()], clip=clip,
                               monitor=monitor_every, seed=seed)
    return {label: {"dead_per_step": history.layers["dead"], "steps": np.array(history.monitor.steps),
                    "dead": unit_activity(net, X)["dead"], "final_loss": history.final_loss,
                    "accuracy": math.nan if history.diverged else accuracy(net, X, y),
                    "diverged": history.diverged}
            for label, net, history in zip(settings, nets, histories)}
