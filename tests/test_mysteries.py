"""course_lib.mysteries against PyTorch as the oracle, and checks.check_verdicts (notebook 08)."""

import math

import numpy as np
import pytest
import torch

from course_lib import checks, mysteries
from course_lib.models import build_mlp


def test_build_network_is_build_mlp_plus_a_bias():
    settings = {"depth": 3, "activation": "tanh", "init": "xavier", "bias": -0.5}
    net = mysteries.build_network(settings, seed=4)
    reference = build_mlp(3, 64, activation="tanh", init="xavier", in_features=64, out_features=10, seed=4)
    for (name, got), (_, expected) in zip(net.named_parameters(), reference.named_parameters()):
        if name.startswith("blocks.") and name.endswith("linear.bias"):
            assert torch.all(got == -0.5), name
        else:
            assert torch.equal(got, expected), name
    assert net(torch.zeros(2, 64)).shape == (2, 10)


@pytest.mark.parametrize("settings, match", [
    ({"depth": 2, "colour": "red"}, "unknown settings"),
    ({"activation": "relu"}, "int depth"),
    ({"depth": 2.0}, "int depth"),
    ({"depth": 2, "bias": math.nan}, "finite"),
    ({"depth": 2, "activation": "swish"}, "unknown activation"),
    ([("depth", 2)], "must be a dict"),
])
def test_build_network_rejects_bad_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        mysteries.build_network(settings)


def test_mystery_settings_are_copies_and_names_are_checked():
    settings = mysteries.mystery_settings("B")
    settings["depth"] = 1
    assert mysteries.mystery_settings("B")["depth"] != 1
    assert set(mysteries.MYSTERIES) == {"A", "B", "C", "D", "E"} and mysteries.FIXABLE in mysteries.MYSTERIES
    with pytest.raises(ValueError, match="unknown mystery"):
        mysteries.mystery_settings("F")
    for name in mysteries.MYSTERIES:
        assert set(mysteries.mystery_settings(name)) <= set(mysteries.SETTING_KEYS)


def test_probe_batch_is_a_seeded_subset_of_the_digits():
    X, y = mysteries.probe_batch()
    X2, y2 = mysteries.probe_batch()
    assert X.shape == (256, 64) and y.shape == (256,)
    assert torch.equal(X, X2) and torch.equal(y, y2)
    assert not torch.equal(mysteries.probe_batch(seed=1)[0], X)
    assert len(torch.unique(X, dim=0)) > 240  # drawn without replacement (a few digits are duplicates)


def test_measure_matches_autograd_by_hand():
    torch.manual_seed(0)
    net = mysteries.build_network({"depth": 4, "activation": "tanh", "init": "xavier"}, seed=1)
    X, y = mysteries.probe_batch(64)
    got = mysteries.measure(net, X, y)
    h, outputs = X, []
    for block in net.blocks:
        h = block(h)
        h.retain_grad()
        outputs.append(h)
    loss = torch.nn.functional.cross_entropy(net.head(h), y)
    loss.backward()
    assert got["loss"] == pytest.approx(loss.item(), rel=1e-6)
    np.testing.assert_allclose(got["flow"], [o.grad.norm().item() for o in outputs], rtol=1e-5)
    np.testing.assert_allclose(got["grad_norm"], [b.linear.weight.grad.norm().item() for b in net.blocks], rtol=1e-5)
    np.testing.assert_allclose(got["act_std"], [o.detach().std().item() for o in outputs], rtol=1e-5)
    assert isinstance(got["report"], str) and got["report"].startswith("Gradient norms by layer")
    net.zero_grad(set_to_none=True)
    mysteries.measure(net, X, y)
    assert all(p.grad is None for p in net.parameters())  # measure leaves no gradients behind


def test_update_to_data_ratios_equal_a_real_sgd_step():
    net = mysteries.build_network({"depth": 3, "activation": "relu", "init": "he"}, seed=0)
    X, y = mysteries.probe_batch(128)
    before = [b.linear.weight.detach().clone() for b in net.blocks]
    ratios = mysteries.update_to_data_ratios(net, X, y, lr=0.1)
    assert all(torch.equal(b, a.linear.weight) for b, a in zip(before, net.blocks))  # weights untouched
    np.testing.assert_allclose(mysteries.update_to_data_ratios(net, X, y, lr=0.2), 2 * ratios, rtol=1e-6)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    torch.nn.functional.cross_entropy(net(X), y).backward()
    optimizer.step()
    stepped = [((b.linear.weight - w0).std() / w0.std()).item() for b, w0 in zip(net.blocks, before)]
    np.testing.assert_allclose(ratios, stepped, rtol=1e-3)


def test_evaluate_fix_validates_and_is_deterministic():
    for changes, match in (({"depth": 3}, "depth is part of the problem"), ({"lr": 1.0}, "unknown settings"),
                           ("batch", "must be a dict"), ({"norm": "group"}, "unknown norm")):
        with pytest.raises(ValueError, match=match):
            mysteries.evaluate_fix(changes)
    first = mysteries.evaluate_fix({"init": "he"}, mystery="E", num_steps=30)
    assert first == mysteries.evaluate_fix({"init": "he"}, mystery="E", num_steps=30)
    assert math.isfinite(first)
    assert mysteries.evaluate_fix({}, mystery="E", num_steps=30) == math.inf  # diverges: reported as inf
    broken = mysteries.mystery_settings("E")  # any broken network's settings, not only a mystery's name
    assert mysteries.evaluate_fix({"init": "he"}, mystery=broken, num_steps=30) == first
    assert broken == mysteries.mystery_settings("E")  # the caller's settings are not changed


def _parity(x):
    return "even" if x % 2 == 0 else "odd"


def test_check_verdicts_passes_explains_and_catches():
    cases = [((2,), "even"), ((3,), "odd")]
    checks.check_verdicts("Q", _parity, cases, allowed=("even", "odd"))
    with pytest.raises(checks.CheckFailed, match="Likely mistake: flipped"):
        checks.check_verdicts("Q", lambda x: "odd" if x % 2 == 0 else "even", cases, allowed=("even", "odd"),
                              mistakes=[(lambda x: "odd" if x % 2 == 0 else "even", "flipped")])
    with pytest.raises(checks.CheckFailed, match="return one of"):
        checks.check_verdicts("Q", lambda x: "EVEN", cases, allowed=("even", "odd"))

    def unfinished(x):
        raise NotImplementedError()
    with pytest.raises(checks.CheckFailed, match="NotImplementedError"):
        checks.check_verdicts("Q", unfinished, cases, allowed=("even", "odd"))

    def mutating(values):
        values[0] = 0.0
        return "even"
    with pytest.raises(checks.CheckFailed, match="changed its input"):
        checks.check_verdicts("Q", mutating, [((np.ones(3),), "even")], allowed=("even", "odd"))
    with pytest.raises(checks.CheckFailed, match="expected a function"):
        checks.check_verdicts("Q", "even", cases, allowed=("even", "odd"))


@pytest.mark.parametrize("repair, match", [
    ("norm", "must be a function"),
    (lambda settings: {"norm": "batch", "init": "he"}, "exactly one setting"),
    (lambda settings: ["norm", "batch"], "exactly one setting"),
    (lambda settings: {"depth": 3}, "depth is part of the problem"),
    (lambda settings: {"colour": "red"}, "unknown settings"),
    (lambda settings: settings["missing"], "raised KeyError"),
])
def test_check_repair_explains_malformed_repairs_before_training(repair, match):
    with pytest.raises(checks.CheckFailed, match=match):
        mysteries.check_repair("Question 3", repair, mysteries.mystery_settings("B"), seeds=[0])


def test_check_repair_names_the_failing_seed_and_leaves_settings_alone():
    broken = mysteries.mystery_settings("D")  # all-zero weights: BatchNorm cannot break the symmetry
    seen = []
    with pytest.raises(checks.CheckFailed, match=r"from seed 3 \(target: below 0.5"):
        mysteries.check_repair("Question 3", lambda s: seen.append(s) or {"norm": "batch"}, broken, seeds=[3, 4])
    assert seen == [broken] and seen[0] is not broken  # called once, on a copy


def test_example_similarity_is_the_mean_cosine_between_different_examples():
    net = mysteries.build_network({"depth": 3, "activation": "relu", "init": "he"}, seed=2)
    X = mysteries.probe_batch(32)[0]
    got = mysteries.example_similarity(net, X)
    h, expected = X, []
    with torch.no_grad():
        for block in net.blocks:
            h = block(h)
            cosine = torch.nn.functional.cosine_similarity(h[:, None, :], h[None, :, :], dim=-1)
            expected.append(cosine[~torch.eye(len(h), dtype=torch.bool)].mean().item())
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    same = mysteries.example_similarity(net, X[:1].repeat(5, 1))
    np.testing.assert_allclose(same, 1.0, rtol=1e-9)  # one vector repeated: similarity exactly 1


def test_train_network_adam_and_adamw_are_the_torch_optimizers():
    from course_lib.datasets import load_digits
    from course_lib.training import train

    settings = {"depth": 3, "activation": "sigmoid", "init": "xavier"}
    X, y = load_digits()
    for name, make in (("adam", lambda p: torch.optim.Adam(p, lr=1e-3)),
                       ("adamw", lambda p: torch.optim.AdamW(p, lr=1e-3, weight_decay=0.01))):
        net = mysteries.build_network(settings, seed=1)
        expected = train(net, X, y, lr=1e-3, num_steps=5, batch_size=mysteries.BATCH_SIZE,
                         optimizer=make(net.parameters()), seed=1, progress=False)
        got = mysteries.train_network(settings, seed=1, lr=1e-3, num_steps=5, optimizer=name)
        np.testing.assert_allclose(got.loss, expected.loss, rtol=1e-6)
    sgd = mysteries.train_network(settings, seed=1, lr=1e-3, num_steps=5)
    assert not np.allclose(sgd.loss[1:], got.loss[1:], rtol=1e-6)


@pytest.mark.parametrize("settings", [
    {"depth": 5, "activation": "tanh", "init": "xavier"},
    {"depth": 4, "activation": "tanh", "init": "standard", "norm": "batch"},
    {"depth": 4, "activation": "sigmoid", "init": "xavier", "norm": "layer"},
    {"depth": 3, "activation": "relu", "init": "he", "bias": -0.1, "residual": True},
    {"depth": 3, "activation": "relu", "init": "normal", "std": 1.0},  # diverges: inf
], ids=["tanh", "batchnorm", "layernorm", "residual-bias", "diverges"])
def test_final_losses_side_by_side_equal_separate_runs(settings):
    """Seeds trained side by side (stacked weights, batched matmuls, each seed its own batches) give each
    seed's `train_network` final loss, bit for bit; a diverged network is inf and does not touch the others."""
    seeds = [2, 0, 5]
    got = mysteries.final_losses(settings, seeds=seeds, num_steps=30)
    for seed, loss in zip(seeds, got):
        run = mysteries.train_network(settings, seed=seed, num_steps=30)
        if run.diverged:
            assert loss == math.inf
        else:
            assert loss == run.final_loss
    assert got[1:] == mysteries.final_losses(settings, seeds=seeds[1:], num_steps=30)  # the others change nothing
    assert got[:1] == mysteries.final_losses(settings, seeds=seeds[:1], num_steps=30)  # one seed: `train`


def test_train_side_by_side_is_one_run_per_learning_rate_or_seed():
    """Notebook 08's learning-rate sweep (one seed, a learning rate per network) and the repairs' seeds (one learning
    rate, a seed per network): each network's History is that of its own `train_network` run, bit for bit."""
    plateau = {"depth": 8, "activation": "sigmoid", "init": "standard"}
    for options, alone in (({"lr": [0.01, 1.0, 10.0]}, [{"lr": 0.01}, {"lr": 1.0}, {"lr": 10.0}]),
                           ({"seeds": (3, 1)}, [{"seed": 3}, {"seed": 1}])):
        histories = mysteries.train_side_by_side(plateau, num_steps=20, **options)
        assert len(histories) == len(alone)
        for history, kwargs in zip(histories, alone):
            run = mysteries.train_network(plateau, num_steps=20, **kwargs)
            assert np.array_equal(history.loss, run.loss) and np.array_equal(history.grad_norm, run.grad_norm)
            assert history.diverged == run.diverged
