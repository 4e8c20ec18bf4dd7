"""Variance propagation: how initialization sets the size of signals and gradients layer by layer.

For a layer z_l = W_l h_{l-1} + b_l, h_l = phi(z_l) with W ~ N(0, sigma_w^2 / fan_in)
and b ~ N(0, sigma_b^2), independent of everything else, each unit of z_l is
a sum of fan_in independent terms, so

    q_l = Var(z_l) = sigma_w^2 * E[phi(z_{l-1})^2] + sigma_b^2,  z_{l-1} ~ N(0, q_{l-1}).

This is the *variance map* (LeCun et al. 1998; Glorot & Bengio 2010; He et
al. 2015; in this Gaussian "mean-field" form Poole et al. 2016 and Schoenholz
et al. 2017). Backward, with g_l = Var(dL/dh_l),

    g_{l-1} = chi(q_l) * g_l,   chi(q) = sigma_w^2 * E[phi'(z)^2],  z ~ N(0, q).

For ReLU, E[relu(z)^2] = q/2 and E[relu'(z)^2] = 1/2, so sigma_w^2 = 2 keeps
both constant (He init: std = sqrt(2 / fan_in)). For tanh the variance map
has a fixed point q*, and chi_1 = chi(q*) decides the phase (Schoenholz et
al. 2017): chi_1 < 1 ordered (gradients vanish), chi_1 > 1 chaotic
(gradients explode), chi_1 = 1 the *edge of chaos*, where very deep nets train.
Expectations over z ~ N(0, q) use Gauss-Hermite quadrature (`gaussian_expectation`).

Taught in notebook 05, which also runs here:
- E3 (He et al. 2015): a 30-layer ReLU net on the digits stalls with Xavier
  init and trains with He init (`train_deep_relu`);
- E4 (Saxe et al. 2013): orthogonal init gives a deep linear net an
  end-to-end Jacobian whose singular values are all 1 (`deep_linear_singular_values`);
- E11 (Schoenholz et al. 2017): the critical sigma_w^2 of a tanh net
  (`critical_sigma_w2`) and training at ordered/critical/chaotic settings
  (`train_at_sigma`);
- the symmetry problem of zero or constant init (`symmetry_experiment`).
"""

import math

import numpy as np
import torch
from torch import nn

from .datasets import load_digits
from .initialization import init_weight_
from .models import MLP, activation_derivative, build_mlp, make_activation
from .seeding import one_torch_thread
from .stacked import train_stacked
from .training import accuracy

GAUSS_HERMITE_POINTS = 150  # even: no node at z = 0, where ReLU' jumps
_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(GAUSS_HERMITE_POINTS)
_NODES = torch.tensor(_NODES, dtype=torch.float64)
_WEIGHTS = torch.tensor(_WEIGHTS / _WEIGHTS.sum(), dtype=torch.float64)  # E[f(z)], z ~ N(0, 1)
_Q_MAX = 1e12  # beyond this the variance map is treated as diverging (ReLU with sigma_w^2 > 2)


def gaussian_expectation(f, q: float) -> float:
    """E[f(z)] for z ~ N(0, q), by Gauss-Hermite quadrature (`GAUSS_HERMITE_POINTS` nodes).

    `f` maps a float64 tensor to a tensor elementwise.

    >>> round(gaussian_expectation(lambda z: z**2, 2.5), 12)
    2.5
    """
    if q < 0:
        raise ValueError(f"a variance must be >= 0, got q={q!r}")
    return float((_WEIGHTS * f(math.sqrt(q) * _NODES)).sum())


def _phi(activation: str):
    module = make_activation(activation)
    return lambda z: module(z)


def variance_map(activation: str, q: float, *, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """q_next = sigma_w2 * E[phi(z)^2] + sigma_b2 for z ~ N(0, q): one layer of variance propagation."""
    phi = _phi(activation)
    return sigma_w2 * gaussian_expectation(lambda z: phi(z) ** 2, q) + sigma_b2


def slope_factor(activation: str, q: float, *, sigma_w2: float) -> float:
    """chi(q) = sigma_w2 * E[phi'(z)^2], z ~ N(0, q): how much one layer scales the gradient variance."""
    return sigma_w2 * gaussian_expectation(lambda z: activation_derivative(activation, z) ** 2, q)


def variance_curve(activation: str, *, sigma_w2: float, sigma_b2: float = 0.0, depth: int,
                   input_second_moment: float = 1.0) -> np.ndarray:
    """Predicted Var(z_l) for layers l = 1..depth, from inputs with mean square `input_second_moment`.

    Layer 1 sees the raw input: q_1 = sigma_w2 * E[x^2] + sigma_b2.
    """
    q = [sigma_w2 * input_second_moment + sigma_b2]
    for _ in range(depth - 1):
        q.append(variance_map(activation, q[-1], sigma_w2=sigma_w2, sigma_b2=sigma_b2))
    return np.array(q)


def gradient_curve(activation: str, *, sigma_w2: float, sigma_b2: float = 0.0, depth: int,
                   input_second_moment: float = 1.0) -> np.ndarray:
    """Predicted Var(dL/dh_l) for l = 1..depth relative to the last layer's (which is 1).

    g_{l-1} = chi(q_l) g_l: the product of the slope factors of the layers above.
    """
    q = variance_curve(activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2, depth=depth,
                       input_second_moment=input_second_moment)
    g = np.ones(depth)
    for layer in range(depth - 1, 0, -1):  # g[layer - 1] gets the factor of layer `layer + 1`
        g[layer - 1] = g[layer] * slope_factor(activation, q[layer], sigma_w2=sigma_w2)
    return g


def fixed_point(activation: str, *, sigma_w2: float, sigma_b2: float = 0.0, q0: float = 1.0,
                max_iterations: int = 2000, tol: float = 1e-13) -> float:
    """q* = variance_map(q*): the pre-activation variance a deep net settles at (inf if it diverges)."""
    q = q0
    for _ in range(max_iterations):
        q_next = variance_map(activation, q, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
        if q_next > _Q_MAX:
            return math.inf
        if abs(q_next - q) <= tol * max(1.0, q):
            return q_next
        q = q_next
    return q


# Piecewise-linear activations through 0: chi_1 needs no fixed point (for ReLU near sigma_w^2 = 2 with a bias
# variance, q* is found only after thousands of slowly growing iterates, seconds per critical_sigma_w2).
_SIGN_SLOPED = ("relu", "leaky_relu", "linear", "identity")


def chi_1(activation: str, *, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """chi_1 = sigma_w2 * E[phi'(z)^2] at the fixed point q* (Schoenholz et al. 2017, eq. 5).

    < 1: ordered phase, gradients vanish like chi_1^depth; > 1: chaotic, they
    explode; = 1: the edge of chaos.
    """
    if activation.lower() in _SIGN_SLOPED:  # phi'(z) depends on the sign of z only: chi is the same at every q > 0
        return slope_factor(activation, 1.0, sigma_w2=sigma_w2)
    q = fixed_point(activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return slope_factor(activation, min(q, _Q_MAX), sigma_w2=sigma_w2)


def critical_sigma_w2(activation: str = "tanh", *, sigma_b2: float = 0.0, low: float = 0.5,
                      high: float = 10.0, tol: float = 1e-10) -> float:
    """The sigma_w^2 where chi_1 = 1 (the edge of chaos), by bisection on [low, high].

    For tanh with sigma_b^2 = 0.05 this is about 1.76 (Schoenholz et al. 2017,
    Fig. 1); for ReLU, 2 (He init) when sigma_b^2 = 0.

    >>> round(critical_sigma_w2("relu"), 6)
    2.0
    """
    def excess(s):
        return chi_1(activation, sigma_w2=s, sigma_b2=sigma_b2) - 1.0

    if excess(low) > 0 or excess(high) < 0:
        raise ValueError(f"chi_1 - 1 does not change sign on [{low}, {high}] for {activation!r}")
    while high - low > tol:
        mid = 0.5 * (low + high)
        low, high = (mid, high) if excess(mid) < 0 else (low, mid)
    return 0.5 * (low + high)


def depth_scale(activation: str, *, sigma_w2: float, sigma_b2: float = 0.0) -> float:
    """xi = -1 / ln(chi_1): gradient variance changes by a factor e every xi layers (inf at criticality)."""
    chi = chi_1(activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2)
    return math.inf if chi == 1.0 else -1.0 / math.log(chi)


# -- networks and measurements ----------------------------------------------------------

def random_network(activation: str, *, depth: int, width: int, sigma_w2: float, sigma_b2: float = 0.0,
                   in_features: int | None = None, out_features: int | None = None, seed: int = 0) -> MLP:
    """A `build_mlp` network with W ~ N(0, sigma_w2 / fan_in) and b ~ N(0, sigma_b2), seeded."""
    net = build_mlp(depth, width, activation=activation, init="he", gain=math.sqrt(sigma_w2),
                    in_features=in_features, out_features=out_features, seed=seed)
    if sigma_b2 > 0:
        generator = torch.Generator().manual_seed(seed + 1_000_003)
        with torch.no_grad():
            for module in net.modules():
                if isinstance(module, nn.Linear):
                    module.bias.normal_(0.0, math.sqrt(sigma_b2), generator=generator)
    return net


@one_torch_thread()
def layer_statistics(model: MLP, X: torch.Tensor, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Measure, per hidden layer of a `build_mlp` net, one forward and backward pass on `X`.

    Returns ``"pre_var"`` (Var(z_l)), ``"pre_std"``, ``"act_std"`` (std of h_l),
    ``"act_rms"`` (sqrt(mean h_l^2)) and ``"grad_std"`` (std of dL/dh_l), where
    L = sum(h_depth * v) with v ~ N(0, 1) fixed by `seed`, so the last layer's
    gradient has variance 1 and the others compare with `gradient_curve`.
    The head, if any, is not used.
    """
    pre, outs = [], []
    h = X
    for block in model.blocks:
        z = block.norm(block.linear(h))
        h = h + block.act(z) if block.residual else block.act(z)
        h.retain_grad()
        pre.append(z.detach())
        outs.append(h)
    v = torch.randn(h.shape, generator=torch.Generator().manual_seed(seed), dtype=h.dtype)
    model.zero_grad(set_to_none=True)
    (h * v).sum().backward()
    model.zero_grad(set_to_none=True)
    return {"pre_var": np.array([z.var().item() for z in pre]),
            "pre_std": np.array([z.std().item() for z in pre]),
            "act_std": np.array([o.detach().std().item() for o in outs]),
            "act_rms": np.array([o.detach().pow(2).mean().sqrt().item() for o in outs]),
            "grad_std": np.array([o.grad.double().std().item() for o in outs])}


@one_torch_thread()
def default_init_shrinkage(*, depth: int = 30, width: int = 64, biases: bool = False,
                           num_examples: int = 512, seed: int = 0) -> dict[str, np.ndarray]:
    """Activations through `depth` ReLU layers with PyTorch's default ``nn.Linear`` init.

    Default weights are U(-1/sqrt(fan_in), 1/sqrt(fan_in)), variance 1/(3 fan_in),
    and ReLU halves the mean square, so each layer multiplies E[h^2] by 1/6:
    after 30 layers the rms is 6^-15 of the input's (He et al. 2015 warn of
    exactly this decay). Inputs are N(0, 1). With ``biases=True`` the default
    biases stay in; they keep the activations from vanishing but the part that
    depends on the input still does. Returns per layer ``"rms"`` (sqrt(mean
    h^2)), ``"input_std"`` (std over examples, averaged over units) and the
    inputs' ``"rms_in"``, ``"input_std_in"``.
    """
    X = torch.randn(num_examples, width, generator=torch.Generator().manual_seed(seed + 7))
    net = build_mlp(depth, width, activation="relu", init="default", seed=seed)
    if not biases:
        with torch.no_grad():
            for block in net.blocks:
                block.linear.bias.zero_()
    rms, spread = [], []
    with torch.no_grad():
        h = X
        for block in net.blocks:
            h = block(h)
            rms.append(h.pow(2).mean().sqrt().item())
            spread.append(h.std(dim=0).mean().item())
    return {"rms": np.array(rms), "input_std": np.array(spread),
            "rms_in": X.pow(2).mean().sqrt().item(), "input_std_in": X.std(dim=0).mean().item()}


@one_torch_thread()
def train_deep_relu(init: str, *, depth: int = 30, width: int = 64, lr: float = 0.01, momentum: float = 0.9,
                    clip: float | None = 1.0, num_steps: int = 300, batch_size: int = 128,
                    seed: int = 0) -> dict:
    """E3 (He, Zhang, Ren & Sun 2015, "Delving deep into rectifiers", Fig. 3): a deep ReLU net on the digits.

    ``init="xavier"`` is Glorot & Bengio's U(-a, a), a = sqrt(6 / (fan_in + fan_out)),
    derived for units that are linear near 0 (gain 1); ``"he"`` is
    N(0, 2 / fan_in), derived for ReLU. Returns ``"act_std"`` (per layer at
    init, all digits), ``"std_ratio"`` (layer depth / layer 1), ``"loss"``,
    ``"final_loss"`` and ``"accuracy"``.
    """
    return train_deep_relus([init], depth=depth, width=width, lr=lr, momentum=momentum, clip=clip,
                            num_steps=num_steps, batch_size=batch_size, seed=seed)[init]


@one_torch_thread()
def train_deep_relus(inits, *, depth: int = 30, width: int = 64, lr: float = 0.01, momentum: float = 0.9,
                     clip: float | None = 1.0, num_steps: int = 300, batch_size: int = 128,
                     seed: int = 0) -> dict[str, dict]:
    """`train_deep_relu` for several inits, trained side by side on the same batches: {init: result}.

    One stacked network (`course_lib.stacked.train_stacked`): each equals its separate run, bit for bit.
    """
    X, y = load_digits()
    nets, stds = [], []
    for init in inits:
        gain = 1.0 if init in ("xavier", "xavier_normal", "lecun", "orthogonal") else None
        nets.append(build_mlp(depth, width, activation="relu", init=init, gain=gain, in_features=64,
                              out_features=10, seed=seed))
        with torch.no_grad():
            h, per_layer = X, []
            for block in nets[-1].blocks:
                h = block(h)
                per_layer.append(h.std().item())
        stds.append(np.array(per_layer))
    histories = train_stacked(nets, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                              clip=clip, seeds=seed)
    return {init: {"act_std": act_std, "std_ratio": act_std[-1] / act_std[0], "loss": history.loss,
                   "final_loss": history.final_loss,
                   "accuracy": math.nan if history.diverged else accuracy(net, X, y)}
            for init, net, act_std, history in zip(inits, nets, stds, histories)}


@one_torch_thread()
def deep_linear_singular_values(init: str, *, depth: int, width: int = 100, seed: int = 0) -> np.ndarray:
    """E4 (Saxe, McClelland & Ganguli 2013): singular values of a deep linear net's input-output Jacobian.

    The net is x -> W_depth ... W_1 x with float64 weights from scheme `init`
    at gain 1 (``"orthogonal"``: W^T W = I; ``"lecun"``: Gaussian N(0, 1/N)).
    The network is linear, so its Jacobian is its matrix W_depth ... W_1: the
    images of the basis vectors, one forward pass on the identity (autograd
    gives the same matrix; tests/test_variance.py checks it). Returns its
    singular values, largest first. Orthogonal: all exactly 1 (dynamical isometry). Gaussian: the
    product's spectrum spreads out with depth, some directions blown up,
    most crushed toward 0.
    """
    generator = torch.Generator().manual_seed(seed)
    weights = [init_weight_(torch.empty(width, width, dtype=torch.float64), init, gain=1.0, generator=generator)
               for _ in range(depth)]

    def network(x):
        for weight in weights:
            x = weight @ x
        return x

    jacobian = network(torch.eye(width, dtype=torch.float64))  # column j: the image of e_j
    return torch.linalg.svdvals(jacobian).numpy()


@one_torch_thread()
@torch.no_grad()
def deep_linear_learning_time(inits=("orthogonal", "lecun"), depths=(1, 2, 4, 8, 16, 32), *, width: int = 16,
                              lr: float = 2.0, threshold: float = 0.05, max_steps: int = 400,
                              seeds=(0,)) -> dict[str, np.ndarray]:
    """E4 (Saxe, McClelland & Ganguli, ICLR 2014): steps a deep linear net needs to learn a map, against depth.

    The network is x -> W_depth ... W_1 x, square layers of `width`, weights
    from scheme `init` at gain 1 (``"orthogonal"``: W^T W = I; ``"lecun"``:
    the scaled Gaussian N(0, 1/width)). The data are `width` orthonormal
    inputs (the identity: whitened, as in Saxe et al.'s analysis) and the
    targets a random map Y with entries N(0, 1/width), one per seed;
    the loss is ||W_depth ... W_1 - Y||^2 / (2 width). Full-batch gradient
    descent with learning rate ``lr / depth``, so that the end-to-end map
    moves at the same speed at every depth (each of the `depth` layers
    contributes one share). Returns, per init, the number of steps until the
    loss falls below `threshold` times its value at Y (shape (seeds, depths);
    inf if not within `max_steps`). Saxe et al. showed that from orthogonal
    weights this time stops growing with depth, while from scaled Gaussian
    weights it grows without bound.

    All inits and seeds of one depth train at once, stacked as a batch of
    matrices, with the backward pass written out: dL/dW_l = G_l P_{l-1}^T,
    where P_l = W_l ... W_1 and G_l = W_{l+1}^T G_{l+1}, G_depth = (P_depth - Y) / width.
    """
    runs = [(init, seed) for seed in seeds for init in inits]
    steps = np.full((len(runs), len(depths)), math.inf)
    targets = torch.stack([torch.randn(width, width, generator=torch.Generator().manual_seed(seed)) / math.sqrt(width)
                           for _, seed in runs])
    start_loss = 0.5 * targets.pow(2).sum(dim=(1, 2)) / width  # the loss of the zero map
    for column, depth in enumerate(depths):
        weights = []
        for init, seed in runs:  # the same weights for a seed at every init's draw order
            generator = torch.Generator().manual_seed(10_000 + seed)
            weights.append(torch.stack([init_weight_(torch.empty(width, width), init, gain=1.0, generator=generator)
                                        for _ in range(depth)]))
        layers = list(torch.stack(weights, dim=1).unbind(0))  # depth tensors of shape (runs, width, width)
        for step in range(max_steps + 1):
            loss, grads = _deep_linear_loss_and_gradients(layers, targets)
            reached = (loss < threshold * start_loss).numpy() & np.isinf(steps[:, column])
            steps[reached, column] = step
            if step == max_steps or np.isfinite(steps[:, column]).all():
                break
            layers = [weight - (lr / depth) * grad for weight, grad in zip(layers, grads)]
    return {init: steps[[i for i, (name, _) in enumerate(runs) if name == init]] for init in inits}


def _deep_linear_loss_and_gradients(layers: list[torch.Tensor], targets: torch.Tensor):
    """Loss ||W_L ... W_1 - Y||^2 / (2 width) of a batch of deep linear nets and dL/dW_l, written out."""
    width = targets.shape[-1]
    products = [layers[0]]  # P_l = W_l ... W_1
    for weight in layers[1:]:
        products.append(torch.bmm(weight, products[-1]))
    error = products[-1] - targets
    upstream, grads = error / width, [None] * len(layers)  # upstream = G_l = dL/dP_l
    for layer in range(len(layers) - 1, -1, -1):
        grads[layer] = upstream if layer == 0 else torch.bmm(upstream, products[layer - 1].transpose(1, 2))
        upstream = torch.bmm(layers[layer].transpose(1, 2), upstream)
    return 0.5 * error.pow(2).sum(dim=(1, 2)) / width, grads


@one_torch_thread()
def train_at_sigma(sigma_w2: float, *, sigma_b2: float = 0.05, depth: int = 40, width: int = 64,
                   lr: float = 0.003, momentum: float = 0.9, num_steps: int = 300, batch_size: int = 128,
                   seed: int = 0) -> dict:
    """E11 (Schoenholz, Gilmer, Ganguli & Sohl-Dickstein 2017, "Deep information propagation"):
    train a deep tanh net on the digits from W ~ N(0, sigma_w2/fan_in), b ~ N(0, sigma_b2).

    Returns ``"loss"``, ``"final_loss"``, ``"accuracy"`` and ``"chi_1"``.
    """
    return train_at_sigmas([sigma_w2], sigma_b2=sigma_b2, depth=depth, width=width, lr=lr, momentum=momentum,
                           num_steps=num_steps, batch_size=batch_size, seed=seed)[0]


@one_torch_thread()
def train_at_sigmas(sigma_w2s, *, sigma_b2: float = 0.05, depth: int = 40, width: int = 64, lr: float = 0.003,
                    momentum: float = 0.9, num_steps: int = 300, batch_size: int = 128, seed: int = 0) -> list[dict]:
    """`train_at_sigma` for several sigma_w^2, trained side by side on the same batches: one result each.

    One stacked network (`course_lib.stacked.train_stacked`): each equals its separate run, bit for bit.
    """
    X, y = load_digits()
    nets = [random_network("tanh", depth=depth, width=width, sigma_w2=s, sigma_b2=sigma_b2, in_features=64,
                           out_features=10, seed=seed) for s in sigma_w2s]
    histories = train_stacked(nets, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                              seeds=seed)
    return [{"loss": history.loss, "final_loss": history.final_loss,
             "accuracy": math.nan if history.diverged else accuracy(net, X, y),
             "chi_1": chi_1("tanh", sigma_w2=s, sigma_b2=sigma_b2)}
            for s, net, history in zip(sigma_w2s, nets, histories)]


@one_torch_thread()
def symmetry_experiment(init: str | float, *, activation: str = "tanh", depth: int = 2, width: int = 32,
                        lr: float = 0.1, momentum: float = 0.9, num_steps: int = 200, seed: int = 0) -> dict:
    """One `symmetry_experiments` start."""
    return symmetry_experiments({"run": init}, activation=activation, depth=depth, width=width, lr=lr,
                                momentum=momentum, num_steps=num_steps, seed=seed)["run"]


@one_torch_thread()
def symmetry_experiments(starts: dict, *, activation: str = "tanh", depth: int = 2, width: int = 32,
                         lr: float = 0.1, momentum: float = 0.9, num_steps: int = 200, seed: int = 0) -> dict:
    """Why weights start random: train a digits classifier from zero, constant or random weights.

    `starts` maps a label to a scheme name (``"zeros"``, ``"he"``, ...) or a
    number: every weight set to that constant (biases 0). With equal weights
    every unit of a layer computes the same function and receives the same
    gradient, so the units stay identical forever; with zeros (tanh) the
    hidden weights get no gradient at all. The networks train side by side on
    the same batches (`course_lib.stacked.train_stacked`). Returns per
    label, per hidden layer, ``"row_spread"`` (std across units of their
    incoming weights, relative to the weights' rms; 0 = all units identical)
    and ``"changed"`` (did the weights move), plus ``"final_loss"`` and ``"accuracy"``.
    """
    X, y = load_digits()
    nets = []
    for init in starts.values():
        scheme = "zeros" if not isinstance(init, str) else init
        net = build_mlp(depth, width, activation=activation, init=scheme, in_features=64, out_features=10,
                        seed=seed)
        if not isinstance(init, str):
            with torch.no_grad():
                for module in net.modules():
                    if isinstance(module, nn.Linear):
                        module.weight.fill_(float(init))
        nets.append(net)
    start = [[block.linear.weight.detach().clone() for block in net.blocks] for net in nets]
    histories = train_stacked(nets, X, y, lr=lr, num_steps=num_steps, momentum=momentum, seeds=seed)
    results = {}
    for label, net, before_training, history in zip(starts, nets, start, histories):
        spread, changed = [], []
        for block, before in zip(net.blocks, before_training):
            weight = block.linear.weight.detach()
            rms = weight.pow(2).mean().sqrt().item()
            spread.append(weight.std(dim=0).mean().item() / rms if rms > 0 else 0.0)
            changed.append(bool((weight != before).any()))
        results[label] = {"row_spread": np.array(spread), "changed": np.array(changed),
                          "final_loss": history.final_loss,
                          "accuracy": math.nan if history.diverged else accuracy(net, X, y)}
    return results


@one_torch_thread()
def simulate_variance(activation: str, *, sigma_w2: float, sigma_b2: float = 0.0, depth: int, width: int = 128,
                      num_networks: int = 8, num_examples: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """`layer_statistics` averaged over `num_networks` random networks on N(0, 1) inputs.

    The variance map predicts the average over weight draws, so the average
    over a few networks is what to compare with `variance_curve` and
    `gradient_curve` (one network of finite width drifts around it).
    Returns the mean ``"pre_var"`` and ``"grad_var"`` per layer.
    """
    pre_var, grad_var = np.zeros(depth), np.zeros(depth)
    for k in range(num_networks):
        net = random_network(activation, depth=depth, width=width, sigma_w2=sigma_w2, sigma_b2=sigma_b2,
                             seed=seed * 1000 + k)
        X = torch.randn(num_examples, width, generator=torch.Generator().manual_seed(seed * 1000 + k + 500))
        stats = layer_statistics(net, X, seed=seed * 1000 + k)
        pre_var += stats["pre_var"] / num_networks
        grad_var += stats["grad_std"] ** 2 / num_networks
    return {"pre_var": pre_var, "grad_var": grad_var}
