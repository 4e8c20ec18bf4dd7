"""Residual networks: the identity path that keeps gradients alive.

A residual block computes h + F(h) (He, Zhang, Ren & Sun 2016, "Deep
residual learning for image recognition", CVPR). Its Jacobian is

    d(h + F(h))/dh = I + F'(h),

so backprop through L blocks multiplies matrices that are close to the
identity instead of matrices that are each small: the gradient always has a
path with derivative exactly 1 (the "gradient highway"). Taught in notebook
07, which uses this module for

- the Jacobian of a residual block against a plain one (`block_jacobians`);
- E9, degradation (He et al. 2016): a plain 56-layer net has a HIGHER training
  error than a plain 20-layer one; the residual 56-layer net does not
  (`build_resnet`, `train_resnet`);
- E10, shattered gradients (Balduzzi et al. 2017): d(output)/d(input) of deep
  plain nets looks like white noise, residual nets keep it smooth
  (`build_line_network`, `input_gradients`, `lag1_autocorrelation`);
- a small pre-LayerNorm transformer whose residual connections and LayerNorm
  can be switched off (`build_transformer`, `transformer_gradient_norms`).
"""

import math

import numpy as np
import torch
from torch import nn

from .datasets import load_digits
from .initialization import initialize_
from .seeding import one_torch_thread
from .training import accuracy, train


# -- residual blocks (E9) ---------------------------------------------------------------

class BasicBlock(nn.Module):
    """The ResNet basic block with linear layers: relu(h + BN(W2 relu(BN(W1 h)))) (He et al. 2016, Fig. 2).

    With ``residual=False`` the same two layers without the ``h +``: a plain block.
    """

    def __init__(self, width: int, *, residual: bool = True):
        super().__init__()
        self.residual = residual
        self.linear1, self.norm1 = nn.Linear(width, width), nn.BatchNorm1d(width)
        self.linear2, self.norm2 = nn.Linear(width, width), nn.BatchNorm1d(width)

    def branch(self, h: torch.Tensor) -> torch.Tensor:
        """F(h): the part a residual block adds to its input."""
        return self.norm2(self.linear2(torch.relu(self.norm1(self.linear1(h)))))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.branch(h)
        return torch.relu(h + out if self.residual else out)


class ResNet(nn.Module):
    """stem (Linear-BN-ReLU) -> `BasicBlock`s -> linear head; ``.blocks`` are the monitored layers."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], head: nn.Module):
        super().__init__()
        self.stem, self.blocks, self.head = stem, nn.ModuleList(blocks), head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h)


def build_resnet(depth: int, width: int = 32, *, residual: bool = True, in_features: int = 64,
                 out_features: int = 10, seed: int | None = None) -> ResNet:
    """A `depth`-layer BN-ReLU network (He et al. 2016's CIFAR design, 6n+2 layers, with Linear layers).

    depth = 1 stem layer + 2 per `BasicBlock` + 1 head, so depth - 2 must be
    even: 20 -> 9 blocks, 56 -> 27 blocks. He initialization (std sqrt(2 / fan_in)).
    ``residual=False`` gives the "plain" network of the same depth.

    >>> net = build_resnet(20, 8, seed=0)
    >>> len(net.blocks), net(torch.zeros(4, 64)).shape
    (9, torch.Size([4, 10]))
    """
    if not isinstance(depth, int) or depth < 2 or (depth - 2) % 2:
        raise ValueError(f"depth must be an int >= 2 with depth - 2 even (e.g. 20, 56), got {depth!r}")
    stem = nn.Sequential(nn.Linear(in_features, width), nn.BatchNorm1d(width), nn.ReLU())
    blocks = [BasicBlock(width, residual=residual) for _ in range((depth - 2) // 2)]
    net = ResNet(stem, blocks, nn.Linear(width, out_features))
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    initialize_(net, "he", activation="relu", generator=generator)
    return net


def train_resnet(depth: int, *, residual: bool, width: int = 32, lr: float = 0.05, momentum: float = 0.9,
                 num_steps: int = 300, batch_size: int = 128, seed: int = 0) -> dict:
    """E9: train `build_resnet` on the digits with SGD; returns {"train_error", "loss"}.

    The training error is 1 - accuracy on the whole digits set (eval mode).
    He et al. 2016 (Fig. 1, CIFAR-10): the deeper PLAIN net ends with the
    HIGHER training error, which overfitting cannot explain; with residual
    connections the deeper net is the better one.
    """
    X, y = load_digits()
    net = build_resnet(depth, width, residual=residual, seed=seed)
    with one_torch_thread():
        history = train(net, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                        seed=seed, progress=False)
        error = 1.0 if history.diverged else 1.0 - accuracy(net, X, y)
    return {"train_error": error, "loss": history.loss}


class _SideBySideResNets(nn.Module):
    """G `ResNet`s of one width as one network of G x width units, to train them in one run.

    Each weight matrix is block-diagonal (network g's own block on the diagonal,
    zeros elsewhere, and a gradient hook keeps the zeros' gradient at exactly 0),
    and BatchNorm is per unit, so network g's units see only network g: the G
    networks are trained exactly as separately, up to float rounding, with one
    operation per layer for all of them. A network with fewer blocks passes its
    units through the extra blocks unchanged (``torch.where``: no gradient reaches
    those blocks' weights). The output is (N, G x out_features).
    """

    def __init__(self, nets: list[ResNet]):
        super().__init__()
        width, count = nets[0].stem[0].out_features, len(nets)

        def stacked_linear(layers, *, shared_input: bool = False) -> nn.Linear:
            weights = [layer.weight for layer in layers]
            linear = nn.Linear(weights[0].shape[1] if shared_input else sum(w.shape[1] for w in weights),
                               sum(w.shape[0] for w in weights))
            with torch.no_grad():
                linear.bias.copy_(torch.cat([layer.bias for layer in layers]))
                if shared_input:  # the stem: every network reads the same input
                    linear.weight.copy_(torch.cat(weights))
                else:
                    linear.weight.copy_(torch.block_diag(*weights))
                    mask = torch.block_diag(*[torch.ones_like(w) for w in weights])
                    linear.weight.register_hook(lambda grad: grad * mask)
            return linear

        def stacked_norm(norms) -> nn.BatchNorm1d:
            norm = nn.BatchNorm1d(count * width, momentum=norms[0].momentum, eps=norms[0].eps)
            with torch.no_grad():
                for name in ("weight", "bias", "running_mean", "running_var"):
                    getattr(norm, name).copy_(torch.cat([getattr(n, name) for n in norms]))
            return norm

        with torch.random.fork_rng():  # the modules built here are overwritten: leave the global stream alone
            self.stem = nn.Sequential(stacked_linear([net.stem[0] for net in nets], shared_input=True),
                                      stacked_norm([net.stem[1] for net in nets]), nn.ReLU())
            placeholder = BasicBlock(width)  # for the blocks a shallower network does not have (never used)
            self.blocks, self.active = nn.ModuleList(), []
            for k in range(max(len(net.blocks) for net in nets)):
                own = [net.blocks[k] if k < len(net.blocks) else placeholder for net in nets]
                block = BasicBlock(count * width)
                block.linear1 = stacked_linear([b.linear1 for b in own])
                block.norm1 = stacked_norm([b.norm1 for b in own])
                block.linear2 = stacked_linear([b.linear2 for b in own])
                block.norm2 = stacked_norm([b.norm2 for b in own])
                self.blocks.append(block)
                active = torch.tensor([k < len(net.blocks) for net in nets]).repeat_interleave(width)
                self.active.append(None if active.all() else active)
            self.head = stacked_linear([net.head for net in nets])
        self.register_buffer("residual", torch.tensor([float(net.blocks[0].residual) if net.blocks else 0.0
                                                       for net in nets]).repeat_interleave(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block, active in zip(self.blocks, self.active):
            out = torch.relu(block.branch(h) + h * self.residual)  # residual 0: the plain block, relu(F(h))
            h = out if active is None else torch.where(active, out, h)
        return self.head(h)


def train_resnets(networks, *, width: int = 32, lr: float = 0.05, momentum: float = 0.9, num_steps: int = 300,
                  batch_size: int = 128, seed: int = 0) -> list[dict]:
    """`train_resnet` for several (depth, residual) networks, trained side by side on the same batches.

    One result each, as `train_resnet` returns it: the networks are built from
    `seed` as there and trained as one block-diagonal network (`_SideBySideResNets`),
    which gives each network its own gradient, so every loss curve equals a
    separate run's up to float rounding, in about the time of the deepest one.
    If one network's loss stops being finite, every run stops there.
    """
    X, y = load_digits()
    together = _SideBySideResNets([build_resnet(depth, width, residual=residual, seed=seed)
                                   for depth, residual in networks])
    count, per_step = len(networks), []

    def summed_loss(output, target):
        logits = output.view(len(target), count, -1).transpose(1, 2)  # (N, classes, networks)
        losses = nn.functional.cross_entropy(logits, target.unsqueeze(1).expand(-1, count), reduction="none").mean(0)
        per_step.append(losses.detach())
        return losses.sum()

    with one_torch_thread():
        history = train(together, X, y, lr=lr, num_steps=num_steps, batch_size=batch_size, momentum=momentum,
                        loss=summed_loss, seed=seed, progress=False)
        together.eval()
        with torch.no_grad():
            correct = (together(X).view(len(X), count, -1).argmax(-1) == y.unsqueeze(1)).double().mean(0)
    losses = torch.stack(per_step[:len(history.loss)]).double().numpy()
    return [{"train_error": 1.0 if not np.isfinite(losses[:, k]).all() else 1.0 - correct[k].item(),
             "loss": losses[:, k]} for k in range(count)]


def resnet_gradient_norms(depth: int, *, residual: bool, width: int = 32, batch_size: int = 256,
                          seed: int = 0) -> np.ndarray:
    """||dL/dh_k|| at the output of each block of `build_resnet` (block 1 first), at init, one digits batch."""
    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:batch_size]
    net = build_resnet(depth, width, residual=residual, seed=seed)
    outputs = []

    def keep(module, args, out):  # returns None, so the block's output is unchanged
        out.retain_grad()
        outputs.append(out)

    hooks = [block.register_forward_hook(keep) for block in net.blocks]
    try:
        with one_torch_thread():
            nn.functional.cross_entropy(net(X[index]), y[index]).backward()
    finally:
        for hook in hooks:
            hook.remove()
    return np.array([torch.linalg.vector_norm(out.grad, dtype=torch.float64).item() for out in outputs])


# -- Jacobians --------------------------------------------------------------------------

def block_jacobians(width: int = 16, *, activation: str = "tanh", gain: float = 1.0,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """Jacobians (float64, by autograd) of a plain block f(h) and a residual block h + f(h).

    f(h) = act(W h), W ~ N(0, gain^2 / width). Returns {"plain", "residual", "identity"}:
    residual - plain equals the identity exactly (up to rounding), the whole idea of ResNets.
    """
    generator = torch.Generator().manual_seed(seed)
    W = torch.randn(width, width, dtype=torch.float64, generator=generator) * gain / math.sqrt(width)
    h = torch.randn(width, dtype=torch.float64, generator=generator)
    act = getattr(torch, activation)

    def plain(v):
        return act(W @ v)

    jac = torch.autograd.functional.jacobian
    return {"plain": jac(plain, h).numpy(), "residual": jac(lambda v: v + plain(v), h).numpy(),
            "identity": np.eye(width)}


def jacobian_product_norms(depth: int, *, residual: bool, width: int = 16, activation: str = "tanh",
                           gain: float = 1.0, scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Spectral norm of dh_L/dh_k for k = 0..L through `depth` blocks h <- [h +] scale * act(W h).

    dh_L/dh_k is the product of the block Jacobians above layer k, each taken
    by autograd (float64) at the block's own input. Plain blocks multiply
    matrices that each shrink most directions; residual blocks multiply
    I + (something small), and the product stays near 1. Entry L is 1.
    """
    generator = torch.Generator().manual_seed(seed)
    act = getattr(torch, activation)
    weights = [torch.randn(width, width, dtype=torch.float64, generator=generator) * gain / math.sqrt(width)
               for _ in range(depth)]
    states = [torch.randn(width, dtype=torch.float64, generator=generator)]
    jacobians = []
    for W in weights:
        def block(v, W=W):
            branch = scale * act(W @ v)
            return v + branch if residual else branch
        jacobians.append(torch.autograd.functional.jacobian(block, states[-1]))
        states.append(block(states[-1]))
    product = torch.eye(width, dtype=torch.float64)
    norms = [1.0]
    for J in reversed(jacobians):  # dh_L/dh_k = J_L ... J_{k+1}, built from the top as backprop does
        product = product @ J
        norms.append(torch.linalg.matrix_norm(product, ord=2).item())
    return np.array(norms[::-1])


# -- shattered gradients (E10) ----------------------------------------------------------

class LineNet(nn.Module):
    """A ReLU net with BatchNorm on a 1-D input: Linear(1, width) -> BN -> ReLU, more layers, Linear(width, 1).

    `depth` hidden layers; each after the first is relu(BN(W h)) (plain) or
    h + relu(BN(W h)) (residual); He init. The network of Balduzzi et al. 2017's Fig. 1 (E10).
    """

    def __init__(self, depth: int, *, residual: bool, width: int = 200):
        super().__init__()
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be an int >= 1, got {depth!r}")
        self.residual = residual
        self.layers = nn.ModuleList([nn.Linear(1, width)] + [nn.Linear(width, width) for _ in range(depth - 1)])
        self.norms = nn.ModuleList([nn.BatchNorm1d(width, momentum=None) for _ in range(depth)])
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for i, (linear, norm) in enumerate(zip(self.layers, self.norms)):
            out = torch.relu(norm(linear(h)))
            h = h + out if self.residual and i > 0 else out
        return self.head(h)


def build_line_network(depth: int, *, residual: bool, width: int = 200, seed: int = 0) -> LineNet:
    """A `LineNet` with He-initialized weights drawn from `seed` (biases 0)."""
    net = LineNet(depth, residual=residual, width=width)
    initialize_(net, "he", activation="relu", generator=torch.Generator().manual_seed(seed))
    return net


def input_gradients(depth: int, *, residual: bool, width: int = 200, num_points: int = 256,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, d output / d x) of `build_line_network` on `num_points` points evenly spaced in [-2, 2].

    Balduzzi et al. 2017, "The shattered gradients problem: if resnets are the
    answer, then what is the question?" (ICML), Fig. 1. BatchNorm uses the
    statistics of the whole grid, frozen (one pass in train mode with
    cumulative running averages, then eval mode), so each point's output
    depends only on its own input and the derivative is per point.
    """
    x = torch.linspace(-2.0, 2.0, num_points).unsqueeze(1)
    net = build_line_network(depth, residual=residual, width=width, seed=seed)
    with one_torch_thread():
        with torch.no_grad():  # one pass in train mode: running statistics = the grid's statistics
            net.train()(x)
        net.eval()
        x.requires_grad_(True)
        (grad,) = torch.autograd.grad(net(x).sum(), x)
    return x.detach().squeeze(1).numpy(), grad.squeeze(1).numpy()


def lag1_autocorrelation(g) -> float:
    """Correlation of neighbouring values, sum (g_i - m)(g_{i+1} - m) / sum (g_i - m)^2, m = mean(g).

    Near 1 for a smooth curve, near 0 for white noise (Balduzzi et al. 2017 use
    it to measure how "shattered" a gradient is).
    """
    g = np.asarray(g, dtype=np.float64)
    centered = g - g.mean()
    denominator = float(centered @ centered)
    if g.size < 2 or denominator == 0:
        raise ValueError("need at least 2 values that are not all equal")
    return float(centered[:-1] @ centered[1:]) / denominator


# -- a small pre-LayerNorm transformer --------------------------------------------------

class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention, softmax(Q K^T / sqrt(d_head)) V (Vaswani et al. 2017)."""

    def __init__(self, d_model: int, heads: int):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model ({d_model}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, d_model = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, d_model // self.heads).unbind(dim=2)
        attended = nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                                              v.transpose(1, 2))
        return self.out(attended.transpose(1, 2).reshape(batch, tokens, d_model))


class TransformerBlock(nn.Module):
    """A pre-LN transformer block: h = h + Attn(LN(h)); h = h + MLP(LN(h)).

    The arrangement of GPT-2 (Radford et al. 2019, OpenAI report); Xiong et al.
    2020 ("On layer normalization in the transformer architecture", ICML)
    analysed why it trains without warmup while the original post-LN block
    (Vaswani et al. 2017) does not.

    ``residual=False`` drops the ``h +``, ``norm=False`` replaces LN by the
    identity: the two safeguards that keep a deep stack trainable.
    """

    def __init__(self, d_model: int, heads: int, *, residual: bool = True, norm: bool = True):
        super().__init__()
        self.residual = residual
        self.norm1 = nn.LayerNorm(d_model) if norm else nn.Identity()
        self.attn = SelfAttention(d_model, heads)
        self.norm2 = nn.LayerNorm(d_model) if norm else nn.Identity()
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.norm1(h))
        h = h + a if self.residual else a
        m = self.mlp(self.norm2(h))
        return h + m if self.residual else m


def build_transformer(depth: int, d_model: int = 32, heads: int = 4, *, residual: bool = True,
                      norm: bool = True, seed: int | None = None) -> nn.Sequential:
    """`depth` `TransformerBlock`s (PyTorch's default Linear init), then a final LayerNorm when `norm`."""
    if seed is not None:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return build_transformer(depth, d_model, heads, residual=residual, norm=norm)
    blocks = [TransformerBlock(d_model, heads, residual=residual, norm=norm) for _ in range(depth)]
    return nn.Sequential(*blocks, nn.LayerNorm(d_model) if norm else nn.Identity())


def transformer_gradient_norms(depth: int, *, residual: bool = True, norm: bool = True, d_model: int = 32,
                               heads: int = 4, tokens: int = 16, batch_size: int = 8,
                               seed: int = 0) -> np.ndarray:
    """||dL/dh_k|| at the input of each block (block 1 first) of `build_transformer`, at init.

    Inputs are N(0, 1) token vectors; L = <output, U> for a fixed random U of
    unit norm, so the gradient arriving at the top has norm 1 and the numbers
    say how much of it reaches each block.
    """
    net = build_transformer(depth, d_model, heads, residual=residual, norm=norm, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1)
    h = torch.randn(batch_size, tokens, d_model, generator=generator)
    upstream = torch.randn(batch_size, tokens, d_model, generator=generator)
    inputs = []
    with one_torch_thread():
        h.requires_grad_()
        for block in list(net)[:depth]:
            h.retain_grad()
            inputs.append(h)
            h = block(h)
        (net[-1](h) * upstream / upstream.norm()).sum().backward()
    return np.array([torch.linalg.vector_norm(state.grad, dtype=torch.float64).item() for state in inputs])
