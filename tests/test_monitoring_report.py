"""GradientMonitor.diagnose()/report() on the failures notebook 08 teaches to tell apart.

Each network below is small and seeded; each test pins the finding that the
capstone's health reports rely on, including the cases where the weight
gradients alone would look healthy.
"""

import math
import re

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


# -- the report never contradicts the numbers it prints (notebook 08 prints it for every mystery) -------

def _printed(report: str) -> dict[str, dict[str, float]]:
    """{'grad_norm' | 'out_grad_norm' | 'act_std': {layer name: value}} from the report's first lines."""
    labels = {"Gradient norms by layer": "grad_norm", "Gradient at layer outputs ||dL/dh||": "out_grad_norm",
              "Activation std by layer": "act_std"}
    printed = {}
    for line in report.splitlines():
        label, _, rest = line.partition(": ")
        if label in labels:
            pairs = re.findall(r"(\S+) \(([^)]+)\)", rest)
            printed[labels[label]] = {name: float(value) for value, name in pairs}
    return printed


def _close(quoted: str, expected: float) -> bool:
    """A ratio quoted with two digits against one computed from two-digit printed values."""
    return math.isclose(float(quoted), expected, rel_tol=0.1, abs_tol=0.0)


@pytest.mark.parametrize("name", ["A", "B", "C", "D", "E"])
def test_the_mystery_reports_agree_with_the_numbers_they_print(name):
    from course_lib import mysteries

    report = mysteries.measure(mysteries.build_mystery(name), *mysteries.probe_batch())["report"]
    printed = _printed(report)
    assert {"grad_norm", "out_grad_norm"} <= printed.keys(), report
    findings = [line[2:] for line in report.splitlines() if line.startswith("- ")]
    assert findings, report
    checked = 0
    for finding in findings:
        if match := re.fullmatch(r"(layer \d+) receives no gradient at all: .*", finding):
            layer = match.group(1)
            assert all(values[layer] == 0 for metric, values in printed.items() if metric != "act_std"), report
        elif match := re.fullmatch(r"(\S+) arrives at (layer \d+)'s output \|\|dL/dh\|\| and stops there: its weights "
                                   r"get no gradient \(\|\|dL/dW\|\| = 0\)(, nor do the layers below it)?", finding):
            quoted, layer, below = match.groups()
            assert float(quoted) == printed["out_grad_norm"][layer] > 0, report
            assert printed["grad_norm"][layer] == 0, report
            if below:
                assert all(value == 0 for value in printed["grad_norm"].values()), report
        elif match := re.fullmatch(r"the (weight gradient \|\|dL/dW\|\| of|gradient \|\|dL/dh\|\| arriving at) "
                                   r"(layer \d+) is (\S+) (of|times) (layer \d+)'s: (vanishing|exploding)", finding):
            what, first, quoted, share, last, kind = match.groups()
            values = printed["grad_norm" if what.startswith("weight") else "out_grad_norm"]
            assert _close(quoted, values[first] / values[last]), report
            assert (kind == "exploding") == (share == "times") == (values[first] > values[last]), report
        elif re.fullmatch(r"layer \d+ has \d+% of its (units pass no gradient on any example \(dead\)|"
                          r"activations in the flat, saturated zone)", finding):
            continue  # fractions of units, which the report does not print
        elif "gradient" in finding:
            raise AssertionError(f"a finding about gradients the test does not check: {finding!r}")
        else:
            continue
        checked += 1
    assert checked, f"no finding about gradients to check:\n{report}"
