"""Notebook 06's experiments re-run over several seeds, asserting the thresholds the notebook asserts.

The notebook runs each experiment with seed 0; these tests make sure the
claims are properties of the setup, not of that seed. E12 (gradient checks of
BatchNorm and LayerNorm) is in test_normalization.py, over four seeds.
"""

import numpy as np
import pytest

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
    assert 0.1 < ratio["batch"] < 10
    assert ratio[None] * 10 < ratio["layer"] < 1e-2


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_e8_batchnorm_trains_a_deep_sigmoid_net_much_faster(seed):
    """E8 (Ioffe & Szegedy 2015): digits, 3x100 sigmoid, N(0, 0.1^2), SGD lr 0.1, 300 steps."""
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_question_6_diagnosis_holds_for_other_seeds(seed):
    """The labels of practice question 6 (measured at seed 0 by students) are not a fluke of the seed."""
    mystery = {"A": (dict(activation="tanh", norm="batch", std=1.0), "healthy"),
               "B": (dict(activation="sigmoid", norm=None, std=0.1), "vanishing"),
               "C": (dict(activation="tanh", norm=None, std=1.0), "exploding"),
               "D": (dict(activation="sigmoid", norm="layer", std=0.1), "vanishing")}
    for label, (settings, verdict) in mystery.items():
        grads = layer_statistics_at_init(20, 64, **settings, seed=seed)["out_grad_norm"]
        ratio = grads[0] / grads[-1]
        measured = "vanishing" if ratio < 1e-2 else "exploding" if ratio > 1e2 else "healthy"
        assert measured == verdict, (label, ratio)
        assert ratio < 1e-4 or ratio > 1e4 or 0.1 < ratio < 10, (label, ratio)  # far from the boundaries
