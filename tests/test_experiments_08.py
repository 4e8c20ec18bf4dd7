"""Notebook 08's experiments re-run over several seeds (the notebook runs seed 0).

Each mystery must show its symptom and fail the recipe; each repair must train;
the graded repair must pass and its typical mistakes fail; the workflow, Adam
and depth claims of sections 1-3 and 6 must hold. Thresholds are the notebook's.
"""

import math

import numpy as np
import pytest
import torch

from autograder.build import read_source, solution_cells
from course_lib import mysteries as m

pytestmark = pytest.mark.slow  # every test here trains networks

SEEDS = [0, 1, 2]
CHANCE = math.log(10)
PLATEAU = {"depth": 8, "activation": "sigmoid", "init": "standard"}

# What each mystery's measurements show (the answer key question 1's hidden test grades triage against).
LABEL = {"A": "dead units", "B": "collapsing activations", "C": "vanishing gradient", "D": "no gradient",
         "E": "exploding"}
# The broken networks question 3's hidden test repairs (besides mystery B itself).
GRADED_REPAIRS = [{"depth": 4, "activation": "tanh", "init": "zeros"},
                  {"depth": 6, "activation": "relu", "init": "he", "bias": -0.5}]


def _solution() -> dict:
    """Notebook 08's official answers, executed from the authored source (never copied here)."""
    answers = solution_cells(read_source("08_diagnosing")[0])
    namespace = {"np": np, "math": math, "torch": torch}
    for grade_id in ("q1_triage", "q3_repair", "q4_rescaled_ratios"):
        exec(answers[grade_id], namespace)  # noqa: S102 - our own authored solution
    return namespace


SOLUTION = _solution()


def signature(measured: dict) -> str:
    """The field guide of section 4, as the official answer to question 1 applies it to a measurement."""
    return SOLUTION["triage"](measured["flow"], measured["act_std"], measured["dead"])


@pytest.fixture(scope="module")
def probe():
    return m.probe_batch()


def test_the_answer_key_covers_every_label_once_and_is_the_hidden_tests():
    assert sorted(LABEL) == sorted(m.MYSTERIES) and sorted(LABEL.values()) == sorted(m.LABELS)
    source = read_source("08_diagnosing")[0]
    test = next(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q1_triage_test")
    hidden = test[test.index("_truth = {"):]
    for name, label in LABEL.items():
        assert f'"{name}": "{label}"' in hidden[:hidden.index("}")], (name, label)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", m.MYSTERIES)
def test_each_mystery_shows_its_symptom_and_does_not_train(probe, name, seed):
    measured = m.measure(m.build_mystery(name, seed=seed), *probe)
    assert signature(measured) == LABEL[name], measured["report"]
    flow, act = measured["flow"], measured["act_std"]
    kinds = measured["report"]
    if LABEL[name] == "dead units":
        assert np.nanmax(measured["dead"]) == 1.0 and flow[0] == 0 and "(dead)" in kinds
    elif LABEL[name] == "no gradient":
        assert np.all(flow == 0) and np.nanmax(measured["dead"]) == 0 and "no gradient at all" in kinds
    elif LABEL[name] == "exploding":
        assert flow[0] / flow[-1] > 1e3 and act[-1] / act[0] > 1e2 and "exploding" in kinds
        assert measured["loss"] > 1e3
    elif LABEL[name] == "collapsing activations":  # 1/sqrt(3) per layer: ~2e-3 over 12 layers
        assert flow[0] / flow[-1] < 1e-2 / 3 and act[-1] / act[0] < 1e-2 / 3 and "vanishing" in kinds
        assert np.nanmax(measured["saturated"]) < 0.05
    elif LABEL[name] == "vanishing gradient":
        assert flow[0] / flow[-1] < 1e-3 and act[-1] / act[0] > 0.5 and "vanishing" in kinds
        assert np.nanmax(measured["saturated"]) > 0.6 and "saturated zone" in kinds
    run = m.train_network(m.mystery_settings(name), seed=seed)
    assert run.diverged or run.final_loss > 2.0
    assert (LABEL[name] == "exploding") == run.diverged


@pytest.mark.parametrize("name", m.MYSTERIES)
def test_each_repair_trains(probe, name):
    """The official repair (question 3) fixes every mystery, with one change, and leaves it healthy.

    A repaired plain ReLU net is not equally fast from every seed (mystery A with bias 0 ends at
    0.81 from seed 1 on some machines, 1.06 from seed 4): every seed must train far below chance
    (ln 10 = 2.30), and the median must reach the course's target.
    """
    changes = SOLUTION["repair"](m.mystery_settings(name))
    assert len(changes) == 1
    losses = [m.evaluate_fix(changes, mystery=name, seed=seed) for seed in SEEDS]
    assert max(losses) < 1.5 and float(np.median(losses)) < m.FIX_TARGET, losses
    for seed in SEEDS:
        assert signature(m.measure(m.build_network({**m.mystery_settings(name), **changes}, seed=seed),
                                   *probe)) == "healthy"


def test_graded_networks_are_the_hidden_tests():
    source = read_source("08_diagnosing")[0]
    test = next(c.source for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "q3_repair_test")
    for settings in GRADED_REPAIRS:
        assert repr(settings) in test.replace('"', "'"), settings


@pytest.mark.parametrize("broken", [m.mystery_settings(m.FIXABLE)] + GRADED_REPAIRS, ids=["B", "zeros", "dead"])
def test_graded_repair_passes_on_ten_seeds_and_typical_mistakes_fail(broken):
    """Question 3 grades on hidden seeds: the official answer must pass from 10 of 10 seeds."""
    losses = m.check_repair("official repair", SOLUTION["repair"], broken, seeds=range(10))
    assert max(losses) < m.FIX_TARGET and len(losses) == 10
    assert m.evaluate_fix({}, mystery=broken, seed=0) > 2.0  # broken as given
    if broken.get("init") == "zeros":  # the mistake "always add BatchNorm": no repair for symmetric weights
        assert m.evaluate_fix({"norm": "batch"}, mystery=broken, seed=0) > 2.0
    elif broken.get("bias"):  # the mistake "fix the init, never the bias"
        assert m.evaluate_fix({"init": "xavier"}, mystery=broken, seed=0) > 2.0
    else:  # the mistake "ReLU, keep the small init"
        assert m.evaluate_fix({"activation": "relu"}, mystery=broken, seed=0) > 2.0


def test_collapsing_activations_are_repaired_by_batchnorm_too():
    """Section 4's table: an init that keeps the scale (the official repair, Xavier) or BatchNorm repairs B."""
    losses = [m.evaluate_fix({"norm": "batch"}, mystery="B", seed=seed) for seed in range(5)]
    assert max(losses) < m.FIX_TARGET, losses


def test_official_rescaled_ratios_match_a_real_learning_rate_change(probe):
    """Question 4: rescaling the ratios equals measuring them again at the new learning rate."""
    net = m.build_network(PLATEAU, seed=0)
    ratios = m.update_to_data_ratios(net, *probe, lr=m.LR)
    new_lr = m.LR * 1e-3 / ratios[2]
    np.testing.assert_allclose(SOLUTION["rescaled_ratios"](ratios, 3, 1e-3),
                               m.update_to_data_ratios(net, *probe, lr=new_lr), rtol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_workflow_lr_sweep_cannot_fix_vanishing(seed):
    for lr in (0.01, 0.1, 1.0, 10.0):
        run = m.train_network(PLATEAU, lr=lr, seed=seed)
        assert not run.diverged and run.final_loss > 2.25, (lr, run.final_loss)


@pytest.mark.parametrize("seed", SEEDS)
def test_workflow_report_and_repair(seed):
    run = m.train_network(PLATEAU, seed=seed, monitor=True)
    assert run.monitor.diagnose()[0].kind == "vanishing"
    flow = run.layers["out_grad_norm"][-1]
    assert 5e-7 < flow[0] / flow[-1] < 2e-6  # "gradients that differ by 1e6"
    intended = m.LR * run.layers["grad_data"]
    assert 1e-9 < intended[:, 0].max() < 1e-8 and 1e-4 < intended[:, -1].min() < intended[:, -1].max() < 1e-2
    assert 1e5 < intended[:, -1].mean() / intended[:, 0].mean() < 1e6  # "hundreds of thousands of times"
    repaired = m.train_network({**PLATEAU, "activation": "relu", "init": "he"}, seed=seed, monitor=True)
    assert repaired.final_loss < 1.5 and not repaired.diverged  # far below chance (2.30) from every seed
    assert not {"vanishing", "exploding", "non-finite"} & {f.kind for f in repaired.monitor.diagnose()}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_adam_equalises_the_steps_but_not_the_gradient(seed):
    """Section 2: Adam and AdamW (lr 1e-3) leave the plateau network at chance in 150 steps; update:data is within
    about 2x across layers (layer 1 the least, its gradients below eps), the gradient ratio still ~2e-6."""
    runs = {name: m.train_network(PLATEAU, optimizer=name, lr=1e-3, monitor=10, seed=seed)
            for name in ("adam", "adamw")}
    for name, run in runs.items():
        taken = np.nanmean(run.layers["update_data"], axis=0)
        flow = run.layers["out_grad_norm"][-1]
        assert run.final_loss > 2.25, (name, run.final_loss)
        assert 1e-6 < flow[0] / flow[-1] < 4e-6 and run.monitor.diagnose()[0].kind == "vanishing", flow[0] / flow[-1]
        assert taken.max() / taken.min() < 3 and 1e-3 < taken.min() < taken.max() < 4e-3, taken
        assert taken.argmin() == 0 and run.layers["grad_std"][-1, 0] < 1e-8, taken
    assert abs(runs["adamw"].final_loss - runs["adam"].final_loss) < 0.01


@pytest.mark.parametrize("seed", SEEDS)
def test_update_ratio_spread_makes_one_learning_rate_useless(probe, seed):
    """Question 4's setup: raising lr until layer 1 reaches 1e-3 moves layer 8 by hundreds of times its size."""
    ratios = m.update_to_data_ratios(m.build_network(PLATEAU, seed=seed), *probe, lr=m.LR)
    assert np.all(np.diff(np.log10(ratios)) > 0)  # grows layer after layer toward the output
    assert 1e2 < 1e-3 * ratios[-1] / ratios[0] < 1e4


@pytest.mark.parametrize("seed", SEEDS)
def test_depth_does_not_help_a_plain_network_and_what_it_measures(probe, seed):
    """Section 6: the sweep, then why the 32-layer net fails (a healthy gradient, the examples' hidden vectors
    merge, units die on the batch; Leaky ReLU: no dead unit, same collapse; BatchNorm: no collapse, gradient
    ~400x toward the input) and that BatchNorm + residual connections train it."""
    losses = m.depth_sweep((2, 4, 8, 16, 32), seed=seed)
    assert min(losses[2], losses[4], losses[8]) < 0.3
    assert losses[8] < losses[16] < losses[32] and losses[32] > 2.0
    deep = {"depth": 32, "activation": "relu", "init": "he"}
    variants = {"plain": deep, "leaky": {**deep, "activation": "leaky_relu"}, "batch": {**deep, "norm": "batch"}}
    similar, ratio, dead = {}, {}, {}
    for label, settings in variants.items():
        net = m.build_network(settings, seed=seed)
        similar[label] = m.example_similarity(net, probe[0])
        measured = m.measure(net, *probe)
        ratio[label] = measured["flow"][0] / measured["flow"][-1]
        dead[label] = np.nan_to_num(measured["dead"])
    assert 0.25 < ratio["plain"] < 1, ratio
    assert similar["plain"][0] < 0.85 and similar["plain"][-1] > 0.93, similar["plain"]
    assert dead["plain"][-8:].mean() > max(0.2, 2 * dead["plain"][:8].mean()), dead["plain"]
    assert similar["leaky"][-1] > 0.93 and dead["leaky"].max() == 0
    assert similar["batch"].max() < 0.5 and dead["batch"].max() == 0
    assert 200 < ratio["batch"] < 800, ratio
    rescued = m.train_network({**deep, "norm": "batch", "residual": True}, seed=seed)
    assert not rescued.diverged and rescued.final_loss < m.FIX_TARGET, rescued.final_loss


def test_explorer_starts_vanishing():
    from course_lib.widgets import gradient_flow_explorer

    assert gradient_flow_explorer(depth=20, activation="sigmoid", init="default").last["kind"] == "vanishing"


def test_the_notebook_reuses_runs_that_are_the_same_training():
    """08 reads section 2's monitored run from the lr sweep and section 6's depth 8 from section 3's repaired net:
    the monitor does not change a run, and the two depth-8 ReLU + He networks are one training."""
    monitored, bare = m.train_network(PLATEAU, monitor=True), m.train_network(PLATEAU)
    assert np.array_equal(monitored.loss, bare.loss)
    repaired = m.train_network({**PLATEAU, "activation": "relu", "init": "he"}, monitor=True)
    assert m.depth_sweep((8,))[8] == repaired.final_loss
