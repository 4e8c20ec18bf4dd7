"""Models: shapes, options, and activation derivatives against autograd."""

import pytest
import torch

from course_lib.models import ACTIVATIONS, Block, activation_derivative, build_mlp


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_derivative_matches_autograd(name):
    from course_lib.models import make_activation

    z = torch.linspace(-6, 6, 241, dtype=torch.float64).requires_grad_()
    (grad,) = torch.autograd.grad(make_activation(name)(z).sum(), z)
    expected = grad.detach()
    got = activation_derivative(name, z.detach())
    mask = z.detach() != 0  # ReLU-family derivatives are conventions at exactly 0
    assert got.dtype == torch.float64
    assert torch.allclose(got[mask], expected[mask], rtol=1e-12, atol=1e-12)


def test_build_mlp_shapes_and_structure():
    net = build_mlp(5, 16, activation="tanh", init="xavier", in_features=3, out_features=2, seed=0)
    assert net(torch.zeros(7, 3)).shape == (7, 2)
    assert len(net.blocks) == 5 and all(isinstance(b, Block) for b in net.blocks)
    assert net.blocks[0].linear.in_features == 3 and net.blocks[-1].linear.out_features == 16
    assert net.head.out_features == 2


def test_residual_adds_the_input_where_shapes_match():
    net = build_mlp(3, 8, activation="relu", residual=True, in_features=4, seed=0)
    assert not net.blocks[0].residual and net.blocks[1].residual
    x = torch.randn(5, 8)
    block = net.blocks[1]
    assert torch.allclose(block(x), x + torch.relu(block.linear(x)))


@pytest.mark.parametrize("norm, kind", [("batch", torch.nn.BatchNorm1d), ("layer", torch.nn.LayerNorm),
                                        (None, torch.nn.Identity)])
def test_norm_options(norm, kind):
    net = build_mlp(2, 8, norm=norm, seed=0)
    assert isinstance(net.blocks[0].norm, kind)


def test_seed_and_weight_scale():
    a = build_mlp(3, 8, init="he", seed=1)
    b = build_mlp(3, 8, init="he", seed=1, weight_scale=2.0)
    assert torch.allclose(2.0 * a.blocks[1].linear.weight, b.blocks[1].linear.weight)
    assert not torch.equal(a.blocks[1].linear.weight, build_mlp(3, 8, init="he", seed=2).blocks[1].linear.weight)


def test_bad_arguments_say_what_is_allowed():
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        build_mlp(0, 8)
    with pytest.raises(ValueError, match="unknown activation 'swish'.*choose one of"):
        build_mlp(2, 8, activation="swish")
    with pytest.raises(ValueError, match="unknown norm"):
        build_mlp(2, 8, norm="group")
    with pytest.raises(ValueError, match="unknown init scheme"):
        build_mlp(2, 8, init="magic")
