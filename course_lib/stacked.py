"""Networks of one architecture trained as one: stacked weights, one batched matmul per layer.

Many of the course's experiments train a few `build_mlp` classifiers that differ
only in their initial weights, learning rate or batch order: Xavier against He
at 30 layers (He et al. 2015), three sigma_w^2 around the edge of chaos
(Schoenholz et al. 2017), one repair from several seeds. Networks of different
architectures (activations, depths) train side by side with
`activations.train_together` instead: one optimizer, no batched matmul.
On a CPU such small networks cost their number of operations, not their
arithmetic. `train_stacked` stacks layer k's G weight matrices into one
(G, out, in) tensor and computes every layer of the G networks with one
`torch.baddbmm`, so G networks cost about one network's operations.

Each network keeps its own loss (the sum of the G losses is differentiated: no
term depends on another network's weights), its own gradient norm and clipping
(Pascanu et al. 2013), its own learning rate and batch order. The results are
those of separate `training.train` runs with SGD, bit for bit where the
networks share one learning rate and none has a norm layer (the batched matmul
computes each slice as `nn.Linear` does, the norms are taken slice by slice as
`clip_grad_norm_` takes them, and the updates are elementwise;
tests/test_stacked.py checks it), and to rounding otherwise.
"""

import numpy as np
import torch
from torch import nn

from .models import MLP
from .seeding import one_torch_thread
from .training import History, batch_indices


def _stack(tensors) -> torch.Tensor:
    return torch.stack([t.detach() for t in tensors]).contiguous().requires_grad_()


def _stacked_parameters(nets) -> list[torch.Tensor]:
    """Each parameter of the nets (in `parameters()` order) stacked along a new first dimension."""
    shapes = [[tuple(p.shape) for p in net.parameters()] for net in nets]
    if any(s != shapes[0] for s in shapes) or any(net.head is None for net in nets):
        raise ValueError("train_stacked needs classifiers (a head) of one architecture")
    return [_stack(same) for same in zip(*[list(net.parameters()) for net in nets])]


def stacked_forward(net: MLP, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The G networks' outputs (G, batch, classes) for inputs `x` (G, batch, in) from stacked `params`.

    `net` gives the architecture (one of the G), `params` its parameters stacked
    as `_stacked_parameters` does. BatchNorm normalizes each unit of each
    network over its own batch (running statistics are not tracked); LayerNorm
    is one call per network.
    """
    rest, h = iter(params), x
    for block in net.blocks:
        weight, bias = next(rest), next(rest)
        z = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))  # nn.Linear's addmm, slice by slice
        norm = [next(rest) for _ in block.norm.parameters()]
        if isinstance(block.norm, nn.BatchNorm1d):  # the G x units channels, each over its batch
            count, batch, units = z.shape
            z = nn.functional.batch_norm(z.transpose(0, 1).reshape(batch, count * units), None, None,
                                         norm[0].reshape(-1), norm[1].reshape(-1), training=True,
                                         eps=block.norm.eps).view(batch, count, units).transpose(0, 1)
        elif isinstance(block.norm, nn.LayerNorm):  # one call per network: the module's own rounding
            z = torch.stack([nn.functional.layer_norm(z[g], block.norm.normalized_shape, norm[0][g], norm[1][g],
                                                      eps=block.norm.eps) for g in range(len(z))])
        elif not isinstance(block.norm, nn.Identity):
            raise ValueError(f"cannot stack {type(block.norm).__name__}")
        out = block.act(z)  # elementwise, any shape
        h = h + out if block.residual else out
    weight, bias = next(rest), next(rest)
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


@one_torch_thread()
def train_stacked(nets, X: torch.Tensor, y: torch.Tensor, *, lr, num_steps: int, batch_size: int = 128,
                  momentum: float = 0.0, clip: float | None = None, seeds=0) -> list[History]:
    """Train G `build_mlp` classifiers of one architecture as one stacked network; a `History` each.

    Network g follows `training.train(nets[g], X, y, lr=lr[g], momentum=momentum,
    clip=clip, seed=seeds[g])` (SGD, cross-entropy): `lr` and `seeds` are one
    value for all or one per network (the same seed: the same batches). Its
    `History` has its own losses and total gradient norms (before clipping)
    and stops, as `train` does, at the first step where either is not finite
    (``diverged``); the others go on. The trained weights are copied back into
    `nets` (BatchNorm's running statistics are left as they were).
    """
    count = len(nets)
    lrs, seeds = _per_network(lr, seeds, count)
    params = _stacked_parameters(nets)
    torch.set_flush_denormal(True)  # as `train`: tiny gradients are otherwise very slow on CPU
    shared = len(set(seeds)) == 1
    batches = [batch_indices(len(X), batch_size, seed=seed) for seed in (seeds[:1] if shared else seeds)]
    buffers, losses, norms = None, [], []
    running = torch.ones(count, dtype=torch.bool)  # False from the step `train` would have stopped at
    for _ in range(num_steps):
        index = [next(order) for order in batches]
        for p in params:
            p.grad = None
        loss = _stacked_loss(nets[0], params, X, y, index, shared, count)
        loss.sum().backward()  # each network's loss depends on its own weights only
        with torch.no_grad():
            grads = [p.grad for p in params]
            total = _total_norms(grads, count)
            losses.append(loss.detach())
            norms.append(total)
            running &= torch.isfinite(loss) & torch.isfinite(total)
            if not running.any():
                break
            if clip is not None:
                _clip_each(grads, total, clip)
            steps, buffers = _momentum_steps(grads, buffers, momentum)
            _sgd_step(params, steps, lrs, running)
    _copy_back(nets, params)
    return _histories(torch.stack(losses).double().numpy(), torch.stack(norms).double().numpy())


def _per_network(lr, seeds, count: int) -> tuple[list[float], list]:
    """The learning rate and the seed of each of the `count` networks (each given once for all, or one per network)."""
    lrs = [float(v) for v in (lr if np.ndim(lr) else [lr] * count)]
    seeds = list(seeds) if np.ndim(seeds) else [int(seeds)] * count
    if len(lrs) != count or len(seeds) != count:
        raise ValueError(f"give one lr and one seed for all {count} networks or one per network")
    return lrs, seeds


def _stacked_loss(net: MLP, params: list[torch.Tensor], X: torch.Tensor, y: torch.Tensor, index: list,
                  shared: bool, count: int) -> torch.Tensor:
    """Each network's cross-entropy on its batch (`index`: one batch for all when `shared`, else one per
    network), shape (G,)."""
    x = X[index[0]].expand(count, -1, -1) if shared else torch.stack([X[i] for i in index])
    logits = stacked_forward(net, params, x)
    return torch.stack([nn.functional.cross_entropy(logits[g], y[index[0 if shared else g]])
                        for g in range(count)])  # one call per network: `train`'s rounding of the loss


def _total_norms(grads: list[torch.Tensor], count: int) -> torch.Tensor:
    """Each network's total gradient norm from its own slices, as clip_grad_norm_ takes it, (G,)."""
    per_tensor = torch._foreach_norm([g[k] for k in range(count) for g in grads])
    return torch.stack([torch.linalg.vector_norm(torch.stack(per_tensor[k * len(grads):(k + 1) * len(grads)]))
                        for k in range(count)])


def _clip_each(grads: list[torch.Tensor], total: torch.Tensor, clip: float) -> None:
    """Scale each network's gradients in place as clip_grad_norm_ would (its total norm at most `clip`)."""
    scale = torch.clamp(clip / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)))


def _momentum_steps(grads: list[torch.Tensor], buffers: list[torch.Tensor] | None,
                    momentum: float) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """The directions SGD steps along (the gradients, or with `momentum` its buffers, updated in place),
    and the buffers."""
    if not momentum:
        return grads, buffers
    if buffers is None:
        buffers = [g.clone() for g in grads]
    else:
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_add_(buffers, grads)
    return buffers, buffers


def _sgd_step(params: list[torch.Tensor], steps: list[torch.Tensor], lrs: list[float], running: torch.Tensor) -> None:
    """params -= lr * step, each network with its own lr; a stopped one keeps the weights it stopped with."""
    if running.all() and len(set(lrs)) == 1:
        torch._foreach_add_(params, steps, alpha=-lrs[0])
    else:  # network by network, on its slices
        for k in np.flatnonzero(running.numpy()):
            torch._foreach_add_([p[k] for p in params], [s[k] for s in steps], alpha=-lrs[k])


@torch.no_grad()
def _copy_back(nets, params: list[torch.Tensor]) -> None:
    """Each network's trained slices into its own parameters."""
    for k, net in enumerate(nets):
        for p, stacked in zip(net.parameters(), params):
            p.copy_(stacked[k])


def _histories(loss_table: np.ndarray, norm_table: np.ndarray) -> list[History]:
    """A History per network (column), up to and including its first step with a non-finite loss or norm."""
    histories = []
    for k in range(loss_table.shape[1]):
        bad = np.flatnonzero(~(np.isfinite(loss_table[:, k]) & np.isfinite(norm_table[:, k])))
        end = bad[0] + 1 if len(bad) else len(loss_table)
        histories.append(History(loss=loss_table[:end, k], grad_norm=norm_table[:end, k], diverged=bool(len(bad))))
    return histories
