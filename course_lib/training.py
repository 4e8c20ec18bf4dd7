"""A plain training loop: minibatch SGD/Adam, optional clipping, a progress bar, a History.

Kept short on purpose so students can read every line; used from notebook 02 on.
The loop's own `SGD`, `Adam` and `AdamW` are a few lines each: the same
updates as torch.optim's, bit for bit, without torch.optim's machinery, whose
first optimizer in a process imports torch._dynamo (about 1.4 s of CPU, more
than many of the course's training runs take).
"""

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .monitoring import GradientMonitor

LOSSES = {"cross_entropy": nn.functional.cross_entropy, "mse": nn.functional.mse_loss}


@dataclass
class History:
    """What a run produced: per-step loss and total gradient norm, plus monitor data."""

    loss: np.ndarray
    grad_norm: np.ndarray
    diverged: bool = False
    monitor: GradientMonitor | None = None
    layers: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        """Mean loss over the last 10% of the steps (at least 1), less noisy than the last one."""
        if self.diverged or len(self.loss) == 0:
            return math.nan
        tail = max(1, len(self.loss) // 10)
        return float(np.mean(self.loss[-tail:]))


class SGD:
    """Stochastic gradient descent with momentum and (coupled) weight decay, torch.optim.SGD's update.

    Per weight w with gradient g: g <- g + weight_decay * w; with momentum,
    b <- g on the first step and b <- momentum * b + g after (Sutskever et al.
    2013's heavy ball, PyTorch's form, no dampening), g <- b; then w <- w - lr * g.
    `params` is an iterable of tensors or of parameter groups (dicts with
    "params" and their own options), as for torch.optim; `param_groups` and
    `zero_grad` work the same way. Same numbers as torch.optim.SGD on the CPU
    (tests/test_training.py checks it, bit for bit).
    """

    def __init__(self, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        self.param_groups = _groups(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self.param_groups, set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:  # one call per operation for all weights (torch._foreach_*)
            ws = [w for w in group["params"] if w.grad is not None]
            gs = [w.grad for w in ws]
            if not ws:
                continue
            if group["weight_decay"]:
                gs = torch._foreach_add(gs, ws, alpha=group["weight_decay"])
            if group["momentum"]:
                states = [self.state.setdefault(w, {}) for w in ws]
                fresh = [i for i, state in enumerate(states) if "momentum_buffer" not in state]
                old = [i for i, state in enumerate(states) if "momentum_buffer" in state]
                if old:
                    buffers = [states[i]["momentum_buffer"] for i in old]
                    torch._foreach_mul_(buffers, group["momentum"])
                    torch._foreach_add_(buffers, [gs[i] for i in old])
                for i in fresh:
                    states[i]["momentum_buffer"] = gs[i].detach().clone()
                gs = [state["momentum_buffer"] for state in states]
            torch._foreach_add_(ws, gs, alpha=-group["lr"])


class Adam:
    """Adam (Kingma & Ba 2015), torch.optim.Adam's update; `AdamW` decouples the weight decay.

    Per weight w with gradient g, at step t: m <- beta1 m + (1 - beta1) g,
    v <- beta2 v + (1 - beta2) g^2, then
    w <- w - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    Weight decay adds weight_decay * w to g (Adam) or first multiplies w by
    1 - lr * weight_decay (AdamW, Loshchilov & Hutter 2019). Same numbers as
    torch.optim.Adam/AdamW on the CPU (tests/test_training.py checks it, bit for bit).
    """

    decoupled = False

    def __init__(self, params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        self.param_groups = _groups(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        _zero_grad(self.param_groups, set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:  # one call per operation for the weights at the same step t
            lr, (beta1, beta2), decay = group["lr"], group["betas"], group["weight_decay"]
            by_step: dict[int, list[torch.Tensor]] = {}
            for w in group["params"]:
                if w.grad is not None:
                    state = self.state.setdefault(w, {})
                    if not state:
                        state.update(step=0, exp_avg=torch.zeros_like(w), exp_avg_sq=torch.zeros_like(w))
                    state["step"] += 1
                    by_step.setdefault(state["step"], []).append(w)
            for t, ws in by_step.items():
                gs = [w.grad for w in ws]
                ms = [self.state[w]["exp_avg"] for w in ws]
                vs = [self.state[w]["exp_avg_sq"] for w in ws]
                if decay and self.decoupled:
                    torch._foreach_mul_(ws, 1 - lr * decay)
                elif decay:
                    gs = torch._foreach_add(gs, ws, alpha=decay)
                torch._foreach_lerp_(ms, gs, 1 - beta1)
                torch._foreach_mul_(vs, beta2)
                torch._foreach_addcmul_(vs, gs, gs, value=1 - beta2)
                denom = torch._foreach_sqrt(vs)
                torch._foreach_div_(denom, (1 - beta2**t) ** 0.5)
                torch._foreach_add_(denom, group["eps"])
                torch._foreach_addcdiv_(ws, ms, denom, value=-lr / (1 - beta1**t))


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), torch.optim.AdamW's defaults."""

    decoupled = True

    def __init__(self, params, *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def _groups(params, **defaults) -> list[dict]:
    params = list(params)
    groups = params if params and isinstance(params[0], dict) else [{"params": params}]
    return [{**defaults, **group, "params": list(group["params"])} for group in groups]


def _zero_grad(groups: list[dict], set_to_none: bool) -> None:
    for group in groups:
        for w in group["params"]:
            if w.grad is None:
                continue
            if set_to_none:
                w.grad = None
            else:
                w.grad.detach_().zero_()


def _make_optimizer(optimizer, params, lr: float, momentum: float):
    if optimizer == "sgd":
        return SGD(params, lr=lr, momentum=momentum)
    if optimizer == "adam":
        return Adam(params, lr=lr)
    if hasattr(optimizer, "step") and hasattr(optimizer, "zero_grad"):
        return optimizer
    raise ValueError(f"optimizer must be 'sgd', 'adam' or an optimizer (torch.optim or this module's), "
                     f"got {optimizer!r}")


def batch_indices(n: int, batch_size: int, *, seed: int) -> Iterator[torch.Tensor]:
    """The example indices of each training step, without end: a seeded permutation of the n examples, taken
    batch by batch, and a new permutation when the next batch would not fit (the rest is skipped)."""
    generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(n, generator=generator), 0
    while True:
        if cursor + batch_size > n:
            order, cursor = torch.randperm(n, generator=generator), 0
        yield order[cursor:cursor + batch_size]
        cursor += batch_size


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, lr: float, num_steps: int,
          batch_size: int = 128, loss="cross_entropy", optimizer="sgd", momentum: float = 0.0,
          clip: float | None = None, monitor: bool | int = False, seed: int = 0,
          progress: bool = True) -> History:
    """Train `model` on (X, y) for `num_steps` minibatch steps; returns a `History`.

    Args:
        lr, num_steps, batch_size: the usual; batches walk through a fresh
            seeded permutation of the data every epoch.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable (output, target) -> loss.
        optimizer: ``"sgd"`` (`SGD` with `momentum`), ``"adam"`` (`Adam`) or an
            optimizer instance (torch.optim's or this module's).
        clip: rescale the gradient to at most this total norm (Pascanu et al.
            2013: g <- clip * g / ||g|| when ||g|| > clip).
        monitor: True (or k: every k-th step) records per-layer statistics with
            a `GradientMonitor`; they land in ``History.layers``.
        seed: seeds the batch order.
        progress: show a ``tqdm.auto`` progress bar.

    Stops early, with ``History.diverged`` set, when the loss stops being finite.
    """
    torch.set_flush_denormal(True)  # tiny gradients are otherwise very slow on CPU
    loss_fn = LOSSES.get(loss, loss) if isinstance(loss, str) else loss
    if not callable(loss_fn):
        raise ValueError(f"loss must be one of {list(LOSSES)} or a callable, got {loss!r}")
    if len(X) != len(y):
        raise ValueError(f"X and y hold different numbers of examples: {len(X)} vs {len(y)}")
    params = list(model.parameters())  # once: walking a deep model's modules every step costs ~15% of a step
    device = params[0].device
    opt = _make_optimizer(optimizer, params, lr, momentum)
    losses, norms, diverged = [], [], False
    watcher = GradientMonitor(model, every=int(monitor)) if monitor else None
    batches = batch_indices(len(X), batch_size, seed=seed)
    model.train()
    try:
        if watcher:
            watcher.attach()
        for _ in tqdm(range(num_steps), disable=not progress, desc="training", leave=False):
            index = next(batches)
            opt.zero_grad(set_to_none=True)
            batch_loss = loss_fn(model(X[index].to(device)), y[index].to(device))
            batch_loss.backward()
            if clip is None:  # the same norm, without clip_grad_norm_'s multiplication of every gradient by 1
                total = nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
            else:
                total = nn.utils.clip_grad_norm_(params, clip)
            value = batch_loss.item()
            losses.append(value)
            norms.append(total.item())
            if not math.isfinite(value) or not math.isfinite(norms[-1]):
                diverged = True
                break
            opt.step()
    finally:
        if watcher:
            watcher.detach()
    return History(loss=np.array(losses), grad_norm=np.array(norms), diverged=diverged, monitor=watcher,
                   layers=watcher.as_arrays() if watcher else {})


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of examples whose largest output is the label (in eval mode, then back)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = (model(X.to(device)).argmax(dim=-1).cpu() == y).float().mean().item()
    model.train(was_training)
    return correct
