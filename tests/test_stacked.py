"""course_lib.stacked: networks of one architecture trained as one stacked network equal separate `train` runs."""

import math

import numpy as np
import pytest
import torch

from course_lib.datasets import load_digits
from course_lib.models import build_mlp
from course_lib.mysteries import build_network
from course_lib.seeding import one_torch_thread
from course_lib.stacked import train_stacked
from course_lib.training import accuracy, train
from course_lib.variance import random_network, train_at_sigmas, train_deep_relus


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with one_torch_thread():
        yield


def _separate_and_stacked(settings, *, lr, seeds, momentum=0.0, clip=None, num_steps=25):
    X, y = load_digits()
    stacked = [build_network(s, seed=seed) for s, seed in zip(settings, seeds)]
    histories = train_stacked(stacked, X, y, lr=lr, num_steps=num_steps, momentum=momentum, clip=clip, seeds=seeds)
    lrs = lr if isinstance(lr, list) else [lr] * len(settings)
    for s, seed, net, history, rate in zip(settings, seeds, stacked, histories, lrs):
        alone = build_network(s, seed=seed)
        run = train(alone, X, y, lr=rate, num_steps=num_steps, momentum=momentum, clip=clip, seed=seed,
                    progress=False)
        yield history, run, net, alone


RELU = {"depth": 5, "activation": "relu", "init": "he"}


@pytest.mark.parametrize("settings, options", [
    ([{"depth": 6, "activation": "tanh", "init": "xavier"}] * 3, {"lr": 0.01, "seeds": [0, 0, 0], "momentum": 0.9}),
    ([{**RELU, "init": "xavier"}, RELU], {"lr": 0.01, "seeds": [0, 1], "momentum": 0.9, "clip": 1.0}),
    ([{"depth": 8, "activation": "sigmoid", "init": "standard"}] * 3, {"lr": [0.01, 1.0, 10.0], "seeds": [0, 0, 0]}),
    ([{**RELU, "norm": "batch", "residual": True}] * 2, {"lr": 0.1, "seeds": [0, 3]}),
    ([{**RELU, "norm": "layer"}] * 2, {"lr": 0.1, "seeds": [4, 1]}),
])
def test_stacked_training_equals_separate_runs_bit_for_bit(settings, options):
    """Shared or own batches, momentum, clipping each network on its own, a learning rate each, norm layers:
    the losses, gradient norms and trained weights are those of separate `train` runs, bit for bit."""
    for history, run, net, alone in _separate_and_stacked(settings, **options):
        assert np.array_equal(history.loss, run.loss) and np.array_equal(history.grad_norm, run.grad_norm)
        assert not history.diverged and not run.diverged
        for got, expected in zip(net.parameters(), alone.parameters()):
            assert torch.equal(got, expected)


def test_a_diverging_network_stops_alone_where_train_stops():
    exploding = {"depth": 6, "activation": "relu", "init": "normal", "std": 1.0}
    (bad, bad_run, bad_net, bad_alone), (good, good_run, _, _) = _separate_and_stacked(
        [exploding, {**exploding, "init": "he"}], lr=0.1, seeds=[0, 0])
    assert bad.diverged and bad_run.diverged and len(bad.loss) == len(bad_run.loss) < 25
    assert np.array_equal(bad.loss, bad_run.loss, equal_nan=True) and math.isnan(bad.final_loss)
    for got, expected in zip(bad_net.parameters(), bad_alone.parameters()):  # the weights it stopped with
        assert torch.equal(got, expected)
    assert not good.diverged and np.array_equal(good.loss, good_run.loss)  # the other one trains on


def test_stacked_training_rejects_different_architectures_and_lengths():
    X, y = load_digits()
    nets = [build_network(RELU, seed=0), build_network({**RELU, "depth": 4}, seed=0)]
    with pytest.raises(ValueError, match="one architecture"):
        train_stacked(nets, X, y, lr=0.1, num_steps=1)
    with pytest.raises(ValueError, match="one per network"):
        train_stacked(nets[:1] * 2, X, y, lr=[0.1, 0.2, 0.3], num_steps=1)


def test_notebook_05_side_by_side_runs_equal_separate_runs():
    """E3 (clipped each on its own) and E11 as notebook 05 trains them, against `train` one network at a time."""
    X, y = load_digits()
    e3 = train_deep_relus(["xavier", "he"], depth=12, width=32, num_steps=20, seed=1)
    for init in ("xavier", "he"):
        net = build_mlp(12, 32, activation="relu", init=init, gain=1.0 if init == "xavier" else None, in_features=64,
                        out_features=10, seed=1)
        run = train(net, X, y, lr=0.01, momentum=0.9, clip=1.0, num_steps=20, seed=1, progress=False)
        assert np.array_equal(e3[init]["loss"], run.loss) and e3[init]["accuracy"] == accuracy(net, X, y)
    sigmas = [1.0, 4.0]
    e11 = train_at_sigmas(sigmas, depth=10, width=24, num_steps=20, seed=2)
    for sigma_w2, result in zip(sigmas, e11):
        net = random_network("tanh", depth=10, width=24, sigma_w2=sigma_w2, sigma_b2=0.05, in_features=64,
                             out_features=10, seed=2)
        run = train(net, X, y, lr=0.003, momentum=0.9, num_steps=20, seed=2, progress=False)
        assert np.array_equal(result["loss"], run.loss) and result["accuracy"] == accuracy(net, X, y)
