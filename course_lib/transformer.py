"""Where the LayerNorm goes: post-LN and pre-LN transformer stacks (notebook 09, E13).

The original transformer (Vaswani et al. 2017) normalizes after each residual sum,

    post-LN:  h <- LN(h + Attn(h));   h <- LN(h + MLP(h))

so every gradient on its way down passes through 2L LayerNorms. GPT-2
(Radford et al. 2019) moved the LayerNorm to the input of each sublayer and
added one at the end,

    pre-LN:   h <- h + Attn(LN(h));   h <- h + MLP(LN(h));   out = LN(h)

leaving an un-normalized residual stream from the output to the input.
Xiong et al. (2020, "On layer normalization in the transformer architecture",
ICML) showed that at initialization post-LN's parameter gradients are largest
near the output (pre-LN's are about even, and smaller by about sqrt(L)), which
is why post-LN needs a learning-rate warmup and pre-LN does not.

The task is reversal: a sequence of random tokens in, the same sequence
reversed out, which needs attention across positions.
"""

import math

import numpy as np
import torch
from torch import nn

from .residual import SelfAttention
from .seeding import one_torch_thread
from .training import Adam

PLACEMENTS = ("post", "pre")


class PlacedBlock(nn.Module):
    """A transformer block with its two LayerNorms after each residual sum ("post") or before each sublayer ("pre")."""

    def __init__(self, d_model: int, heads: int, *, placement: str):
        super().__init__()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {list(PLACEMENTS)}, got {placement!r}")
        self.placement = placement
        self.norm1, self.attn = nn.LayerNorm(d_model), SelfAttention(d_model, heads)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.ReLU(), nn.Linear(4 * d_model, d_model))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.placement == "pre":
            h = h + self.attn(self.norm1(h))
            return h + self.mlp(self.norm2(h))
        h = self.norm1(h + self.attn(h))
        return self.norm2(h + self.mlp(h))


class SequenceTransformer(nn.Module):
    """Token and position embeddings -> `depth` `PlacedBlock`s -> (final LN for pre-LN) -> a linear head per token."""

    def __init__(self, depth: int, *, placement: str, vocab: int = 16, length: int = 8, d_model: int = 32,
                 heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(torch.randn(length, d_model))
        self.blocks = nn.ModuleList([PlacedBlock(d_model, heads, placement=placement) for _ in range(depth)])
        self.final = nn.LayerNorm(d_model) if placement == "pre" else nn.Identity()
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed(tokens) + self.position
        for block in self.blocks:
            h = block(h)
        return self.head(self.final(h))


def build_sequence_transformer(depth: int, *, placement: str, vocab: int = 16, length: int = 8,
                               d_model: int = 32, heads: int = 4, seed: int = 0) -> SequenceTransformer:
    """A `SequenceTransformer` with Xavier-normal linear weights and zero biases, as in Xiong et al.'s analysis.

    >>> net = build_sequence_transformer(2, placement="post", seed=0)
    >>> net(torch.zeros(3, 8, dtype=torch.long)).shape
    torch.Size([3, 8, 16])
    """
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an int >= 1, got {depth!r}")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = SequenceTransformer(depth, placement=placement, vocab=vocab, length=length, d_model=d_model,
                                  heads=heads)
        for module in net.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)
    return net


def reversal_batch(batch_size: int, *, vocab: int = 16, length: int = 8,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, targets): random tokens, and the same tokens in reverse order (chance loss: ln vocab)."""
    tokens = torch.randint(0, vocab, (batch_size, length), generator=generator)
    return tokens, tokens.flip(1)


def _loss(net: SequenceTransformer, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = net(tokens)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def block_gradient_norms(depth: int, *, placement: str, d_model: int = 64, batch_size: int = 64,
                         seed: int = 0) -> np.ndarray:
    """||dL/dtheta_k|| over all parameters of block k (block 1 first), at initialization, one reversal batch.

    Xiong et al. 2020: post-LN's are larger, by about sqrt(L) at the last block (their
    Fig. 3 also shows them growing toward the output); pre-LN's are about even.
    """
    net = build_sequence_transformer(depth, placement=placement, d_model=d_model, seed=seed)
    tokens, targets = reversal_batch(batch_size, generator=torch.Generator().manual_seed(seed + 1000))
    with one_torch_thread():
        _loss(net, tokens, targets).backward()
    return np.array([math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in block.parameters()))
                     for block in net.blocks])


def train_sequence_transformer(placement: str, *, depth: int = 4, lr: float = 1e-2, warmup_steps: int = 0,
                               num_steps: int = 80, batch_size: int = 32, seed: int = 0) -> dict:
    """E13: train on reversal with Adam at `lr`, warmed up linearly over `warmup_steps` (0: none).

    Returns {"loss": per-step losses, "final_loss": mean of the last 10 steps,
    "chance": ln(vocab)}. Without warmup, post-LN stays at chance while pre-LN
    learns the task (Xiong et al. 2020); a warmup lets post-LN train too.
    """
    net = build_sequence_transformer(depth, placement=placement, seed=seed)
    generator = torch.Generator().manual_seed(seed + 1000)
    optimizer = Adam(net.parameters(), lr=lr)  # torch.optim.Adam's numbers, without importing torch._dynamo
    losses = []
    with one_torch_thread():
        for step in range(num_steps):
            for group in optimizer.param_groups:
                group["lr"] = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr
            loss = _loss(net, *reversal_batch(batch_size, generator=generator))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    losses = np.array(losses)
    return {"loss": losses, "final_loss": float(losses[-10:].mean()), "chance": math.log(net.head.out_features)}
