"""BatchNorm and LayerNorm from scratch: forward, backward, running statistics.

Both normalize a tensor to zero mean and unit variance, then scale by
gamma and shift by beta; they differ only in the axis they average over.

BatchNorm (Ioffe & Szegedy 2015, "Batch normalization: accelerating deep
network training by reducing internal covariate shift", ICML), per feature j
over the N examples of a batch::

    mu_j = mean_i x_ij,   var_j = mean_i (x_ij - mu_j)^2     (biased: divide by N)
    x_hat_ij = (x_ij - mu_j) / sqrt(var_j + eps),   y_ij = gamma_j x_hat_ij + beta_j

LayerNorm (Ba, Kiros & Hinton 2016, "Layer normalization", arXiv:1607.06450),
per example over its own D features (the last axis), so it needs no batch and
behaves the same in training and at test time.

The backward pass of either, with g = dL/dy and g_hat = gamma * g, averaging
over the normalized axis (Ioffe & Szegedy 2015, section 3)::

    dL/dx = (g_hat - mean(g_hat) - x_hat * mean(g_hat * x_hat)) / sqrt(var + eps)
    dL/dgamma = sum of g * x_hat,   dL/dbeta = sum of g    (over every axis but the feature axis)

The two subtracted means are the gradient that flows through mu and var:
forgetting them is the classic bug. Taught in notebook 06 (checked there
against ``torch.nn.functional`` and by gradient checking, E12); the
experiment runners at the end back E8 and the weight-scale sweep.
"""

import math

import numpy as np
import torch

from .datasets import load_digits
from .models import build_mlp
from .monitoring import GradientMonitor
from .seeding import one_torch_thread
from .training import accuracy, train


def _normalize_forward(X: torch.Tensor, gamma, beta, *, dim: int, eps: float):
    mean = X.mean(dim=dim, keepdim=True)
    var = X.var(dim=dim, unbiased=False, keepdim=True)
    std = torch.sqrt(var + eps)
    X_hat = (X - mean) / std
    return gamma * X_hat + beta, (X_hat, std, gamma, dim)


def _normalize_backward(grad_out: torch.Tensor, cache):
    X_hat, std, gamma, dim = cache
    g_hat = grad_out * gamma
    grad_X = (g_hat - g_hat.mean(dim=dim, keepdim=True)
              - X_hat * (g_hat * X_hat).mean(dim=dim, keepdim=True)) / std
    feature_dims = tuple(range(grad_out.dim() - 1))  # gamma lives on the last axis
    grad_gamma = (grad_out * X_hat).sum(dim=feature_dims) if feature_dims else grad_out * X_hat
    grad_beta = grad_out.sum(dim=feature_dims) if feature_dims else grad_out.clone()
    return grad_X, grad_gamma, grad_beta


def batch_norm_forward(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, *, eps: float = 1e-5):
    """Training-mode BatchNorm of X (N, D) with this batch's statistics; returns (y, cache).

    y = gamma * (X - mean) / sqrt(var + eps) + beta, mean and biased var over
    the batch (axis 0), one pair per feature (Ioffe & Szegedy 2015, Algorithm 1).
    The cache holds what `batch_norm_backward` needs.

    >>> X = torch.randn(32, 3, dtype=torch.float64)
    >>> y, _ = batch_norm_forward(X, torch.ones(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    >>> bool(torch.allclose(y.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-12))
    True
    """
    if X.dim() != 2:
        raise ValueError(f"batch_norm_forward expects X of shape (N, D), got {tuple(X.shape)}")
    return _normalize_forward(X, gamma, beta, dim=0, eps=eps)


def batch_norm_backward(grad_out: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dX, dL/dgamma, dL/dbeta) of training-mode BatchNorm, given dL/dy and the forward's cache.

    dX = (g_hat - mean_batch(g_hat) - x_hat * mean_batch(g_hat * x_hat)) / sqrt(var + eps),
    g_hat = gamma * dL/dy: every example's gradient depends on the whole batch,
    because every example moved the batch mean and variance.
    """
    return _normalize_backward(grad_out, cache)


def layer_norm_forward(X: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, *, eps: float = 1e-5):
    """LayerNorm of X (..., D) over its last axis; returns (y, cache).

    Each example (each token, for a transformer) is normalized with its own
    mean and biased variance over its D features (Ba et al. 2016, eq. 4), so
    the result never depends on the rest of the batch.
    """
    if X.dim() < 1:
        raise ValueError("layer_norm_forward needs at least one axis")
    return _normalize_forward(X, gamma, beta, dim=-1, eps=eps)


def layer_norm_backward(grad_out: torch.Tensor, cache) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dL/dX, dL/dgamma, dL/dbeta) of LayerNorm: the BatchNorm formula, averaged over features."""
    return _normalize_backward(grad_out, cache)


class BatchNorm:
    """From-scratch BatchNorm1d with running statistics, in train or eval mode, as PyTorch does it.

    Train mode normalizes with the batch's statistics and updates
    running = (1 - momentum) * running + momentum * batch (the running variance
    with the unbiased batch variance, N / (N - 1) times the biased one). Eval
    mode normalizes with the running statistics: a fixed affine map, the same
    for every example whatever else is in the batch (Ioffe & Szegedy 2015, Alg. 2).
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 dtype: torch.dtype = torch.float64):
        self.eps, self.momentum = eps, momentum
        self.gamma = torch.ones(num_features, dtype=dtype)
        self.beta = torch.zeros(num_features, dtype=dtype)
        self.running_mean = torch.zeros(num_features, dtype=dtype)
        self.running_var = torch.ones(num_features, dtype=dtype)
        self.training = True
        self._cache = None

    def train(self, mode: bool = True) -> "BatchNorm":
        self.training = mode
        return self

    def eval(self) -> "BatchNorm":
        return self.train(False)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        if not self.training:
            scale = 1 / torch.sqrt(self.running_var + self.eps)
            X_hat = (X - self.running_mean) * scale
            self._cache = ("eval", (X_hat, scale))
            return self.gamma * X_hat + self.beta
        if X.shape[0] < 2:
            raise ValueError("BatchNorm in train mode needs at least 2 examples per batch "
                             "(the variance of one example is 0); use eval mode")
        y, cache = batch_norm_forward(X, self.gamma, self.beta, eps=self.eps)
        self._cache = ("train", cache)
        m = self.momentum
        self.running_mean = (1 - m) * self.running_mean + m * X.mean(dim=0)
        self.running_var = (1 - m) * self.running_var + m * X.var(dim=0, unbiased=True)
        return y

    def backward(self, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dL/dX, dL/dgamma, dL/dbeta) for the last call.

        In eval mode the statistics are constants, so dL/dX is just
        dL/dy * gamma / sqrt(running_var + eps): no coupling between examples.
        """
        if self._cache is None:
            raise RuntimeError("call the layer on a batch before backward")
        mode, cache = self._cache
        if mode == "train":
            return batch_norm_backward(grad_out, cache)
        X_hat, scale = cache
        return grad_out * self.gamma * scale, (grad_out * X_hat).sum(dim=0), grad_out.sum(dim=0)


# -- experiments of notebook 06 ---------------------------------------------------------

def layer_statistics_at_init(depth: int, width: int, *, activation: str = "sigmoid", norm: str | None = None,
                             init: str = "normal", std: float | None = 0.1, weight_scale: float = 1.0,
                             batch_size: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Per-layer statistics (layer 1 first) of a digits classifier at initialization, one batch.

    A `build_mlp` network (10-way cross-entropy head) in training mode, so
    BatchNorm uses the batch's statistics as it does while learning. Returns
    {"grad_norm": ||dL/dW||, "out_grad_norm": ||dL/dh||, "act_std": std of h},
    as measured by `course_lib.monitoring.GradientMonitor`.
    """
    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:batch_size]
    net = build_mlp(depth, width, activation=activation, norm=norm, init=init,
                    std=std if init == "normal" else None, weight_scale=weight_scale,
                    in_features=64, out_features=10, seed=seed)
    with one_torch_thread(), GradientMonitor(net) as monitor:
        torch.nn.functional.cross_entropy(net(X[index]), y[index]).backward()
    return {metric: monitor.latest(metric) for metric in ("grad_norm", "out_grad_norm", "act_std")}


def train_digits(depth: int, width: int, *, activation: str = "sigmoid", norm: str | None = None,
                 init: str = "normal", std: float | None = 0.1, weight_scale: float = 1.0, lr: float = 0.1,
                 num_steps: int = 300, batch_size: int = 128, momentum: float = 0.0,
                 seed: int = 0) -> dict:
    """Train a `build_mlp` classifier on the digits; returns {"accuracy", "final_loss", "loss"}.

    Accuracy is measured on the whole digits set in eval mode (BatchNorm uses
    its running statistics), so it says how far optimization got in
    `num_steps` steps: E8 (Ioffe & Szegedy 2015, figure 1, their MNIST
    experiment: BatchNorm trains a 3 x 100 sigmoid net much faster) and the
    weight-scale sweep (CS231n).
    """
    X, y = load_digits()
    net = build_mlp(depth, width, activation=activation, norm=norm, init=init,
                    std=std if init == "normal" else None, weight_scale=weight_scale,
                    in_features=64, out_features=10, seed=seed)
    with one_torch_thread():
        history = train(net, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                        seed=seed, progress=False)
        acc = math.nan if history.diverged else accuracy(net, X, y)
    return {"accuracy": acc, "final_loss": history.final_loss, "loss": history.loss}


def weight_scale_sweep(scales, *, norm: str | None, depth: int = 6, width: int = 50, activation: str = "sigmoid",
                       lr: float = 0.1, momentum: float = 0.9, num_steps: int = 100, seed: int = 0) -> np.ndarray:
    """Digits accuracy after `num_steps` steps for each initial weight std in `scales` (W ~ N(0, scale^2)).

    The sweep of CS231n's BatchNormalization assignment ("batch normalization
    and initialization"): without normalization only a narrow band of scales
    trains; with BatchNorm the forward pass does not depend on the scale at
    all (BN(aWx) = BN(Wx)), so a wide range does. NaN marks a diverged run.
    """
    return np.array([train_digits(depth, width, activation=activation, norm=norm, std=float(scale), lr=lr,
                                  momentum=momentum, num_steps=num_steps, seed=seed)["accuracy"]
                     for scale in scales])
