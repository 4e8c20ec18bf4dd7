# %% [markdown]
# # 02 · Sigmoid saturation: when the slope of the activation decides what learns
#
# Notebook 01 showed that backprop multiplies one local derivative per layer. In a
# sigmoid or tanh network that local derivative is mostly the **slope of the
# activation**, and that slope is small: at most 1/4 for the sigmoid, and close to 0
# wherever the unit is *saturated*. This notebook measures what that does to a real
# network, and reproduces two experiments from Glorot & Bengio (2010).
#
# **You will learn to**
# 1. compute the sigmoid's and tanh's derivatives and check their bounds (1/4 and 1);
# 2. read saturation off a histogram of pre-activations;
# 3. measure per-layer gradient norms in a deep sigmoid network at initialization;
# 4. reproduce Glorot & Bengio's standard-vs-normalized initialization experiment (E1)
#    and their saturated top layer (E2);
# 5. check the loss at initialization, and spot a layer that never learns in a network that
#    trains well, by measuring how far each layer moved and resetting it.
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.chains import sigmoid_chain_gradient
from course_lib.datasets import load_digits
from course_lib.models import activation_derivative, build_mlp
from course_lib.plotting import OKABE_ITO, plot_gradient_norms
from course_lib.saturation import (backprop_gradient_stds, layer_gradients, pre_activations,
                                   train_on_random_first_layer, train_sigmoid_on_digits)
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import saturation_explorer

set_seed(0)
device = get_device()
print(f"torch {torch.__version__} on {device}")

# %% [markdown]
# ## 1. Sigmoid, tanh and their slopes
#
# $$\sigma(z) = \frac{1}{1 + e^{-z}}, \qquad \sigma'(z) = \sigma(z)\,(1 - \sigma(z)),
# \qquad \tanh'(z) = 1 - \tanh^2(z).$$
#
# Since $\sigma(z) \in (0, 1)$, the product $s(1-s)$ is largest at $s = 1/2$, that is at
# $z = 0$, where it equals $1/4$. The tanh is a rescaled sigmoid,
# $\tanh(z) = 2\sigma(2z) - 1$, so $\tanh'(z) = 4\sigma'(2z)$: its slope reaches 1, four
# times more, but it flattens out just the same. Below, autograd's derivatives on a
# fine grid, checked against the formulas.

# %% tags=["demo"]
z = torch.linspace(-8, 8, 16001, dtype=torch.float64, requires_grad=True)
fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
slopes = {}
for i, name in enumerate(["sigmoid", "tanh"]):
    f = getattr(torch, name)(z)
    (slopes[name],) = torch.autograd.grad(f.sum(), z)  # elementwise derivative, by autograd
    assert torch.allclose(slopes[name], activation_derivative(name, z.detach()), rtol=1e-12, atol=1e-15)
    ax_f.plot(z.detach(), f.detach(), color=OKABE_ITO[i], label=name)
    ax_d.plot(z.detach(), slopes[name], color=OKABE_ITO[i], label=f"{name}'(z)")
ax_d.axhline(0.25, color="black", linestyle="--", linewidth=1, label="1/4")
for ax, label in ((ax_f, "activation"), (ax_d, "derivative")):
    ax.set_xlabel("pre-activation z")
    ax.set_ylabel(label)
    ax.legend(frameon=False)
    ax.grid(True, alpha=0.3)

peak = abs(z[slopes["sigmoid"].argmax()].item())
print(f"max sigmoid' = {slopes['sigmoid'].max().item():.6f} at z = {peak:.3f}; max tanh' = {slopes['tanh'].max().item():.6f}")
assert math.isclose(slopes["sigmoid"].max().item(), 0.25, rel_tol=1e-12) and abs(peak) < 1e-12
assert math.isclose(slopes["tanh"].max().item(), 1.0, rel_tol=1e-12)
assert torch.allclose(slopes["tanh"], 4 * activation_derivative("sigmoid", 2 * z.detach()), rtol=1e-10)
far = torch.empty(10**6, dtype=torch.float64).uniform_(-50, 50)  # off the grid too: never above 1/4
assert activation_derivative("sigmoid", far).max().item() <= 0.25
z_far = z.detach().abs()
assert slopes["sigmoid"][z_far > 4.6].max() < 0.01 and slopes["tanh"][z_far > 2.7].max() < 0.02  # flat tails

# %% [markdown]
# **What to notice:** the sigmoid's slope never exceeds 1/4, so each sigmoid layer
# costs the gradient at least a factor of 4 (unless its weights make up for it). Both
# slopes are nearly 0 once $|z|$ is more than a few units: sigmoid' $< 0.01$ beyond
# $|z| = 4.6$. A unit whose pre-activation sits out there is **saturated**: its output
# hardly moves when its input moves, so backprop hands almost nothing through it.
#
# ## 2. Saturation, seen in the histogram of pre-activations
#
# Where the pre-activations $z = Wh + b$ land depends on the size of the weights. Take a
# five-layer sigmoid network on the digits, with weights $W \sim \mathcal N(0, s^2/n_\text{in})$,
# and look at layer 3's pre-activations for a small ($s = 1$) and a large ($s = 8$)
# weight scale. We count a unit as saturated when $\sigma(z) < 0.03$ or $> 0.97$
# ($|z| > 3.48$, the shaded zone), as `GradientMonitor` does.

# %% tags=["demo"]
X, y = load_digits()
fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
stats = {}
for i, scale in enumerate([1.0, 8.0]):
    net = build_mlp(5, 64, activation="sigmoid", init="lecun", weight_scale=scale, in_features=64,
                    out_features=10, seed=0)
    z3 = pre_activations(net, X[:512])[2].flatten()  # layer 3, every unit and example
    s = torch.sigmoid(z3)
    stats[scale] = {"saturated": ((s < 0.03) | (s > 0.97)).float().mean().item(), "mean slope": (s * (1 - s)).mean().item()}
    ax.hist(z3, bins=90, range=(-15, 15), density=True, alpha=0.5, color=OKABE_ITO[i], label=f"scale {scale:g}")
grid = torch.linspace(-15, 15, 301)
slope_ax = ax.twinx()
slope_ax.plot(grid, activation_derivative("sigmoid", grid), color="black", linestyle="--", label="sigmoid'(z)")
slope_ax.set_ylabel("sigmoid'(z)")
slope_ax.set_ylim(0, 0.27)
for side in (-1, 1):
    ax.axvspan(side * 3.48, side * 15, color="grey", alpha=0.15)
ax.set_xlabel("pre-activation z (layer 3)")
ax.set_ylabel("density")
ax.legend(frameon=False, loc="upper left")
print({scale: {k: round(v, 3) for k, v in d.items()} for scale, d in stats.items()})
assert stats[1.0]["saturated"] < 0.01 and 0.2 < stats[1.0]["mean slope"] <= 0.25  # about 0.24
assert 0.35 < stats[8.0]["saturated"] < 0.7 and 0.035 < stats[8.0]["mean slope"] < 0.1  # about half; about 0.07

# %% [markdown]
# **What to notice:** with scale 1 the pre-activations stay within about $\pm 1.5$,
# where the slope is close to its maximum 1/4 and no unit is saturated. With scale 8
# about half of the units sit in the shaded zone and the average slope drops from
# about 0.24 to about 0.07. Large weights would make up for the 1/4, but they push the units into
# saturation; small weights keep the units responsive, but then every layer multiplies
# the gradient by roughly 1/4. Either way, there is a price.
#
# ## 3. A deep sigmoid network at initialization
#
# Now the whole network: ten sigmoid layers of width 64 with $W \sim \mathcal N(0, 1/n_\text{in})$
# (no saturation, as we just saw), one cross-entropy backward pass on 256 digits, and
# the norm of each layer's weight gradient $\|\partial L/\partial W_k\|$.

# %% tags=["demo"]
result = layer_gradients(10, activation="sigmoid", weight_scale=1.0)
grads = result["grad_norm"]
ratio = grads[0] / grads[-1]
per_layer = ratio ** (1 / 9)
plot_gradient_norms(grads, bars=True, title="10 sigmoid layers at initialization")
print(f"layer 1 / layer 10 gradient norm: {ratio:.1e}; average factor per layer: {per_layer:.3f}")
assert 1e-6 < ratio < 3e-6  # the text below quotes this run
assert 0.2 < per_layer < 0.25  # just under the sigmoid's 1/4
assert np.all(np.diff(np.log(grads)) > 0)  # every layer gets less than the one above it
assert result["saturated"].max() == 0.0  # ...and none of it is saturation

# %% [markdown]
# **What to notice:** the first layer receives about $2 \times 10^{-6}$ of the last
# layer's gradient: nearly six orders of magnitude over nine layers, on a log scale a
# straight staircase. The factor per layer, about 0.23, sits just below the sigmoid's
# best case of 1/4, because these weights neither amplify nor shrink on average and
# no unit is saturated. This is the vanishing gradient at its most basic: no
# saturation needed, just a slope of at most 1/4 multiplied nine times.
#
# ## 4. E1: standard versus normalized initialization (Glorot & Bengio 2010)
#
# Glorot and Bengio compared the then "standard" initialization
# $W \sim U[-1/\sqrt{n}, 1/\sqrt{n}]$ with their **normalized** one,
# $W \sim U[-a, a]$ with $a = \sqrt{6/(n_\text{in} + n_\text{out})}$ (today's Xavier init),
# on tanh networks. We repeat their measurement on five tanh layers of width 500 at
# initialization (256 random inputs, random labels): the std of the **back-propagated
# gradients** $\partial L/\partial h_k$ in each layer. With the standard init, each layer
# multiplies that std by a constant factor below 1 (practice question 6 asks for it);
# the normalized init is designed to make that factor 1 in the linear regime.

# %% tags=["demo"]
e1 = {name: backprop_gradient_stds(init) for name, init in [("standard", "standard"), ("normalized", "xavier")]}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (name, result) in enumerate(e1.items()):
    layers = np.arange(1, 6)
    ax.semilogy(layers, result["activation_grad"], "o-", color=OKABE_ITO[i], label=f"{name}: dL/dh_k")
    ax.semilogy(layers, result["weight_grad"], "s:", color=OKABE_ITO[i], alpha=0.7, label=f"{name}: dL/dW_k")
ax.set_xlabel("layer (1 = next to the input)")
ax.set_ylabel("std of the gradient")
ax.legend(frameon=False, fontsize="small")
ratios = {name: float(r["activation_grad"][0] / r["activation_grad"][-1]) for name, r in e1.items()}
weight_ratios = {name: float(r["weight_grad"][0] / r["weight_grad"][-1]) for name, r in e1.items()}
print("layer 1 / layer 5, back-propagated gradient std:", {k: round(v, 3) for k, v in ratios.items()})
print("layer 1 / layer 5, weight gradient std:         ", {k: round(v, 3) for k, v in weight_ratios.items()})
assert ratios["standard"] < 0.2 and ratios["normalized"] > 0.4  # E1, checked over seeds in the tests
assert 0.05 < ratios["standard"] and ratios["normalized"] > 0.5  # "about a tenth"; "more than half"
assert all(0.7 < r < 1.4 for r in weight_ratios.values())

# %% [markdown]
# **What to notice:** with the standard init, layer 1's back-propagated gradient is
# about a tenth of layer 5's; with the normalized init it keeps more than half of it
# (the rest is tanh's slope, below 1). The dotted lines are a subtlety the paper points
# out too (their section 4.2.1): the **weight** gradients $\partial L/\partial W_k = \delta_k h_{k-1}^\top$
# stay about the same across layers in both cases, because the activations $h_{k-1}$
# shrink going up while $\delta_k$ shrinks going down. The damage shows up in the
# back-propagated signal, and it grows with depth. Notebook 05 derives these
# initializations properly.
#
# ## 5. E2: the top sigmoid layer saturates at 0 (Glorot & Bengio 2010)
#
# Glorot and Bengio's most famous figure: a four-layer sigmoid network with the standard
# init, trained with plain SGD. The top hidden layer's outputs are quickly driven to 0,
# while the lower layers stay around 0.5, and training stalls. Their explanation: early
# on, the softmax output layer can reduce the loss fastest by relying on its biases and
# silencing its input, so it pushes the top layer towards 0, where the sigmoid is flat
# and the layer is slow to recover. We re-run it on the digits (pixels / 16): four
# layers of 256, SGD with learning rate 0.1, batches of 10, 1,500 steps.

# %% tags=["demo"]
e2 = train_sigmoid_on_digits(num_steps=1500)
fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(9.5, 3.3), layout="constrained")
for k in range(4):
    ax.plot(e2["steps"], e2["act_mean"][:, k], color=OKABE_ITO[k], label=f"layer {k + 1}")
ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
ax.set_xlabel("training step")
ax.set_ylabel("mean sigmoid output")
ax.set_ylim(0, 1)
ax.legend(frameon=False, ncol=2)
prior = torch.bincount(y, minlength=10).double() / len(y)
prior_loss = -(prior * prior.log()).sum().item()  # the loss of predicting the class frequencies
ax_loss.plot(np.convolve(e2["loss"], np.ones(25) / 25, mode="valid"), color=OKABE_ITO[0])
ax_loss.axhline(prior_loss, color="black", linestyle="--", linewidth=1, label="class prior (ln 10)")
ax_loss.set_xlabel("training step")
ax_loss.set_ylabel("training loss (running mean)")
ax_loss.legend(frameon=False)
final = e2["act_mean"][-1]
loss_end = e2["loss"][-150:].mean()
print(f"final mean activations by layer: {np.round(final, 3)}; training accuracy {e2['accuracy']:.3f}")
print(f"loss at the end {loss_end:.3f}, class prior {prior_loss:.4f}; relative weight change per layer: "
      f"{np.array2string(e2['weight_change'], precision=4)}")
assert 0.045 < final[-1] < 0.15  # the top layer is pushed towards 0 (0.09)
assert abs(final[0] - 0.5) < 0.05  # layer 1 stays near 0.5
assert e2["accuracy"] < 0.2  # and the network is still near chance (0.1)
assert abs(loss_end - prior_loss) < 0.02  # what it learned: the class frequencies, nothing more
assert 0.001 < e2["weight_change"][0] < 0.004 and 0.2 < e2["weight_change"][3] < 0.8  # about 0.2% and 40%

# %% [markdown]
# **What to notice:** the top layer (layer 4) slides from 0.5 towards 0 and keeps going,
# while layer 1 does not move from 0.5. At an output of 0.09 the sigmoid's slope is about
# 0.08, a third of its best, and the gradient to every layer below must pass through
# it. After 1,500 steps the network still classifies at chance level (10 classes). Its
# loss did fall, but only to 2.30, the loss of predicting the class frequencies (the
# ten digits are nearly equally common, so that is $\ln 10$ to three digits): learning the
# class prior looks like progress on a loss curve. Layer 4 moved by about 40% of its
# initial size, layer 1 by about 0.2%. In the paper the top layer eventually leaves
# saturation, after many epochs (quoted, not measured here).
#
# ## 6. A network that trains well, with a first layer that never learned
#
# A loss that falls, even a training accuracy near 100%, does not prove that every layer
# learns. Take four sigmoid layers of 256 whose weights start at LeCun's scale times 4
# in layers 2-4 (about what makes up for the sigmoid's slope of 1/4, so those layers learn
# fast) and times 32 in layer 1, so that most of layer 1's units saturate: their outputs
# are nearly 0 or 1, a random binary code of each image, and their slopes, which every
# gradient into layer 1 is multiplied by, are nearly 0. SGD with momentum 0.9, learning
# rate 0.1, batches of 64, 300 steps, on all layers. Two checks every training run deserves:
#
# 1. **The loss at initialization.** A classifier over $C$ classes that knows nothing
#    should give each class about $1/C$, a loss of $\ln C$ ($\ln 10 = 2.30$). Much more means
#    the initial logits are confidently wrong (the init is too large); the head here keeps
#    LeCun's scale for that reason.
# 2. **How far each layer moved**, and the sharpest test of whether it learned anything:
#    put it back to its initial weights and measure again.

# %% tags=["demo"]
frozen = train_on_random_first_layer(first_scale=32.0, hidden_scale=4.0, num_steps=300)
change = frozen["weight_change"]
fig, (ax_loss, ax_change) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
ax_loss.plot(np.convolve(frozen["loss"], np.ones(10) / 10, mode="valid"), color=OKABE_ITO[0])
ax_loss.axhline(math.log(10), color="black", linestyle="--", linewidth=1, label="ln 10: knows nothing")
ax_loss.set_xlabel("training step")
ax_loss.set_ylabel("training loss (running mean)")
ax_loss.legend(frameon=False)
ax_change.bar(["1", "2", "3", "4", "head"], change, color=OKABE_ITO[1])
ax_change.set_yscale("log")
ax_change.set_xlabel("layer")
ax_change.set_ylabel("||W - W_init|| / ||W_init||")
print(f"loss at init {frozen['initial_loss']:.2f} (ln 10 = {math.log(10):.2f}); layer 1 saturated: "
      f"{frozen['saturated']:.0%}; relative weight change: {np.array2string(change, precision=4)}")
print(f"training accuracy {frozen['accuracy']:.3f}; layer 1 reset to its init: {frozen['reset_accuracy']:.3f}; "
      f"layer 1 redrawn at random: {frozen['redrawn_accuracy']:.3f}")
assert abs(frozen["initial_loss"] - math.log(10)) < 0.3  # the initial-loss check passes
assert frozen["accuracy"] > 0.99  # it trains...
assert abs(frozen["reset_accuracy"] - frozen["accuracy"]) < 0.01  # ...and layer 1's training counted for nothing
assert 0.002 < change[0] < 0.008 and np.all((0.05 < change[1:4]) & (change[1:4] < 0.2))  # 0.4% vs about 10%
assert change[0] < change[1:].min() / 10 and frozen["saturated"] > 0.7
assert frozen["redrawn_accuracy"] < 0.2  # yet the layers above depend on these particular random features

# %% [markdown]
# **What to notice:** the loss starts at about 2.5, near $\ln 10$, and falls to nearly 0;
# the network classifies more than 99% of its training images. Yet layer 1 moved by
# about 0.4% of its size, against about 10% for layers 2-4, and putting it back to its
# initial weights leaves the accuracy where it was (within a point): everything this
# network learned sits in the layers above a random, saturated first layer. That first
# layer still matters (draw it afresh and the accuracy falls to chance: the layers above
# learned to read *these* random features), it just never learned. A good loss curve
# and a high accuracy cannot show this; per-layer weight changes and gradients can. When
# a network trains worse than it should, look at each layer before touching the
# learning rate (notebook 08 builds a full health report around this).
#
# ## 7. Explore: depth, weight scale and activation
#
# The explorer builds the network of section 3 for your settings and runs a real
# backward pass. Try: sigmoid at depths 5, 10 and 20; sigmoid with weight scale 4 and 8
# (the gradients even out, but look at the saturated fraction); tanh at scale 1 (healthy)
# and at scale 4 (saturated, and the gradient now grows toward the input: large weights
# amplify more than the flat slopes take away, an effect notebook 05 explains).

# %% tags=["demo"]
explorer = saturation_explorer(depth=10, weight_scale=1.0, activation="sigmoid")
assert explorer.last["kind"] == "vanishing" and explorer.last["saturated_mean"] == 0.0
assert explorer.update(activation="tanh")["kind"] == "healthy"
explorer.update(activation="sigmoid")
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. A check runs your answer on one public example
# and tells you what kind of mistake it sees; hidden tests with other inputs decide
# the grade, so make your answer right for every input the question allows.
#
# ### Question 1 (3 points): the sigmoid's derivative
#
# Write `sigmoid_grad(z)` with NumPy: the derivative $\sigma'(z)$, elementwise, for a
# number or an array `z` of any shape and dtype, computed and returned in float64. It
# must return finite values for large $|z|$ too (try $z = \pm 1000$), without changing
# `z`. The hidden tests use other shapes, dtypes and values, with relative tolerance 1e-9.

# %% nbgrader={"grade_id": "q1_sigmoid_grad", "solution": true}
def sigmoid_grad(z):
    """sigma'(z), elementwise, in float64."""
    ### BEGIN SOLUTION
    s = 0.5 * (1 + np.tanh(np.asarray(z, dtype=np.float64) / 2))  # sigma(z), no overflow for any z
    return s * (1 - s)
    ### END SOLUTION

# %% mistake="q1_sigmoid_grad" label="applies s(1 - s) to z instead of to sigma(z)"
def sigmoid_grad(z):
    z = np.asarray(z, dtype=np.float64)
    return z * (1 - z)

# %% mistake="q1_sigmoid_grad" label="returns sigma(z) itself"
def sigmoid_grad(z):
    return 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))

# %% mistake="q1_sigmoid_grad" label="exp(-z) / (1 + exp(-z))^2 overflows to inf/inf for large negative z (passes the visible check)"
def sigmoid_grad(z):
    e = np.exp(-np.asarray(z, dtype=np.float64))
    return e / (1 + e) ** 2

# %% mistake="q1_sigmoid_grad" label="keeps the input's dtype: float32 in, float32 out (passes the visible check)"
def sigmoid_grad(z):
    z = np.asarray(z)
    s = 1 / (1 + np.exp(-z))
    return s * (1 - s)

# %% right="q1_sigmoid_grad" label="scipy's expit"
from scipy.special import expit


def sigmoid_grad(z):
    s = expit(np.asarray(z, dtype=np.float64))
    return s * (1 - s)

# %% right="q1_sigmoid_grad" label="symmetric form e/(1+e)^2 with e = exp(-|z|)"
def sigmoid_grad(z):
    e = np.exp(-np.abs(np.asarray(z, dtype=np.float64)))
    return e / (1 + e) ** 2

# %% nbgrader={"grade_id": "q1_sigmoid_grad_test", "grade": true, "points": 3}
# Check at five points and at z = 0; the expected values were computed with autograd.
_z = np.array([-3.0, -0.5, 0.0, 0.5, 2.0])
checks.check_function(
    "Question 1", sigmoid_grad,
    [((_z,), np.array([0.04517665973091214, 0.2350037122015945, 0.25, 0.2350037122015945, 0.10499358540350662])),
     ((0.0,), 0.25)], rtol=1e-9,
    mistakes=[(lambda z: np.array([-12.0, -0.75, 0.0, 0.25, -2.0]) if np.ndim(z) else 0.0,
               "you computed z (1 - z). The formula s (1 - s) uses s = sigma(z), the sigmoid's OUTPUT."),
              (lambda z: np.array([0.04742587317756678, 0.3775406687981454, 0.5, 0.6224593312018546,
                                   0.8807970779778823]) if np.ndim(z) else 0.5,
               "that is sigma(z) itself; the question asks for its derivative."),
              (lambda z: np.array([0.049675086624221425, 0.5200776253946964, 0.75, 1.0099149502021145,
                                   1.656600570552258]) if np.ndim(z) else 0.75,
               "check the sign: the derivative is at most 1/4, reached at z = 0.")],
    hint="Differentiate 1 / (1 + exp(-z)) and write the result in terms of sigma(z); at z = 0 the "
         "slope is largest.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _autograd_sigmoid_grad(z):
        z_t = torch.tensor(np.asarray(z, dtype=np.float64), requires_grad=True)
        torch.sigmoid(z_t).sum().backward()
        return z_t.grad.numpy()


    _rng = np.random.default_rng(2)
    for _zr in [_rng.normal(scale=4.0, size=7), _rng.normal(scale=6.0, size=(3, 4)), _rng.normal(size=(2, 3, 2)),
                np.array(1.7), _rng.normal(scale=3.0, size=(1, 5)).astype(np.float32), np.array([0, 2, -3])]:
        checks.check_function("Question 1 (hidden)", sigmoid_grad, [((_zr,), _autograd_sigmoid_grad(_zr))],
                              rtol=1e-9, atol=1e-15)
    checks.check_function("Question 1 (hidden, large |z|)", sigmoid_grad,
                          [((np.array([-1000.0, -50.0, 50.0, 1000.0]),), np.zeros(4))], rtol=1e-9, atol=1e-20)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): how many units are saturated?
#
# Write `saturated_fraction(a, activation)`: `a` is a NumPy array of a layer's
# **outputs** (activations, any shape), `activation` is `"sigmoid"` or `"tanh"`. Return
# the fraction of entries in the flat zone as a float: for the sigmoid, outputs strictly
# below 0.03 or strictly above 0.97; for tanh, outputs with $|a| > 0.97$. Do not change
# `a`. The hidden tests use other arrays and shapes, with relative tolerance 1e-9.

# %% nbgrader={"grade_id": "q2_saturated_fraction", "solution": true}
def saturated_fraction(a, activation):
    """Fraction of activations in the saturated zone of `activation`."""
    ### BEGIN SOLUTION
    a = np.asarray(a, dtype=np.float64)
    if activation == "sigmoid":
        flat = (a < 0.03) | (a > 0.97)
    elif activation == "tanh":
        flat = np.abs(a) > 0.97
    else:
        raise ValueError(f"activation must be 'sigmoid' or 'tanh', got {activation!r}")
    return float(flat.mean())
    ### END SOLUTION

# %% mistake="q2_saturated_fraction" label="counts only the upper end of the sigmoid (misses saturation at 0)"
def saturated_fraction(a, activation):
    a = np.asarray(a, dtype=np.float64)
    if activation == "sigmoid":
        return float((a > 0.97).mean())
    return float((np.abs(a) > 0.97).mean())

# %% mistake="q2_saturated_fraction" label="counts only the upper end of tanh (misses saturation at -1)"
def saturated_fraction(a, activation):
    a = np.asarray(a, dtype=np.float64)
    if activation == "sigmoid":
        return float(((a < 0.03) | (a > 0.97)).mean())
    return float((a > 0.97).mean())

# %% mistake="q2_saturated_fraction" label="counts the thresholds themselves as saturated (passes the visible check)"
def saturated_fraction(a, activation):
    a = np.asarray(a, dtype=np.float64)
    if activation == "sigmoid":
        return float(((a <= 0.03) | (a >= 0.97)).mean())
    return float((np.abs(a) >= 0.97).mean())

# %% right="q2_saturated_fraction" label="a plain loop over the entries"
def saturated_fraction(a, activation):
    values = np.asarray(a, dtype=float).ravel().tolist()
    if activation == "sigmoid":
        count = sum(1 for v in values if v < 0.03 or v > 0.97)
    else:
        count = sum(1 for v in values if abs(v) > 0.97)
    return count / len(values)

# %% right="q2_saturated_fraction" label="count_nonzero over size, with a warning for other activations"
import warnings


def saturated_fraction(a, activation):
    a = np.asarray(a)
    if activation not in ("sigmoid", "tanh"):
        warnings.warn(f"unknown activation {activation}")
    flat = np.logical_or(a < 0.03, a > 0.97) if activation == "sigmoid" else np.abs(a) > 0.97
    return np.count_nonzero(flat) / a.size

# %% nbgrader={"grade_id": "q2_saturated_fraction_test", "grade": true, "points": 3}
_sig = np.array([0.01, 0.2, 0.5, 0.98, 0.02, 0.6, 0.99, 0.4])
_tanh = np.array([-0.99, -0.5, 0.0, 0.98, 0.3, -0.98])
checks.check_function(
    "Question 2 (sigmoid)", saturated_fraction, [((_sig, "sigmoid"), 0.5)], rtol=1e-9,
    mistakes=[(lambda a, activation: 0.25, "you counted only outputs above 0.97. A sigmoid also saturates "
                                           "at 0: outputs below 0.03 are just as flat (E2's top layer went there)."),
              (lambda a, activation: 4.0, "return the FRACTION of entries, not their number.")])
checks.check_function(
    "Question 2 (tanh)", saturated_fraction, [((_tanh, "tanh"), 0.5)], rtol=1e-9,
    mistakes=[(lambda a, activation: 1 / 6, "you counted only tanh outputs above 0.97. tanh saturates at -1 "
                                            "too."),
              (lambda a, activation: 5 / 6, "these are tanh outputs, in (-1, 1): the sigmoid's thresholds "
                                            "0.03 and 0.97 do not apply to its lower end.")],
    hint="For tanh the flat zone is near -1 and near +1.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(3)
    for _shape in [(17, 8), (3, 5, 2), (1,), (40,)]:
        _zz = _rng.normal(scale=_rng.uniform(1.0, 6.0), size=_shape)
        _s, _t = 1 / (1 + np.exp(-_zz)), np.tanh(_zz)
        checks.check_function("Question 2 (hidden, sigmoid)", saturated_fraction,
                              [((_s, "sigmoid"), float(((_s < 0.03) | (_s > 0.97)).mean()))], rtol=1e-9)
        checks.check_function("Question 2 (hidden, tanh)", saturated_fraction,
                              [((_t, "tanh"), float((np.abs(_t) > 0.97).mean()))], rtol=1e-9)
    _edges = np.array([0.03, 0.97, 0.5, 0.0299, 0.9701])
    checks.check_function("Question 2 (hidden, thresholds)", saturated_fraction,
                          [((_edges, "sigmoid"), 0.4), ((np.array([-0.97, 0.97, 0.975, 0.0]), "tanh"), 0.25)],
                          rtol=1e-9)
    _mixed = np.array([[-0.99, -0.5], [0.02, 0.98]])  # the same array read as tanh and as sigmoid outputs
    checks.check_function("Question 2 (hidden, activation)", saturated_fraction,
                          [((_mixed, "tanh"), 0.5), ((_mixed, "sigmoid"), 1.0)], rtol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): the best case through a chain of sigmoid layers
#
# A chain of `depth` scalar sigmoid layers, $h_k = \sigma(w\, h_{k-1}) - \tfrac12$, all
# with the same non-zero weight $w$ (`weight`, positive or negative). Write
# `max_chain_gradient(weight, depth)`: the **largest possible** value of
# $|dh_L/dh_0|$ over all starting points $h_0$. The visible check measures the chain
# with $w = 3$ and 8 layers with autograd; the hidden tests measure other chains.
# Relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q3_max_chain_gradient", "solution": true}
def max_chain_gradient(weight, depth):
    """The largest |dh_L/dh_0| through depth layers h_k = sigmoid(weight * h_{k-1}) - 1/2."""
    ### BEGIN SOLUTION
    return (abs(weight) / 4) ** depth
    ### END SOLUTION

# %% mistake="q3_max_chain_gradient" label="forgets the weight: 0.25 ** depth"
def max_chain_gradient(weight, depth):
    return 0.25**depth

# %% mistake="q3_max_chain_gradient" label="the 1/4 once instead of once per layer"
def max_chain_gradient(weight, depth):
    return abs(weight) ** depth / 4

# %% mistake="q3_max_chain_gradient" label="forgets the absolute value for a negative weight (passes the visible check)"
def max_chain_gradient(weight, depth):
    return (weight / 4) ** depth

# %% right="q3_max_chain_gradient" label="largest slope found on a grid, then a loop"
def max_chain_gradient(weight, depth):
    z = np.linspace(-10, 10, 2001)
    largest_slope = np.max(np.exp(-z) / (1 + np.exp(-z)) ** 2)
    result = 1.0
    for _ in range(depth):
        result *= abs(weight) * largest_slope
    return float(result)

# %% right="q3_max_chain_gradient" label="math.pow"
def max_chain_gradient(weight, depth):
    return math.pow(math.fabs(weight) * 0.25, depth)

# %% nbgrader={"grade_id": "q3_max_chain_gradient_test", "grade": true, "points": 2}
# Check on the public setting (w = 3, 8 layers): a real chain started at h_0 = 0, where every
# pre-activation is 0.
checks.check_function(
    "Question 3", max_chain_gradient, [((3.0, 8), abs(sigmoid_chain_gradient(8, weight=3.0)))], rtol=1e-6,
    mistakes=[(lambda weight, depth: 1.52587890625e-05,
               "each layer's local derivative is w * sigma'(w h): the weight multiplies it too."),
              (lambda weight, depth: 6.0, "you multiplied by the depth; the chain rule multiplies one "
                                          "factor PER layer."),
              (lambda weight, depth: 1640.25, "the 1/4 comes once per layer, like the weight.")],
    hint="Write the local derivative of one layer, find its largest value, and multiply the layers.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _weight, _depth in [(2.0, 5), (-2.0, 3), (5.0, 10), (0.5, 4), (1.0, 0), (-6.0, 7)]:
        checks.check_function("Question 3 (hidden)", max_chain_gradient,
                              [((_weight, _depth), abs(sigmoid_chain_gradient(_depth, weight=_weight)))], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (1 point): why the top layer goes to 0
#
# In E2 the top sigmoid layer's outputs were driven towards 0 early in training. Which
# explanation matches Glorot & Bengio's? Set `q4_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** The learning rate is too large for the top layer, so its weights blow up.
# - **B.** The softmax leans on its biases and silences its input, pushing it to 0.
# - **C.** The sigmoid's slope is largest at an output of 0, so descent drives units there.
# - **D.** The first layer saturates first and then passes only zeros up to the top.

# %% nbgrader={"grade_id": "q4_answer", "solution": true}
### BEGIN SOLUTION
q4_answer = "B"
### END SOLUTION

# %% mistake="q4_answer" label="blames a too-large learning rate"
q4_answer = "A"

# %% mistake="q4_answer" label="thinks the slope is largest at output 0"
q4_answer = "C"

# %% mistake="q4_answer" label="thinks saturation starts at the first layer"
q4_answer = "D"

# %% right="q4_answer" label="lower case"
q4_answer = "b"

# %% nbgrader={"grade_id": "q4_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 4", q4_answer, "ABCD", expected_digest="9e066e5e8da5fe04", salt="02_q4",
    explanations={"A": "The weights did not blow up: the run stayed finite, and its top layer's gradient "
                       "was small, not large.",
                  "C": "The slope is largest at z = 0, that is at an OUTPUT of 0.5. At an output of 0 it "
                       "is 0: that is exactly why being stuck there is bad.",
                  "D": "In E2 layer 1 stayed near 0.5, the least saturated of all. Look at the plot of "
                       "mean activations per layer."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 4 (hidden)", q4_answer, "ABCD", expected="B")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (4 points): vanishing or saturated?
#
# Write `diagnose(grad_norms, saturated)`. Both are per-layer measurements of one
# backward pass, **layer 1 (next to the input) first**: `grad_norms` the norms of the
# weight gradients $\|\partial L/\partial W_k\|$, `saturated` the fraction of each
# layer's units that are saturated. Return
# - `"saturated"` if more than a third of the units are saturated on average over the
#   layers (the mean of `saturated` is above 1/3), whatever the gradients do;
# - otherwise `"vanishing"` if layer 1 gets less than 1/100 of the last layer's gradient;
# - otherwise `"healthy"`.
#
# The visible check uses the three ten-layer networks plotted below (the same batch of
# digits); the hidden tests use other networks and measurements (other depths, lists
# instead of arrays).

# %%
mystery_settings = {"A": ("sigmoid", 8.0), "B": ("tanh", 1.0), "C": ("sigmoid", 1.0)}
mystery = {label: layer_gradients(10, activation=act, weight_scale=scale, seed=3)
           for label, (act, scale) in mystery_settings.items()}
fig, (ax_g, ax_s) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
plot_gradient_norms({label: m["grad_norm"] for label, m in mystery.items()}, ax=ax_g, title="gradient norms")
for i, (label, m) in enumerate(mystery.items()):
    ax_s.plot(np.arange(1, 11), m["saturated"], "os^"[i] + "-:-"[i], color=OKABE_ITO[i], label=label)
ax_s.set_ylim(-0.02, 1)
ax_s.set_xlabel("layer (1 = next to the input)")
ax_s.set_ylabel("saturated fraction")
ax_s.legend(frameon=False)
for ax in (ax_g, ax_s):
    ax.set_xticks(range(1, 11))
plt.show()

# %% nbgrader={"grade_id": "q5_diagnose", "solution": true}
def diagnose(grad_norms, saturated):
    """'saturated', 'vanishing' or 'healthy', from per-layer measurements (layer 1 first)."""
    ### BEGIN SOLUTION
    if np.mean(saturated) > 1 / 3:
        return "saturated"
    if grad_norms[0] / grad_norms[-1] < 1e-2:
        return "vanishing"
    return "healthy"
    ### END SOLUTION

# %% mistake="q5_diagnose" label="decides on the gradients only, ignoring saturation"
def diagnose(grad_norms, saturated):
    if grad_norms[0] / grad_norms[-1] < 1e-2:
        return "vanishing"
    return "healthy"

# %% mistake="q5_diagnose" label="reads the layers backwards (last layer first)"
def diagnose(grad_norms, saturated):
    if np.mean(saturated) > 1 / 3:
        return "saturated"
    if grad_norms[-1] / grad_norms[0] < 1e-2:
        return "vanishing"
    return "healthy"

# %% mistake="q5_diagnose" label="checks for vanishing before saturation (passes the visible check)"
def diagnose(grad_norms, saturated):
    if grad_norms[0] / grad_norms[-1] < 1e-2:
        return "vanishing"
    if np.mean(saturated) > 1 / 3:
        return "saturated"
    return "healthy"

# %% mistake="q5_diagnose" label="calls a network saturated when its most saturated layer is (passes the visible check)"
def diagnose(grad_norms, saturated):
    if np.max(saturated) > 1 / 3:
        return "saturated"
    if grad_norms[0] / grad_norms[-1] < 1e-2:
        return "vanishing"
    return "healthy"

# %% right="q5_diagnose" label="plain Python with a printed summary"
def diagnose(grad_norms, saturated):
    mean_saturated = sum(saturated) / len(saturated)
    ratio = grad_norms[0] / grad_norms[-1]
    print(f"saturated {mean_saturated:.0%}, layer 1 / last {ratio:.1e}")
    if mean_saturated > 1 / 3:
        return "saturated"
    return "vanishing" if ratio < 0.01 else "healthy"

# %% right="q5_diagnose" label="log10 of the ratio, torch for the mean"
def diagnose(grad_norms, saturated):
    if torch.as_tensor(saturated, dtype=torch.float64).mean().item() > 1 / 3:
        return "saturated"
    return "vanishing" if math.log10(grad_norms[0]) - math.log10(grad_norms[-1]) < -2 else "healthy"

# %% nbgrader={"grade_id": "q5_diagnose_test", "grade": true, "points": 4}
_verdicts = ["vanishing", "saturated", "healthy"]
checks.check_verdicts(
    "Question 5 (network A)", diagnose, [((mystery["A"]["grad_norm"], mystery["A"]["saturated"]), "saturated")],
    allowed=_verdicts,
    hint="In network A about half of the units are saturated (right plot): that decides, whatever the "
         "gradients do.")
checks.check_verdicts(
    "Question 5 (network B)", diagnose, [((mystery["B"]["grad_norm"], mystery["B"]["saturated"]), "healthy")],
    allowed=_verdicts,
    hint="In network B no unit is saturated and layer 1 gets about as much gradient as layer 10.")
checks.check_verdicts(
    "Question 5 (network C)", diagnose, [((mystery["C"]["grad_norm"], mystery["C"]["saturated"]), "vanishing")],
    allowed=_verdicts,
    hint="In network C no unit is saturated, and layer 1 (the FIRST entry of grad_norms) gets about 2e-6 "
         "of the last layer's gradient. A gradient can vanish without any saturation.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _cases = [((np.geomspace(1e-3, 1.0, 12), np.full(12, 0.5)), "saturated"),  # vanishing too: saturation decides
              ((np.geomspace(1e-4, 1.0, 6), np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.9])), "vanishing"),
              ((np.geomspace(1.0, 1e-4, 6), np.zeros(6)), "healthy"),
              ((np.ones(8), np.array([0.9, 0.1, 0, 0, 0, 0, 0, 0])), "healthy"),
              (([2e-3, 0.5, 1.0], [0.3, 0.3, 0.35]), "vanishing"), (([1.0, 2.0], [0.4, 0.3]), "saturated")]
    for _depth, _act, _scale, _seed, _label in [(6, "tanh", 6.0, 7, "saturated"), (14, "sigmoid", 1.0, 8, "vanishing"),
                                                (7, "tanh", 1.0, 9, "healthy")]:
        _m = layer_gradients(_depth, activation=_act, weight_scale=_scale, seed=_seed)
        _cases.append(((_m["grad_norm"], _m["saturated"]), _label))
    for _args, _label in _cases:
        checks.check_verdicts("Question 5 (hidden)", diagnose, [(_args, _label)], allowed=_verdicts)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (2 points): the factor per layer of a uniform init
#
# In the linear regime (pre-activations small, so $\tanh' \approx 1$), a layer of width
# $n$ multiplies the std of the back-propagated gradient by $\sqrt{n\,\mathrm{Var}(W_{ij})}$.
# Write `backprop_std_factor(bound, width)`: this factor for a layer of width `width`
# whose weights are drawn from $U[-\text{bound}, \text{bound}]$. The visible check
# measures the standard init ($\text{bound} = 1/\sqrt{500}$, width 500) in a deep linear
# network; the hidden tests use other bounds and widths. Relative tolerance 2% (the
# measurement is noisy).

# %% nbgrader={"grade_id": "q6_backprop_std_factor", "solution": true}
def backprop_std_factor(bound, width):
    """sqrt(width * Var(W_ij)) for W_ij ~ U[-bound, bound]."""
    ### BEGIN SOLUTION
    return math.sqrt(width * bound**2 / 3)  # Var(U[-a, a]) = a^2 / 3
    ### END SOLUTION

# %% mistake="q6_backprop_std_factor" label="gives the variance factor instead of its square root"
def backprop_std_factor(bound, width):
    return width * bound**2 / 3

# %% mistake="q6_backprop_std_factor" label="takes the variance of U[-a, a] to be a^2"
def backprop_std_factor(bound, width):
    return math.sqrt(width * bound**2)

# %% mistake="q6_backprop_std_factor" label="answers 1/sqrt(3) whatever the bound and width (passes the visible check)"
def backprop_std_factor(bound, width):
    return math.sqrt(1 / 3)

# %% right="q6_backprop_std_factor" label="variance of a uniform as (2a)^2 / 12, with numpy"
def backprop_std_factor(bound, width):
    variance = (2 * bound) ** 2 / 12
    return float(np.sqrt(width * variance))

# %% right="q6_backprop_std_factor" label="|bound| * sqrt(width / 3), printed"
def backprop_std_factor(bound, width):
    factor = abs(bound) * (width / 3) ** 0.5
    print(f"factor per layer: {factor:.3f}")
    return factor

# %% nbgrader={"grade_id": "q6_backprop_std_factor_test", "grade": true, "points": 2}
# Check on the public setting: five linear layers of width 500 with the standard init; the factor
# per layer is measured over the four layers between layer 5 and layer 1.
_linear = backprop_gradient_stds("standard", activation="linear", depth=5, seed=0)["activation_grad"]
checks.check_function(
    "Question 6", backprop_std_factor, [((1 / math.sqrt(500), 500), (_linear[0] / _linear[-1]) ** (1 / 4))],
    rtol=0.02,
    mistakes=[(lambda bound, width: 1 / 3, "that is the factor for the VARIANCE; the std scales by its "
                                           "square root."),
              (lambda bound, width: 1.0, "U[-a, a] does not have variance a^2."),
              (lambda bound, width: math.sqrt(1 / 12), "U[-a, a] has width 2a, not a.")],
    hint="Compute Var(W_ij) for U[-bound, bound], multiply by the width, take the square root.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _bound, _width in [(0.1, 300), (0.05, 64), (0.2, 1000), (0.01, 50), (1.0, 1)]:
        checks.check_function("Question 6 (hidden)", backprop_std_factor,
                              [((_bound, _width), _bound * math.sqrt(_width / 3))], rtol=0.02)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - The sigmoid's slope is at most 1/4 (tanh's at most 1), and nearly 0 for $|z|$ beyond
#   a few units: saturated units pass almost no gradient.
# - Small weights keep units responsive but multiply the gradient by about 1/4 per
#   sigmoid layer (ten layers at init: layer 1 got $2\times10^{-6}$ of the last layer's
#   gradient); large weights saturate the units. Vanishing and saturation are different
#   diagnoses: look at gradients **and** at the saturated fraction.
# - E1: the standard init shrinks back-propagated gradients toward the input (ratio about
#   0.1 over five tanh layers); the normalized (Xavier) init keeps them.
# - E2: with the standard init, the top sigmoid layer is pushed to 0 and the network
#   stays at chance; its loss falls only to the class prior's ($\ln 10$).
# - Check the loss at initialization (about $\ln C$ for $C$ classes), then each layer:
#   a network can reach 99% training accuracy on a first layer that never learned
#   (reset it to its init and nothing changes).
#
# Next: notebook 03 finds the same product in recurrent networks, over time instead of layers.
#
# ## References
#
# - X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks. *AISTATS.*
# - Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998). Efficient BackProp. In *Neural Networks: Tricks of the Trade*, Springer.
# - S. Hochreiter (1991). *Untersuchungen zu dynamischen neuronalen Netzen.* Diploma thesis, TU Munich.
# - E. Alpaydin, C. Kaynak (1998). Optical recognition of handwritten digits. UCI Machine Learning Repository (the digits data set shipped with scikit-learn).
