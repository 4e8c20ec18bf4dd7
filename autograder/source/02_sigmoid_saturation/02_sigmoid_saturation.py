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
# 5. spot a network that only *appears* to train, by measuring how far each layer moved.
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
                                   train_sigmoid_on_digits)
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
assert stats[1.0]["saturated"] < 0.01 and stats[1.0]["mean slope"] > 0.2
assert stats[8.0]["saturated"] > 0.35 and stats[8.0]["mean slope"] < 0.1

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
assert ratios["standard"] < 0.2 and ratios["normalized"] > 0.4  # COURSE.md thresholds for E1
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
fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
for k in range(4):
    ax.plot(e2["steps"], e2["act_mean"][:, k], color=OKABE_ITO[k], label=f"layer {k + 1}")
ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
ax.set_xlabel("training step")
ax.set_ylabel("mean sigmoid output")
ax.set_ylim(0, 1)
ax.legend(frameon=False, ncol=4)
final = e2["act_mean"][-1]
print(f"final mean activations by layer: {np.round(final, 3)}; training accuracy {e2['accuracy']:.3f}")
assert final[-1] < 0.15  # the top layer is pushed towards 0
assert abs(final[0] - 0.5) < 0.05  # layer 1 stays near 0.5
assert e2["accuracy"] < 0.2  # and the network is still near chance (0.1)

# %% [markdown]
# **What to notice:** the top layer (layer 4) slides from 0.5 towards 0 and keeps going,
# while layer 1 does not move from 0.5. At an output of 0.09 the sigmoid's slope is about
# 0.08, a third of its best, and the gradient to every layer below must pass through
# it. After 1,500 steps the network still classifies at chance level (10 classes). In
# the paper the top layer eventually leaves saturation, after many epochs (quoted, not
# measured here).
#
# ## 6. "The network appears to train"
#
# A loss curve that goes down is not proof that every layer learns. Let's look at the E2
# run again: its loss did fall. How far did each layer's weights move from their
# initial values? We measure the relative change $\|W_\text{after} - W_\text{before}\| / \|W_\text{before}\|$
# per layer.

# %% tags=["demo"]
loss_start, loss_end = e2["loss"][:20].mean(), e2["loss"][-150:].mean()
change = e2["weight_change"]
fig, (ax_loss, ax_change) = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
ax_loss.plot(np.convolve(e2["loss"], np.ones(25) / 25, mode="valid"), color=OKABE_ITO[0])
ax_loss.axhline(math.log(10), color="black", linestyle="--", linewidth=1, label="ln 10: uniform guessing")
ax_loss.set_xlabel("training step")
ax_loss.set_ylabel("training loss (running mean)")
ax_loss.legend(frameon=False)
ax_change.bar(["1", "2", "3", "4", "head"], change, color=OKABE_ITO[1])
ax_change.set_yscale("log")
ax_change.set_xlabel("layer")
ax_change.set_ylabel("||W - W_init|| / ||W_init||")
print(f"loss {loss_start:.3f} -> {loss_end:.3f}; relative weight change per layer: {np.array2string(change, precision=4)}")
assert loss_start - loss_end > 0.1  # the loss went down: it "trains"
assert loss_end > math.log(10) - 0.02  # ...but only to the loss of uniform guessing
assert change[0] < 0.01 and change[0] < change[3] / 100  # layer 1 stays at its init, layer 4 moves

# %% [markdown]
# **What to notice:** the loss fell from about 2.5 to 2.31, which looks like progress,
# but 2.30 is $\ln 10$, the loss of a network that spreads its bets evenly over the ten
# digits. Layer 4 moved by about 40% of its initial size, layer 1 by only about 0.2%: the
# first layer is still essentially its random initialization. When the loss plateaus
# early, look at per-layer gradients and weight changes before touching the learning
# rate (notebook 08 builds a full health report around this).
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
# then run the check below each one. The checks tell you what is wrong; hidden tests
# with other inputs decide the grade.
#
# ### Question 1 (3 points): the sigmoid's derivative
#
# Write `sigmoid_grad(z)` with NumPy (no torch): the derivative $\sigma'(z)$, elementwise,
# for a number or an array `z` of any shape. It must return finite values for large
# $|z|$ too (try $z = \pm 1000$), without changing `z`.

# %% nbgrader={"grade_id": "q1_sigmoid_grad", "solution": true}
def sigmoid_grad(z):
    """sigma'(z) = sigma(z) (1 - sigma(z)), elementwise."""
    ### BEGIN SOLUTION
    s = 0.5 * (1 + np.tanh(np.asarray(z, dtype=np.float64) / 2))  # sigma(z), no overflow for any z
    return s * (1 - s)
    ### END SOLUTION

# %% mistake="q1_sigmoid_grad" label="applies s(1 - s) to z instead of to sigma(z)"
def sigmoid_grad(z):
    z = np.asarray(z, dtype=np.float64)
    return z * (1 - z)

# %% nbgrader={"grade_id": "q1_sigmoid_grad_test", "grade": true, "points": 3}
def _autograd_sigmoid_grad(z):
    z_t = torch.tensor(np.asarray(z, dtype=np.float64), requires_grad=True)
    torch.sigmoid(z_t).sum().backward()
    return z_t.grad.numpy()


_z = np.array([-3.0, -0.5, 0.0, 0.5, 2.0])
checks.check_function(
    "Question 1", sigmoid_grad, [((_z,), _autograd_sigmoid_grad(_z)), ((0.0,), 0.25)],
    mistakes=[(lambda z: np.asarray(z) * (1 - np.asarray(z)),
               "you computed z (1 - z). The formula s (1 - s) uses s = sigma(z), the sigmoid's OUTPUT."),
              (lambda z: 1 / (1 + np.exp(-np.asarray(z))),
               "that is sigma(z) itself; the question asks for its derivative."),
              (lambda z: (1 / (1 + np.exp(-np.asarray(z)))) * (1 + 1 / (1 + np.exp(-np.asarray(z)))),
               "check the sign: the derivative is s (1 - s), which is 1/4 at z = 0.")],
    hint="First compute s = sigma(z) = 1 / (1 + exp(-z)), then return s * (1 - s).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(2)
    for _shape in [(7,), (3, 4), (2, 3, 2)]:
        _zr = _rng.normal(scale=4.0, size=_shape)
        checks.check_function("Question 1 (hidden)", sigmoid_grad, [((_zr,), _autograd_sigmoid_grad(_zr))],
                              rtol=1e-9, atol=1e-15)
    _extreme = np.array([-1000.0, -50.0, 50.0, 1000.0])
    _got = np.asarray(sigmoid_grad(_extreme), dtype=np.float64)
    assert _got.shape == (4,) and np.all(np.isfinite(_got)), \
        f"Question 1: sigmoid_grad gives {_got} at z = {_extreme}: NaN or infinity for large |z|"
    assert np.all(_got >= 0) and np.all(_got < 1e-20), "Question 1: sigma'(z) must be ~0 for |z| >= 50"
    checks.check_function("Question 1 (hidden, ints)", sigmoid_grad,
                          [((np.array([0, 0]),), np.array([0.25, 0.25]))])
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (2 points): how many units are saturated?
#
# Write `saturated_fraction(a, activation)`: `a` is a NumPy array of a layer's
# **outputs** (activations, any shape), `activation` is `"sigmoid"` or `"tanh"`. Return
# the fraction of entries in the flat zone as a float: for the sigmoid, outputs below
# 0.03 or above 0.97; for tanh, outputs with $|a| > 0.97$.

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

# %% nbgrader={"grade_id": "q2_saturated_fraction_test", "grade": true, "points": 2}
_sig = np.array([0.01, 0.2, 0.5, 0.98, 0.02, 0.6, 0.99, 0.4])
_tanh = np.array([-0.99, -0.5, 0.0, 0.98, 0.3, -0.98])
checks.check_close("Question 2 (sigmoid)", saturated_fraction(_sig, "sigmoid"), 0.5,
                   mistakes=[(0.25, "you counted only outputs above 0.97. A sigmoid also saturates at 0: "
                                    "outputs below 0.03 are just as flat (E2's top layer went there)."),
                             (0.75, "you counted outputs below 0.97 instead of above it.")])
checks.check_close("Question 2 (tanh)", saturated_fraction(_tanh, "tanh"), 0.5,
                   mistakes=[(1 / 6, "you counted only tanh outputs above 0.97. tanh saturates at -1 too: "
                                     "use the absolute value.")],
                   hint="For tanh, count |a| > 0.97 and divide by the number of entries.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(3)
    for _trial in range(5):
        _zz = _rng.normal(scale=_rng.uniform(0.5, 6), size=(int(_rng.integers(5, 40)), 8))
        _s, _t = 1 / (1 + np.exp(-_zz)), np.tanh(_zz)
        checks.check_close("Question 2 (hidden, sigmoid)", saturated_fraction(_s, "sigmoid"),
                           float(((_s < 0.03) | (_s > 0.97)).mean()), rtol=1e-12)
        checks.check_close("Question 2 (hidden, tanh)", saturated_fraction(_t, "tanh"),
                           float((np.abs(_t) > 0.97).mean()), rtol=1e-12)
    checks.check_close("Question 2 (hidden, none)", saturated_fraction(np.full((3, 3), 0.5), "sigmoid"), 0.0)
    checks.check_close("Question 2 (hidden, low end)", saturated_fraction(np.full(4, 0.001), "sigmoid"), 1.0)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): the best case through eight layers
#
# A chain of eight scalar sigmoid layers, $h_k = \sigma(w\, h_{k-1}) - \tfrac12$, all with
# weight $w = 3$. What is the **largest possible** value of $|dh_8/dh_0|$, over all
# starting points $h_0$? Set `q3_bound` to a number (1% tolerance).

# %% nbgrader={"grade_id": "q3_bound", "solution": true}
### BEGIN SOLUTION
q3_bound = (3 * 0.25) ** 8
### END SOLUTION

# %% mistake="q3_bound" label="forgets the weight: 0.25**8"
q3_bound = 0.25**8

# %% nbgrader={"grade_id": "q3_bound_test", "grade": true, "points": 2}
# Check against a real chain started at h_0 = 0, where every pre-activation is 0.
checks.check_prediction("Question 3", q3_bound, abs(sigmoid_chain_gradient(8, weight=3.0)), rtol=0.01,
                         mistakes=[(0.25**8, "each layer's local derivative is w * sigma'(w h): the weight "
                                             "multiplies it too."),
                                   (3 * 0.25 * 8, "you multiplied by the depth; the chain rule multiplies "
                                                  "one factor PER layer."),
                                   (3**8 * 0.25, "the 1/4 comes once per layer, like the weight.")],
                         hint="Per layer the largest factor is w * max sigma' = 3/4; there are eight layers.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    assert isinstance(q3_bound, (int, float, np.floating)) and not isinstance(q3_bound, bool), \
        "Question 3: give a plain number"
    assert math.isclose(float(q3_bound), 0.75**8, rel_tol=0.01), f"Question 3: {q3_bound} is not right"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): why the top layer goes to 0
#
# In E2 the top sigmoid layer's outputs were driven towards 0 early in training. Which
# explanation matches Glorot & Bengio's? Set `q4_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** The learning rate is too large for the top layer, so its weights blow up.
# - **B.** The sigmoid's slope is largest at an output of 0, so gradient descent moves the outputs there.
# - **C.** The softmax layer can lower the loss fastest by relying on its biases and silencing its input, so it pushes the top layer's outputs to 0, where the sigmoid is flat and the layer gets too little gradient to leave.
# - **D.** The first layer saturates first and passes zeros up to the top layer.

# %% nbgrader={"grade_id": "q4_answer", "solution": true}
### BEGIN SOLUTION
q4_answer = "C"
### END SOLUTION

# %% mistake="q4_answer" label="thinks the slope is largest at output 0"
q4_answer = "B"

# %% nbgrader={"grade_id": "q4_answer_test", "grade": true, "points": 2}
checks.check_choice(
    "Question 4", q4_answer, "ABCD", expected_digest="b991f78265596796",
    explanations={"A": "The weights did not blow up: the run stayed finite, and its top layer's gradient "
                       "was small, not large.",
                  "B": "The slope is largest at z = 0, that is at an OUTPUT of 0.5. At an output of 0 it "
                       "is 0: that is exactly why being stuck there is bad.",
                  "D": "In E2 layer 1 stayed near 0.5, the least saturated of all. Look at the plot of "
                       "mean activations per layer."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 4 (hidden)", q4_answer, "ABCD", expected="C")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (3 points): vanishing or saturated?
#
# Three fresh ten-layer networks, A, B and C, get the same batch of digits. The left
# plot shows each layer's gradient norm, the right one the fraction of its units that
# are saturated. Label each network:
# - `"vanishing"`: layer 1 gets less than 1/100 of the last layer's gradient, and few units are saturated;
# - `"saturated"`: a large fraction of the units (more than a third) is saturated;
# - `"healthy"`: neither.
#
# Set `q5_diagnosis` to a dict such as `{"A": "healthy", "B": "healthy", "C": "healthy"}`.

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
ax_s.legend(frameon=False);

# %% nbgrader={"grade_id": "q5_diagnosis", "solution": true}
### BEGIN SOLUTION
q5_diagnosis = {"A": "saturated", "B": "healthy", "C": "vanishing"}
### END SOLUTION

# %% mistake="q5_diagnosis" label="blames saturation for the sigmoid net's vanishing gradient"
q5_diagnosis = {"A": "vanishing", "B": "healthy", "C": "saturated"}

# %% nbgrader={"grade_id": "q5_diagnosis_test", "grade": true, "points": 3}
checks.check_labels(
    "Question 5", q5_diagnosis, ["A", "B", "C"], ["vanishing", "saturated", "healthy"],
    expected_digests={"A": "003c3a96431abfc5", "B": "47512e82024e61d2", "C": "3aaeb61592b1db16"},
    explanations={**{(k, "saturated"): f"Look at the right plot: how many of network {k}'s units are "
                                       "saturated? A gradient can vanish without any saturation."
                     for k in "ABC"},
                  **{(k, "vanishing"): f"Network {k}'s gradient: compare layer 1 with layer 10 on the left plot "
                                       "(a factor of 100 is two decades)." for k in "ABC"},
                  **{(k, "healthy"): f"Network {k}: check both plots, gradients AND saturated fraction."
                     for k in "ABC"}})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_labels("Question 5 (hidden)", q5_diagnosis, ["A", "B", "C"], ["vanishing", "saturated", "healthy"],
                        expected={"A": "saturated", "B": "healthy", "C": "vanishing"})
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (2 points): the factor per layer with the standard init
#
# In the linear regime (pre-activations small, so $\tanh' \approx 1$), a layer of width
# $n$ multiplies the std of the back-propagated gradient by $\sqrt{n\,\mathrm{Var}(W_{ij})}$.
# With the standard init, $W_{ij} \sim U[-1/\sqrt{n}, 1/\sqrt{n}]$. What is this factor?
# Set `q6_factor` to a number (2% tolerance). The check measures it in a deep linear
# network of width 500.

# %% nbgrader={"grade_id": "q6_factor", "solution": true}
### BEGIN SOLUTION
q6_factor = math.sqrt(1 / 3)  # Var(U[-a, a]) = a^2 / 3 with a = 1/sqrt(n), so n Var = 1/3
### END SOLUTION

# %% mistake="q6_factor" label="gives the variance factor 1/3 instead of its square root"
q6_factor = 1 / 3

# %% nbgrader={"grade_id": "q6_factor_test", "grade": true, "points": 2}
_linear = backprop_gradient_stds("standard", activation="linear", depth=5, seed=0)["activation_grad"]
_measured_factor = (_linear[0] / _linear[-1]) ** (1 / 4)  # four layers between layer 5 and layer 1
checks.check_prediction("Question 6", q6_factor, _measured_factor, rtol=0.03,
                        mistakes=[(1 / 3, "that is the factor for the VARIANCE; the std scales by its square root."),
                                  (1.0, "U[-a, a] does not have variance a^2: it is a^2 / 3."),
                                  (math.sqrt(1 / 12), "the width of U[-a, a] is 2a, so its variance is "
                                                      "(2a)^2 / 12 = a^2 / 3.")],
                        hint="Compute Var(W_ij) for U[-a, a] with a = 1/sqrt(n), multiply by n, take the square root.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    assert isinstance(q6_factor, (int, float, np.floating)) and not isinstance(q6_factor, bool), \
        "Question 6: give a plain number"
    assert math.isclose(float(q6_factor), 0.5773502691896258, rel_tol=0.02), f"Question 6: {q6_factor} is not right"
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
#   stays at chance; the first layer barely leaves its initialization, even while the
#   loss goes down.
#
# Next: notebook 03 finds the same product in recurrent networks, over time instead of layers.
#
# ## References
#
# - X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks. *AISTATS.*
# - Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998). Efficient BackProp. In *Neural Networks: Tricks of the Trade*, Springer.
# - S. Hochreiter (1991). *Untersuchungen zu dynamischen neuronalen Netzen.* Diploma thesis, TU Munich.
# - E. Alpaydin, C. Kaynak (1998). Optical recognition of handwritten digits. UCI Machine Learning Repository (the digits data set shipped with scikit-learn).
