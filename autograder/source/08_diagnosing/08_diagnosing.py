# %% [markdown]
# # 08 · Diagnosing a network: the capstone
#
# Your network does not learn. The loss sits near its starting value, and the
# reflex is to try another learning rate. This notebook is about the better
# reflex: **when the loss plateaus early, measure the per-layer gradient norms
# before you touch the learning rate.** One forward and backward pass tells you
# whether the gradient vanishes, explodes or dies on the way to the first
# layers, and the activation statistics tell you why. Then you fix the cause,
# and a short training run proves the fix. Every tool comes from notebooks 01-07;
# every claim below is an experiment that checks its own result.
#
# **You will learn to**
# 1. follow the workflow: plateau -> per-layer gradient norms -> cause -> fix, and
#    see why a learning-rate sweep cannot repair a vanishing gradient;
# 2. read a `GradientMonitor` health report on a real training run;
# 3. tell vanishing, exploding and dead units apart, and name the cause behind
#    each (activation, initialization, normalization);
# 4. diagnose five broken "mystery" networks and repair one, proving the repair
#    by training it;
# 5. recognise when more depth does not help.
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.mysteries import (CAUSES, FIX_TARGET, LR, MYSTERIES, NUM_STEPS, build_mystery, build_network,
                                  depth_sweep, evaluate_fix, measure, mystery_settings, probe_batch,
                                  train_network, update_to_data_ratios)
from course_lib.plotting import OKABE_ITO, plot_gradient_norms, plot_layer_metric, plot_training_curves
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import gradient_flow_explorer

set_seed(0)
device = get_device()
print(f"torch {torch.__version__} on {device} (these small networks train on the CPU)")
print(f"recipe for every run below: plain SGD, lr {LR}, {NUM_STEPS} steps of 128 digits")

# %% [markdown]
# ## 1. The loss plateaus. Do not touch the learning rate yet.
#
# All experiments use the 8x8 digits (1,797 images, 10 classes) and one
# training recipe: plain SGD, learning rate 0.1, 150 steps of 128 examples.
# Guessing every class with probability 1/10 gives a cross-entropy of
# $\ln 10 \approx 2.303$: a loss that stays there has learned nothing.
#
# Here is an 8-layer sigmoid network with the "standard" initialization of
# Glorot & Bengio (2010). It plateaus at $\ln 10$. The reflex is a learning-rate
# sweep, so let's do it properly: four learning rates spanning three decades.

# %%
plateau = {"depth": 8, "activation": "sigmoid", "init": "standard"}  # settings for build_mlp, 64 wide
X_probe, y_probe = probe_batch()  # 256 digits: the batch every diagnosis below measures on

# %% tags=["demo"]
sweep = {lr: train_network(plateau, lr=lr) for lr in (0.01, 0.1, 1.0, 10.0)}
ax = plot_training_curves({f"lr = {lr:g}": run for lr, run in sweep.items()}, smooth=10)
ax.axhline(math.log(10), color="black", linestyle="--", linewidth=1, label="ln 10 (chance)")
ax.set_title("8-layer sigmoid net: a learning-rate sweep")
ax.legend(frameon=False)
print({f"lr {lr:g}": round(run.final_loss, 3) for lr, run in sweep.items()})
assert all(not run.diverged and run.final_loss > 2.25 for run in sweep.values())  # all stuck at chance

# %% [markdown]
# **What to notice:** a thousand-fold range of learning rates, and every run ends
# at chance. The learning rate is not the problem, so no value of it is the fix.
#
# ## 2. Measure first: per-layer gradient norms on a real run
#
# `GradientMonitor` (notebook 02) records, for every layer and every step, the
# gradient arriving at the layer's output $\|\partial L/\partial h_k\|$, the
# weight gradient, the activation statistics and the update:data ratio. Training
# with `monitor=True` runs it; `report()` turns the last step into plain language.

# %% tags=["demo"]
run = train_network(plateau, monitor=True)
print(run.monitor.report())
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
plot_gradient_norms(run.layers["out_grad_norm"][-1], ax=left, ylabel="||dL/dh_k|| at the last step")
intended = LR * run.layers["grad_data"]  # lr * std(dL/dW) / std(W): the step SGD asks for, per layer
plot_layer_metric(intended, ax=right, ylabel="update:data ratio (lr x grad:data)", guide=1e-3)
right.set_ylim(top=1.0)  # room for the legend above the lines
flow = run.layers["out_grad_norm"][-1]
print(f"layer 1 receives {flow[0] / flow[-1]:.1e} of layer 8's gradient; "
      f"update:data ratio, layer 1: {intended[:, 0].max():.1e} at most, layer 8: {intended[:, -1].min():.1e}"
      f" to {intended[:, -1].max():.1e}")
assert run.monitor.diagnose()[0].kind == "vanishing"
assert flow[0] / flow[-1] < 1e-4
assert intended[:, 0].max() < 1e-7 and 1e-4 < intended[:, -1].min() < intended[:, -1].max() < 1e-2

# %% [markdown]
# **What to notice:** the last layer's update:data ratio sits near the healthy
# $10^{-3}$ (the dashed line): for *that* layer the learning rate is right. Layer 1
# asks for steps of a few $10^{-9}$ of its size, hundreds of thousands of times
# smaller, so the report says it barely learns. A learning rate large enough to
# wake up layer 1 would move layer 8 by far more than its own size at every step
# (question 4 asks by how much). One learning rate scales every layer's step by the
# same factor; it cannot serve layers whose gradients differ by $10^6$. The
# gradient flow itself has to be fixed.
#
# ## 3. Fix the cause, keep the learning rate
#
# The report points at the activation: the gradient shrinks layer by layer while
# nothing is dead, and a sigmoid's slope is at most 1/4 (notebooks 01 and 02).
# ReLU passes gradient 1 on its active side, and He initialization keeps its
# activations at a steady scale (notebooks 04 and 05). Same depth, same width,
# same learning rate:

# %% tags=["demo"]
repaired = train_network({**plateau, "activation": "relu", "init": "he"}, monitor=True)
ax = plot_training_curves({"sigmoid, standard init (as found)": sweep[0.1],
                           "ReLU + He init, same lr": repaired}, smooth=10)
ax.axhline(math.log(10), color="black", linestyle="--", linewidth=1)
print(repaired.monitor.report())
print(f"final loss: {sweep[0.1].final_loss:.3f} -> {repaired.final_loss:.3f}")
assert repaired.final_loss < 0.5 and not repaired.diverged
assert not {"vanishing", "exploding", "non-finite"} & {f.kind for f in repaired.monitor.diagnose()}

# %% [markdown]
# **What to notice:** the loss leaves the plateau from the first steps, at the
# learning rate that "did not work" before, and the report is clean. That is the
# whole workflow: **plateau -> per-layer measurements -> cause -> fix -> a
# training run that proves it.**
#
# ## 4. A field guide: symptom, measurement, cause, fix
#
# Different failures leave different fingerprints. Read them in this order
# (each row was measured in the notebook named in the last column):
#
# | symptom in the loss | what the monitor measures | cause | fix | seen in |
# |---|---|---|---|---|
# | NaN or huge within a few steps | NaN/inf values, or $\|\partial L/\partial h_1\|$ > 100x the last layer's; activations grow layer by layer | **exploding**: each layer multiplies the signal by more than 1 (weights too large) | He/Xavier init; gradient clipping | 01, 03, 05 |
# | stuck at chance | more than half of a layer's units are **dead** (ReLU off for every example), so no gradient passes below them | **dead units**: ReLUs pushed to the negative side (large negative biases, a too-large step) | re-initialize, lower lr, Leaky ReLU | 04 |
# | stuck at chance | **no gradient at all**, although no unit is dead; every unit in a layer computes the same thing | **bad init**: symmetric weights (all equal, here all zero) | random init (Xavier, He) | 05 |
# | stuck at chance | gradient shrinks toward the input **and** the activation std collapses through depth (last layer < 1/100 of layer 1) | **missing normalization**: nothing keeps the activation scale in a deep stack | BatchNorm / LayerNorm (or a careful init) | 05, 06 |
# | stuck at chance | gradient shrinks toward the input (< 1/100) while activations keep their scale; often many saturated units | **saturating activation**: sigmoid's slope $\le 1/4$, flat tails of sigmoid/tanh | ReLU family + He init, normalization | 02, 04 |
# | deeper is *worse* on the training loss | final training loss against depth | depth without a gradient highway | normalization and residual connections | 07, section 6 |
#
# Vanishing, exploding and dead are different diagnoses with different cures:
# vanishing and exploding are two sides of one product of per-layer factors
# (notebook 01), too small or too large; a dead unit is a factor of exactly 0,
# and no learning-rate change or clipping brings it back. Vanishing is also a
# *symptom*, not a cause: the activation std tells you whether the activation
# function (scale kept) or the missing normalization (scale collapsing) is to blame.
#
# ## 5. Five mystery networks
#
# Each of these networks (A to E) is a digits classifier that does not train,
# each for exactly one of the reasons in the table. Below: the measurements of one
# forward and backward pass on the probe batch at initialization, their health
# reports, and 150 training steps of each. Practice question 2 asks you to name
# each cause; question 3, to repair one of them.

# %% tags=["demo"]
measured = {name: measure(build_mystery(name), X_probe, y_probe) for name in MYSTERIES}
runs = {name: train_network(mystery_settings(name)) for name in MYSTERIES}
positive = lambda values: np.where(np.asarray(values) > 0, values, np.nan)  # log axes cannot show 0
fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
for i, name in enumerate(MYSTERIES):
    style = dict(color=OKABE_ITO[i], marker="o", markersize=3, label=name)
    layers = np.arange(1, len(measured[name]["flow"]) + 1)
    axes[0].semilogy(layers, positive(measured[name]["flow"]), **style)
    axes[1].semilogy(layers, positive(measured[name]["act_std"]), **style)
    unhealthy = np.fmax(np.nan_to_num(measured[name]["dead"]), np.nan_to_num(measured[name]["saturated"]))
    axes[2].plot(layers, unhealthy, **style)
    axes[3].plot(np.minimum(runs[name].loss, 10.0), color=OKABE_ITO[i], marker="." if runs[name].diverged else None,
                 label=f"{name} (diverged)" if runs[name].diverged else name)
for ax, label in zip(axes, ["||dL/dh_k|| (0 not shown)", "activation std (0 not shown)",
                            "dead or saturated fraction", "training loss (capped at 10)"]):
    ax.set_xlabel("step" if "loss" in label else "layer (1 = next to the input)")
    ax.set_ylabel(label)
    ax.legend(frameon=False, fontsize="small")
for name in MYSTERIES:
    print(f"Mystery {name}: loss at init {measured[name]['loss']:.3g}, "
          f"after training {'diverged' if runs[name].diverged else f'{runs[name].final_loss:.3f}'}")
    print(measured[name]["report"], end="\n\n")
assert all(run.diverged or run.final_loss > 2.0 for run in runs.values())  # none of them learns

# %% [markdown]
# **What to notice:** all five fail under the recipe that trained the repaired
# network of section 3 in the same number of steps, yet their measurements differ.
# Look at *where* each gradient curve goes (left), whether the activation scale
# survives the depth (second panel), and whether units are dead or saturated
# (third). The reports name symptoms; the table in section 4 turns symptoms into causes.
#
# ## 6. When depth does not help
#
# More layers can represent more, but they also have to be trained. Below, plain
# ReLU networks with He initialization (the healthy recipe of section 3, no
# normalization, no residual connections) at depths 2 to 32, same recipe and
# budget. This is the **training** loss: a deeper network that did worse here did
# not overfit, it failed to optimize (He et al. 2016 call this degradation).

# %% tags=["demo"]
depths = (2, 4, 8, 16, 32)
losses = depth_sweep(depths)
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(depths, [losses[d] for d in depths], "o-", color=OKABE_ITO[0])
ax.axhline(math.log(10), color="black", linestyle="--", linewidth=1, label="ln 10 (chance)")
ax.set_xscale("log", base=2)
ax.set_xlabel("depth (hidden layers, plain ReLU + He init)")
ax.set_ylabel(f"training loss after {NUM_STEPS} steps")
ax.legend(frameon=False)
print({d: round(v, 3) for d, v in losses.items()})
assert min(losses[2], losses[4], losses[8]) < 0.3
assert losses[8] < losses[16] < losses[32] and losses[32] > 2.0

# %% [markdown]
# **What to notice:** from 8 layers on, every doubling of the depth makes the
# training loss *worse*, and at 32 layers the network is back at chance. Depth
# pays off only with the tools that keep the gradient flowing through it:
# normalization (notebook 06) and residual connections (notebook 07).
#
# ## 7. Explore: the gradient-flow explorer
#
# Everything in this course in one widget: pick the depth, width, activation,
# initialization, weight scale, normalization and residual connections; the
# explorer builds the network, runs one forward and backward pass on a random
# batch and shows the per-layer gradient norms, activation std and dead or
# saturated fraction, with the monitor's verdict. Rebuild the mysteries: a
# 20-layer sigmoid net (it starts there), then switch to ReLU + He, add
# BatchNorm, try weight scale 3, or 50 layers with and without residual connections.

# %% tags=["demo"]
explorer = gradient_flow_explorer(depth=20, activation="sigmoid", init="default")
assert explorer.last["kind"] == "vanishing"
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks tell you what is wrong; hidden
# tests with other inputs decide the grade.
#
# ### Question 1 (3 points): the field guide as code
#
# Write `triage(flow, act_std, dead)`. Its arguments are per-layer measurements,
# layer 1 first, as lists, NumPy arrays or tensors of the same length: `flow` the
# gradient norms $\|\partial L/\partial h_k\|$, `act_std` the activation std, `dead`
# the dead fractions (NaN means "not measured": ignore NaN there). Return the
# first label whose rule applies, checking the rules **in this order**:
#
# 1. any value of `flow` or `act_std` is NaN or infinite: `"exploding"`;
# 2. the largest dead fraction is above 0.5: `"dead units"`;
# 3. the last layer's flow is exactly 0 (no gradient at all): `"bad init"`;
# 4. `flow[0]` is more than 100 times `flow[-1]`: `"exploding"`;
# 5. `act_std[-1]` is less than 1/100 of `act_std[0]`: `"missing normalization"`;
# 6. `flow[0]` is less than 1/100 of `flow[-1]`: `"saturating activation"`;
# 7. otherwise `"healthy"`.
#
# Do not change the arguments.

# %% nbgrader={"grade_id": "q1_triage", "solution": true}
def triage(flow, act_std, dead):
    """The most likely cause behind per-layer measurements (layer 1 first), by the field guide."""
    ### BEGIN SOLUTION
    flow = np.asarray(flow, dtype=np.float64)
    act_std = np.asarray(act_std, dtype=np.float64)
    dead = np.asarray(dead, dtype=np.float64)
    if not (np.isfinite(flow).all() and np.isfinite(act_std).all()):
        return "exploding"
    if np.nanmax(dead, initial=0.0) > 0.5:
        return "dead units"
    if flow[-1] == 0:
        return "bad init"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if act_std[-1] < act_std[0] / 100:
        return "missing normalization"
    if flow[0] < flow[-1] / 100:
        return "saturating activation"
    return "healthy"
    ### END SOLUTION

# %% mistake="q1_triage" label="tests the vanishing gradient before the activation scale (rules 5 and 6 swapped)"
def triage(flow, act_std, dead):
    flow, act_std, dead = (np.asarray(v, dtype=np.float64) for v in (flow, act_std, dead))
    if not (np.isfinite(flow).all() and np.isfinite(act_std).all()):
        return "exploding"
    if np.nanmax(dead, initial=0.0) > 0.5:
        return "dead units"
    if flow[-1] == 0:
        return "bad init"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if flow[0] < flow[-1] / 100:
        return "saturating activation"
    if act_std[-1] < act_std[0] / 100:
        return "missing normalization"
    return "healthy"

# %% nbgrader={"grade_id": "q1_triage_test", "grade": true, "points": 3}
# Check: one made-up 3-layer network per rule (layer 1 first).
_labels = CAUSES + ("healthy",)
_cases = [(([np.nan, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]), "exploding"),
          (([0.0, 0.0, 0.1], [0.3, 0.0, 0.0], [0.2, 1.0, 1.0]), "dead units"),
          (([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), "bad init"),
          (([1e3, 1e1, 1.0], [1.0, 10.0, 100.0], [0.0, 0.1, 0.2]), "exploding"),
          (([1e-5, 1e-3, 1e-1], [0.3, 1e-3, 1e-5], [0.0, 0.0, 0.0]), "missing normalization"),
          (([1e-5, 1e-3, 1e-1], [0.04, 0.1, 0.3], [0.0, 0.0, 0.0]), "saturating activation"),
          (([0.5, 0.3, 0.2], [0.4, 0.5, 0.6], [0.1, 0.2, 0.1]), "healthy")]


def _swapped(flow, act_std, dead):  # rules 5 and 6 in the wrong order
    flow, act_std = np.asarray(flow, dtype=float), np.asarray(act_std, dtype=float)
    return "saturating activation" if flow[0] < flow[-1] / 100 else None


def _reversed(flow, act_std, dead):  # ratio last/first instead of first/last
    flow = np.asarray(flow, dtype=float)
    return "exploding" if flow[-1] > 100 * flow[0] else "saturating activation" if flow[-1] < flow[0] / 100 else None


def _no_nan_check(flow, act_std, dead):  # NaN compares False everywhere and falls through
    return "healthy"


def _dead_after_zero(flow, act_std, dead):  # rule 3 before rule 2
    return "bad init" if np.asarray(flow, dtype=float)[-1] == 0 else None


checks.check_verdicts(
    "Question 1", triage, _cases, allowed=_labels,
    mistakes=[(_swapped, "rule 5 must come before rule 6. Both networks lose their gradient; only the "
                         "activation std tells a collapsing network (missing normalization) from a "
                         "saturating activation."),
              (_reversed, "the ratio is flow[0] (layer 1, next to the input) against flow[-1] (the last "
                          "layer): vanishing means layer 1 gets LESS."),
              (_no_nan_check, "check for NaN and infinity first (np.isfinite): every comparison with NaN is "
                              "False, so a NaN network falls through to 'healthy'."),
              (_dead_after_zero, "a dead network gets no gradient either: test the dead fraction (rule 2) "
                                 "before the zero gradient (rule 3).")],
    hint="Convert the inputs with np.asarray(..., dtype=float) and apply the rules in the given order; "
         "use np.nanmax for the dead fractions.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _hidden = [
        ((torch.tensor([1e-5, 1e-3, 1e-1]), torch.tensor([0.3, 1e-3, 1e-5]), torch.zeros(3)), "missing normalization"),
        ((np.array([1e-6, 1.0], dtype=np.float32), np.array([0.1, 0.2], dtype=np.float32), np.array([np.nan, np.nan])),
         "saturating activation"),
        (([1.0, 1.0], [1.0, np.inf], [0.0, 0.0]), "exploding"),
        (([1.0, 1.0], [1.0, 1.0], [0.0, 0.5]), "healthy"),  # exactly 0.5 is not above 0.5
        (([100.0, 1.0], [1.0, 1.0], [0.0, 0.0]), "healthy"),  # exactly 100x is not more than 100x
        (([0.01, 1.0], [1.0, 1.0], [0.0, 0.0]), "healthy"),
        (([1.0, 1.0], [1.0, 0.01], [0.0, 0.0]), "healthy"),
        (([0.7], [0.3], [0.1]), "healthy"),
        (([0.0], [0.3], [0.1]), "bad init"),
        (([0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, np.nan, 0.9]), "dead units"),
        (([1e-9, 1e-5, 1.0], [1.0, 1e-3, 1e-6], [0.0, 0.0, 0.0]), "missing normalization"),
        (([5e3, 1.0, 0.5], [2.0, 1e3, 1e4], [0.1, 0.4, 0.2]), "exploding"),
        (([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]), "healthy"),
        (([np.nan, np.nan], [np.nan, np.nan], [np.nan, np.nan]), "exploding"),
    ]
    checks.check_verdicts("Question 1 (hidden)", triage, _hidden, allowed=_labels)
    _rng = np.random.default_rng(8)
    for _trial in range(30):  # random healthy networks: every value within 10x of the others
        _n = int(_rng.integers(2, 12))
        checks.check_verdicts("Question 1 (hidden, random)", triage,
                              [((_rng.uniform(0.2, 2.0, _n), _rng.uniform(0.2, 2.0, _n),
                                 _rng.uniform(0.0, 0.5, _n)), "healthy")], allowed=_labels)
    _X, _y = probe_batch()  # the five mysteries, as measured in section 5
    _truth = {"A": "dead units", "B": "missing normalization", "C": "saturating activation", "D": "bad init",
              "E": "exploding"}
    for _name, _cause in _truth.items():
        _m = measure(build_mystery(_name), _X, _y)
        checks.check_verdicts(f"Question 1 (hidden, mystery {_name})", triage,
                              [((_m["flow"], _m["act_std"], _m["dead"]), _cause)], allowed=_labels)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (4 points): diagnose the five mysteries
#
# Use the measurements and reports of section 5 (and the field guide of section 4)
# to name the cause of each mystery network. Each label is one of
# `"saturating activation"`, `"exploding"`, `"dead units"`, `"bad init"`,
# `"missing normalization"`. Set `q2_diagnosis` to a dict such as
# `{"A": "exploding", "B": "exploding", "C": "exploding", "D": "exploding", "E": "exploding"}`.

# %% nbgrader={"grade_id": "q2_diagnosis", "solution": true}
### BEGIN SOLUTION
q2_diagnosis = {"A": "dead units", "B": "missing normalization", "C": "saturating activation",
                "D": "bad init", "E": "exploding"}
### END SOLUTION

# %% mistake="q2_diagnosis" label="swaps B and C: blames the activation for the collapse, normalization for saturation"
q2_diagnosis = {"A": "dead units", "B": "saturating activation", "C": "missing normalization",
                "D": "bad init", "E": "exploding"}

# %% nbgrader={"grade_id": "q2_diagnosis_test", "grade": true, "points": 4}
_scale = ("Both B and C lose their gradient on the way to layer 1; compare their activation std across the "
          "layers (second panel) and their saturated fractions (third panel).")
checks.check_labels(
    "Question 2", q2_diagnosis, list(MYSTERIES), list(CAUSES),
    expected_digests={"A": "06fe3337f363ea3f", "B": "11db12b347770802", "C": "1650867298f2985b",
                      "D": "2c2053f982546d4d", "E": "3caad11acf119481"},
    explanations={**{("B", v): _scale for v in CAUSES}, **{("C", v): _scale for v in CAUSES},
                  **{("A", v): "Look at A's dead fraction: what does a ReLU unit that is off for every "
                               "example pass back?" for v in CAUSES},
                  **{("D", v): "D gets no gradient at all, yet none of its units is dead: what does a network "
                               "whose units all compute the same thing look like?" for v in CAUSES},
                  **{("E", v): "Which way does E's gradient go from the last layer to layer 1, and what "
                               "happens to its loss?" for v in CAUSES}})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_labels("Question 2 (hidden)", q2_diagnosis, list(MYSTERIES), list(CAUSES),
                        expected={"A": "dead units", "B": "missing normalization", "C": "saturating activation",
                                  "D": "bad init", "E": "exploding"})
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (4 points): repair mystery B
#
# Repair mystery B by changing its settings, **not** its depth: `q3_changes` is a
# dict of `build_mlp` settings to change, with keys among `"activation"`, `"init"`,
# `"norm"`, `"residual"`, `"gain"`, `"std"`, `"weight_scale"`, `"bias"`, for example
# `{"init": "he"}`; `mystery_settings("B")` shows what B has now. The repair counts
# when `evaluate_fix(q3_changes)` (B with your changes, trained with the recipe:
# plain SGD, lr 0.1, 150 steps) reaches a final training loss **below 0.5**. The
# check trains it from seed 0; the hidden test trains it again from another seed, so
# make sure your repair does not pass by luck (try `evaluate_fix(q3_changes, seed=1)`).

# %% nbgrader={"grade_id": "q3_changes", "solution": true}
### BEGIN SOLUTION
q3_changes = {"norm": "batch"}
### END SOLUTION

# %% mistake="q3_changes" label="swaps tanh for ReLU and keeps the small initialization"
q3_changes = {"activation": "relu"}

# %% nbgrader={"grade_id": "q3_changes_test", "grade": true, "points": 4}
assert isinstance(q3_changes, dict), f"Question 3: q3_changes must be a dict such as {{'init': 'he'}}, " \
                                     f"got {type(q3_changes).__name__}"
try:
    _loss = evaluate_fix(q3_changes, seed=0)
except ValueError as error:
    raise checks.CheckFailed(f"Question 3: not yet right.\n  These changes cannot be applied: {error}") from None
assert _loss < FIX_TARGET, (
    f"Question 3: not yet right.\n  With {q3_changes}, mystery B reaches a final loss of {_loss:.3f} "
    f"(target: below {FIX_TARGET}; ln 10 = 2.303 is chance).\n  Did the activation std still collapse? "
    "Something has to keep each layer's activations at a steady scale, whatever the weights do.")
print(f"Question 3: passes the visible check (final loss {_loss:.3f} < {FIX_TARGET} from seed 0).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _hidden_loss = evaluate_fix(q3_changes, seed=1)
    assert _hidden_loss < FIX_TARGET, f"Question 3: from seed 1 the repair reaches only {_hidden_loss:.3f}"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): what a bigger learning rate would do
#
# Back to the plateaued sigmoid network of section 1. The cell below measures
# each layer's update:data ratio $\text{lr}\cdot\mathrm{std}(\partial L/\partial W)/\mathrm{std}(W)$
# for one SGD step at lr 0.1 (at initialization, on the probe batch). For plain
# SGD the ratio is proportional to the learning rate. Suppose you raised the
# learning rate until **layer 1's** ratio reached the healthy $10^{-3}$. What would
# the **last layer's** (layer 8's) ratio be then? Set `q4_last_ratio` to a number
# (5% tolerance; you may compute it from `q4_ratios`).

# %%
q4_ratios = update_to_data_ratios(build_network(plateau, seed=0), X_probe, y_probe, lr=LR)
print("update:data ratio per layer at lr 0.1:", np.array2string(q4_ratios, precision=3))

# %% nbgrader={"grade_id": "q4_last_ratio", "solution": true}
### BEGIN SOLUTION
q4_last_ratio = 1e-3 * q4_ratios[-1] / q4_ratios[0]
### END SOLUTION

# %% mistake="q4_last_ratio" label="divides the wrong way round (scales by layer 1 / layer 8)"
q4_last_ratio = 1e-3 * q4_ratios[0] / q4_ratios[-1]

# %% nbgrader={"grade_id": "q4_last_ratio_test", "grade": true, "points": 2}
_ratios = update_to_data_ratios(build_network(plateau, seed=0), X_probe, y_probe, lr=LR)
_factor = 1e-3 / _ratios[0]  # how much the learning rate must grow
checks.check_prediction(
    "Question 4", q4_last_ratio, _ratios[-1] * _factor, rtol=0.05,
    mistakes=[(1e-3 * _ratios[0] / _ratios[-1],
               "you scaled by layer 1 / layer 8. The learning rate must grow by 1e-3 / (layer 1's ratio), "
               "and layer 8's ratio grows by the same factor."),
              (1e-3, "every layer's ratio grows by the same factor, so layer 8 does not land at 1e-3 too: it "
                     "started much higher than layer 1."),
              (_ratios[-1] / _ratios[0], "you found the factor between the layers; now apply it to layer 1's "
                                         "target of 1e-3.")],
    hint="Every layer's ratio grows by the same factor as the learning rate. Which factor takes layer 1 "
         "from q4_ratios[0] to 1e-3, and where does it take layer 8?")
### BEGIN HIDDEN TESTS
with checks.quiet():
    assert isinstance(q4_last_ratio, (int, float, np.floating)) and not isinstance(q4_last_ratio, bool), \
        "Question 4: give a plain number"
    assert math.isclose(float(q4_last_ratio), 1e-3 * _ratios[-1] / _ratios[0], rel_tol=0.05), \
        f"Question 4: {q4_last_ratio} is not within 5% of the right ratio"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (2 points): when depth does not help
#
# In section 6 the 32-layer plain ReLU network ended with a much higher **training**
# loss than the 8-layer one, under the same recipe. Which explanation is right?
# Set `q5_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** The deeper network overfits: its extra parameters memorize noise in the training set.
# - **B.** The deeper network's loss became NaN: the learning rate was too large for it.
# - **C.** Without normalization or residual connections, a deep plain network is much harder to optimize: the same number of gradient steps gets it far less far. Depth made the optimization harder, not the model weaker.
# - **D.** A network deeper than about 8 layers cannot represent more functions than a shallower one.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "C"
### END SOLUTION

# %% mistake="q5_answer" label="calls it overfitting"
q5_answer = "A"

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 2}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="b991f78265596796",
    explanations={"A": "Overfitting shows as a LOW training loss with a high test loss. Here the training "
                       "loss itself is high: the deep network did not even fit the data it saw.",
                  "B": "The losses in section 6 are finite numbers (the sweep would report inf for a "
                       "diverged run): the deep network got stuck, it did not blow up.",
                  "D": "A deeper network can represent everything a shallower one can (extra layers can "
                       "pass their input through), and ResNets train hundreds of layers."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="C")
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - **When the loss plateaus early, measure per-layer gradient norms before changing
#   the learning rate.** One learning rate scales every layer's step together; it
#   cannot repair gradients that differ by orders of magnitude between layers.
# - Read a health report in order: non-finite or growing toward the input
#   (**exploding**), dead units (**dead**), no gradient at all with live units
#   (**bad, symmetric init**), activation scale collapsing through depth
#   (**missing normalization**), gradient shrinking while the scale holds
#   (**saturating activation**).
# - Vanishing, exploding and dead are different diagnoses: factors below 1, above
#   1, and exactly 0. Each has its own cure (activation and init, init and clipping,
#   re-initialization or Leaky ReLU); normalization and residual connections keep
#   the product of factors near 1 in deep networks.
# - More depth helps only when the gradient can flow through it: plain deep
#   networks reach a *higher training loss* than shallower ones.
# - A repair is proven by a training run, not by an argument.
#
# ## References
#
# - X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks. *AISTATS.*
# - R. Pascanu, T. Mikolov, Y. Bengio (2013). On the difficulty of training recurrent neural networks. *ICML.*
# - A. Maas, A. Hannun, A. Ng (2013). Rectifier nonlinearities improve neural network acoustic models. *ICML Workshop on Deep Learning for Audio, Speech and Language Processing.*
# - K. He, X. Zhang, S. Ren, J. Sun (2015). Delving deep into rectifiers: surpassing human-level performance on ImageNet classification. *ICCV.*
# - S. Ioffe, C. Szegedy (2015). Batch normalization: accelerating deep network training by reducing internal covariate shift. *ICML.*
# - K. He, X. Zhang, S. Ren, J. Sun (2016). Deep residual learning for image recognition. *CVPR.*
# - A. Karpathy (2019). A recipe for training neural networks. Blog post; and the CS231n notes on babysitting the learning process (update:data ratio about 1e-3), Stanford.
