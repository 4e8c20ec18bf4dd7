"""course_lib.saturation against PyTorch as the oracle, and its formulas."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.datasets import load_digits
from course_lib.models import build_mlp
from course_lib.saturation import (backprop_gradient_stds, layer_gradients, pre_activations,
                                   relative_weight_changes)


def test_pre_activations_are_each_linear_output():
    net = build_mlp(3, 8, activation="sigmoid", in_features=4, out_features=2, seed=0)
    X = torch.randn(5, 4)
    zs = pre_activations(net, X)
    h, expected = X, []
    for block in net.blocks:
        expected.append(block.linear(h))
        h = torch.sigmoid(expected[-1])
    assert len(zs) == 3 and all(torch.allclose(a, b) for a, b in zip(zs, expected))
    assert not any(z.requires_grad for z in zs)
    assert not net.blocks[0].linear._forward_hooks  # hooks are removed


def test_relative_weight_changes():
    before = [torch.ones(2, 2), torch.full((3,), 2.0)]
    after = [torch.ones(2, 2) * 1.5, torch.tensor([2.0, 2.0, 5.0])]
    expected = [0.5, 3.0 / math.sqrt(12.0)]
    assert np.allclose(relative_weight_changes(before, after), expected)


def test_layer_gradients_match_autograd():
    result = layer_gradients(4, activation="tanh", weight_scale=2.0, n=64, seed=1)
    X, y = load_digits()
    index = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))[:64]
    net = build_mlp(4, 64, activation="tanh", init="lecun", weight_scale=2.0, in_features=64, out_features=10,
                    seed=1)
    nn.functional.cross_entropy(net(X[index]), y[index]).backward()
    expected = [block.linear.weight.grad.norm().item() for block in net.blocks]
    assert np.allclose(result["grad_norm"], expected, rtol=1e-5)
    h, saturated = X[index], []
    with torch.no_grad():
        for block in net.blocks:
            h = block(h)
            saturated.append((h.abs() > 0.97).float().mean().item())
    assert np.allclose(result["saturated"], saturated)


def test_backprop_gradient_stds_in_a_linear_net_follow_the_formula():
    """Standard init: Var(W) = 1/(3n), so each linear layer scales the gradient std by sqrt(1/3)."""
    result = backprop_gradient_stds("standard", activation="linear", depth=4, width=300, n=512, seed=0)
    factors = result["activation_grad"][:-1] / result["activation_grad"][1:]
    assert np.allclose(factors, math.sqrt(1 / 3), rtol=0.04)
    assert result["weight_grad"].shape == (4,)


@pytest.mark.parametrize("init", ["standard", "xavier"])
def test_backprop_gradient_stds_match_autograd(init):
    result = backprop_gradient_stds(init, depth=3, width=50, n=32, seed=2)
    X = torch.randn(32, 50, generator=torch.Generator().manual_seed(3))
    labels = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(3))
    net = build_mlp(3, 50, activation="tanh", init=init, gain=1.0, out_features=10, seed=2)
    hs, h = [], X
    for block in net.blocks:
        h = block(h)
        h.retain_grad()
        hs.append(h)
    nn.functional.cross_entropy(net.head(h), labels).backward()
    assert np.allclose(result["activation_grad"], [h.grad.std().item() for h in hs], rtol=1e-5)
    assert np.allclose(result["weight_grad"], [b.linear.weight.grad.std().item() for b in net.blocks], rtol=1e-5)
