"""Notebook 06's experiments re-run over several seeds, asserting the thresholds the notebook asserts.

The notebook runs each experiment with seed 0; these tests make sure the
claims are properties of the setup, not of that seed. E12 (gradient checks of
BatchNorm and LayerNorm) is in test_normalization.py, over four seeds.
"""

import math

import numpy as np
import pytest

from autograder.build import read_source, solution_cells
from course_lib.normalization import layer_statistics_at_init, train_digits, weight_scale_sweep

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_batchnorm_keeps_a_deep_sigmoid_nets_gradients_healthy(seed):
    """Section 5: 10 sigmoid layers of 100, N(0, 0.1^2); ||dL/dh_1|| / ||dL/dh_10||."""
    ratio = {}
    for norm in (None, "batch", "layer"):
        grads = layer_statistics_at_init(10, 100, activation="sigmoid", norm=norm, std=0.1, seed=seed)["out_grad_norm"]
        ratio[norm] = grads[0] / grads[-1]
    assert ratio[None] < 1e-5
    assert 0.5 < ratio["batch"] < 2
    assert 50 < ratio["layer"] / ratio[None] < 200 and ratio["layer"] < 1e-2  # 86 to 120 on seeds 0-4


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_e8_batchnorm_trains_a_deep_sigmoid_net_much_faster(seed):
    """E8 (Ioffe & Szegedy 2015, figure 1, in small): digits, 3x100 sigmoid, N(0, 0.1^2), SGD lr 0.1, 300 steps."""
    runs = {norm: train_digits(3, 100, activation="sigmoid", norm=norm, std=0.1, lr=0.1, num_steps=300, seed=seed)
            for norm in (None, "batch")}
    assert runs["batch"]["accuracy"] > 0.9
    assert runs[None]["accuracy"] < 0.5


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_weight_scale_sweep_batchnorm_trains_from_a_wide_range_of_scales(seed):
    """Section 7 (CS231n): nine scales 1e-3..10; how many reach 80% accuracy in 100 steps."""
    scales = np.logspace(-3, 1, 9)
    reached = {norm: int(np.sum(np.nan_to_num(weight_scale_sweep(scales, norm=norm, seed=seed)) > 0.8))
               for norm in (None, "batch")}
    assert reached["batch"] >= 6
    assert reached[None] <= 2


QUESTION_6_NETWORKS = [  # (depth, width, activation, norm, std, verdict): the public and hidden examples
    (20, 64, "tanh", "batch", 1.0, "healthy"), (20, 64, "sigmoid", None, 0.1, "vanishing"),
    (20, 64, "tanh", None, 1.0, "exploding"), (20, 64, "sigmoid", "layer", 0.1, "vanishing"),
    (12, 48, "relu", None, 0.5, "exploding"), (3, 64, "sigmoid", None, 0.1, "healthy"),
    (15, 32, "relu", "batch", 3.0, "healthy"), (10, 40, "tanh", None, 0.05, "vanishing"),
    (8, 64, "sigmoid", "layer", 0.1, "vanishing")]


@pytest.mark.parametrize("seed", range(10))
def test_question_6_verdicts_hold_for_every_seed(seed):
    """Practice question 6 grades diagnose() on curves measured at one seed: the official answer, taken
    from the source, gives each network the same verdict at ten seeds, with a margin from the thresholds."""
    namespace = {"math": math, "np": np}
    exec(solution_cells(read_source("06_normalization")[0])["q6_diagnose"], namespace)  # noqa: S102 - our own authored solution
    for index, (depth, width, activation, norm, std, verdict) in enumerate(QUESTION_6_NETWORKS):
        grads = layer_statistics_at_init(depth, width, activation=activation, norm=norm, std=std,
                                         seed=seed)["out_grad_norm"]
        ratio = grads[0] / grads[-1]
        assert namespace["diagnose"](grads) == verdict, (depth, activation, norm, std, ratio)
        if index < 4:  # the public mystery networks: far from the boundaries
            assert ratio < 1e-4 or ratio > 1e4 or 0.1 < ratio < 10, (activation, norm, ratio)
        else:  # hidden ones, some chosen near a threshold: still a factor 3 away from it
            assert not (0.01 / 3 < ratio < 0.01 * 3 or 100 / 3 < ratio < 100 * 3), (depth, activation, norm, ratio)
