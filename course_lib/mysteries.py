"""Broken networks to diagnose and repair: the capstone, notebook 08.

Each mystery is a `build_mlp` classifier for the 8x8 digits (64 inputs, 10
classes, width 64) that does not train, for exactly one reason. Nothing here
names the reasons: finding them is the exercise. A network is described by
*settings*, the `build_mlp` keywords plus ``depth`` and ``bias`` (a constant
every hidden layer's bias starts at), so a diagnosis can be tested by
changing a setting and training again.

The workflow these functions support (Karpathy 2019, "A recipe for training
neural networks"; Glorot & Bengio 2010; He et al. 2015; Ioffe & Szegedy 2015):
when the loss plateaus early, measure the per-layer gradient norms, activation
scale and dead/saturated fractions (`measure`) before touching the learning
rate; the update:data ratio lr * std(dL/dW) / std(W) (`update_to_data_ratios`,
about 1e-3 is healthy) shows why a single SGD learning rate cannot rescue layers
whose gradients differ by orders of magnitude (Adam rescales each weight's step,
`train_network(..., optimizer="adam")`); `example_similarity` measures why a deep
plain ReLU stack fails although its gradient does not vanish. `train_side_by_side`
trains one setting from several seeds, or at several learning rates, as one
stacked network (the learning-rate sweep, the repairs' seeds).
"""

import math

import numpy as np
import torch
from torch import nn

from . import checks
from .datasets import load_digits
from .models import MLP, build_mlp
from .monitoring import GradientMonitor
from .seeding import one_torch_thread
from .stacked import train_stacked
from .training import AdamW, History, train

MYSTERIES = ("A", "B", "C", "D", "E")
LABELS = ("vanishing gradient", "exploding", "dead units", "no gradient", "collapsing activations")
"""What the measurements of a mystery show (one label each, named by what is measured, not by a
guessed cause); which is which is the exercise."""

WIDTH, IN_FEATURES, CLASSES = 64, 64, 10
LR, NUM_STEPS, BATCH_SIZE = 0.1, 150, 128
"""The training recipe every mystery and every fix is judged by: plain SGD, lr 0.1, 150 steps of 128."""

FIXABLE = "B"
"""The mystery whose repair is graded in notebook 08."""
FIX_TARGET = 0.5
"""A repaired network must reach a final training loss below this within the recipe."""

SETTING_KEYS = ("depth", "activation", "init", "norm", "residual", "gain", "std", "weight_scale", "bias")
FIX_KEYS = tuple(k for k in SETTING_KEYS if k != "depth")
"""What a repair may change: everything but the depth (a shallower net is not a repair)."""

_MYSTERY_SETTINGS = {
    "A": {"depth": 8, "activation": "relu", "init": "he", "bias": -0.3},
    "B": {"depth": 12, "activation": "tanh", "init": "standard"},
    "C": {"depth": 10, "activation": "tanh", "init": "xavier", "bias": 3.0},
    "D": {"depth": 6, "activation": "tanh", "init": "zeros"},
    "E": {"depth": 6, "activation": "relu", "init": "normal", "std": 1.0},
}


def mystery_settings(name: str) -> dict:
    """The settings of mystery `name` (a fresh dict: edit it to try a repair)."""
    if name not in _MYSTERY_SETTINGS:
        raise ValueError(f"unknown mystery {name!r}; choose one of {list(MYSTERIES)}")
    return dict(_MYSTERY_SETTINGS[name])


def build_network(settings: dict, *, seed: int = 0) -> MLP:
    """A digits classifier (64 -> `depth` x 64 -> 10) from `settings`; weights drawn from `seed`.

    >>> net = build_network({"depth": 3, "activation": "relu", "init": "he"}, seed=0)
    >>> net(torch.zeros(2, 64)).shape
    torch.Size([2, 10])
    """
    if not isinstance(settings, dict):
        raise ValueError(f"settings must be a dict of {list(SETTING_KEYS)}, got {type(settings).__name__}")
    unknown = set(settings) - set(SETTING_KEYS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; allowed: {list(SETTING_KEYS)}")
    options = dict(settings)
    depth = options.pop("depth", None)
    bias = options.pop("bias", None)
    if not isinstance(depth, int) or isinstance(depth, bool):
        raise ValueError(f"settings need an int depth, got {depth!r}")
    net = build_mlp(depth, WIDTH, in_features=IN_FEATURES, out_features=CLASSES, seed=seed, **options)
    if bias is not None:
        if not isinstance(bias, (int, float)) or not math.isfinite(bias):
            raise ValueError(f"bias must be a finite number, got {bias!r}")
        with torch.no_grad():
            for block in net.blocks:
                block.linear.bias.fill_(float(bias))
    return net


def build_mystery(name: str, *, seed: int = 0) -> MLP:
    """Mystery network `name` with weights drawn from `seed`."""
    return build_network(mystery_settings(name), seed=seed)


def probe_batch(n: int = 256, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` digits drawn without replacement by a seeded permutation: the batch a diagnosis measures on."""
    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:n]
    return X[index], y[index]


def measure(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> dict:
    """Per-layer health numbers from one forward and backward pass of cross-entropy on (X, y).

    Returns plain data, layer 1 first: ``flow`` = ||dL/dh_k|| (the gradient arriving
    at each hidden layer's output), ``grad_norm`` = ||dL/dW_k||, ``act_std``,
    ``dead`` and ``saturated`` fractions (see `course_lib.monitoring`), the
    ``loss`` (a float) and the monitor's plain-language ``report``.
    Parameter gradients are cleared afterwards.
    """
    model.zero_grad(set_to_none=True)
    with one_torch_thread(), GradientMonitor(model, keep_values=False) as monitor:
        loss = nn.functional.cross_entropy(model(X), y)
        loss.backward()
    model.zero_grad(set_to_none=True)
    return {"loss": loss.item(), "flow": monitor.latest("out_grad_norm"), "grad_norm": monitor.latest("grad_norm"),
            "act_std": monitor.latest("act_std"), "dead": monitor.latest("dead"),
            "saturated": monitor.latest("saturated"), "report": monitor.report()}


def train_network(settings: dict, *, seed: int = 0, lr: float = LR, num_steps: int = NUM_STEPS,
                  monitor: bool | int = False, optimizer: str = "sgd") -> History:
    """Build from `settings` (weights from `seed`) and train on all digits with the course recipe.

    `optimizer` is ``"sgd"`` (the recipe), ``"adam"`` (Kingma & Ba 2015, ICLR) or
    ``"adamw"`` (Adam with decoupled weight decay, PyTorch's default 0.01;
    Loshchilov & Hutter 2019, ICLR); pass their own `lr` (1e-3 is their usual one).
    """
    X, y = load_digits()
    net = build_network(settings, seed=seed)
    if optimizer == "adamw":
        optimizer = AdamW(net.parameters(), lr=lr)  # torch.optim.AdamW's numbers, without importing torch._dynamo
    with one_torch_thread():
        return train(net, X, y, lr=lr, num_steps=num_steps, batch_size=BATCH_SIZE, monitor=monitor, seed=seed,
                     optimizer=optimizer, progress=False)


def evaluate_fix(changes: dict, *, mystery: str | dict = FIXABLE, seed: int = 0, lr: float = LR,
                 num_steps: int = NUM_STEPS) -> float:
    """Final training loss of a broken network with `changes` applied (inf if it diverged).

    `mystery` is a mystery's name or the settings of any broken network.
    `changes` maps settings in `FIX_KEYS` to new values (the depth stays); the
    repaired network is built from `seed` and trained with the course recipe,
    so the same changes always give the same number. A repair passes when the
    result is below `FIX_TARGET`.

    >>> evaluate_fix({}) > FIX_TARGET   # unchanged, the mystery does not train
    True
    """
    return evaluate_fixes(changes, mystery=mystery, seeds=[seed], lr=lr, num_steps=num_steps)[0]


def evaluate_fixes(changes: dict, *, mystery: str | dict = FIXABLE, seeds=(0,), lr: float = LR,
                   num_steps: int = NUM_STEPS) -> list[float]:
    """`evaluate_fix` from each of `seeds`, the networks trained side by side (`final_losses`)."""
    if not isinstance(changes, dict):
        raise ValueError(f"changes must be a dict such as {{'init': 'xavier'}}, got {type(changes).__name__}")
    if "depth" in changes:
        raise ValueError("the depth is part of the problem: keep it (a shallower network is not a repair)")
    unknown = set(changes) - set(FIX_KEYS)
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}; a repair may change {list(FIX_KEYS)}")
    broken = dict(mystery) if isinstance(mystery, dict) else mystery_settings(mystery)
    return final_losses({**broken, **changes}, seeds=seeds, lr=lr, num_steps=num_steps)


def final_losses(settings: dict, *, seeds, lr: float = LR, num_steps: int = NUM_STEPS) -> list[float]:
    """The final training loss (inf if it diverged) of the `settings` network from each seed, trained side by side
    (`train_side_by_side`)."""
    seeds = list(seeds)
    if len(seeds) == 1:  # one network: `train`'s module path is a little faster than a stack of one
        histories = [train_network(settings, seed=seeds[0], lr=lr, num_steps=num_steps)]
    else:
        histories = train_side_by_side(settings, seeds=seeds, lr=lr, num_steps=num_steps)
    return [math.inf if history.diverged else history.final_loss for history in histories]


def train_side_by_side(settings: dict, *, seeds=0, lr=LR, num_steps: int = NUM_STEPS) -> list[History]:
    """`train_network(settings, seed=..., lr=...)` for each seed or learning rate, the networks trained side by side.

    `seeds` and `lr` are each one value for all networks or one per network: one
    setting from several seeds, or a learning-rate sweep from one seed. Network
    g's weights and batch order are those of `train_network(settings, seed=seeds[g],
    lr=lr[g])` (plain SGD, batches of 128) and it trains on its own batches and
    stops alone if it diverges, but the G networks are one stacked network
    (`course_lib.stacked.train_stacked`: every layer one batched matmul), so G
    networks cost about one network's operations plus G times its (small)
    arithmetic. Equal to separate runs, bit for bit (tested).
    """
    count = max(len(v) if np.ndim(v) else 1 for v in (seeds, lr))
    seeds = list(seeds) if np.ndim(seeds) else [seeds] * count
    X, y = load_digits()
    nets = [build_network(settings, seed=seed) for seed in seeds]
    return train_stacked(nets, X, y, lr=lr, num_steps=num_steps, batch_size=BATCH_SIZE, seeds=seeds)


def check_repair(name: str, repair, settings: dict, *, seeds) -> list[float]:
    """Check a `repair(settings) -> changes` answer (notebook 08): one allowed change that trains from every seed.

    Calls `repair` on a copy of `settings`, requires a dict changing exactly one
    setting in `FIX_KEYS`, and trains the changed network from each of `seeds`
    with the course recipe (`evaluate_fixes`: all seeds side by side). Raises `checks.CheckFailed` with a
    message a student can act on; returns the final losses when every one is
    below `FIX_TARGET`.
    """
    def fail(*lines):
        raise checks.CheckFailed("\n".join([f"{name}: not yet right."] + [f"  {line}" for line in lines]))

    if not callable(repair):
        fail(f"repair must be a function, got {type(repair).__name__}.")
    try:
        changes = repair(dict(settings))
    except NotImplementedError:
        fail("the function still raises NotImplementedError: write your code in its body.")
    except Exception as error:  # noqa: BLE001 - the student's code failed: say where
        fail(f"repair({settings}) raised {type(error).__name__}: {error}")
    if not isinstance(changes, dict) or len(changes) != 1:
        fail(f"repair({settings}) returned {changes!r}: return a dict that changes exactly one setting, "
             "such as {'init': 'he'}.")
    seeds = list(seeds)
    try:  # every seed at once, side by side (`final_losses`)
        losses = evaluate_fixes(changes, mystery=settings, seeds=seeds)
    except ValueError as error:
        fail(f"the change {changes} cannot be applied: {error}")
    for seed, loss in zip(seeds, losses):
        if not loss < FIX_TARGET:
            reached = "diverges" if math.isinf(loss) else f"reaches a final loss of {loss:.3f}"
            fail(f"with {changes}, the network {settings} {reached} from seed {seed} (target: below "
                 f"{FIX_TARGET}; ln 10 = 2.303 is chance).",
                 "Measure it first: which cause does section 4's table give, and does your change remove "
                 "that cause?")
    return losses


def update_to_data_ratios(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, lr: float) -> np.ndarray:
    """lr * std(dL/dW) / std(W) per hidden layer: the update:data ratio of one plain SGD step at `lr`.

    Plain SGD moves W by -lr * dL/dW, so the ratio is exactly proportional to
    `lr`: raising the learning rate multiplies every layer's ratio by the same
    factor. (It is computed from the gradient rather than by taking the step: a
    float32 weight rounds away most of a step below about 1e-7 of its magnitude.)
    About 1e-3 is healthy (Karpathy, CS231n). Gradients are cleared afterwards.
    """
    model.zero_grad(set_to_none=True)
    with one_torch_thread(), GradientMonitor(model, keep_values=False) as monitor:
        nn.functional.cross_entropy(model(X), y).backward()
    model.zero_grad(set_to_none=True)
    return lr * monitor.latest("grad_data")


@torch.no_grad()
def example_similarity(model: MLP, X: torch.Tensor) -> np.ndarray:
    """Mean cosine similarity between different examples' hidden vectors, per hidden layer (layer 1 first).

    Near 1 when every example reaches the layer as nearly the same vector: the
    layers above then see one input whatever the digit, and a ReLU unit that
    is off for one example is off for all of them (dead on the batch). Deep
    plain ReLU stacks drive it toward 1 layer by layer: the correlation map of
    a ReLU layer has its fixed point at 1 (Poole et al. 2016, NeurIPS;
    Schoenholz et al. 2017, ICLR). One forward pass in the model's current
    mode (BatchNorm in training mode uses, and records, the batch statistics).
    """
    h, similarity = X, []
    with one_torch_thread():
        for block in model.blocks:
            h = block(h)
            unit = nn.functional.normalize(h.double(), dim=1)
            n = len(unit)
            similarity.append(((unit @ unit.T).sum().item() - n) / (n * n - n))
    return np.array(similarity)


def depth_sweep(depths, *, activation: str = "relu", init: str = "he", norm: str | None = None,
                seed: int = 0, lr: float = LR, num_steps: int = NUM_STEPS) -> dict[int, float]:
    """Final training loss for each depth in `depths`, same recipe and budget (inf if diverged).

    He et al. (2016) found that deeper *plain* networks reach a higher
    training error than shallower ones: depth alone does not help once the
    gradient cannot reach the early layers.
    """
    results = {}
    for depth in depths:
        history = train_network({"depth": int(depth), "activation": activation, "init": init, "norm": norm},
                                seed=seed, lr=lr, num_steps=num_steps)
        results[int(depth)] = math.inf if history.diverged else history.final_loss
    return results
