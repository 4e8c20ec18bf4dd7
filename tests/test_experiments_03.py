"""Notebook 03's experiments re-run over several seeds, asserting the notebook's thresholds (E5, E6, E7).

The notebook runs each experiment with one seed. Some outcomes are odds, not
certainties (a vanilla RNN occasionally escapes the T = 50 plateau late in
training); those tests assert the majority over seeds, as the notebook's text says.
"""

import math

import numpy as np
import pytest
import torch

from autograder.build import read_source, solution_cells
from course_lib.recurrent import (RecurrentNet, gradient_through_time, linear_rnn_jacobian, loss_cliff,
                                  make_sequence_task, orthogonal_rnn_gradients, run_sequence_task,
                                  run_sequence_tasks)
from course_lib.widgets import recurrent_explorer

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_bptt_gradient_vanishes_at_the_rate_of_the_spectral_radius(seed):
    X, y = make_sequence_task("sign", 256, 50, seed=seed)
    rnn = RecurrentNet(1, 32, 2, cell="rnn", seed=seed)
    grads = gradient_through_time(rnn, X, y)
    W = rnn.W_hh.detach().double()
    sigma_max = torch.linalg.matrix_norm(W, ord=2).item()
    rho = torch.linalg.eigvals(W).abs().max().item()
    assert grads[0] / grads[-1] < 1e-8
    assert np.all(grads <= grads[-1] * sigma_max ** (50 - np.arange(1, 51)) * (1 + 1e-5))
    assert abs((grads[0] / grads[-1]) ** (1 / 49) - rho) < 0.15 * rho


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("scale", [0.8, 1.0, 1.2])
def test_e7b_t_step_jacobian_norm_is_s_to_the_t(seed, scale):
    for T in (1, 10, 40):
        singular = np.linalg.svd(linear_rnn_jacobian(scale, T, seed=seed), compute_uv=False)
        assert np.abs(singular / scale**T - 1).max() < 1e-12


@pytest.mark.parametrize("resolution", [100, 121, 160])
@pytest.mark.parametrize("length", [40, 50, 60])
def test_e7a_loss_surface_has_a_cliff(resolution, length):
    _, grads = loss_cliff(np.linspace(0, 10, resolution), np.linspace(-6, 1, resolution), length=length)
    assert grads.max() / np.median(grads) > 1e2


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_e7c_clipping_stops_the_blow_up(seed):
    runs = run_sequence_tasks([dict(cell="rnn", task="adding", length=50, num_steps=200, optimizer="sgd", lr=0.05,
                                    clip=clip, recurrent_gain=1.8, seed=seed) for clip in (None, 1.0)])
    unclipped, clipped = runs[0].history, runs[1].history
    # The notebook's seed reaches 1e6; seed 3 peaks at 9.3e5 on some CPUs: within a factor 2 of the text.
    assert unclipped.diverged or not np.isfinite(unclipped.loss).all() or unclipped.grad_norm.max() > 5e5
    assert not clipped.diverged and np.isfinite(clipped.loss).all() and 100 < clipped.grad_norm.max() < 1000
    assert abs(clipped.final_loss - 1 / 6) < 0.05  # "settles near the baseline of 1/6"


@pytest.mark.parametrize("seed", SEEDS)
def test_lstm_forget_bias_keeps_the_gradient_through_time(seed):
    X, y = make_sequence_task("sign", 256, 50, seed=seed)
    first = {}
    for name, kw in {"rnn": dict(cell="rnn"), "lstm0": dict(cell="lstm", forget_bias=0.0),
                     "lstm2": dict(cell="lstm", forget_bias=2.0), "gru0": dict(cell="gru", forget_bias=0.0),
                     "gru2": dict(cell="gru", forget_bias=2.0)}.items():
        g = gradient_through_time(RecurrentNet(1, 32, 2, seed=seed, **kw), X, y)
        first[name] = g[0] / g[-1]
    assert first["lstm2"] > 1e6 * first["rnn"]  # the notebook's seed: 4e9 ("about ten orders"); 7 to 10 over seeds
    assert first["lstm0"] < 1e-6
    assert first["gru2"] > 1e6 * first["rnn"] and first["gru0"] < 1e-6  # the GRU's interpolation path
    assert 1e-3 < first["gru2"] < 3e-2  # about the 0.88^49 = 2e-3 of the path alone, within a few times


@pytest.mark.parametrize("seed", SEEDS)
def test_truncated_bptt_gives_no_gradient_before_the_last_window(seed):
    X, y = make_sequence_task("sign", 256, 50, seed=seed)
    net = RecurrentNet(1, 32, 2, cell="lstm", forget_bias=2.0, seed=seed)
    full, cut = gradient_through_time(net, X, y), gradient_through_time(net, X, y, truncate=20)
    assert np.all(cut[:40] == 0) and np.all(cut[40:] > 0)
    assert np.allclose(cut[40:], full[40:], rtol=1e-5)


@pytest.mark.slow
def test_truncated_bptt_lstm_stays_at_chance_where_full_bptt_solves_t50():
    runs = run_sequence_tasks([dict(cell="lstm", task="sign", length=50, num_steps=400, truncate=20, seed=seed)
                               for seed in range(4)])
    assert all(run.score < 0.6 for run in runs), [run.score for run in runs]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_e5_lstm_remembers_the_sign_over_50_steps(seed):
    assert run_sequence_task("lstm", "sign", 50, num_steps=400, seed=seed).score > 0.95


@pytest.mark.slow
def test_e5_vanilla_rnn_mostly_stays_at_chance_over_50_steps():
    scores = np.array([run_sequence_task("rnn", "sign", 50, num_steps=400, seed=seed).score for seed in range(6)])
    failed = scores < 0.6
    assert failed.sum() >= 4, f"the RNN solved T = 50 in {(~failed).sum()} of 6 seeds: {scores}"
    assert np.all(scores[failed] < 0.56)  # when it fails, it is at chance, not half-way


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_e5_vanilla_rnn_solves_short_lags(seed):
    assert run_sequence_task("rnn", "sign", 10, num_steps=400, seed=seed).score > 0.95


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_e6_adding_problem_rnn_at_baseline_lstm_far_below(seed):
    rnn, lstm = run_sequence_tasks([dict(cell=cell, task="adding", length=50, num_steps=1000, seed=seed)
                                    for cell in ("rnn", "lstm")])
    assert rnn.score > 0.12
    assert lstm.score < (1 / 6) / 10  # "more than ten times below the baseline"
    assert lstm.history.loss[200:400].mean() > 0.12  # "on the same plateau for several hundred steps"


def test_recurrent_explorer():
    explorer = recurrent_explorer(radius=0.9, length=50, nonlinearity="linear")
    assert np.isclose(explorer.last["ratio"], 0.9**50, rtol=1e-9) and explorer.last["kind"] == "vanishing"
    assert explorer.update(radius=1.1)["kind"] == "exploding"
    data = explorer.update(radius=1.0, length=100)
    assert data["kind"] == "stable" and len(data["grad_norms"]) == 101
    tanh = explorer.update(nonlinearity="tanh", radius=1.2)
    assert tanh["ratio"] < 1.2**100  # tanh's slopes pull it below the linear formula
    assert explorer.png.startswith(b"\x89PNG") and "receives" in explorer.verdict.value


def test_official_answers_to_questions_2_and_5_hold_on_every_seed():
    """Questions 2 and 5 are graded on measured curves of random RNNs: the official answers
    (read from the source) match them on 10 of 10 seeds, for radii on both sides of 1."""
    answers = solution_cells(read_source("03_rnn_long_range")[0])
    namespace = {"np": np, "math": math}
    exec(answers["q2_gradient_ratio"] + "\n" + answers["q5_radius"], namespace)  # noqa: S102 - our own solution
    for seed in range(10):
        for s, T in [(0.8, 25), (1.1, 30), (0.6, 3)]:
            norms = orthogonal_rnn_gradients(s, T, nonlinearity="linear", seed=seed)
            assert math.isclose(namespace["estimate_radius"](norms), s, rel_tol=0.01), (seed, s, T)
            for t in (0, T // 2, T):
                assert math.isclose(namespace["predict_gradient_ratio"](s, T, t), norms[t] / norms[T], rel_tol=0.01)
