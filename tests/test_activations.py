"""course_lib.activations against PyTorch (autograd, GradientMonitor) as the oracle."""

import doctest

import numpy as np
import pytest
import torch

from course_lib import activations
from course_lib.activations import (DEAD_SLOPE, RECOMMENDED_INIT, build_digits_net, gradient_norms,
                                    unit_activity)
from course_lib.datasets import load_digits
from course_lib.initialization import calculate_gain
from course_lib.monitoring import GradientMonitor
from course_lib.seeding import one_torch_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return X[:300], y[:300]


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "gelu", "silu", "tanh", "sigmoid"])
@pytest.mark.parametrize("bias", [0.0, -0.5, -2.0])
def test_unit_activity_dead_matches_gradient_monitor(digits, activation, bias):
    X, y = digits
    net = build_digits_net(activation, depth=4, bias=bias, seed=1)
    with GradientMonitor(net) as monitor:
        torch.nn.functional.cross_entropy(net(X), y).backward()
    assert np.array_equal(unit_activity(net, X)["dead"], monitor.latest("dead"))


def test_unit_activity_against_pre_activations_by_hand(digits):
    X, _ = digits
    net = build_digits_net("relu", depth=3, bias=-0.3, seed=2)
    activity = unit_activity(net, X)
    h = X
    for layer, block in enumerate(net.blocks):
        z = block.linear(h).detach()
        h = torch.relu(z)
        never_on = (z <= 0).all(dim=0).float().mean().item()
        assert activity["dead"][layer] == pytest.approx(never_on)
        assert activity["inactive"][layer] == pytest.approx(never_on)
        assert activity["active"][layer] == pytest.approx((z > 0).float().mean().item())


def test_leaky_units_are_inactive_but_never_dead(digits):
    X, _ = digits
    activity = unit_activity(build_digits_net("leaky_relu", depth=3, bias=-3.0, seed=0), X)
    assert (activity["dead"] == 0).all() and (activity["inactive"] > 0.9).all()
    assert DEAD_SLOPE < 0.01


def test_gradient_norms_match_autograd(digits):
    X, y = digits
    net = build_digits_net("tanh", depth=5, seed=3)
    norms = gradient_norms(net, X, y)
    net.zero_grad()
    torch.nn.functional.cross_entropy(net(X), y).backward()
    expected = [block.linear.weight.grad.norm().item() for block in net.blocks]
    assert norms == pytest.approx(expected, rel=1e-5)
    net.zero_grad(set_to_none=True)
    gradient_norms(net, X, y)
    assert all(p.grad is None for p in net.parameters())  # leaves no gradients behind


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "elu"])
def test_build_digits_net_uses_the_recommended_init_and_bias(activation):
    net = build_digits_net(activation, depth=2, width=256, bias=-0.25, seed=0)
    weight = net.blocks[1].linear.weight
    if RECOMMENDED_INIT[activation] == "xavier":
        expected = calculate_gain(activation) * (2 / (256 + 256)) ** 0.5
    else:
        expected = calculate_gain(activation) / 256**0.5
    assert weight.std().item() == pytest.approx(expected, rel=0.02)
    assert all((block.linear.bias == -0.25).all() for block in net.blocks)
    assert net(torch.zeros(3, 64)).shape == (3, 10)


def test_seeded_runs_repeat():
    a = activations.revival_experiment("relu", num_steps=20, seed=4)
    b = activations.revival_experiment("relu", num_steps=20, seed=4)
    assert a["final_loss"] == b["final_loss"] and np.array_equal(a["off"], b["off"])


def test_docstring_examples():
    assert doctest.testmod(activations, raise_on_error=True).attempted >= 1


def test_train_together_equals_separate_clipped_monitored_runs():
    """Side by side (per-network lr, clipping and monitor) gives each network exactly its separate run."""
    from course_lib.training import train

    X, y = load_digits()
    settings = {"relu": dict(activation="relu", lr=0.5), "elu": dict(activation="elu", lr=0.02)}
    together = activations.learning_rate_experiments(settings, depth=2, num_steps=40, monitor_every=5, seed=2)
    for label, options in settings.items():
        net = build_digits_net(options["activation"], depth=2, seed=2)
        history = train(net, X, y, lr=options["lr"], num_steps=40, momentum=0.9, clip=1.0, monitor=5, seed=2,
                        progress=False)
        assert np.array_equal(together[label]["dead_per_step"], history.layers["dead"]), label
        assert together[label]["final_loss"] == history.final_loss, label
        assert np.array_equal(together[label]["dead"], activations.unit_activity(net, X)["dead"]), label


def test_revival_weight_decay_and_freezing_act_on_their_own_network_only():
    runs = activations.revival_experiments({"plain": dict(activation="relu"),
                                            "decay": dict(activation="relu", weight_decay=0.01),
                                            "frozen": dict(activation="relu", freeze_first=True)},
                                           num_steps=20, seed=1)
    assert runs["plain"]["off_moved"][0] == 0.0 and runs["decay"]["off_moved"][0] == 1.0
    assert runs["frozen"]["off_moved"][0] == 0.0 and runs["frozen"]["off_revived"][0] == 0.0
    assert runs["plain"]["off_revived"][0] == runs["decay"]["off_revived"][0] == 0.0
