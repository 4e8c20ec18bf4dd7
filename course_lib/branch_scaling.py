"""Residual-branch scaling: deep residual networks trained without any normalization.

A residual block adds its branch to the stream, h_{k+1} = h_k + alpha_k F(h_k).
Without normalization each branch adds its own variance: when F keeps the
scale of its input (He init), Var(h_{k+1}) = (1 + alpha^2) Var(h_k), so after
L blocks

    Var(h_L) = (1 + alpha^2)^L Var(h_0)

which is 2^L for alpha = 1: the forward pass explodes and so does the
gradient. The remedies shrink the branches at initialization instead of
normalizing (taught in notebook 09, E15):

=========== =============================================================== ==================================
scheme      what it does                                                    paper
=========== =============================================================== ==================================
unscaled    alpha = 1, He init                                              (the baseline that fails)
rezero      alpha_k a learnable scalar, initialized to 0                    Bachlechner et al. 2021 (arXiv 2020)
skipinit    alpha_k a learnable scalar, initialized small (< 1/sqrt(L))     De & Smith 2020
fixup       last layer of each branch zero, the others scaled by            Zhang, Dauphin & Ma 2019
            L^(-1/(2m-2)) (= 1/sqrt(L) for m = 2 layers), zero head,
            scalar biases and a scalar multiplier per branch
gpt2        last layer of each branch scaled by 1/sqrt(L) at init           Radford et al. 2019 (GPT-2:
            (1/sqrt(2N) for N transformer blocks of two branches)           1/sqrt(N) over N residual layers)
=========== =============================================================== ==================================
"""

import math

import numpy as np
import torch
from torch import nn

from .datasets import load_digits
from .seeding import one_torch_thread
from .training import accuracy, train

SCHEMES = ("unscaled", "rezero", "skipinit", "fixup", "gpt2")


def residual_variance(num_blocks: int, branch_scale: float, branch_gain: float = 1.0) -> float:
    """Var(h_L) / Var(h_0) through `num_blocks` blocks h + s F(h) whose branch F multiplies variance by gain^2.

    (1 + s^2 gain^2)^L: each independent branch adds s^2 gain^2 Var(h) to the stream.
    2^L unscaled, about e for s = 1/sqrt(L) (GPT-2), exactly 1 for s = 0 (ReZero, SkipInit at 0, Fixup).

    >>> residual_variance(10, 1.0)
    1024.0
    """
    return (1.0 + (branch_scale * branch_gain) ** 2) ** num_blocks


class ScaledBlock(nn.Module):
    """h + alpha * (W2 relu(W1 h + b1) + b2), with Fixup's scalar biases when `fixup`.

    `alpha` is a learnable scalar (ReZero, SkipInit, Fixup's multiplier) or a
    fixed 1 (unscaled, GPT-2).
    """

    def __init__(self, width: int, *, alpha: float = 1.0, learn_alpha: bool = False, fixup: bool = False):
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(width, width), nn.Linear(width, width)
        alpha = torch.tensor(float(alpha))
        self.alpha = nn.Parameter(alpha) if learn_alpha else nn.Buffer(alpha)
        self.fixup = fixup
        if fixup:  # Zhang et al. 2019: a scalar bias before each linear layer and activation
            self.bias_in, self.bias_mid, self.bias_out = (nn.Parameter(torch.zeros(())) for _ in range(3))

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        """F(h), before the scale alpha."""
        if self.fixup:
            return self.linear2(torch.relu(self.linear1(h + self.bias_in) + self.bias_mid)) + self.bias_out
        return self.linear2(torch.relu(self.linear1(h)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.alpha * self.branch(h)


class ScaledResNet(nn.Module):
    """stem Linear -> `ScaledBlock`s -> linear head; no normalization anywhere."""

    def __init__(self, in_features: int, width: int, num_blocks: int, out_features: int, **block_args):
        super().__init__()
        self.stem = nn.Linear(in_features, width)
        self.blocks = nn.ModuleList([ScaledBlock(width, **block_args) for _ in range(num_blocks)])
        self.head = nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def build_scaled_resnet(scheme: str, num_blocks: int, width: int = 64, *, in_features: int = 64,
                        out_features: int = 10, skipinit_alpha: float | None = None,
                        seed: int = 0) -> ScaledResNet:
    """A normalization-free residual MLP with `num_blocks` blocks, initialized by `scheme` (see ``SCHEMES``).

    Every linear layer starts He-initialized (std sqrt(2 / fan_in), biases 0); then
    rezero:   alpha = 0, learnable (Bachlechner et al.);
    skipinit: alpha = `skipinit_alpha` (default 1 / (2 sqrt(L))), learnable (De & Smith);
    fixup:    W1 *= L^(-1/2), W2 = 0, head = 0, scalar biases, alpha = 1 learnable (Zhang et al., m = 2);
    gpt2:     W2 *= 1/sqrt(L), alpha = 1 fixed (Radford et al.).

    >>> net = build_scaled_resnet("rezero", 4, 8, seed=0)
    >>> float(net.blocks[0].alpha), net(torch.zeros(2, 64)).shape
    (0.0, torch.Size([2, 10]))
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; choose one of {list(SCHEMES)}")
    if not isinstance(num_blocks, int) or num_blocks < 1:
        raise ValueError(f"num_blocks must be an int >= 1, got {num_blocks!r}")
    if skipinit_alpha is None:
        skipinit_alpha = 0.5 / math.sqrt(num_blocks)
    block_args = {"unscaled": dict(alpha=1.0), "gpt2": dict(alpha=1.0),
                  "rezero": dict(alpha=0.0, learn_alpha=True),
                  "skipinit": dict(alpha=skipinit_alpha, learn_alpha=True),
                  "fixup": dict(alpha=1.0, learn_alpha=True, fixup=True)}[scheme]
    net = ScaledResNet(in_features, width, num_blocks, out_features, **block_args)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.Linear):  # He init where a ReLU follows, LeCun (gain 1) elsewhere
                gain = 2.0 if any(module is block.linear1 for block in net.blocks) else 1.0
                module.weight.normal_(0.0, math.sqrt(gain / module.in_features), generator=generator)
                module.bias.zero_()
        for block in net.blocks:
            if scheme == "fixup":
                block.linear1.weight.mul_(num_blocks ** -0.5)  # L^(-1/(2m-2)) with m = 2
                block.linear2.weight.zero_()
            elif scheme == "gpt2":
                block.linear2.weight.mul_(num_blocks ** -0.5)
        if scheme == "fixup":
            net.head.weight.zero_()
    return net


def stream_variances(scheme: str, num_blocks: int, *, width: int = 64, seed: int = 0) -> np.ndarray:
    """Var(h_k) / Var(h_0) at the output of each block k = 0..L, at init, on 512 digits (h_0: the stem's output)."""
    X, _ = load_digits()
    net = build_scaled_resnet(scheme, num_blocks, width, seed=seed).double()
    with torch.no_grad(), one_torch_thread():
        h = net.stem(X[:512].double())
        variances = [h.var().item()]
        for block in net.blocks:
            h = block(h)
            variances.append(h.var().item())
    return np.array(variances) / variances[0]


def train_scaled_resnet(scheme: str, num_blocks: int = 32, *, width: int = 64, lr: float = 0.01,
                        momentum: float = 0.9, num_steps: int = 150, batch_size: int = 128,
                        seed: int = 0) -> dict:
    """E15: train `build_scaled_resnet` on the digits with SGD; returns {"loss", "final_loss", "accuracy", "diverged"}.

    Without normalization and without scaling (``"unscaled"``), the stream's
    variance doubles per block, the logits are huge and SGD diverges; each
    scaled scheme starts as a near-identity network and trains.
    """
    X, y = load_digits()
    net = build_scaled_resnet(scheme, num_blocks, width, seed=seed)
    with one_torch_thread():
        history = train(net, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                        seed=seed, progress=False)
        acc = math.nan if history.diverged else accuracy(net, X, y)
    return {"loss": history.loss, "final_loss": history.final_loss, "accuracy": acc, "diverged": history.diverged}
