"""A plain training loop: minibatch SGD/Adam, optional clipping, a progress bar, a History.

Kept short on purpose so students can read every line; used from notebook 02 on.
"""

import math
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


def _make_optimizer(optimizer, params, lr: float, momentum: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        return optimizer
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    if optimizer == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer must be 'sgd', 'adam' or a torch.optim.Optimizer, got {optimizer!r}")


def train(model: nn.Module, X: torch.Tensor, y: torch.Tensor, *, lr: float, num_steps: int,
          batch_size: int = 128, loss="cross_entropy", optimizer="sgd", momentum: float = 0.0,
          clip: float | None = None, monitor: bool | int = False, seed: int = 0,
          progress: bool = True) -> History:
    """Train `model` on (X, y) for `num_steps` minibatch steps; returns a `History`.

    Args:
        lr, num_steps, batch_size: the usual; batches walk through a fresh
            seeded permutation of the data every epoch.
        loss: ``"cross_entropy"``, ``"mse"`` or a callable (output, target) -> loss.
        optimizer: ``"sgd"`` (with `momentum`), ``"adam"`` or an optimizer instance.
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
    device = next(model.parameters()).device
    opt = _make_optimizer(optimizer, model.parameters(), lr, momentum)
    generator = torch.Generator().manual_seed(seed)
    losses, norms, diverged = [], [], False
    watcher = GradientMonitor(model, every=int(monitor)) if monitor else None
    order, cursor = torch.randperm(len(X), generator=generator), 0
    model.train()
    try:
        if watcher:
            watcher.attach()
        for _ in tqdm(range(num_steps), disable=not progress, desc="training", leave=False):
            if cursor + batch_size > len(X):
                order, cursor = torch.randperm(len(X), generator=generator), 0
            index = order[cursor:cursor + batch_size]
            cursor += batch_size
            opt.zero_grad(set_to_none=True)
            batch_loss = loss_fn(model(X[index].to(device)), y[index].to(device))
            batch_loss.backward()
            total = nn.utils.clip_grad_norm_(model.parameters(), clip if clip is not None else math.inf)
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
