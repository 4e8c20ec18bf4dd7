"""Notebook 02's experiments re-run over several seeds, asserting the thresholds the notebook states (E1, E2).

The notebook runs each experiment with one seed; these tests make sure the
claims are properties of the setup, not of that seed.
"""

import math

import numpy as np
import pytest
import torch

from autograder.build import read_source, solution_cells
from course_lib.datasets import load_digits
from course_lib.models import build_mlp
from course_lib.saturation import (backprop_gradient_stds, layer_gradients, pre_activations,
                                   train_on_random_first_layer, train_sigmoid_on_digits)
from course_lib.widgets import saturation_explorer

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_e1_standard_init_shrinks_backpropagated_gradients_normalized_init_keeps_them(seed):
    standard = backprop_gradient_stds("standard", seed=seed)["activation_grad"]
    normalized = backprop_gradient_stds("xavier", seed=seed)["activation_grad"]
    assert standard[0] / standard[-1] < 0.2
    assert normalized[0] / normalized[-1] > 0.4


@pytest.mark.parametrize("seed", SEEDS)
def test_deep_sigmoid_net_at_init_vanishes_without_saturating(seed):
    result = layer_gradients(10, activation="sigmoid", weight_scale=1.0, seed=seed)
    grads = result["grad_norm"]
    ratio = grads[0] / grads[-1]
    assert ratio < 1e-5  # orders of magnitude, as 0.25^9 = 3.8e-6 suggests
    assert 0.2 < ratio ** (1 / 9) < 0.26
    assert np.all(np.diff(np.log(grads)) > 0)
    assert result["saturated"].max() == 0.0


@pytest.mark.parametrize("seed", SEEDS)
def test_large_weights_saturate_sigmoid_units(seed):
    X, _ = load_digits()
    stats = {}
    for scale in (1.0, 8.0):
        net = build_mlp(5, 64, activation="sigmoid", init="lecun", weight_scale=scale, in_features=64,
                        out_features=10, seed=seed)
        s = torch.sigmoid(pre_activations(net, X[:512])[2])
        stats[scale] = (((s < 0.03) | (s > 0.97)).float().mean().item(), (s * (1 - s)).mean().item())
    assert stats[1.0][0] < 0.01 and stats[1.0][1] > 0.2
    assert stats[8.0][0] > 0.35 and stats[8.0][1] < 0.1


def official_answer(grade_id: str, name: str):
    """The official solution of one question, loaded from the authored source (never copied here)."""
    namespace = {"np": np, "math": math, "torch": torch}
    exec(solution_cells(read_source("02_sigmoid_saturation")[0])[grade_id], namespace)  # noqa: S102 - our own solution
    return namespace[name]


@pytest.mark.parametrize("seed", SEEDS)
def test_question_5_networks_keep_their_labels(seed):
    """The diagnosis question's three networks: saturated, healthy, vanishing (for any seed), with margin."""
    diagnose = official_answer("q5_diagnose", "diagnose")
    saturated = layer_gradients(10, activation="sigmoid", weight_scale=8.0, seed=seed)
    healthy = layer_gradients(10, activation="tanh", weight_scale=1.0, seed=seed)
    vanishing = layer_gradients(10, activation="sigmoid", weight_scale=1.0, seed=seed)

    def ratio(r):
        return r["grad_norm"][0] / r["grad_norm"][-1]

    assert saturated["saturated"].mean() > 1 / 3 and ratio(saturated) > 1e-2
    assert 1e-2 < ratio(healthy) < 1e2 and healthy["saturated"].max() < 0.05
    assert ratio(vanishing) < 1e-2 and vanishing["saturated"].max() < 0.05
    assert [diagnose(r["grad_norm"], r["saturated"]) for r in (saturated, healthy, vanishing)] == \
        ["saturated", "healthy", "vanishing"]


@pytest.mark.parametrize("depth,activation,scale,label", [
    (6, "tanh", 6.0, "saturated"), (14, "sigmoid", 1.0, "vanishing"), (7, "tanh", 1.0, "healthy")])
def test_question_5_hidden_networks_keep_their_labels_over_seeds(depth, activation, scale, label):
    """The hidden tests' real networks get the same verdict from the official answer on 10 of 10 seeds."""
    diagnose = official_answer("q5_diagnose", "diagnose")
    verdicts = []
    for seed in range(10):
        result = layer_gradients(depth, activation=activation, weight_scale=scale, seed=seed)
        verdicts.append(diagnose(result["grad_norm"], result["saturated"]))
    assert verdicts == [label] * 10


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_e2_top_layer_saturates_and_the_first_layer_stays_at_its_init(seed):
    result = train_sigmoid_on_digits(seed=seed)
    final = result["act_mean"][-1]
    assert final[-1] < 0.15  # top layer pushed towards 0
    assert abs(final[0] - 0.5) < 0.05  # layer 1 near 0.5
    assert result["accuracy"] < 0.2  # near chance
    # the loss falls only to the class prior's (the digits' classes: ln 10 to three digits), layer 1 left at init
    _, y = load_digits()
    prior = torch.bincount(y, minlength=10).double() / len(y)
    assert abs(result["loss"][-150:].mean() - (-(prior * prior.log()).sum().item())) < 0.02
    change = result["weight_change"]
    assert change[0] < 0.01 and change[0] < change[3] / 100


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_a_network_trains_well_on_a_first_layer_that_never_learns(seed):
    """Section 6: initial loss near ln 10, high training accuracy, layer 1 reset to its init changes
    the accuracy by less than a point, a fresh layer 1 drops it to chance."""
    result = train_on_random_first_layer(first_scale=32.0, hidden_scale=4.0, num_steps=300, seed=seed)
    assert abs(result["initial_loss"] - math.log(10)) < 0.3
    assert result["accuracy"] > 0.95
    assert abs(result["reset_accuracy"] - result["accuracy"]) < 0.01
    change = result["weight_change"]
    assert change[0] < change[1:].min() / 10 and result["saturated"] > 0.7
    assert result["redrawn_accuracy"] < 0.2


def test_saturation_explorer():
    explorer = saturation_explorer(depth=10, weight_scale=1.0, activation="sigmoid")
    assert explorer.last["kind"] == "vanishing" and explorer.last["saturated_mean"] == 0.0
    assert explorer.png.startswith(b"\x89PNG")
    data = explorer.update(activation="tanh")
    assert data["kind"] == "healthy" and len(data["grad_norms"]) == 10
    data = explorer.update(activation="sigmoid", weight_scale=8.0, depth=5)
    assert data["saturated_mean"] > 0.3 and len(data["grad_norms"]) == 5
    assert "saturated" in explorer.verdict.value
