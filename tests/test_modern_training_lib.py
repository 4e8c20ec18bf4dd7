"""Notebook 09's library modules (transformer, attention, branch_scaling, optimizers, precision); PyTorch as oracle."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.attention import attention_jacobian_norms, logit_scale_jacobian_norms
from course_lib.branch_scaling import SCHEMES, build_scaled_resnet, stream_variances
from course_lib.optimizers import layer_statistics_under
from course_lib.precision import (PRECISIONS, first_layer_gradients, float_format, flushed_fraction, relative_error,
                                  rounding_errors)
from course_lib.transformer import (PlacedBlock, block_gradient_norms, build_sequence_transformer, reversal_batch,
                                    train_sequence_transformer)


# -- transformer ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("placement,norm_first", [("post", False), ("pre", True)])
def test_placed_block_equals_torch_transformer_encoder_layer(placement, norm_first):
    """PyTorch's TransformerEncoderLayer is post-LN with norm_first=False and pre-LN with norm_first=True."""
    torch.manual_seed(0)
    d, heads = 16, 4
    ours = PlacedBlock(d, heads, placement=placement).double()
    theirs = nn.TransformerEncoderLayer(d, heads, dim_feedforward=4 * d, dropout=0.0, activation="relu",
                                        batch_first=True, norm_first=norm_first).double()
    with torch.no_grad():
        theirs.self_attn.in_proj_weight.copy_(ours.attn.qkv.weight)
        theirs.self_attn.in_proj_bias.copy_(ours.attn.qkv.bias)
        theirs.self_attn.out_proj.weight.copy_(ours.attn.out.weight)
        theirs.self_attn.out_proj.bias.copy_(ours.attn.out.bias)
        for mine, other in [(ours.mlp[0], theirs.linear1), (ours.mlp[2], theirs.linear2),
                            (ours.norm1, theirs.norm1), (ours.norm2, theirs.norm2)]:
            other.weight.copy_(mine.weight)
            other.bias.copy_(mine.bias)
    theirs.eval()  # the fast path and training mode give the same numbers without dropout; eval is deterministic
    X = torch.randn(3, 5, d, dtype=torch.float64)
    torch.testing.assert_close(ours(X), theirs(X), rtol=1e-10, atol=1e-10)


def test_placement_is_checked_and_shapes_hold():
    with pytest.raises(ValueError, match="placement"):
        PlacedBlock(8, 2, placement="middle")
    net = build_sequence_transformer(2, placement="pre", seed=0)
    tokens, targets = reversal_batch(4, generator=torch.Generator().manual_seed(0))
    assert net(tokens).shape == (4, 8, 16) and torch.equal(targets, tokens.flip(1))
    assert isinstance(net.final, nn.LayerNorm) and isinstance(build_sequence_transformer(2, placement="post").final,
                                                               nn.Identity)


def test_build_is_seeded_and_xavier():
    a, b = (build_sequence_transformer(3, placement="post", d_model=64, seed=5) for _ in range(2))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    weight = a.blocks[0].mlp[0].weight  # (256, 64): Xavier normal std sqrt(2 / (64 + 256))
    assert abs(weight.std().item() / math.sqrt(2 / 320) - 1) < 0.05
    assert a.blocks[0].mlp[0].bias.abs().max() == 0


def test_block_gradient_norms_match_autograd_by_hand():
    norms = block_gradient_norms(3, placement="post", d_model=32, batch_size=8, seed=2)
    net = build_sequence_transformer(3, placement="post", d_model=32, seed=2)
    tokens, targets = reversal_batch(8, generator=torch.Generator().manual_seed(1002))
    nn.functional.cross_entropy(net(tokens).reshape(-1, 16), targets.reshape(-1)).backward()
    want = [torch.cat([p.grad.reshape(-1) for p in block.parameters()]).norm().item() for block in net.blocks]
    np.testing.assert_allclose(norms, want, rtol=1e-5)


def test_warmup_ramps_the_learning_rate():
    run = train_sequence_transformer("pre", num_steps=3, warmup_steps=3, seed=0)
    assert len(run["loss"]) == 3 and run["chance"] == pytest.approx(math.log(16))


# -- attention --------------------------------------------------------------------------------------------------

def test_softmax_jacobian_norms_equal_the_closed_form():
    """||diag(p) - p p^T||_2, computed independently, against the module's autograd Jacobians."""
    scales = [0.0, 0.5, 4.0]
    got = logit_scale_jacobian_norms(scales, num_keys=6, trials=9, seed=3)
    base = torch.randn(9, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64).numpy()
    for scale, value in zip(scales, got):
        norms = []
        for z in base * scale:
            p = np.exp(z - z.max())
            p /= p.sum()
            norms.append(np.linalg.norm(np.diag(p) - np.outer(p, p), 2))
        assert value == pytest.approx(np.median(norms), rel=1e-10)
    assert got[0] == pytest.approx(1 / 6)  # uniform softmax: every direction but 1 scaled by 1/n


def test_attention_logits_have_std_sqrt_dk_unless_scaled():
    raw = attention_jacobian_norms([4, 400], scaled=False, trials=400, seed=0)
    scaled = attention_jacobian_norms([4, 400], scaled=True, trials=400, seed=0)
    np.testing.assert_allclose(raw["logit_std"], [2, 20], rtol=0.1)
    np.testing.assert_allclose(scaled["logit_std"], [1, 1], rtol=0.1)
    assert raw["norm"][1] < scaled["norm"][1]


# -- branch scaling ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", SCHEMES)
def test_scaled_resnet_initialization(scheme):
    L, width = 9, 32
    net = build_scaled_resnet(scheme, L, width, seed=1)
    block = net.blocks[0]
    w1_std, w2_std = block.linear1.weight.std().item(), block.linear2.weight.std().item()
    he, lecun = math.sqrt(2 / width), math.sqrt(1 / width)
    expected = {"unscaled": (he, lecun), "rezero": (he, lecun), "skipinit": (he, lecun),
                "fixup": (he / math.sqrt(L), 0.0), "gpt2": (he, lecun / math.sqrt(L))}[scheme]
    assert w1_std == pytest.approx(expected[0], rel=0.1)
    assert w2_std == pytest.approx(expected[1], rel=0.1, abs=1e-12)
    alpha = {"unscaled": 1.0, "gpt2": 1.0, "rezero": 0.0, "skipinit": 0.5 / 3, "fixup": 1.0}[scheme]
    assert block.alpha.item() == pytest.approx(alpha)
    assert isinstance(block.alpha, nn.Parameter) == (scheme in ("rezero", "skipinit", "fixup"))
    X = torch.randn(5, 64)
    if scheme in ("rezero", "fixup"):  # every branch is exactly zero: the blocks are the identity
        with torch.no_grad():
            torch.testing.assert_close(net(X), net.head(net.stem(X)))
    if scheme == "fixup":
        assert net(X).abs().max() == 0  # and the head starts at zero


def test_scaled_resnet_rejects_unknown_schemes():
    with pytest.raises(ValueError, match="scheme"):
        build_scaled_resnet("batchnorm", 4)
    with pytest.raises(ValueError, match="num_blocks"):
        build_scaled_resnet("gpt2", 0)


def test_stream_variance_follows_one_plus_s_squared_per_block():
    """Var(h_L)/Var(h_0) = (1 + s^2)^L for a gain-1 branch: measured on wide random inputs it is close."""
    v = stream_variances("gpt2", 16, width=64, seed=0)
    assert v[0] == 1.0 and len(v) == 17
    assert (1 + 1 / 16) ** 16 / 2 < v[-1] < 2 * (1 + 1 / 16) ** 16


# -- optimizers -------------------------------------------------------------------------------------------------

def test_layer_statistics_shapes_and_errors():
    stats = layer_statistics_under("sgd", depth=3, num_steps=4, every=2, seed=0)
    assert stats["grad_norm"].shape == stats["update_data"].shape == (3,)
    np.testing.assert_allclose(stats["grad_rms"], stats["grad_norm"] / 64)
    with pytest.raises(ValueError, match="optimizer"):
        layer_statistics_under("rmsprop", depth=2, num_steps=1)


def test_adam_update_data_matches_its_first_step():
    """On its first step Adam moves every weight by lr * g / (|g| + eps): update:data = lr * (that) / std(W)."""
    stats = layer_statistics_under("adam", depth=2, num_steps=1, every=1, lr=1e-3, seed=0)
    assert np.all((stats["update_data"] > 1e-4) & (stats["update_data"] < 1e-2))


# -- precision --------------------------------------------------------------------------------------------------

def test_float_formats():
    half, bf16, single = (float_format(d) for d in (torch.float16, torch.bfloat16, torch.float32))
    assert half.largest == 65504 and half.smallest_normal == 2.0 ** -14 and half.smallest_subnormal == 2.0 ** -24
    assert bf16.smallest_normal == single.smallest_normal and bf16.epsilon == 2.0 ** -7
    assert torch.tensor(half.smallest_subnormal).half().item() == half.smallest_subnormal
    assert torch.tensor(half.smallest_subnormal * 0.49).half().item() == 0.0


def test_flushed_fraction_and_relative_error():
    reference = torch.tensor([1.0, 2.0, 0.0, 4.0])
    assert flushed_fraction(torch.tensor([1.0, 0.0, 0.0, 0.0]), reference) == pytest.approx(2 / 3)
    assert relative_error(reference * 1.01, reference) == pytest.approx(0.01)


def test_rounding_errors():
    errors = rounding_errors(np.array([1e-9, 1.0, 3.0, 1e5]))
    assert np.isinf(errors["float16"][0]) and np.isinf(errors["float16"][3])
    assert errors["float16"][1] == 0 and np.isfinite(errors["bfloat16"]).all()
    assert errors["bfloat16"].max() <= 2.0 ** -8


def test_first_layer_gradients_shapes_and_loss_scaling_agree_with_a_manual_scale():
    grads = first_layer_gradients(depth=4, width=16, batch_size=32, seed=0)
    assert list(grads) == list(PRECISIONS)
    assert all(g.shape == (16, 64) and g.dtype == torch.float32 for g in grads.values())
    assert relative_error(grads["float16 + loss scaling"], grads["float32"]) < 1e-2  # unscaled back by GradScaler
    assert relative_error(grads["bfloat16"], grads["float32"]) < 5e-2
