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
from course_lib.mysteries import (FIX_TARGET, LABELS, LR, MYSTERIES, NUM_STEPS, build_mystery, build_network,
                                  check_repair, depth_sweep, evaluate_fix, example_similarity, measure,  # noqa: F401
                                  mystery_settings, probe_batch, train_network, train_side_by_side,
                                  update_to_data_ratios)
from course_lib.plotting import (OKABE_ITO, integer_ticks, plot_gradient_norms, plot_layer_metric,
                                 plot_training_curves)
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import gradient_flow_explorer

set_seed(0)
torch.set_num_threads(1)  # tiny networks: one thread is faster, and much faster on a busy CPU
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
# (Three of them train side by side on the same batches, as one stacked network;
# lr 0.1 trains with the monitor that section 2 reads.)

# %%
plateau = {"depth": 8, "activation": "sigmoid", "init": "standard"}  # settings for build_mlp, 64 wide
X_probe, y_probe = probe_batch()  # 256 digits: the batch every diagnosis below measures on

# %% tags=["demo"]
slow, fast, fastest = train_side_by_side(plateau, lr=[0.01, 1.0, 10.0])  # three rates as one stacked network
sweep = {0.01: slow, LR: train_network(plateau, monitor=True), 1.0: fast, 10.0: fastest}  # section 2 reads 0.1's
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
run = sweep[LR]  # the sweep's run at lr 0.1, trained with train_network(plateau, monitor=True)
print(run.monitor.report())
fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4), layout="constrained")
plot_gradient_norms(run.layers["out_grad_norm"][-1], ax=left, ylabel="||dL/dh_k|| at the last step")
intended = LR * run.layers["grad_data"]  # lr * std(dL/dW) / std(W): the step SGD asks for, per layer
plot_layer_metric(intended, ax=right, ylabel="update:data ratio (lr x grad:data)", guide=1e-3)
right.set_ylim(top=1.0)  # room for the legend above the lines
flow = run.layers["out_grad_norm"][-1]
spread = intended[:, -1].mean() / intended[:, 0].mean()
print(f"layer 1 receives {flow[0] / flow[-1]:.1e} of layer 8's gradient; "
      f"update:data ratio, layer 1: {intended[:, 0].max():.1e} at most, layer 8: {intended[:, -1].min():.1e}"
      f" to {intended[:, -1].max():.1e}, {spread:.1e} times layer 1's on average")
assert run.monitor.diagnose()[0].kind == "vanishing"
assert 5e-7 < flow[0] / flow[-1] < 2e-6  # "gradients that differ by 1e6"
assert 1e-9 < intended[:, 0].max() < 1e-8 and 1e-4 < intended[:, -1].min() < intended[:, -1].max() < 1e-2
assert 1e5 < spread < 1e6  # hundreds of thousands of times

# %% [markdown]
# **What to notice:** layer 1 receives about $10^{-6}$ of layer 8's gradient. The last
# layer's update:data ratio sits near the healthy $10^{-3}$ (the dashed line): for *that*
# layer the learning rate is right. Layer 1 asks for steps of a few $10^{-9}$ of its size,
# hundreds of thousands of times smaller, so the report says it barely learns. A learning
# rate large enough to wake up layer 1 would move layer 8 by far more than its own size
# at every step (question 4 asks by how much). Plain SGD scales every layer's step by the
# same learning rate; it cannot serve layers whose gradients differ by $10^6$.
#
# ### Would Adam fix it?
#
# That argument is about SGD, whose step is the learning rate times the gradient. Adam
# (Kingma & Ba 2015) divides each weight's step by a running root-mean-square of that
# weight's own gradients, so a layer with $10^6$ times smaller gradients still takes steps
# of about the learning rate; AdamW (Loshchilov & Hutter 2019) adds a weight decay that is
# decoupled from that rescaling. The same network and 150 steps, Adam and AdamW at their
# usual learning rate $10^{-3}$; the monitor records every 10th step, and its update:data
# ratio is the step the optimizer actually took.

# %% tags=["demo"]
adaptive = {name: train_network(plateau, optimizer=name, lr=1e-3, monitor=10) for name in ("adam", "adamw")}
taken = {name: np.nanmean(r.layers["update_data"], axis=0) for name, r in adaptive.items()}  # mean over steps
arriving = {name: r.layers["out_grad_norm"][-1] for name, r in adaptive.items()}
fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4), layout="constrained")
plot_gradient_norms({"SGD, lr 0.1": flow, **{f"{n.replace('adam', 'Adam')}, lr 1e-3": g for n, g in arriving.items()}},
                    ax=left, ylabel="||dL/dh_k|| at the last step")
plot_gradient_norms({"SGD (lr x grad:data)": intended.mean(axis=0),
                     **{n.replace("adam", "Adam"): u for n, u in taken.items()}},
                    ax=right, ylabel="update:data ratio (mean over steps)")
right.axhline(1e-3, color="black", linestyle="--", linewidth=1)
for name, r in adaptive.items():
    print(f"{name}: final loss {r.final_loss:.3f}; layer 1 gets {arriving[name][0] / arriving[name][-1]:.1e} of "
          f"layer 8's gradient; update:data {taken[name].min():.1e} to {taken[name].max():.1e}; "
          f"report: {r.monitor.diagnose()[0].kind}")
for name, r in adaptive.items():
    assert r.final_loss > 2.25  # still at chance after 150 steps
    assert 1e-6 < arriving[name][0] / arriving[name][-1] < 4e-6 and r.monitor.diagnose()[0].kind == "vanishing"
    assert taken[name].max() / taken[name].min() < 3 and 1e-3 < taken[name].min() < taken[name].max() < 4e-3
    assert taken[name].argmin() == 0 and r.layers["grad_std"][-1, 0] < 1e-8  # layer 1: below Adam's eps
assert abs(adaptive["adamw"].final_loss - adaptive["adam"].final_loss) < 0.01

# %% [markdown]
# **What to notice:** Adam changes the steps, not the gradient. Every layer now moves by
# about $2\times10^{-3}$ of its size per step, within a factor of about 2 of each other where SGD
# spread them over nearly six decades: the update:data ratio, which exposed the problem under SGD,
# now looks healthy in every layer. That is what an adaptive optimizer hides. The gradient
# norms still tell: layer 1 gets about $2\times10^{-6}$ of layer 8's gradient, the monitor
# still reports vanishing, and the loss is still at $\ln 10$ after 150 steps. Steps of a
# healthy size are no quick cure when the gradient that sets their direction carries a
# millionth of the signal. Layer 1 even moves the least: its gradients (a few $10^{-9}$)
# are below Adam's $\epsilon = 10^{-8}$, which then dominates the denominator and shrinks
# the step (notebook 09 measures where that happens). AdamW's decay, $10^{-5}$ of each
# weight per step here, changes nothing. So read both metrics: gradient norms say *where*
# the signal is lost, update:data says how fast each layer actually moves. The gradient
# flow itself has to be fixed.
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
# | symptom in the loss | what the monitor measures, and its label | likely cause | fix | seen in |
# |---|---|---|---|---|
# | NaN or huge within a few steps | NaN/inf values, or $\|\partial L/\partial h_1\|$ > 100x the last layer's; activations grow layer by layer: **exploding** | each layer multiplies the signal by more than 1 (weights too large) | He/Xavier init; gradient clipping | 01, 03, 05 |
# | stuck at chance | more than half of a layer's units are off for every example, so no gradient passes below them: **dead units** | ReLUs pushed to the negative side (large negative biases, a too-large step) | re-initialize, zero biases, lower lr, Leaky ReLU | 04 |
# | stuck at chance | the gradient is exactly 0 in every layer, although no unit is dead: **no gradient** | symmetric init: all weights equal (here all zero), so every unit of a layer computes the same thing | random init (Xavier, He) | 05 |
# | stuck at chance | the activation std falls through depth (last layer < 1/100 of layer 1), and the gradient with it: **collapsing activations** | weights too small for the activation, so every layer shrinks the signal (the "standard" init $U(\pm 1/\sqrt{n})$ with tanh: $1/\sqrt{3} \approx 0.58$ per layer) | an init that keeps the scale (Xavier for tanh, He for ReLU), or BatchNorm | 05, 06 |
# | stuck at chance | the gradient shrinks toward the input (< 1/100) while the activations keep their scale; often many saturated units: **vanishing gradient** | a saturating activation: sigmoid's slope $\le 1/4$, the flat tails of sigmoid and tanh (large biases) | ReLU family + He init, zero biases, normalization | 02, 04 |
# | deeper is *worse* on the training loss | a healthy gradient, yet the examples' hidden vectors become one vector (similarity near 1) and many top-layer units are off for the whole batch | a deep plain ReLU stack maps every input to nearly the same direction | BatchNorm and residual connections | 07, section 6 |
#
# The labels name what is measured; the cause column says what usually produces it.
# Vanishing, exploding and dead are different diagnoses with different cures:
# vanishing and exploding are two sides of one product of per-layer factors
# (notebook 01), too small or too large; a dead unit is a factor of exactly 0,
# and no learning-rate change or clipping brings it back. A vanishing gradient is
# also a *symptom*, not a cause: the activation std tells you whether the
# activation saturates (scale kept) or every layer shrinks the signal (scale
# collapsing, checked first).
#
# ## 5. Five mystery networks
#
# Each of these networks (A to E) is a digits classifier that does not train,
# each for exactly one of the reasons in the table. Below: the measurements of one
# forward and backward pass on the probe batch at initialization, their health
# reports, and 150 training steps of each. Practice question 1 turns the table
# into code that labels each one; question 3 asks you to repair networks like these.

# %% tags=["demo"]
measured = {name: measure(build_mystery(name), X_probe, y_probe) for name in MYSTERIES}
runs = {name: train_network(mystery_settings(name)) for name in MYSTERIES}
positive = lambda values: np.where(np.asarray(values) > 0, values, np.nan)  # log axes cannot show 0
fig, axes = plt.subplots(2, 2, figsize=(9, 6.5), layout="constrained")  # fits JupyterLab's default width
axes = axes.ravel()
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
    ax.legend(frameon=False, ncol=2)
for ax in axes[:3]:
    integer_ticks(ax)  # layers are whole numbers
for name in MYSTERIES:
    print(f"Mystery {name}: loss at init {measured[name]['loss']:.3g}, "
          f"after training {'diverged' if runs[name].diverged else f'{runs[name].final_loss:.3f}'}")
    print(measured[name]["report"], end="\n\n")
assert all(run.diverged or run.final_loss > 2.0 for run in runs.values())  # none of them learns

# %% [markdown]
# **What to notice:** all five fail under the recipe that trained the repaired
# network of section 3 in the same number of steps, yet their measurements differ.
# Look at *where* each gradient curve goes (top left), whether the activation scale
# survives the depth (top right), and whether units are dead or saturated
# (bottom left). The reports name symptoms; the table in section 4 turns symptoms into causes.
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
losses = {**depth_sweep(depths[:2] + depths[3:]), 8: repaired.final_loss}  # depth 8: section 3's repaired net
losses = {d: losses[d] for d in depths}
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
# training loss *worse*, and at 32 layers the network is back at chance. "Degradation"
# names what happens, not why. Measure it: the 32-layer net at initialization, as
# trained above, with Leaky ReLU (no unit can die) and with BatchNorm. Besides the
# monitor's numbers, `example_similarity` gives the mean cosine between different
# examples' hidden vectors at each layer: 1 when every digit reaches the layer as the
# same vector.

# %% tags=["demo"]
deep = {"depth": 32, "activation": "relu", "init": "he"}  # the 32-layer net of the sweep
variants = {"plain ReLU": deep, "Leaky ReLU": {**deep, "activation": "leaky_relu"},
            "ReLU + BatchNorm": {**deep, "norm": "batch"}}
nets = {label: build_network(settings) for label, settings in variants.items()}
similar = {label: example_similarity(net, X_probe) for label, net in nets.items()}
at_init = {label: measure(net, X_probe, y_probe) for label, net in nets.items()}
rescued = train_network({**deep, "norm": "batch", "residual": True})
fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.4), layout="constrained")
for i, label in enumerate(variants):
    left.plot(np.arange(1, 33), similar[label], color=OKABE_ITO[i], label=label)
    right.plot(np.arange(1, 33), np.nan_to_num(at_init[label]["dead"]), color=OKABE_ITO[i], label=label)
left.set_ylabel("similarity of the examples (mean cosine)")
right.set_ylabel("dead fraction (off for every example)")
for ax in (left, right):
    ax.set_xlabel("layer (1 = next to the input)")
    integer_ticks(ax)
    ax.legend(frameon=False)
ratio32 = {label: m["flow"][0] / m["flow"][-1] for label, m in at_init.items()}
dead32 = np.nan_to_num(at_init["plain ReLU"]["dead"])
print({label: f"layer 1 gets {r:.2g} of layer 32's gradient" for label, r in ratio32.items()})
print({label: f"similarity {v[0]:.2f} at layer 1, {v[-1]:.2f} at layer 32" for label, v in similar.items()})
print(f"plain ReLU, dead fraction: {dead32[:8].mean():.2f} in layers 1-8, {dead32[-8:].mean():.2f} in layers 25-32; "
      f"BatchNorm + residual, 32 layers: final loss {rescued.final_loss:.3f}")
assert 0.25 < ratio32["plain ReLU"] < 1  # about half: the gradient reaches layer 1, nothing vanishes
assert similar["plain ReLU"][0] < 0.85 and similar["plain ReLU"][-1] > 0.93  # the digits merge into one vector
assert dead32[-8:].mean() > max(0.2, 2 * dead32[:8].mean())  # top layers: many units off for the whole batch
assert similar["Leaky ReLU"][-1] > 0.93 and np.nanmax(at_init["Leaky ReLU"]["dead"]) == 0  # no dead unit, same
assert similar["ReLU + BatchNorm"].max() < 0.5 and np.nanmax(at_init["ReLU + BatchNorm"]["dead"]) == 0
assert 200 < ratio32["ReLU + BatchNorm"] < 800  # about 400: BatchNorm's gradient grows toward the input
assert rescued.final_loss < FIX_TARGET and not rescued.diverged  # 32 layers that train

# %% [markdown]
# **What to notice:** the 32-layer net's gradient is not the problem: layer 1 gets about
# half of the last layer's, healthy by the 100x rule. The forward pass is. The examples'
# hidden vectors grow more alike layer after layer, from a mean cosine of about 0.75 at
# layer 1 to above 0.93 at layer 32: the top layers see nearly the same input whatever the
# digit, so the gradient they send down says little about which digit is which. A unit
# that is off for one example is then off for all of them, and 30-40% of the top layers'
# units are dead on the batch (a ReLU layer's correlation map has its fixed point at 1:
# Poole et al. 2016, Schoenholz et al. 2017). The dead units are a consequence, not the
# cause: Leaky ReLU has none and collapses just the same. BatchNorm centres every unit
# over the batch: the similarity stays near 1/3 and no unit dies, but the gradient now
# grows about 400-fold toward the input (as in notebook 07's BatchNorm nets). With
# residual connections added, the 32-layer net trains (below 0.5, where the plain one
# stays at chance). Depth pays off only with the tools that keep both the signal and the
# gradient flowing: normalization (notebook 06) and residual connections (notebook 07).
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
# then run the check below each one. The checks try your answer on one public example
# and tell you what kind of mistake they see; hidden tests with other inputs decide the
# grade.
#
# ### Question 1 (4 points): the field guide as code
#
# Write `triage(flow, act_std, dead)`. Its arguments are per-layer measurements,
# layer 1 first, as lists, NumPy arrays or tensors of the same length: `flow` the
# gradient norms $\|\partial L/\partial h_k\|$, `act_std` the activation std, `dead`
# the dead fractions (NaN means "not measured": ignore NaN there). Return the
# first label whose rule applies, checking the rules **in this order**:
#
# 1. any value of `flow` or `act_std` is NaN or infinite: `"exploding"`;
# 2. the largest dead fraction is above 0.5: `"dead units"`;
# 3. the last layer's flow is exactly 0: `"no gradient"`;
# 4. `flow[0]` is more than 100 times `flow[-1]`: `"exploding"`;
# 5. `act_std[-1]` is less than 1/100 of `act_std[0]`: `"collapsing activations"`;
# 6. `flow[0]` is less than 1/100 of `flow[-1]`: `"vanishing gradient"`;
# 7. otherwise `"healthy"`.
#
# Do not change the arguments. Hidden tests use other made-up networks (boundary
# values included) and the measurements of broken networks like the mysteries.

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
        return "no gradient"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if act_std[-1] < act_std[0] / 100:
        return "collapsing activations"
    if flow[0] < flow[-1] / 100:
        return "vanishing gradient"
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
        return "no gradient"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if flow[0] < flow[-1] / 100:
        return "vanishing gradient"
    if act_std[-1] < act_std[0] / 100:
        return "collapsing activations"
    return "healthy"

# %% mistake="q1_triage" label="takes np.max of the dead fractions, so one NaN hides a dead layer"
def triage(flow, act_std, dead):
    flow, act_std, dead = (np.asarray(v, dtype=np.float64) for v in (flow, act_std, dead))
    if not (np.isfinite(flow).all() and np.isfinite(act_std).all()):
        return "exploding"
    if np.max(dead) > 0.5:
        return "dead units"
    if flow[-1] == 0:
        return "no gradient"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if act_std[-1] < act_std[0] / 100:
        return "collapsing activations"
    if flow[0] < flow[-1] / 100:
        return "vanishing gradient"
    return "healthy"

# %% mistake="q1_triage" label="tests the zero gradient before the dead fraction (rules 2 and 3 swapped)"
def triage(flow, act_std, dead):
    flow, act_std, dead = (np.asarray(v, dtype=np.float64) for v in (flow, act_std, dead))
    if not (np.isfinite(flow).all() and np.isfinite(act_std).all()):
        return "exploding"
    if flow[-1] == 0:
        return "no gradient"
    if np.nanmax(dead, initial=0.0) > 0.5:
        return "dead units"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if act_std[-1] < act_std[0] / 100:
        return "collapsing activations"
    if flow[0] < flow[-1] / 100:
        return "vanishing gradient"
    return "healthy"

# %% mistake="q1_triage" label="uses >= where the rules say 'above' and 'more than'"
def triage(flow, act_std, dead):
    flow, act_std, dead = (np.asarray(v, dtype=np.float64) for v in (flow, act_std, dead))
    if not (np.isfinite(flow).all() and np.isfinite(act_std).all()):
        return "exploding"
    if np.nanmax(dead, initial=0.0) >= 0.5:
        return "dead units"
    if flow[-1] == 0:
        return "no gradient"
    if flow[0] >= 100 * flow[-1]:
        return "exploding"
    if act_std[-1] <= act_std[0] / 100:
        return "collapsing activations"
    if flow[0] <= flow[-1] / 100:
        return "vanishing gradient"
    return "healthy"

# %% mistake="q1_triage" label="no NaN check: NaN compares False and falls through"
def triage(flow, act_std, dead):
    flow, act_std, dead = (np.asarray(v, dtype=np.float64) for v in (flow, act_std, dead))
    if np.nanmax(dead, initial=0.0) > 0.5:
        return "dead units"
    if flow[-1] == 0:
        return "no gradient"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if act_std[-1] < act_std[0] / 100:
        return "collapsing activations"
    if flow[0] < flow[-1] / 100:
        return "vanishing gradient"
    return "healthy"

# %% right="q1_triage" label="plain Python floats and math.isfinite, with a print"
def triage(flow, act_std, dead):
    flow, act_std, dead = ([float(v) for v in values] for values in (flow, act_std, dead))
    print(f"triage of a {len(flow)}-layer network")
    if not all(math.isfinite(v) for v in flow + act_std):
        return "exploding"
    measured = [v for v in dead if not math.isnan(v)]
    if measured and max(measured) > 0.5:
        return "dead units"
    if flow[-1] == 0:
        return "no gradient"
    if flow[0] > 100 * flow[-1]:
        return "exploding"
    if act_std[-1] < act_std[0] / 100:
        return "collapsing activations"
    if flow[0] < flow[-1] / 100:
        return "vanishing gradient"
    return "healthy"

# %% nbgrader={"grade_id": "q1_triage_test", "grade": true, "points": 4}
# The public examples: one made-up 3-layer network per rule (layer 1 first).
_labels = LABELS + ("healthy",)
_cases = [(([np.nan, 1.0, 1.0], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]), "exploding"),
          (([0.0, 0.0, 0.1], [0.3, 0.0, 0.0], [0.2, 1.0, 1.0]), "dead units"),
          (([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]), "no gradient"),
          (([1e3, 1e1, 1.0], [1.0, 10.0, 100.0], [0.0, 0.1, 0.2]), "exploding"),
          (([1e-5, 1e-3, 1e-1], [0.3, 1e-3, 1e-5], [0.0, 0.0, 0.0]), "collapsing activations"),
          (([1e-5, 1e-3, 1e-1], [0.04, 0.1, 0.3], [0.0, 0.0, 0.0]), "vanishing gradient"),
          (([0.5, 0.3, 0.2], [0.4, 0.5, 0.6], [0.1, 0.2, 0.1]), "healthy")]
checks.check_verdicts(
    "Question 1", triage, _cases, allowed=_labels,
    mistakes=[(lambda flow, act_std, dead: "vanishing gradient" if np.asarray(flow, dtype=float)[0] <
               np.asarray(flow, dtype=float)[-1] / 100 else None,
               "rule 5 must come before rule 6. Both networks lose their gradient; only the activation std "
               "tells collapsing activations from a gradient that vanishes while the scale holds."),
              (lambda flow, act_std, dead: "exploding" if np.asarray(flow, dtype=float)[-1] >
               100 * np.asarray(flow, dtype=float)[0] else None,
               "the ratio is flow[0] (layer 1, next to the input) against flow[-1] (the last layer)."),
              (lambda flow, act_std, dead: None if np.isfinite(np.asarray(flow, dtype=float)).all() else "healthy",
               "every comparison with NaN is False: a NaN network falls through every rule unless you test "
               "for non-finite values first.")],
    hint="Convert the inputs to float arrays and apply the rules in the given order, one `if` each.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _hidden = [
        ((torch.tensor([1e-5, 1e-3, 1e-1]), torch.tensor([0.3, 1e-3, 1e-5]), torch.zeros(3)), "collapsing activations"),
        ((np.array([1e-6, 1.0], dtype=np.float32), np.array([0.1, 0.2], dtype=np.float32), np.array([np.nan, np.nan])),
         "vanishing gradient"),
        (([1.0, 1.0], [1.0, np.inf], [0.0, 0.0]), "exploding"),
        (([1.0, 1.0], [1.0, 1.0], [0.0, 0.5]), "healthy"),  # exactly 0.5 is not above 0.5
        (([100.0, 1.0], [1.0, 1.0], [0.0, 0.0]), "healthy"),  # exactly 100x is not more than 100x
        (([0.01, 1.0], [1.0, 1.0], [0.0, 0.0]), "healthy"),
        (([1.0, 1.0], [1.0, 0.01], [0.0, 0.0]), "healthy"),
        (([0.7], [0.3], [0.1]), "healthy"),
        (([0.0], [0.3], [0.1]), "no gradient"),
        (([0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.0, np.nan, 0.9]), "dead units"),
        (([1e-9, 1e-5, 1.0], [1.0, 1e-3, 1e-6], [0.0, 0.0, 0.0]), "collapsing activations"),
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
    _X, _y = probe_batch(seed=3)  # the five mysteries drawn from another seed, measured on another batch
    _truth = {"A": "dead units", "B": "collapsing activations", "C": "vanishing gradient", "D": "no gradient",
              "E": "exploding"}
    for _name, _cause in _truth.items():
        _m = measure(build_mystery(_name, seed=2), _X, _y)
        checks.check_verdicts(f"Question 1 (hidden, mystery {_name})", triage,
                              [((_m["flow"], _m["act_std"], _m["dead"]), _cause)], allowed=_labels)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): count the dead units
#
# A ReLU unit is **dead** on a batch when it passes no gradient for any example: its
# pre-activation is $\le 0$ for every example (PyTorch's ReLU has slope 0 at exactly 0).
# Write `dead_fraction(Z)`: `Z` holds the pre-activations of one layer, shape
# (examples, units), as a NumPy array or a tensor (any dtype, a batch of 1 included);
# return the fraction of the layer's units that are dead, a float from 0 to 1, and
# leave `Z` unchanged. Compared with relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q2_dead_fraction", "solution": true}
def dead_fraction(Z):
    """The fraction of units (columns of Z) whose ReLU passes no gradient on any example (row)."""
    ### BEGIN SOLUTION
    Z = np.asarray(Z, dtype=np.float64)
    return float(np.mean(np.all(Z <= 0, axis=0)))
    ### END SOLUTION

# %% mistake="q2_dead_fraction" label="counts zero activations, not units that are off for every example"
def dead_fraction(Z):
    return float(np.mean(np.asarray(Z, dtype=np.float64) <= 0))

# %% mistake="q2_dead_fraction" label="calls a unit dead when it is off for ANY example"
def dead_fraction(Z):
    return float(np.mean(np.any(np.asarray(Z, dtype=np.float64) <= 0, axis=0)))

# %% mistake="q2_dead_fraction" label="tests < 0: a pre-activation of exactly 0 passes no gradient either"
def dead_fraction(Z):
    return float(np.mean(np.all(np.asarray(Z, dtype=np.float64) < 0, axis=0)))

# %% mistake="q2_dead_fraction" label="looks along the wrong axis (examples instead of units)"
def dead_fraction(Z):
    return float(np.mean(np.all(np.asarray(Z, dtype=np.float64) <= 0, axis=1)))

# %% right="q2_dead_fraction" label="torch: the ReLU's own gradient, through autograd"
def dead_fraction(Z):
    z = torch.as_tensor(np.array(Z, dtype=np.float64)).requires_grad_()
    torch.relu(z).sum().backward()
    return (z.grad.sum(dim=0) == 0).double().mean().item()

# %% right="q2_dead_fraction" label="a loop over the units, with the column maximum"
def dead_fraction(Z):
    Z = np.asarray(Z, dtype=np.float64)
    dead = 0
    for j in range(Z.shape[1]):
        if Z[:, j].max() <= 0:
            dead += 1
    return dead / Z.shape[1]

# %% nbgrader={"grade_id": "q2_dead_fraction_test", "grade": true, "points": 3}
# The public example: 5 examples, 4 units.
_Z2 = np.array([[-0.5, 0.3, 1.2, -1.0], [-1.5, -0.2, 0.4, -0.1], [-0.3, 0.8, 2.0, -2.2], [-2.0, -0.7, 0.1, -0.4],
                [-0.8, 1.1, 0.9, -0.6]])
checks.check_function(
    "Question 2", dead_fraction, [((_Z2,), 0.5)], rtol=1e-6,
    mistakes=[(lambda Z: float(np.mean(np.asarray(Z) <= 0)),
               "that is the fraction of negative ENTRIES. A unit is dead only when it is off for every example "
               "of the batch: look at whole columns."),
              (lambda Z: float(np.mean(np.any(np.asarray(Z) <= 0, axis=0))),
               "a unit that is off for some examples still learns from the others: it is dead only when it is "
               "off for all of them."),
              (lambda Z: float(np.mean(np.all(np.asarray(Z) <= 0, axis=1))),
               "rows are examples and columns are units: the fraction is over units."),
              (lambda Z: float(np.sum(np.all(np.asarray(Z) <= 0, axis=0))),
               "that is the number of dead units; return the fraction of the layer.")],
    hint="Decide for each unit (column) whether it is dead, then average over the units.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(12)
    _exact = np.array([[0.0, -1.0, 2.0], [-3.0, 0.0, -1.0], [0.0, 0.0, 0.5]])  # unit 1 and 2 never above 0
    _hidden = [((_exact,), 2 / 3),
               ((np.array([[0.3, -0.2, 0.0, -1.0, 2.0, -0.1]]),), 4 / 6),  # a batch of 1
               ((np.full((7, 1), 0.25),), 0.0),
               ((-np.abs(_rng.standard_normal((4, 9))),), 1.0),
               ((torch.tensor([[-1.0, 2.0], [0.0, -0.5], [-3.0, 1e-8]], dtype=torch.float32),), 0.5),
               ((np.array([[-2, 1, 0, 3, -1], [-1, -1, 0, 2, -4]], dtype=np.int64),), 3 / 5)]
    _mixed = _rng.standard_normal((20, 11))
    _mixed[:, [0, 4, 5]] = -np.abs(_mixed[:, [0, 4, 5]])
    _hidden.append(((_mixed,), 3 / 11))
    checks.check_function("Question 2 (hidden)", dead_fraction, _hidden, rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (4 points): repair a broken network
#
# Write `repair(settings)`. Its argument describes a broken network as
# `mystery_settings(...)` does (for example `mystery_settings("B")`); return the
# change that lets it train: a dict that changes **exactly one** setting, with a key
# among `"activation"`, `"init"`, `"norm"`, `"residual"`, `"gain"`, `"std"`,
# `"weight_scale"`, `"bias"` (never the depth), for example `{"init": "he"}`. A repair
# counts when `evaluate_fix(changes, mystery=settings, seed=...)` (the network with
# your change, trained with the recipe: plain SGD, lr 0.1, 150 steps) reaches a final
# training loss **below 0.5 from every seed**. The check repairs mystery B from seed 0;
# hidden tests repair B from five other seeds, and two other broken networks, each
# broken like one of the mysteries A-E, from two seeds each. Find the cause first
# (section 4's table), then fix the cause; try your function on every mystery.

# %% nbgrader={"grade_id": "q3_repair", "solution": true}
def repair(settings):
    """One change of settings that fixes the cause of a broken network."""
    ### BEGIN SOLUTION
    if settings.get("init") == "zeros":  # symmetric weights: every unit computes the same thing
        return {"init": "xavier"}
    if settings.get("bias", 0.0) != 0.0:  # units pushed off (ReLU) or into the flat tails (tanh, sigmoid)
        return {"bias": 0.0}
    if settings.get("init") == "normal":  # weights far too large for the width: exploding
        return {"init": "he"}
    # weights too small for the width: the activation scale collapses; an init that keeps it
    return {"init": "he" if settings.get("activation") == "relu" else "xavier"}
    ### END SOLUTION

# %% mistake="q3_repair" label="always adds BatchNorm, which cannot break the symmetry of all-zero weights"
def repair(settings):
    return {"norm": "batch"}

# %% mistake="q3_repair" label="swaps tanh for ReLU and keeps the small initialization"
def repair(settings):
    return {"activation": "relu"}

# %% mistake="q3_repair" label="changes two settings at once"
def repair(settings):
    return {"activation": "relu", "init": "he"}

# %% mistake="q3_repair" label="fixes every network's initialization, never its bias"
def repair(settings):
    return {"init": "xavier"} if settings.get("init") == "zeros" else {"norm": "batch"} \
        if settings.get("activation") == "tanh" else {"init": "he"}

# %% right="q3_repair" label="decides from measurements: BatchNorm unless the weights are symmetric or the units dead"
def repair(settings):
    m = measure(build_network(settings, seed=0), X_probe, y_probe)
    if np.all(np.asarray(m["flow"]) == 0) and np.nanmax(np.nan_to_num(m["dead"]), initial=0.0) < 0.5:
        return {"init": "he"}
    if np.nanmax(np.nan_to_num(m["dead"]), initial=0.0) > 0.5:
        return {"bias": 0}
    return {"norm": "batch"}

# %% nbgrader={"grade_id": "q3_repair_test", "grade": true, "points": 4}
_losses3 = check_repair("Question 3", repair, mystery_settings("B"), seeds=[0])
print(f"Question 3: passes the visible check (mystery B from seed 0: final loss {_losses3[0]:.3f} < {FIX_TARGET}).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    check_repair("Question 3 (hidden)", repair, mystery_settings("B"), seeds=[1, 2, 3, 4, 5])
    for _settings in ({"depth": 4, "activation": "tanh", "init": "zeros"},
                      {"depth": 6, "activation": "relu", "init": "he", "bias": -0.5}):
        check_repair("Question 3 (hidden)", repair, _settings, seeds=[1, 2])
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (3 points): what a bigger learning rate would do
#
# Back to the plateaued sigmoid network of section 1. The cell below measures
# each layer's update:data ratio $\text{lr}\cdot\mathrm{std}(\partial L/\partial W)/\mathrm{std}(W)$
# for one SGD step at lr 0.1 (at initialization, on the probe batch). For plain
# SGD the ratio is proportional to the learning rate. Write
# `rescaled_ratios(ratios, layer, target)`: given every layer's ratio at the current
# learning rate (layer 1 first, a list or an array), return every layer's ratio after
# changing the learning rate so that layer `layer` (1 = next to the input) lands
# exactly at `target`. The check asks where layer 1 at the healthy $10^{-3}$ takes
# every layer; hidden tests use other networks, layers and targets. Compared with
# relative tolerance 1e-6.

# %%
q4_ratios = update_to_data_ratios(build_network(plateau, seed=0), X_probe, y_probe, lr=LR)
print("update:data ratio per layer at lr 0.1:", np.array2string(q4_ratios, precision=3))

# %% nbgrader={"grade_id": "q4_rescaled_ratios", "solution": true}
def rescaled_ratios(ratios, layer, target):
    """Every layer's update:data ratio after the learning rate is scaled so layer `layer` reaches `target`."""
    ### BEGIN SOLUTION
    ratios = np.asarray(ratios, dtype=np.float64)
    return ratios * (target / ratios[layer - 1])
    ### END SOLUTION

# %% mistake="q4_rescaled_ratios" label="divides the wrong way round"
def rescaled_ratios(ratios, layer, target):
    ratios = np.asarray(ratios, dtype=np.float64)
    return ratios * (ratios[layer - 1] / target)

# %% mistake="q4_rescaled_ratios" label="always scales by layer 1, ignoring `layer`"
def rescaled_ratios(ratios, layer, target):
    ratios = np.asarray(ratios, dtype=np.float64)
    return ratios * (target / ratios[0])

# %% mistake="q4_rescaled_ratios" label="counts layers from 0"
def rescaled_ratios(ratios, layer, target):
    ratios = np.asarray(ratios, dtype=np.float64)
    return ratios * (target / ratios[layer])

# %% mistake="q4_rescaled_ratios" label="sets every layer to the target"
def rescaled_ratios(ratios, layer, target):
    return np.full(len(ratios), float(target))

# %% mistake="q4_rescaled_ratios" label="scales in place, changing the caller's array"
def rescaled_ratios(ratios, layer, target):
    ratios *= target / ratios[layer - 1]
    return ratios

# %% right="q4_rescaled_ratios" label="torch, via the new learning rate"
def rescaled_ratios(ratios, layer, target):
    ratios = torch.as_tensor(np.array(ratios, dtype=np.float64))
    new_lr = LR * target / ratios[layer - 1]
    return ratios / LR * new_lr

# %% nbgrader={"grade_id": "q4_rescaled_ratios_test", "grade": true, "points": 3}
# The public case: the ratios above, to 3 digits; layer 1 brought to 1e-3.
_r4 = np.array([2.06e-09, 9.08e-09, 7.25e-08, 4.92e-07, 3.86e-06, 2.71e-05, 0.000208, 0.00146])
checks.check_function(
    "Question 4", rescaled_ratios,
    [((_r4, 1, 1e-3), [0.001, 0.004407766990291262, 0.03519417475728155, 0.23883495145631073, 1.8737864077669906,
                       13.155339805825244, 100.97087378640776, 708.7378640776699])],
    rtol=1e-6,
    mistakes=[(lambda r, k, t: np.asarray(r) * (np.asarray(r)[k - 1] / t),
               "you scaled by (current ratio / target): the learning rate must grow by target / current."),
              (lambda r, k, t: np.asarray(r) * (t / np.asarray(r)[k]),
               "layers are numbered from 1 (next to the input): layer k is entry k - 1."),
              (lambda r, k, t: np.full(len(r), float(t)),
               "one learning rate scales every layer by the SAME factor: the layers keep their spread.")],
    hint="Find the factor that takes the chosen layer from its ratio to the target; every layer's ratio "
         "grows by that factor.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(14)
    for _n, _layer, _target in [(8, 3, 1e-3), (5, 5, 2e-4), (1, 1, 1e-3), (12, 7, 0.05), (3, 2, 1e-2)]:
        _r = 10.0 ** _rng.uniform(-9, -2, _n)
        checks.check_function("Question 4 (hidden)", rescaled_ratios,
                              [((_r, _layer, _target), _r * _target / _r[_layer - 1])], rtol=1e-6)
    _r = [3e-4, 1e-3, 5e-2]  # a list, and a target below the current ratio (a smaller learning rate)
    checks.check_function("Question 4 (hidden, list)", rescaled_ratios, [((_r, 3, 1e-3), np.array(_r) / 50)],
                          rtol=1e-6)
    _ratios = update_to_data_ratios(build_network({**plateau, "depth": 6}, seed=4), X_probe, y_probe, lr=LR)
    checks.check_function("Question 4 (hidden, measured)", rescaled_ratios,
                          [((_ratios, 2, 1e-3), _ratios * 1e-3 / _ratios[1])], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (1 point): when depth does not help
#
# In section 6 the 32-layer plain ReLU network ended with a much higher **training**
# loss than the 8-layer one, under the same recipe. Which explanation is right?
# Set `q5_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** The deeper network overfits: its extra parameters memorize noise in the training digits.
# - **B.** The deeper network's loss became NaN: the learning rate was too large for that depth.
# - **C.** A network deeper than about 8 layers cannot represent more functions than a shallow one.
# - **D.** It is harder to optimize: with no normalization or skips, SGD makes little progress.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "D"
### END SOLUTION

# %% mistake="q5_answer" label="calls it overfitting"
q5_answer = "A"

# %% mistake="q5_answer" label="calls it divergence"
q5_answer = "B"

# %% mistake="q5_answer" label="calls it a limit of what deep nets represent"
q5_answer = "C"

# %% right="q5_answer" label="lower case"
q5_answer = "d"

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="01f7ea39ad746b44", salt="08_q5",
    explanations={"A": "Overfitting shows as a LOW training loss with a high test loss. Here the training "
                       "loss itself is high: the deep network did not even fit the data it saw.",
                  "B": "The losses in section 6 are finite numbers (the sweep would report inf for a "
                       "diverged run): the deep network got stuck, it did not blow up.",
                  "C": "A deeper network can represent everything a shallower one can (extra layers can "
                       "pass their input through), and ResNets train hundreds of layers."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="D")
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - **When the loss plateaus early, measure per-layer gradient norms before changing
#   the learning rate.** Under SGD one learning rate scales every layer's step together;
#   it cannot repair gradients that differ by orders of magnitude between layers. Adam
#   equalises the steps (update:data looks healthy) but not the gradient: the loss stays
#   on the plateau, and only the gradient norms still show why.
# - Read a health report in order: non-finite or growing toward the input
#   (**exploding**), **dead units**, no gradient at all with live units
#   (**no gradient**: a symmetric init), activation scale collapsing through depth
#   (**collapsing activations**: weights too small, no normalization), gradient
#   shrinking while the scale holds (**vanishing gradient**: a saturating activation).
# - Vanishing, exploding and dead are different diagnoses: factors below 1, above
#   1, and exactly 0. Each has its own cure (activation and init, init and clipping,
#   re-initialization or Leaky ReLU); normalization and residual connections keep
#   the product of factors near 1 in deep networks.
# - More depth helps only when signal and gradient can flow through it: plain deep
#   ReLU networks reach a *higher training loss* than shallower ones, with a healthy
#   gradient, because their layers map every example to nearly the same vector;
#   BatchNorm with residual connections trains them.
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
# - D. P. Kingma, J. Ba (2015). Adam: a method for stochastic optimization. *ICLR.*
# - I. Loshchilov, F. Hutter (2019). Decoupled weight decay regularization. *ICLR.*
# - B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli (2016). Exponential expressivity in deep neural networks through transient chaos. *NeurIPS.*
# - S. S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein (2017). Deep information propagation. *ICLR.*
# - A. Karpathy (2019). A recipe for training neural networks. Blog post; and the CS231n notes on babysitting the learning process (update:data ratio about 1e-3), Stanford.
