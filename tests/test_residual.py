"""course_lib.residual against PyTorch as the oracle: blocks, Jacobians, input gradients, attention."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.residual import (BasicBlock, SelfAttention, TransformerBlock, block_jacobians, build_line_network,
                                 build_resnet, build_transformer, input_gradients, jacobian_product_norms,
                                 lag1_autocorrelation, resnet_gradient_norms, train_resnet, train_resnets,
                                 transformer_gradient_norms)


def test_build_resnet_has_depth_weight_layers_and_he_init():
    for depth, blocks in [(8, 3), (20, 9), (56, 27)]:
        net = build_resnet(depth, 32, seed=0)
        assert len(net.blocks) == blocks
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        assert len(linears) == depth
    net = build_resnet(56, 64, seed=1)
    weights = torch.cat([b.linear1.weight.flatten() for b in net.blocks])
    assert weights.std().item() == pytest.approx(math.sqrt(2 / 64), rel=0.02)
    assert all(torch.equal(b.linear1.bias, torch.zeros(64)) for b in net.blocks)
    plain, residual = build_resnet(20, 8, residual=False, seed=3), build_resnet(20, 8, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), residual.state_dict().values()))
    for bad in (3, 21, 1, 20.0):
        with pytest.raises(ValueError, match="depth"):
            build_resnet(bad)


def test_basic_block_adds_its_input_before_the_last_relu():
    torch.manual_seed(0)
    block = BasicBlock(6).eval()
    with torch.no_grad():
        for norm in (block.norm1, block.norm2):
            norm.running_mean.normal_()
            norm.running_var.uniform_(0.5, 2)
    h = torch.randn(4, 6)
    branch = block.norm2(block.linear2(torch.relu(block.norm1(block.linear1(h)))))
    assert torch.allclose(block(h), torch.relu(h + branch))
    block.residual = False
    assert torch.allclose(block(h), torch.relu(branch))


def test_block_jacobians_match_the_formula():
    J = block_jacobians(width=8, activation="tanh", gain=1.0, seed=4)
    generator = torch.Generator().manual_seed(4)  # the function's draws, in order
    W = torch.randn(8, 8, dtype=torch.float64, generator=generator) / math.sqrt(8)
    h = torch.randn(8, dtype=torch.float64, generator=generator)
    expected = torch.diag(1 - torch.tanh(W @ h) ** 2) @ W
    assert np.allclose(J["plain"], expected.numpy(), atol=1e-14)
    assert np.allclose(J["residual"], np.eye(8) + expected.numpy(), atol=1e-14)


@pytest.mark.parametrize("residual", [False, True])
def test_jacobian_product_norms_match_the_end_to_end_jacobian(residual):
    depth, width, gain, scale = 6, 5, 0.8, 0.7
    norms = jacobian_product_norms(depth, residual=residual, width=width, gain=gain, scale=scale, seed=2)
    generator = torch.Generator().manual_seed(2)
    weights = [torch.randn(width, width, dtype=torch.float64, generator=generator) * gain / math.sqrt(width)
               for _ in range(depth)]
    h0 = torch.randn(width, dtype=torch.float64, generator=generator)

    def stack(v, start):
        for W in weights[start:]:
            branch = scale * torch.tanh(W @ v)
            v = v + branch if residual else branch
        return v

    h = h0
    for k in range(depth + 1):
        J = torch.autograd.functional.jacobian(lambda v: stack(v, k), h)
        assert norms[k] == pytest.approx(torch.linalg.matrix_norm(J, ord=2).item(), rel=1e-10)
        if k < depth:
            branch = scale * torch.tanh(weights[k] @ h)
            h = h + branch if residual else branch
    assert norms[-1] == 1.0


def test_input_gradients_match_central_differences_of_the_frozen_network():
    net = build_line_network(6, residual=True, width=20, seed=5).double()
    x = torch.linspace(-2, 2, 64, dtype=torch.float64).unsqueeze(1)
    with torch.no_grad():
        net.train()(x)
    net.eval()
    leaf = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(net(leaf).sum(), leaf)
    eps = 1e-6
    with torch.no_grad():
        numeric = (net(x + eps) - net(x - eps)) / (2 * eps)
    kinks = (numeric - grad).abs() > 1e-5  # a ReLU kink inside [x - eps, x + eps] is possible, but rare
    assert kinks.sum() <= 1
    # the library's float32 version gives the same curve
    xs, g = input_gradients(6, residual=True, width=20, num_points=64, seed=5)
    assert np.allclose(xs, x.squeeze(1).numpy(), atol=1e-6)
    assert np.allclose(g, grad.squeeze(1).numpy(), rtol=1e-3, atol=1e-4)


def test_line_network_plain_and_residual_and_bad_depth():
    assert len(build_line_network(4, residual=False, width=8).layers) == 4
    with pytest.raises(ValueError, match="depth"):
        build_line_network(0, residual=False)


def test_lag1_autocorrelation():
    rng = np.random.default_rng(0)
    g = rng.normal(size=50)
    centered = g - g.mean()
    assert lag1_autocorrelation(g) == pytest.approx(np.sum(centered[:-1] * centered[1:]) / np.sum(centered**2))
    assert abs(lag1_autocorrelation(rng.normal(size=20000))) < 0.03  # white noise
    assert lag1_autocorrelation(np.sin(np.linspace(0, 3, 500))) > 0.99  # smooth
    assert lag1_autocorrelation([1.0, -1.0] * 50) == pytest.approx(-0.99)
    for bad in ([1.0], [2.0, 2.0, 2.0]):
        with pytest.raises(ValueError):
            lag1_autocorrelation(bad)


def test_self_attention_matches_nn_multiheadattention():
    torch.manual_seed(0)
    ours = SelfAttention(12, 3)
    theirs = nn.MultiheadAttention(12, 3, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_weight.copy_(ours.qkv.weight)
        theirs.in_proj_bias.copy_(ours.qkv.bias)
        theirs.out_proj.weight.copy_(ours.out.weight)
        theirs.out_proj.bias.copy_(ours.out.bias)
    x = torch.randn(2, 5, 12)
    expected, _ = theirs(x, x, x, need_weights=False)
    assert torch.allclose(ours(x), expected, atol=1e-6)
    with pytest.raises(ValueError, match="multiple"):
        SelfAttention(10, 3)


def test_transformer_block_variants():
    torch.manual_seed(1)
    x = torch.randn(2, 4, 8)
    block = TransformerBlock(8, 2)
    h = x + block.attn(block.norm1(x))
    assert torch.allclose(block(x), h + block.mlp(block.norm2(h)), atol=1e-6)
    bare = TransformerBlock(8, 2, residual=False, norm=False)
    assert isinstance(bare.norm1, nn.Identity)
    assert torch.allclose(bare(x), bare.mlp(bare.attn(x)), atol=1e-6)
    net = build_transformer(3, 8, 2, seed=0)
    assert len(net) == 4 and isinstance(net[-1], nn.LayerNorm)
    again = build_transformer(3, 8, 2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    state = torch.get_rng_state()
    build_transformer(2, 8, 2, seed=5)
    assert torch.equal(state, torch.get_rng_state())  # a seeded build leaves the global RNG alone


def test_transformer_gradient_norms_match_autograd():
    depth = 3
    norms = transformer_gradient_norms(depth, residual=True, norm=True, d_model=8, heads=2, tokens=4, batch_size=2,
                                       seed=3)
    net = build_transformer(depth, 8, 2, seed=3)
    generator = torch.Generator().manual_seed(4)
    h0 = torch.randn(2, 4, 8, generator=generator)
    upstream = torch.randn(2, 4, 8, generator=generator)
    for k in range(depth):
        start = h0.clone().requires_grad_()
        h = start
        for block in list(net)[:k]:
            h = block(h)
        mid = h.detach().requires_grad_()
        h = mid
        for block in list(net)[k:]:
            h = block(h)
        (grad,) = torch.autograd.grad((h * upstream / upstream.norm()).sum(), mid)
        assert norms[k] == pytest.approx(grad.norm().item(), rel=1e-4)


def test_resnet_gradient_norms_match_autograd():
    norms = resnet_gradient_norms(8, residual=False, width=8, batch_size=16, seed=0)
    from course_lib.datasets import load_digits

    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:16]
    net = build_resnet(8, 8, residual=False, seed=0)
    h = net.stem(X[index])
    outputs = []
    for block in net.blocks:
        h = block(h)
        outputs.append(h)
    grads = torch.autograd.grad(nn.functional.cross_entropy(net.head(h), y[index]), outputs)
    assert np.allclose(norms, [g.norm().item() for g in grads], rtol=1e-5)


def test_train_resnet_returns_an_error_rate_and_a_loss_curve():
    threads = torch.get_num_threads()
    result = train_resnet(8, residual=True, width=8, num_steps=4, seed=0)
    assert 0.0 <= result["train_error"] <= 1.0 and len(result["loss"]) == 4
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_train_resnets_side_by_side_equals_separate_runs(monkeypatch, dtype):
    """Block-diagonal weights and per-unit BatchNorm keep the networks apart: each loss curve is a separate run's,
    to rounding (float64: 1e-9), a shallower network included (its units skip the extra blocks untouched)."""
    import course_lib.residual as residual
    from course_lib.datasets import load_digits

    X, y = load_digits()
    monkeypatch.setattr(residual, "load_digits", lambda: (X.to(dtype), y))
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        networks = [(8, True), (4, False), (8, False)]
        together = train_resnets(networks, width=8, num_steps=6, seed=3)
        separate = [train_resnet(depth, residual=res, width=8, num_steps=6, seed=3) for depth, res in networks]
    finally:
        torch.set_default_dtype(saved)
    for one, alone in zip(together, separate):
        np.testing.assert_allclose(one["loss"], alone["loss"], rtol=1e-9 if dtype == torch.float64 else 1e-4)
        if dtype == torch.float64:
            assert abs(one["train_error"] - alone["train_error"]) < 1e-6  # the same digits (one is 5.6e-4)
