"""Networks used across the course, built from plain PyTorch modules.

``build_mlp`` is the workhorse: a stack of ``depth`` blocks, each
Linear -> (norm) -> activation, optionally with a residual connection.
Every block is a `Block` with ``.linear``, ``.norm`` and ``.act``, which is
what `course_lib.monitoring.GradientMonitor` watches layer by layer.
"""

import torch
from torch import nn

from .initialization import initialize_, resolve_scheme

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu", "linear")
NORMS = (None, "batch", "layer")


def make_activation(name: str, *, negative_slope: float = 0.01) -> nn.Module:
    """An activation module by name (one of ``ACTIVATIONS``)."""
    name = name.lower()
    table = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU,
             "gelu": nn.GELU, "silu": nn.SiLU, "linear": nn.Identity, "identity": nn.Identity}
    if name == "leaky_relu":
        return nn.LeakyReLU(negative_slope)
    if name not in table:
        raise ValueError(f"unknown activation {name!r}; choose one of {list(ACTIVATIONS)}")
    return table[name]()


def activation_derivative(name: str, z: torch.Tensor, *, negative_slope: float = 0.01) -> torch.Tensor:
    """The local derivative f'(z) of activation `name` at pre-activations `z`, elementwise.

    Backprop multiplies the incoming gradient by exactly this factor, so it is
    what decides whether a unit passes gradient: sigmoid' = s(1 - s) <= 1/4,
    tanh' = 1 - tanh^2 <= 1, ReLU' = 1 on the active side and 0 elsewhere.
    """
    name = name.lower()
    if name == "sigmoid":
        s = torch.sigmoid(z)
        return s * (1 - s)
    if name == "tanh":
        return 1 - torch.tanh(z) ** 2
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "leaky_relu":
        # the slope in z's own dtype (python scalars in torch.where would round it to float32)
        return torch.ones_like(z).masked_fill_(z <= 0, negative_slope)
    if name == "elu":
        return torch.where(z > 0, torch.ones_like(z), torch.exp(z))
    if name == "gelu":  # d/dz [z * Phi(z)] = Phi(z) + z * phi(z)
        return 0.5 * (1 + torch.erf(z / 2**0.5)) + z * torch.exp(-0.5 * z**2) / (2 * torch.pi) ** 0.5
    if name == "silu":
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    if name in ("linear", "identity"):
        return torch.ones_like(z)
    raise ValueError(f"unknown activation {name!r}; choose one of {list(ACTIVATIONS)}")


def make_norm(norm: str | None, width: int) -> nn.Module:
    """BatchNorm1d, LayerNorm or Identity for `norm` in (``"batch"``, ``"layer"``, None)."""
    aliases = {"none": None, "batchnorm": "batch", "bn": "batch", "layernorm": "layer", "ln": "layer"}
    key = aliases.get(norm.lower(), norm.lower()) if isinstance(norm, str) else norm
    if key is None:
        return nn.Identity()
    if key == "batch":
        return nn.BatchNorm1d(width)
    if key == "layer":
        return nn.LayerNorm(width)
    raise ValueError(f"unknown norm {norm!r}; choose one of {list(NORMS)}")


class Block(nn.Module):
    """One hidden layer: h = act(norm(W x + b)), plus x when residual (He et al. 2016)."""

    def __init__(self, fan_in: int, fan_out: int, *, activation: str, norm: str | None, residual: bool):
        super().__init__()
        self.linear = nn.Linear(fan_in, fan_out)
        self.norm = make_norm(norm, fan_out)
        self.act = make_activation(activation)
        self.activation = activation.lower()
        self.residual = residual and fan_in == fan_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act(self.norm(self.linear(x)))
        return x + h if self.residual else h


class MLP(nn.Module):
    """A stack of `Block`s and an optional linear head; ``.blocks`` are the monitored layers."""

    def __init__(self, blocks: list[Block], head: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.head(x) if self.head is not None else x


def build_mlp(depth: int, width: int, *, activation: str = "relu", init: str = "default",
              norm: str | None = None, residual: bool = False, in_features: int | None = None,
              out_features: int | None = None, weight_scale: float = 1.0, gain: float | None = None,
              std: float | None = None, seed: int | None = None) -> MLP:
    """A multilayer perceptron of `depth` hidden blocks of `width` units.

    Args:
        depth: number of hidden blocks (Linear -> norm -> activation), >= 1.
        width: units per hidden block.
        activation: one of ``ACTIVATIONS``.
        init: a scheme from `course_lib.initialization` (``"he"``, ``"xavier"``, ...);
            its gain follows `activation` unless `gain` is given.
        norm: None, ``"batch"`` (Ioffe & Szegedy 2015) or ``"layer"`` (Ba et al. 2016).
        residual: add the block's input to its output where shapes match
            (He et al. 2016), the identity path that keeps gradients alive.
        in_features: input size (default `width`).
        out_features: adds a linear head to this many outputs (default: no head).
        weight_scale: multiplies every weight after init (for weight-scale sweeps).
        std: the std for ``init="normal"``.
        seed: draw the weights from this seed (default: the global RNG).

    >>> net = build_mlp(3, 16, activation="tanh", init="xavier", in_features=4, out_features=2, seed=0)
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 2])
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    resolve_scheme(init)
    make_activation(activation)
    in_features = width if in_features is None else in_features
    blocks = [Block(in_features if i == 0 else width, width, activation=activation, norm=norm,
                    residual=residual) for i in range(depth)]
    head = nn.Linear(width, out_features) if out_features is not None else None
    net = MLP(blocks, head)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    init_activation = None if activation.lower() in ("linear", "identity") else activation
    initialize_(net, init, activation=init_activation, gain=gain, std=std, generator=generator)
    if weight_scale != 1.0:
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, nn.Linear):
                    module.weight.mul_(weight_scale)
    return net
