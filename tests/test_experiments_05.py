"""Notebook 05's experiments (E3, E4, E11 and the rest) re-run over several seeds."""

import math

import numpy as np
import pytest
import torch

from autograder.build import read_source, solution_cells
from course_lib.models import build_mlp
from course_lib.seeding import one_torch_thread
from course_lib.variance import (chi_1, critical_sigma_w2, deep_linear_learning_time, deep_linear_singular_values,
                                 default_init_shrinkage, depth_scale, gradient_curve, layer_statistics,
                                 random_network, symmetry_experiments, train_at_sigma, train_at_sigmas,
                                 train_deep_relu, train_deep_relus, variance_curve)

SEEDS = [0, 1, 2]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


@pytest.mark.parametrize("seed", SEEDS)
def test_variance_propagation_matches_simulation(seed):
    X = torch.randn(256, 256, generator=torch.Generator().manual_seed(seed))
    for activation, sigma_w2 in [("relu", 1.0), ("relu", 2.0), ("relu", 3.0), ("tanh", 1.0)]:
        stats = layer_statistics(random_network(activation, depth=30, width=256, sigma_w2=sigma_w2, seed=seed), X)
        ratio = stats["pre_std"] / np.sqrt(variance_curve(activation, sigma_w2=sigma_w2, depth=30))
        grad_ratio = stats["grad_std"] / np.sqrt(gradient_curve(activation, sigma_w2=sigma_w2, depth=30))
        assert 0.4 < ratio.min() and ratio.max() < 2.5, (activation, sigma_w2, ratio)
        assert 0.67 < grad_ratio.min() and grad_ratio.max() < 1.5, (activation, sigma_w2, grad_ratio)
        if activation == "relu":
            per_layer = (stats["pre_std"][-1] / stats["pre_std"][0]) ** (1 / 29)
            assert abs(per_layer / math.sqrt(sigma_w2 / 2) - 1) < 0.05


@pytest.mark.parametrize("seed", SEEDS)
def test_zero_and_constant_init_cannot_break_symmetry(seed):
    runs = symmetry_experiments({"zeros": "zeros", "constant": 0.1, "random": "he"}, seed=seed)
    zeros, constant, random = runs["zeros"], runs["constant"], runs["random"]
    assert not zeros["changed"].any()
    assert constant["changed"].all() and constant["row_spread"].max() < 1e-6
    assert random["row_spread"].min() > 0.5
    assert min(zeros["final_loss"], constant["final_loss"]) > 2.2 and random["final_loss"] < 0.2


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_default_init_shrinks_a_30_layer_relu_net_by_6_to_the_minus_15(seed):
    shrink = default_init_shrinkage(depth=30, width=64, seed=seed)
    assert 3e-13 < shrink["rms"][-1] / shrink["rms_in"] < 3e-12  # "about 1e-12" (6^-15 = 2.1e-12)
    with_bias = default_init_shrinkage(depth=30, width=64, biases=True, seed=seed)
    assert with_bias["rms"][-1] > 0.01
    assert 5e-10 < with_bias["input_std"][-1] / with_bias["input_std_in"] < 2e-9  # "about 1e-9"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_e3_xavier_stalls_he_trains_at_30_layers(seed):
    runs = train_deep_relus(["xavier", "he"], seed=seed)
    xavier, he = runs["xavier"], runs["he"]
    assert 1.5e-5 < xavier["std_ratio"] < 6e-5 and 0.25 < he["std_ratio"] < 4
    assert xavier["final_loss"] > 2.2 and he["final_loss"] < 0.8


@pytest.mark.parametrize("seed", SEEDS)
def test_e4_a_deep_gaussian_product_spreads_its_singular_values(seed):
    for depth in (10, 30, 100):
        gaussian = deep_linear_singular_values("lecun", depth=depth, width=100, seed=seed)
        assert gaussian.max() > 3 and np.median(gaussian) < 0.1


def test_e4_saxe_orthogonal_learning_time_stops_growing_with_depth():
    """Section 5 (Saxe et al. 2014) on twelve seeds, three at a time as in the notebook (medians of three)."""
    depths = (1, 2, 4, 8, 16, 32)
    for seeds in [(0, 1, 2), (3, 4, 5), (6, 7, 8), (9, 10, 11)]:
        steps = deep_linear_learning_time(("orthogonal", "lecun"), depths, width=16, max_steps=400, seeds=seeds)
        orth, gauss = steps["orthogonal"], steps["lecun"]
        assert np.median(orth[:, depths.index(32)]) < 2 * np.median(orth[:, depths.index(8)]), orth
        assert (gauss[:, depths.index(8)] > 3 * orth[:, depths.index(8)]).all(), (gauss, orth)
        assert np.isinf(gauss[:, [depths.index(16), depths.index(32)]]).all(), gauss
        assert 50 < np.median(orth[:, depths.index(32)]) < 200, orth


def test_e11_critical_point():
    critical = critical_sigma_w2("tanh", sigma_b2=0.05)
    assert abs(critical - 1.76) < 0.01
    assert chi_1("tanh", sigma_w2=1.0, sigma_b2=0.05) < 0.8 < 1.3 < chi_1("tanh", sigma_w2=4.0, sigma_b2=0.05)
    assert all(3 < abs(depth_scale("tanh", sigma_w2=s, sigma_b2=0.05)) < 4 for s in (1.0, 4.0))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_e11_only_the_critical_network_trains(seed):
    critical = critical_sigma_w2("tanh", sigma_b2=0.05)
    losses = [r["final_loss"] for r in train_at_sigmas([1.0, critical, 4.0], sigma_b2=0.05, depth=40, width=48,
                                                        lr=0.003, momentum=0.9, num_steps=300, seed=seed)]
    ordered, at_edge, chaotic = losses
    assert at_edge < 0.3 and ordered > 2.2 and chaotic > 2.2, losses  # 0.17-0.26, 2.30, 2.31 on seeds 0-4


def test_question_3_public_networks_fall_at_their_predicted_rates():
    """The public examples of practice question 3 change by sqrt(sigma_w^2 / 2) per layer."""
    X = torch.randn(512, 64, generator=torch.Generator().manual_seed(5))
    rates = {}
    for scheme, gain in [("default", None), ("he", None), ("xavier", 1.0)]:
        net = build_mlp(30, 64, activation="relu", init=scheme, gain=gain, seed=11)
        with torch.no_grad():
            for block in net.blocks:
                block.linear.bias.zero_()
        stds = layer_statistics(net, X)["act_std"]
        rates[scheme] = (stds[-1] / stds[0]) ** (1 / 29)
    assert rates["default"] == pytest.approx(1 / math.sqrt(6), rel=0.1)
    assert rates["xavier"] == pytest.approx(1 / math.sqrt(2), rel=0.1)
    assert rates["he"] == pytest.approx(1.0, rel=0.1)


def official(grade_id: str):
    """The official answer to a practice question, taken from the notebook's source."""
    namespace = {"math": math, "np": np, "torch": torch}
    exec(solution_cells(read_source("05_initialization")[0])[grade_id], namespace)  # noqa: S102 - our own authored solution
    return namespace


@pytest.mark.parametrize("seed", range(10))
def test_question_3_official_answer_names_every_hidden_kind_of_network(seed):
    """identify_init is graded on networks of 6 to 60 layers, other widths and input scales: no seed may fool it."""
    identify_init = official("q3_identify_init")["identify_init"]
    for scheme, depth, width, scale in [("he", 6, 100, 1e-3), ("default", 6, 48, 1.0), ("xavier", 7, 128, 30.0),
                                        ("default", 60, 40, 1e3), ("xavier", 60, 32, 1e-2), ("he", 45, 48, 1e2),
                                        ("xavier", 12, 80, 1.0), ("he", 20, 32, 1.0), ("default", 15, 96, 1e-3)]:
        net = build_mlp(depth, width, activation="relu", init=scheme, gain=1.0 if scheme == "xavier" else None,
                        seed=1000 + seed)
        with torch.no_grad():
            for block in net.blocks:
                block.linear.bias.zero_()
        X = scale * torch.randn(256, width, generator=torch.Generator().manual_seed(2000 + seed))
        assert identify_init(layer_statistics(net, X)["act_std"]) == scheme, (scheme, depth, width, scale)


@pytest.mark.parametrize("seed", range(10))
def test_question_5_official_answer_is_orthogonal_and_reproducible_for_every_seed(seed):
    orthogonal_weight = official("q5_orthogonal")["orthogonal_weight"]
    for (fan_out, fan_in), gain in [((1, 1), 1.0), ((1, 7), 1.0), ((7, 1), 3.0), ((30, 50), math.sqrt(2)),
                                    ((50, 30), 0.5), ((40, 40), 1.0)]:
        W = orthogonal_weight(fan_out, fan_in, gain=gain, seed=seed).double()
        assert W.shape == (fan_out, fan_in)
        gram = W @ W.T if fan_out <= fan_in else W.T @ W
        assert (gram - gain**2 * torch.eye(min(fan_out, fan_in), dtype=torch.float64)).abs().max() < 1e-4
        assert torch.equal(W, orthogonal_weight(fan_out, fan_in, gain=gain, seed=seed).double())
    assert not torch.allclose(orthogonal_weight(6, 10, seed=seed), orthogonal_weight(6, 10, seed=seed + 1))


def test_explorer_marks_the_phases():
    from course_lib.widgets import variance_explorer

    explorer = variance_explorer(activation="tanh", sigma_w2=1.0, depth=30)
    assert explorer.last["phase"] == "ordered" and explorer.last["ratio"] < 0.1
    assert abs(explorer.last["critical"] - 1.76) < 0.01
    assert explorer.update(sigma_w2=4.0)["phase"] == "chaotic" and explorer.last["ratio"] > 10
    assert abs(explorer.update(sigma_w2=1.75)["chi_1"] - 1) < 0.02
    relu = explorer.update(activation="relu", sigma_w2=2.0, depth=40)
    assert abs(relu["critical"] - 2.0) < 1e-6 and 0.1 < relu["ratio"] < 10
    assert explorer.png.startswith(b"\x89PNG")


def test_side_by_side_e3_and_e11_equal_their_separate_runs():
    together = train_deep_relus(["xavier", "he"], depth=6, num_steps=20, seed=4)
    for init in ("xavier", "he"):
        alone = train_deep_relu(init, depth=6, num_steps=20, seed=4)
        assert np.array_equal(together[init]["loss"], alone["loss"])
        assert together[init]["std_ratio"] == alone["std_ratio"]
    pair = train_at_sigmas([1.0, 4.0], depth=5, width=16, num_steps=20, seed=4)
    assert [r["final_loss"] for r in pair] == [train_at_sigma(s, depth=5, width=16, num_steps=20, seed=4)["final_loss"]
                                               for s in (1.0, 4.0)]
