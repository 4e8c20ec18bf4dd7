"""Notebook 01's diagnosis question: its networks keep their verdicts over seeds.

The question's hidden tests measure a few real networks with fixed seeds; these
tests make sure each verdict is a property of the setup (depth, activation,
init), not of that seed. The official answer is loaded from the authored source.
"""

import math

import numpy as np
import pytest
import torch

from autograder.build import read_source, solution_cells
from course_lib.gradcheck import deep_sigmoid_gradcheck
from course_lib.models import build_mlp
from course_lib.monitoring import GradientMonitor


def official_answer(grade_id: str, name: str):
    """The official solution of one question, loaded from the authored source (never copied here)."""
    namespace = {"np": np, "math": math, "torch": torch}
    exec(solution_cells(read_source("01_chain_rule")[0])[grade_id], namespace)  # noqa: S102 - our own solution
    return namespace[name]


def output_grad_norms(net, width: int, seed: int) -> np.ndarray:
    with GradientMonitor(net) as monitor:
        net(torch.randn(64, width, generator=torch.Generator().manual_seed(seed))).pow(2).sum().backward()
    return monitor.latest("out_grad_norm")


NETWORKS = {  # the visible check's three networks, then the hidden tests' three
    "visible A": ({"depth": 20, "width": 64, "activation": "tanh", "init": "normal", "std": 4 / 8}, "exploding"),
    "visible B": ({"depth": 20, "width": 64, "activation": "sigmoid", "init": "standard"}, "vanishing"),
    "visible C": ({"depth": 20, "width": 64, "activation": "relu", "init": "he"}, "healthy"),
    "hidden sigmoid": ({"depth": 12, "width": 32, "activation": "sigmoid", "init": "standard"}, "vanishing"),
    "hidden tanh": ({"depth": 15, "width": 24, "activation": "tanh", "init": "normal", "std": 1.2}, "exploding"),
    "hidden relu": ({"depth": 9, "width": 40, "activation": "relu", "init": "he"}, "healthy"),
}


@pytest.mark.parametrize("network", list(NETWORKS))
def test_question_6_networks_keep_their_verdicts_over_seeds(network):
    settings, label = NETWORKS[network]
    diagnose = official_answer("q6_diagnose", "diagnose")
    width = settings["width"]
    verdicts = [diagnose(output_grad_norms(build_mlp(**settings, seed=seed), width, seed + 100))
                for seed in range(10)]
    assert verdicts == [label] * 10, verdicts


@pytest.mark.parametrize("seed", range(6))
def test_one_normaliser_hides_a_first_layer_bug_per_tensor_and_local_checks_find_it(seed):
    """Section 3: in a 14-layer sigmoid chain a forgotten slope in layer 1 passes a check with one
    normaliser, fails per tensor (where the right backward cannot be resolved either), and a check
    of layer 1 alone fails the bug only."""
    deep = deep_sigmoid_gradcheck(depth=14, width=6, seed=seed)
    assert deep["layer1_over_last"] < 1e-7
    assert deep["global_bug"] < 1e-7 and deep["global_right"] < 1e-7
    assert deep["layer1_bug"] > 0.3 and deep["layer1_right"] > 1e-2
    assert deep["local_bug"] > 0.3 and deep["local_right"] < 1e-7
