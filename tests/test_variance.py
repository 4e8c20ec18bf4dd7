"""course_lib.variance: the mean-field formulas against closed forms, Monte Carlo and autograd."""

import doctest
import math
import time

import numpy as np
import pytest
import torch

from course_lib import variance
from course_lib.models import build_mlp
from course_lib.seeding import one_torch_thread
from course_lib.variance import (chi_1, critical_sigma_w2, deep_linear_singular_values, fixed_point,
                                 gaussian_expectation, gradient_curve, layer_statistics, random_network,
                                 simulate_variance, slope_factor, variance_curve, variance_map)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.mark.parametrize("q", [0.01, 0.5, 1.0, 7.0])
def test_gaussian_expectation_closed_forms(q):
    assert gaussian_expectation(lambda z: z**2, q) == pytest.approx(q, rel=1e-12)
    assert gaussian_expectation(lambda z: z**4, q) == pytest.approx(3 * q**2, rel=1e-12)
    assert gaussian_expectation(lambda z: torch.relu(z) ** 2, q) == pytest.approx(q / 2, rel=1e-12)
    assert gaussian_expectation(lambda z: (z > 0).double(), q) == pytest.approx(0.5, rel=1e-12)
    assert gaussian_expectation(torch.cos, q) == pytest.approx(math.exp(-q / 2), rel=1e-10)


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "gelu", "silu", "elu"])
def test_variance_map_and_slope_factor_match_monte_carlo(activation):
    from course_lib.models import activation_derivative, make_activation

    z = torch.randn(2_000_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * math.sqrt(0.8)
    phi = make_activation(activation)
    assert variance_map(activation, 0.8, sigma_w2=1.5, sigma_b2=0.1) == pytest.approx(
        1.5 * phi(z).pow(2).mean().item() + 0.1, rel=3e-3)
    kink = 1e-2 if activation == "elu" else 3e-3  # ELU'^2 has a kink at 0: quadrature converges slowly there
    assert slope_factor(activation, 0.8, sigma_w2=1.5) == pytest.approx(
        1.5 * activation_derivative(activation, z).pow(2).mean().item(), rel=kink)


def test_relu_maps_are_exact():
    assert variance_map("relu", 3.0, sigma_w2=2.0, sigma_b2=0.1) == pytest.approx(3.1, rel=1e-12)
    assert chi_1("relu", sigma_w2=1.3) == pytest.approx(0.65, rel=1e-12)
    assert variance_curve("relu", sigma_w2=1.0, depth=5) == pytest.approx([1, 0.5, 0.25, 0.125, 0.0625])
    assert gradient_curve("relu", sigma_w2=3.0, depth=4) == pytest.approx([1.5**3, 1.5**2, 1.5, 1.0])


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "linear"])
def test_chi_of_a_sign_sloped_activation_is_its_slope_at_the_fixed_point(activation):
    """chi_1 skips the fixed point where phi' depends on the sign of z only: the same number as at q*."""
    for sigma_w2, sigma_b2 in ((0.7, 0.0), (1.3, 0.05), (1.99, 0.05), (2.0, 0.05), (2.4, 0.3)):
        q = min(fixed_point(activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2), variance._Q_MAX)
        assert chi_1(activation, sigma_w2=sigma_w2, sigma_b2=sigma_b2) == \
            slope_factor(activation, q, sigma_w2=sigma_w2)
    start = time.process_time()
    assert critical_sigma_w2("relu", sigma_b2=0.05) == pytest.approx(2.0, abs=1e-8)  # any bias variance
    assert time.process_time() - start < 0.5  # was ~1.5 s: thousands of fixed-point iterates near sigma_w2 = 2


@pytest.mark.parametrize("sigma_w2", [0.8, 1.5, 3.0])
def test_fixed_point_is_a_fixed_point(sigma_w2):
    q = fixed_point("tanh", sigma_w2=sigma_w2, sigma_b2=0.05)
    assert variance_map("tanh", q, sigma_w2=sigma_w2, sigma_b2=0.05) == pytest.approx(q, rel=1e-10)
    assert fixed_point("relu", sigma_w2=2.5) == math.inf


def test_critical_values():
    critical = critical_sigma_w2("tanh", sigma_b2=0.05)
    assert critical == pytest.approx(1.76, abs=0.01)  # Schoenholz et al. 2017, Fig. 1
    assert chi_1("tanh", sigma_w2=critical, sigma_b2=0.05) == pytest.approx(1.0, abs=1e-8)
    assert critical_sigma_w2("relu") == pytest.approx(2.0, abs=1e-8)  # He init
    assert critical_sigma_w2("tanh", sigma_b2=0.0, tol=1e-3) == pytest.approx(1.0, abs=0.02)  # Poole et al. 2016
    assert critical_sigma_w2("tanh", sigma_b2=0.3, tol=1e-3) > critical  # more bias noise needs larger weights
    with pytest.raises(ValueError, match="does not change sign"):
        critical_sigma_w2("tanh", sigma_b2=0.05, low=2.0, high=3.0)
    with pytest.raises(ValueError, match="variance"):
        gaussian_expectation(torch.tanh, -1.0)


def test_random_network_draws_the_stated_distributions():
    net = random_network("tanh", depth=2, width=400, sigma_w2=1.7, sigma_b2=0.3, in_features=100, seed=0)
    first, second = net.blocks[0].linear, net.blocks[1].linear
    assert first.weight.std().item() == pytest.approx(math.sqrt(1.7 / 100), rel=0.02)
    assert second.weight.std().item() == pytest.approx(math.sqrt(1.7 / 400), rel=0.02)
    assert second.bias.std().item() == pytest.approx(math.sqrt(0.3), rel=0.15)
    zero_bias = random_network("relu", depth=1, width=8, sigma_w2=2.0, seed=0)
    assert (zero_bias.blocks[0].linear.bias == 0).all()


def test_layer_statistics_match_autograd():
    net = random_network("tanh", depth=4, width=32, sigma_w2=1.5, sigma_b2=0.05, seed=1)
    X = torch.randn(50, 32, generator=torch.Generator().manual_seed(2))
    stats = layer_statistics(net, X, seed=3)
    v = torch.randn(50, 32, generator=torch.Generator().manual_seed(3))
    hs, h = [], X
    for block in net.blocks:
        z = block.linear(h)
        assert stats["pre_var"][len(hs)] == pytest.approx(z.var().item(), rel=1e-5)
        h = torch.tanh(z)
        h.retain_grad()
        hs.append(h)
    (h * v).sum().backward()
    assert stats["grad_std"] == pytest.approx([x.grad.std().item() for x in hs], rel=1e-5)
    assert stats["act_std"] == pytest.approx([x.std().item() for x in hs], rel=1e-5)


def test_simulation_follows_the_mean_field_prediction_for_tanh():
    simulated = simulate_variance("tanh", sigma_w2=1.76, sigma_b2=0.05, depth=20, width=128, num_networks=4)
    assert simulated["pre_var"] / variance_curve("tanh", sigma_w2=1.76, sigma_b2=0.05, depth=20) == \
        pytest.approx(np.ones(20), rel=0.2)
    assert simulated["grad_var"] / gradient_curve("tanh", sigma_w2=1.76, sigma_b2=0.05, depth=20) == \
        pytest.approx(np.ones(20), rel=0.25)


def test_deep_linear_singular_values_against_an_explicit_product():
    generator = torch.Generator().manual_seed(5)
    from course_lib.initialization import init_weight_

    weights = [init_weight_(torch.empty(20, 20, dtype=torch.float64), "lecun", gain=1.0, generator=generator)
               for _ in range(6)]
    product = np.linalg.multi_dot([w.numpy() for w in reversed(weights)])
    measured = deep_linear_singular_values("lecun", depth=6, width=20, seed=5)
    assert measured == pytest.approx(np.linalg.svd(product, compute_uv=False), rel=1e-10, abs=1e-14)

    def network(x):
        for weight in weights:
            x = weight @ x
        return x

    by_autograd = torch.autograd.functional.jacobian(network, torch.zeros(20, dtype=torch.float64))
    assert measured == pytest.approx(torch.linalg.svdvals(by_autograd).numpy(), rel=1e-10, abs=1e-14)
    assert deep_linear_singular_values("orthogonal", depth=50, width=20, seed=0) == pytest.approx(
        np.ones(20), abs=1e-12)


def test_default_init_matches_nn_linear_weights_and_biases():
    torch.manual_seed(0)
    reference = torch.nn.Linear(400, 400)
    ours = build_mlp(1, 400, activation="relu", init="default", seed=0).blocks[0].linear
    assert ours.weight.std().item() == pytest.approx(reference.weight.std().item(), rel=0.02)
    assert ours.bias.std().item() == pytest.approx(reference.bias.std().item(), rel=0.15)
    assert ours.bias.abs().max().item() <= 1 / 20


def test_docstring_examples():
    assert doctest.testmod(variance, raise_on_error=True).attempted >= 2


def test_deep_linear_gradients_written_out_match_autograd():
    from course_lib.variance import _deep_linear_loss_and_gradients

    generator = torch.Generator().manual_seed(3)
    layers = [torch.randn(2, 5, 5, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    targets = torch.randn(2, 5, 5, generator=generator, dtype=torch.float64)
    loss, grads = _deep_linear_loss_and_gradients([w.detach() for w in layers], targets)
    product = layers[0]
    for weight in layers[1:]:
        product = weight @ product
    reference = 0.5 * (product - targets).pow(2).sum(dim=(1, 2)) / 5
    assert torch.allclose(loss, reference.detach())
    for grad, expected in zip(grads, torch.autograd.grad(reference.sum(), layers)):
        assert torch.allclose(grad, expected)


def test_deep_linear_learning_time_counts_steps_to_the_threshold():
    from course_lib.variance import deep_linear_learning_time

    steps = deep_linear_learning_time(("orthogonal",), (1, 4), width=8, max_steps=1000, seeds=(0, 1))["orthogonal"]
    assert steps.shape == (2, 2) and np.isfinite(steps).all() and (steps[:, 1] > steps[:, 0]).all()
    capped = deep_linear_learning_time(("lecun",), (16,), width=8, max_steps=5, seeds=(0,))["lecun"]
    assert np.isinf(capped).all()
