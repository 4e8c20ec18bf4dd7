"""Vanilla RNNs trained side by side with BPTT written out (`train_rnns`), taught in notebook 03.

The nets' weights are stacked, so that a time step is one batched matmul and one tanh for all of
them: small RNNs on a CPU are dominated by the cost per op, not by arithmetic.
"""

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .training import LOSSES, SGD, Adam, History, batch_indices

if TYPE_CHECKING:
    from .recurrent import RecurrentNet


def train_rnns(models: list["RecurrentNet"], data: list[tuple[torch.Tensor, torch.Tensor]], *, lr: float,
               num_steps: int, batch_size: int = 64, loss: str = "cross_entropy", optimizer: str = "adam",
               clips: list[float | None] | None = None, seeds: list[int] | None = None) -> list[History]:
    """`train` for several vanilla RNNs (``RecurrentNet(cell="rnn")``) side by side, BPTT written out.

    Net k (all of the same sizes) trains on its own data ``data[k] = (X_k, y_k)``
    (the same number of sequences for all, any lengths), with its own batch order (``seeds[k]``, as
    `train`), its own clipping threshold (``clips[k]``: its own total norm, as
    `clip_grad_norm_`) and its own optimizer state (``"adam"`` or ``"sgd"``, as
    `train`). Their weights are stacked, so that a time step is one batched
    matmul and one tanh for all nets instead of a few small ops for each: small
    RNNs on a CPU are dominated by the cost per op, not by arithmetic. The
    backward pass is BPTT as the notebook writes it (Rumelhart, Hinton &
    Williams 1986; Werbos 1990), with pre_t = W_ih x_t + b + W_hh h_{t-1}, h_t = tanh(pre_t):

        dL/dpre_t = dL/dh_t * (1 - h_t^2),   dL/dh_{t-1} = W_hh^T dL/dpre_t,
        dL/dW_hh = sum_t dL/dpre_t h_{t-1}^T,   dL/dW_ih = sum_t dL/dpre_t x_t^T,   dL/db = sum_t dL/dpre_t,

    two ops per step each way; the head and the loss go through autograd. A net
    with ``truncate=k`` gets no dL/dh_{t-1} at its window starts (truncated BPTT,
    Williams & Peng 1990). Shorter sequences are padded at the end and read out
    at their own last step, so their padding gets no gradient. The same numbers
    as `train` on each net alone, up to float rounding (tests/test_recurrent.py
    checks float64 to 1e-10). A net whose loss or gradient norm stops being
    finite stops there (``History.diverged``), keeping its weights from before
    that step; the others go on. Trains the models in place; one History each.
    """
    count = len(models)
    clips = [None] * count if clips is None else list(clips)
    seeds = [0] * count if seeds is None else list(seeds)
    _check_side_by_side(models, data, loss, optimizer)
    torch.set_flush_denormal(True)  # as `train`: tiny gradients are otherwise very slow on CPU
    lengths = [X.shape[1] for X, _ in data]
    T, nets = max(lengths), torch.arange(count)
    Xs = torch.stack([nn.functional.pad(X, (0, 0, 0, T - X.shape[1])) for X, _ in data])  # (K, N, T, features)
    ys = torch.stack([y for _, y in data])
    weights, sizes, (W_ih, W_hh, b_ih, b_hh, W_out, b_out) = _stacked_weights(models)
    enters, cuts = _read_outs(lengths, Xs.dtype), _truncations(models, T, Xs.dtype)
    clip = torch.tensor([math.inf if c is None else c for c in clips], dtype=Xs.dtype)
    opt = (Adam([weights], lr=lr) if optimizer == "adam" else SGD([weights], lr=lr))
    batches = [batch_indices(len(Xs[0]), batch_size, seed=seed) for seed in seeds]
    losses, norms = [[] for _ in models], [[] for _ in models]
    frozen: dict[int, torch.Tensor] = {}  # the weights of a net that diverged, from before that step
    for _ in range(num_steps):
        index = torch.stack([next(batch) for batch in batches])  # (K, B)
        x = Xs[nets[:, None], index].transpose(1, 2).contiguous()  # (K, T, B, features)
        states, h_T = _forward(x, W_ih, W_hh, b_ih + b_hh, lengths, enters)
        per_net, dh_T, g_W_out, g_b_out = _head_and_loss(h_T, W_out, b_out, ys[nets[:, None], index], loss)
        grad = _gradient(_bptt(dh_T, states, W_hh, enters, cuts), x, states, g_W_out, g_b_out)
        total = _clip_each(grad, clip, clips)
        _record_step(per_net, total, losses, norms, frozen, weights)
        if len(frozen) == count:
            break
        weights.grad = grad
        opt.step()
    _copy_back(models, weights, frozen, sizes)
    return [History(loss=np.array(losses[k]), grad_norm=np.array(norms[k]), diverged=k in frozen)
            for k in range(count)]


def _check_side_by_side(models: list, data: list, loss: str, optimizer: str) -> None:
    """ValueError unless `train_rnns` can stack these nets and their data."""
    if any(model.cell != "rnn" for model in models):
        raise ValueError("train_rnns trains vanilla RNNs (cell='rnn') only")
    if len({tuple(p.shape for p in model.parameters()) for model in models}) != 1:
        raise ValueError("train_rnns stacks the nets' weights: give nets of the same sizes")
    if loss not in LOSSES or optimizer not in ("adam", "sgd"):
        raise ValueError(f"loss must be one of {list(LOSSES)} and optimizer 'adam' or 'sgd'; got {loss!r}, "
                         f"{optimizer!r}")
    if len({len(X) for X, _ in data}) != 1 or any(len(X) != len(y) for X, y in data) or len(data) != len(models):
        raise ValueError("give one (X, y) per model, all with the same number of sequences")


def _stacked_weights(models: list) -> tuple[torch.Tensor, list[int], tuple[torch.Tensor, ...]]:
    """All nets' parameters as one (K, parameters) tensor, the parameters' sizes, and views of it as
    (W_ih, W_hh, b_ih, b_hh, head weight, head bias), each with the nets along its first dimension.

    Row k holds net k's parameters one after the other (model.parameters() order), so clipping and
    the optimizer take a few ops for all nets.
    """
    shapes = [p.shape for p in models[0].parameters()]
    sizes = [shape.numel() for shape in shapes]
    weights = torch.stack([nn.utils.parameters_to_vector(model.parameters()).detach() for model in models])
    return weights, sizes, tuple(part.view(len(models), *shape) for part, shape in zip(weights.split(sizes, 1),
                                                                                        shapes))


def _read_outs(lengths: list[int], dtype: torch.dtype) -> dict[int, torch.Tensor]:
    """Step L -> a (K, 1, 1) mask of the nets whose sequences end at step L (read out there)."""
    return {L: torch.tensor([float(n == L) for n in lengths], dtype=dtype).view(-1, 1, 1) for L in set(lengths)}


def _truncations(models: list, T: int, dtype: torch.dtype) -> dict[int, torch.Tensor]:
    """Step t -> a (K, 1, 1) mask, 0 for the nets whose truncated BPTT cuts the gradient at step t."""
    return {t: torch.tensor([0.0 if model.truncate and t % model.truncate == 0 else 1.0 for model in models],
                            dtype=dtype).view(-1, 1, 1)
            for t in range(1, T) if any(model.truncate and t % model.truncate == 0 for model in models)}


@torch.no_grad()
def _forward(x: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, bias: torch.Tensor, lengths: list[int],
             enters: dict) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The states h_0 = 0, h_1, ..., h_T of every net on its batch `x` (K, T, B, features), and the state
    each net is read out at (its last step), which requires grad for the head's autograd."""
    count, steps = x.shape[0], x.shape[:3]
    inputs = (torch.bmm(x.view(count, -1, x.shape[-1]), W_ih.transpose(1, 2))
              + bias[:, None]).view(*steps, -1)  # W_ih x_t + b for all steps: (K, T, B, H)
    h, W_hh_t = inputs.new_zeros(count, steps[2], inputs.shape[-1]), W_hh.transpose(1, 2)
    states = [h]  # h_0 = 0, h_1, ..., h_T
    for step_input in inputs.unbind(1):
        h = torch.baddbmm(step_input, h, W_hh_t).tanh_()
        states.append(h)
    h_T = (h if len(enters) == 1 else torch.stack([states[L][k] for k, L in enumerate(lengths)]))
    return states, h_T.requires_grad_()


def _head_and_loss(h_T: torch.Tensor, W_out: torch.Tensor, b_out: torch.Tensor, target: torch.Tensor,
                   loss: str) -> tuple[torch.Tensor, ...]:
    """Each net's loss on its batch (K,), and by autograd dL/dh_T and the head's gradients."""
    head = [W_out.detach().requires_grad_(), b_out.detach().requires_grad_()]
    output = torch.baddbmm(head[1][:, None], h_T, head[0].transpose(1, 2))  # (K, B, outputs)
    if loss == "cross_entropy":
        per_net = nn.functional.cross_entropy(output.flatten(0, 1), target.flatten(), reduction="none")
        per_net = per_net.view(len(h_T), -1).mean(1)
    else:
        per_net = (output - target).square().mean((1, 2))
    return (per_net, *torch.autograd.grad(per_net.sum(), (h_T, *head)))


@torch.no_grad()
def _bptt(dh_T: torch.Tensor, states: list[torch.Tensor], W_hh: torch.Tensor, enters: dict,
          cuts: dict) -> torch.Tensor:
    """dL/dpre_t of every net for t = 1 ... T, backpropagated through time from each net's read-out step
    (`enters`) and cut where its truncation says (`cuts`): (K, H, T * B)."""
    T = len(states) - 1
    dpre: list[torch.Tensor] = [states[-1]] * T  # dpre[t - 1] = dL/dpre_t
    dh = dh_T if len(enters) == 1 else torch.zeros_like(dh_T)
    for t in range(T, 0, -1):
        if len(enters) > 1 and t in enters:
            dh = dh + dh_T * enters[t]  # the loss reads the nets of this length here
        dpre[t - 1] = torch.ops.aten.tanh_backward(dh, states[t])  # dh * (1 - h_t^2)
        if t > 1:
            dh = torch.bmm(dpre[t - 1], W_hh)
            if t - 1 in cuts:
                dh = dh * cuts[t - 1]
    return torch.stack(dpre, 1).view(len(dh), -1, dh.shape[-1]).transpose(1, 2)


@torch.no_grad()
def _gradient(dpre_all: torch.Tensor, x: torch.Tensor, states: list[torch.Tensor], g_W_out: torch.Tensor,
              g_b_out: torch.Tensor) -> torch.Tensor:
    """Every net's gradient (K, parameters), laid out as `_stacked_weights`' rows: dL/dW_ih, dL/dW_hh and
    dL/db (twice: b_ih and b_hh) summed over the steps from dL/dpre (`_bptt`), then the head's."""
    count, hidden = dpre_all.shape[:2]
    g_b = dpre_all.sum(2)
    grads = [torch.bmm(dpre_all, x.view(count, -1, x.shape[-1])),
             torch.bmm(dpre_all, torch.stack(states[:-1], 1).view(count, -1, hidden)),
             g_b, g_b, g_W_out, g_b_out]
    return torch.cat([g.flatten(1) for g in grads], 1)


@torch.no_grad()
def _clip_each(grad: torch.Tensor, clip: torch.Tensor, clips: list) -> torch.Tensor:
    """Each net's total gradient norm; scales each net's gradient in place as `clip_grad_norm_` would."""
    total = torch.linalg.vector_norm(grad, dim=1)  # each net's total gradient norm
    if any(c is not None for c in clips):  # clip_grad_norm_'s factor, net by net (1 where clip is None)
        grad.mul_((clip / (total + 1e-6)).clamp(max=1.0)[:, None])
    return total


def _record_step(per_net: torch.Tensor, total: torch.Tensor, losses: list, norms: list, frozen: dict,
                 weights: torch.Tensor) -> None:
    """Append each running net's loss and gradient norm; a net whose loss or norm is not finite stops,
    its weights from before this step kept in `frozen`."""
    for k, (value, norm) in enumerate(zip(per_net.tolist(), total.tolist())):
        if k not in frozen:
            losses[k].append(value)
            norms[k].append(norm)
            if not math.isfinite(value) or not math.isfinite(norm):
                frozen[k] = weights[k].clone()


@torch.no_grad()
def _copy_back(models: list, weights: torch.Tensor, frozen: dict, sizes: list[int]) -> None:
    """Each net's trained (or, once diverged, frozen) weights into its model."""
    for k, model in enumerate(models):
        for param, trained in zip(model.parameters(), frozen.get(k, weights[k]).split(sizes)):
            param.copy_(trained.view_as(param))
