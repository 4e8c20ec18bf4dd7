"""Weight initialization schemes, written out so students can read the formulas.

Each scheme sets a layer's weights from its fan-in and fan-out. The tests
check every one against `torch.nn.init` statistics. Taught in notebook 05
(and used from notebook 02 on).

Schemes (``SCHEMES``), with the std of W for a layer of fan-in n_in, fan-out n_out:

============== =========================================== ===========================
name           distribution                                paper
============== =========================================== ===========================
default        U(-1/sqrt(n_in), 1/sqrt(n_in)), bias too    PyTorch's ``nn.Linear``
standard       U(-1/sqrt(n_in), 1/sqrt(n_in)), bias 0      Glorot & Bengio 2010, eq. 1
xavier         U(-a, a), a = gain*sqrt(6/(n_in+n_out))     Glorot & Bengio 2010, eq. 16
xavier_normal  N(0, gain^2 * 2/(n_in+n_out))               Glorot & Bengio 2010
he             N(0, gain^2/n_in), gain sqrt(2) for ReLU    He et al. 2015
he_uniform     U(-b, b), b = gain*sqrt(3/n_in)             He et al. 2015
lecun          N(0, 1/n_in)                                LeCun et al. 1998
orthogonal     gain * Q, Q with orthonormal rows/columns   Saxe et al. 2013
normal         N(0, std^2) (``std`` required)              --
small_normal   N(0, 0.01^2)                                the classic "small random"
zeros          all zero: every unit stays the same (nb 05) --
============== =========================================== ===========================
"""

import math

import torch
from torch import nn

SCHEMES = ("default", "standard", "xavier", "xavier_normal", "he", "he_uniform",
           "lecun", "orthogonal", "normal", "small_normal", "zeros")
ALIASES = {"glorot": "xavier", "xavier_uniform": "xavier", "glorot_normal": "xavier_normal",
           "kaiming": "he", "he_normal": "he", "kaiming_normal": "he", "kaiming_uniform": "he_uniform"}

_GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3,
          "relu": math.sqrt(2.0), "selu": 3.0 / 4,
          # No derivation exists for these; they behave like ReLU for x > 0.
          "elu": math.sqrt(2.0), "gelu": math.sqrt(2.0), "silu": math.sqrt(2.0)}


def calculate_gain(activation: str, negative_slope: float = 0.01) -> float:
    """The factor that keeps activation variance constant through `activation`.

    Same values as ``torch.nn.init.calculate_gain``: 1 for linear and sigmoid,
    5/3 for tanh, sqrt(2) for ReLU, sqrt(2 / (1 + slope^2)) for leaky ReLU
    (He et al. 2015, eq. 15 with the slope a). ELU, GELU and SiLU get ReLU's
    sqrt(2), an approximation: no closed form is standard for them.

    >>> round(calculate_gain("relu"), 4)
    1.4142
    """
    name = activation.lower()
    if name == "leaky_relu":
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if name not in _GAINS:
        raise ValueError(f"unknown activation {activation!r}; "
                         f"choose one of {sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[name]


def fan_in_and_fan_out(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight laid out as PyTorch does: (out, in, *kernel)."""
    if weight.dim() < 2:
        raise ValueError(f"fan-in and fan-out need a weight with at least 2 dims, got shape {tuple(weight.shape)}")
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def resolve_scheme(scheme: str) -> str:
    """The canonical name of `scheme` (aliases such as 'kaiming' -> 'he'); ValueError if unknown."""
    name = ALIASES.get(scheme.lower(), scheme.lower()) if isinstance(scheme, str) else None
    if name not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; choose one of {list(SCHEMES)} "
                         f"(aliases: {sorted(ALIASES)})")
    return name


def orthogonal_(weight: torch.Tensor, gain: float = 1.0, *, generator=None) -> torch.Tensor:
    """Fill `weight` with gain * a random (semi-)orthogonal matrix, in place.

    Saxe, McClelland & Ganguli 2013, "Exact solutions to the nonlinear dynamics
    of learning in deep linear neural networks": with W^T W = I every singular
    value of a deep linear net's end-to-end map is exactly 1 (dynamical
    isometry). Q comes from the QR decomposition of a Gaussian matrix, with the
    signs of R's diagonal folded in so that Q is uniformly (Haar) distributed.
    """
    rows = weight.shape[0]
    cols = weight.numel() // rows
    flat = torch.randn(max(rows, cols), min(rows, cols), generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diagonal(r))
    if rows < cols:
        q = q.T
    with torch.no_grad():
        weight.copy_((gain * q).reshape(weight.shape).to(weight.dtype))
    return weight


def init_weight_(weight: torch.Tensor, scheme: str, *, activation: str | None = None,
                 gain: float | None = None, std: float | None = None, generator=None) -> torch.Tensor:
    """Initialize `weight` in place with a named scheme (see the module table).

    Args:
        weight: a tensor shaped (fan_out, fan_in, *kernel).
        scheme: a name from ``SCHEMES`` or ``ALIASES``.
        activation: sets the gain for xavier/he/orthogonal via ``calculate_gain``
            (he defaults to ReLU's sqrt(2), the others to 1).
        gain: overrides the gain.
        std: the standard deviation for ``"normal"``.
        generator: a ``torch.Generator`` for reproducible draws.

    >>> w = init_weight_(torch.empty(256, 512), "he", generator=torch.Generator().manual_seed(0))
    >>> abs(w.std().item() - math.sqrt(2 / 512)) < 0.002
    True
    """
    name = resolve_scheme(scheme)
    fan_in, fan_out = fan_in_and_fan_out(weight)
    if gain is None:
        gain = calculate_gain(activation) if activation else (math.sqrt(2.0) if name.startswith("he") else 1.0)
    with torch.no_grad():
        if name in ("default", "standard"):
            bound = 1.0 / math.sqrt(fan_in)
            weight.uniform_(-bound, bound, generator=generator)
        elif name == "xavier":
            bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
            weight.uniform_(-bound, bound, generator=generator)
        elif name == "xavier_normal":
            weight.normal_(0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
        elif name == "he":
            weight.normal_(0.0, gain / math.sqrt(fan_in), generator=generator)
        elif name == "he_uniform":
            bound = gain * math.sqrt(3.0 / fan_in)
            weight.uniform_(-bound, bound, generator=generator)
        elif name == "lecun":
            weight.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=generator)
        elif name == "orthogonal":
            orthogonal_(weight, gain, generator=generator)
        elif name == "normal":
            if std is None or std < 0:
                raise ValueError(f"scheme 'normal' needs std >= 0, got std={std!r}")
            weight.normal_(0.0, std, generator=generator)
        elif name == "small_normal":
            weight.normal_(0.0, 0.01 if std is None else std, generator=generator)
        elif name == "zeros":
            weight.zero_()
    return weight


def initialize_(model: nn.Module, scheme: str, *, activation: str | None = None,
                gain: float | None = None, std: float | None = None, generator=None) -> nn.Module:
    """Initialize every ``nn.Linear`` in `model` with `scheme`, in place; returns `model`.

    Biases start at 0, except for ``"default"``, which keeps PyTorch's
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) bias.
    """
    name = resolve_scheme(scheme)
    for module in model.modules():
        if isinstance(module, nn.Linear):
            init_weight_(module.weight, name, activation=activation, gain=gain, std=std, generator=generator)
            if module.bias is not None:
                with torch.no_grad():
                    if name == "default":
                        bound = 1.0 / math.sqrt(module.in_features)
                        module.bias.uniform_(-bound, bound, generator=generator)
                    else:
                        module.bias.zero_()
    return model
