"""GradientMonitor.diagnose()/report() on the failures notebook 08 teaches to tell apart.

Each network below is small and seeded; each test pins the finding that the
capstone's health reports rely on, including the cases where the weight
gradients alone would look healthy.
"""

import math

import numpy as np
import pytest
import torch

from course_lib.models import build_mlp
from course_lib.monitoring import GradientMonitor
from course_lib.training import train

WIDTH, FEATURES, CLASSES = 32, 16, 4


def batch(n=128, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, FEATURES, generator=generator), torch.randint(0, CLASSES, (n,), generator=generator)


def monitored(net, seed=0) -> GradientMonitor:
    X, y = batch(seed=seed)
    with GradientMonitor(net) as monitor:
        torch.nn.functional.cross_entropy(net(X), y).backward()
    return monitor


def net(depth, *, bias=None, seed=0, **settings):
    model = build_mlp(depth, WIDTH, in_features=FEATURES, out_features=CLASSES, seed=seed, **settings)
    if bias is not None:
        with torch.no_grad():
            for block in model.blocks:
                block.linear.bias.fill_(bias)
    return model


def kinds(monitor) -> list[str]:
    return [finding.kind for finding in monitor.diagnose()]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exploding_is_found_even_when_weight_gradients_look_even(seed):
    """ReLU with N(0, 1) weights: activations grow as fast as dL/dh shrinks toward the output, so
    ||dL/dW|| = ||delta h^T|| is nearly flat, while the gradient reaching layer 1 is 1e3x the last."""
    monitor = monitored(net(6, activation="relu", init="normal", std=1.0, seed=seed), seed)
    weights, flow = monitor.latest("grad_norm"), monitor.latest("out_grad_norm")
    assert 1e-1 < weights[0] / weights[-1] < 1e1  # the old measure alone says "healthy"
    assert flow[0] / flow[-1] > 1e2
    first = monitor.diagnose()[0]
    assert first.kind == "exploding" and first.value == pytest.approx(flow[0] / flow[-1])
    assert "||dL/dh||" in first.message and "exploding" in monitor.report()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collapsing_activations_are_vanishing_and_reported(seed):
    """20 tanh layers with variance-1/(3n) weights and zero biases: activations shrink ~0.58x per layer."""
    monitor = monitored(net(20, activation="tanh", init="standard", seed=seed), seed)
    act = monitor.latest("act_std")
    assert act[-1] / act[0] < 1e-3
    assert kinds(monitor)[0] == "vanishing"
    report = monitor.report()
    assert "Activation std by layer" in report and "Gradient at layer outputs ||dL/dh||" in report


def test_deep_sigmoid_still_vanishing_on_both_measures():
    monitor = monitored(net(12, activation="sigmoid", init="standard"))
    for metric in ("grad_norm", "out_grad_norm"):
        values = monitor.latest(metric)
        assert values[0] / values[-1] < 1e-4, metric
    assert kinds(monitor)[0] == "vanishing"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dead_relu_network(seed):
    """Biases at -1: in the deeper layers most units are off for every example."""
    monitor = monitored(net(6, activation="relu", init="he", bias=-1.0, seed=seed), seed)
    dead = [f for f in monitor.diagnose() if f.kind == "dead"]
    assert dead and dead[0].value > 0.8
    assert "pass no gradient on any example (dead)" in monitor.report()


def test_zero_init_gets_no_gradient_and_nothing_dead():
    monitor = monitored(net(4, activation="tanh", init="zeros"))
    assert kinds(monitor) == ["vanishing"]
    assert "no gradient at all" in monitor.report()


def test_saturated_tanh_is_named():
    monitor = monitored(net(6, activation="tanh", init="xavier", bias=3.0))
    assert "saturated" in kinds(monitor)


def test_healthy_network_stays_healthy():
    monitor = monitored(net(6, activation="relu", init="he"))
    assert monitor.diagnose() == [] and "healthy" in monitor.report()


def test_a_diverged_run_is_reported_not_an_error():
    """Before: a NaN step looked like 'nothing recorded' and report() raised."""
    X, y = batch(512)
    history = train(net(6, activation="relu", init="normal", std=1.0), X, y, lr=0.1, num_steps=20,
                    monitor=True, progress=False)
    assert history.diverged
    findings = history.monitor.diagnose()
    # the last recorded gradients are finite float32 numbers whose norms (~1e28) only float64 holds
    assert findings[0].kind == "exploding" and findings[0].value > 1e10
    assert "exploding" in history.monitor.report()


def test_non_finite_gradients_are_named():
    model = net(6, activation="relu", init="he")
    X, _ = batch()
    with GradientMonitor(model) as monitor:
        (model(X) * float("inf")).sum().backward()  # inf and NaN gradients everywhere
    findings = monitor.diagnose()
    assert findings[0].kind == "non-finite" and not math.isfinite(findings[0].value)
    assert "non-finite" in monitor.report()


def test_nan_activations_are_non_finite_and_not_called_dead():
    """NaN inputs make every slope NaN, which the dead test (|slope| < 1e-6) cannot read: no dead finding."""
    model = net(3, activation="relu", init="he")
    X, y = batch()
    with GradientMonitor(model) as monitor:
        torch.nn.functional.cross_entropy(model(X * float("nan")), y).backward()
    found = kinds(monitor)
    assert found[0] == "non-finite" and "dead" not in found
    assert monitor.diagnose()[0].message.startswith("layer 1 has non-finite activations")


def test_nan_gradients_found_without_forward_overflow():
    model = net(3, activation="relu", init="he")
    X, y = batch()
    with GradientMonitor(model) as monitor:
        (torch.nn.functional.cross_entropy(model(X), y) * float("nan")).backward()
    findings = monitor.diagnose()
    assert findings[0].kind == "non-finite" and np.isnan(findings[0].value)


def test_unrecorded_still_raises():
    monitor = GradientMonitor(net(2, activation="relu"))
    with pytest.raises(RuntimeError, match="nothing recorded yet"):
        monitor.diagnose()
    model = net(2, activation="relu")
    with GradientMonitor(model) as monitor:
        model(batch()[0])  # forward only
    with pytest.raises(RuntimeError, match="no gradients recorded yet"):
        monitor.diagnose()
