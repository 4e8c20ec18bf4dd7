# %% [markdown]
# # 04 · ReLU and friends: a derivative of exactly 1, and units that die
#
# Notebooks 01 and 02 showed where vanishing gradients come from: backprop
# multiplies one local derivative per layer, and a sigmoid's is at most 1/4.
# The rectified linear unit, $\mathrm{ReLU}(z) = \max(0, z)$, changes that
# factor: its derivative is **exactly 1** wherever the unit is active ($z > 0$),
# however large $z$ gets. It is also **exactly 0** where $z < 0$, and a unit
# that is never active passes no gradient at all: a *dead* ReLU. This notebook
# measures both sides, and the activations designed to keep the first without
# the second.
#
# **You will learn to**
# 1. state the derivative of ReLU and see that gradients pass active units unchanged;
# 2. compare per-layer gradient norms of deep sigmoid, tanh and ReLU networks,
#    at initialization and after training, and predict which one learns;
# 3. measure the fraction of dead units, kill units on purpose (negative bias,
#    large learning rate) and find out when a dead ReLU can come back: never in
#    layer 1, often in a higher layer;
# 4. compare the fixes: Leaky ReLU, ELU, GELU and SiLU.
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.activations import (build_digits_net, compare_activations, dead_fraction_by_bias, gradient_norms,
                                    learning_rate_experiments, revival_experiments, unit_activity)
from course_lib.datasets import load_digits
from course_lib.models import activation_derivative, make_activation
from course_lib.monitoring import GradientMonitor
from course_lib.plotting import OKABE_ITO, plot_gradient_norms, plot_training_curves
from course_lib.seeding import get_device, set_seed
from course_lib.variance import chi_1, gradient_curve, layer_statistics
from course_lib.widgets import activation_explorer

set_seed(0)
device = get_device()
torch.set_num_threads(1)  # tiny networks: one thread is faster, and much faster on a busy CPU
X_digits, y_digits = load_digits()
print(f"torch {torch.__version__} on {device}; digits: {tuple(X_digits.shape)}")

# %% [markdown]
# ## 1. Seven activations and their derivatives
#
# | activation | $f(z)$ | $f'(z)$ for $z < 0$ | $f'(z)$ for $z > 0$ |
# |---|---|---|---|
# | sigmoid | $1/(1+e^{-z})$ | $\sigma(1-\sigma) \le 1/4$ | $\le 1/4$, $\to 0$ as $z$ grows |
# | tanh | $\tanh z$ | $1 - \tanh^2 z \le 1$ | $\to 0$ as $z$ grows |
# | ReLU | $\max(0, z)$ | **0** | **1** |
# | Leaky ReLU | $z$ if $z > 0$ else $a z$ ($a = 0.01$) | $a$ | 1 |
# | ELU | $z$ if $z > 0$ else $e^z - 1$ | $e^z$ | 1 |
# | GELU | $z\,\Phi(z)$ ($\Phi$ the normal CDF) | $\Phi(z) + z\,\varphi(z)$, small | $\to 1$ |
# | SiLU (Swish) | $z\,\sigma(z)$ | $\sigma(z)\,(1 + z(1-\sigma(z)))$, small | $\to 1$ |
#
# `course_lib.models.activation_derivative` writes each derivative out. We
# check every one against autograd, then look at the two numbers that matter
# for gradient flow: the slope for large positive $z$ and for negative $z$.

# %% tags=["demo"]
names = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu"]
z = torch.linspace(-5, 5, 1000, dtype=torch.float64, requires_grad=True)  # 1000 points: z = 0 is not one of them
fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
for i, name in enumerate(names):
    out = make_activation(name)(z)
    (autograd_slope,) = torch.autograd.grad(out.sum(), z)
    assert torch.allclose(activation_derivative(name, z.detach()), autograd_slope, rtol=0, atol=1e-9), name
    color, style = OKABE_ITO[i % len(OKABE_ITO)], "-" if i < 4 else "--"
    ax_f.plot(z.detach(), out.detach(), style, color=color, label=name)
    ax_d.plot(z.detach(), autograd_slope, style, color=color, label=name)
ax_f.set(xlabel="z", ylabel="f(z)", ylim=(-1.5, 5))
ax_d.set(xlabel="z", ylabel="f'(z), by autograd")
ax_d.legend(frameon=False, fontsize="small", ncol=2)

big = torch.tensor([3.0, 10.0, 100.0], dtype=torch.float64)
print("slope at z = 3, 10, 100:")
for name in ["sigmoid", "tanh", "relu"]:
    print(f"  {name:8s}", activation_derivative(name, big).numpy())
assert torch.equal(activation_derivative("relu", big), torch.ones(3, dtype=torch.float64))  # exactly 1
assert activation_derivative("sigmoid", big).max() < 0.05 and activation_derivative("tanh", big).max() < 0.01
negative = torch.tensor([-1.0, -3.0], dtype=torch.float64)
slopes_below_zero = {name: activation_derivative(name, negative).numpy() for name in names[2:]}
print("slope at z = -1, -3:", {k: np.round(v, 4) for k, v in slopes_below_zero.items()})
assert (slopes_below_zero["relu"] == 0).all()  # exactly 0: no gradient at all
assert all((v != 0).all() for k, v in slopes_below_zero.items() if k != "relu")

# %% [markdown]
# **What to notice:** on the active side ReLU's slope is exactly 1, at $z = 3$
# as at $z = 100$, where the sigmoid's has fallen to almost nothing. Below zero
# it is exactly 0, while the four newer activations keep a small, nonzero slope
# (Leaky ReLU a constant 0.01, ELU $e^z$, GELU and SiLU a small bump that can
# even be negative).
#
# ## 2. Gradient flow in deep sigmoid, tanh and ReLU networks
#
# A chain of active ReLUs multiplies the gradient by $1 \times 1 \times \dots = 1$.
# A real network also multiplies by the weights, and each ReLU layer zeroes the
# inactive half of the units; He initialization (notebook 05) scales the
# weights to make up for that half. Below, three 10-layer, 64-unit digits
# classifiers, each with its usual initialization (Xavier for sigmoid and tanh
# with their gains 1 and 5/3, He for ReLU). We measure $\|\partial L/\partial W_k\|$
# per layer on 512 digits, then train each for 300 SGD steps (lr 0.1, batch 128)
# and measure again. (The three train side by side on the same batches, in one
# run: `compare_activations`; each gets exactly its own gradient.)

# %% tags=["demo"]
runs = compare_activations(["sigmoid", "tanh", "relu"], depth=10, lr=0.1, num_steps=300, seed=0)

fig, (ax0, ax1, ax2) = plt.subplots(1, 3, figsize=(10, 3.4), layout="constrained")
plot_gradient_norms({k: r["grad_init"] for k, r in runs.items()}, ax=ax0, title="at initialization")
plot_gradient_norms({k: r["grad_trained"] for k, r in runs.items()}, ax=ax1, title="after 300 steps")
plot_training_curves({k: r["loss"] for k, r in runs.items()}, ax=ax2, smooth=10)
for name, r in runs.items():
    ratio_init, ratio_trained = r["grad_init"][0] / r["grad_init"][-1], r["grad_trained"][0] / r["grad_trained"][-1]
    print(f"{name:8s} layer 1 / layer 10 gradient: {ratio_init:.1e} at init, {ratio_trained:.1e} after;"
          f"  final loss {r['final_loss']:.3f}, accuracy {r['accuracy']:.3f}")
assert 1e-6 < runs["sigmoid"]["grad_init"][0] / runs["sigmoid"]["grad_init"][-1] < 4e-6  # about 2e-6
assert runs["sigmoid"]["grad_trained"][0] / runs["sigmoid"]["grad_trained"][-1] < 2e-5
assert 0.5 < runs["relu"]["grad_init"][0] / runs["relu"]["grad_init"][-1] < 2
assert runs["sigmoid"]["accuracy"] < 0.2 and runs["sigmoid"]["final_loss"] > 2.2  # chance: 0.1 and ln 10 = 2.30
assert runs["relu"]["accuracy"] > 0.9 and runs["tanh"]["accuracy"] > 0.9

# %% [markdown]
# **What to notice:** the sigmoid network's first layer gets about $2 \times 10^{-6}$ of
# the last layer's gradient, close to $0.25^{10} \approx 10^{-6}$, and training does not change
# that (after 300 steps it is still below $2 \times 10^{-5}$): its loss stays at
# $\ln 10 \approx 2.30$, the loss of guessing, and its accuracy at chance. The ReLU
# network's gradient is about as large in layer 1 as in layer 10 (within a factor
# of 2), and it learns. Tanh learns too at this depth: its slope is 1 at $z = 0$,
# and the 5/3 gain makes up for the slope falling below 1 away from 0, as long as
# the units stay out of saturation. What sets ReLU apart is that its slope stays 1
# however large $z$ grows, so a gain fixed once at initialization keeps working.
#
# **Tanh with gain 5/3 and notebook 05.** Notebook 05's mean-field theory says
# more about this tanh network. Xavier's variance with gain 5/3 on square layers
# is $\sigma_w^2 = (5/3)^2 = 25/9$ (biases 0), which puts it slightly on the
# *chaotic* side of the edge of chaos: each layer multiplies the gradient's
# variance by $\chi_1 \approx 1.21$, so the gradient grows toward the input. The
# theory predicts by how much; we measure $\partial L/\partial h_l$ on 512 digits with
# notebook 05's `layer_statistics`.

# %% tags=["demo"]
tanh_net = build_digits_net("tanh", depth=10, seed=0)  # Xavier, gain 5/3: sigma_w^2 = 25/9
chi = chi_1("tanh", sigma_w2=25 / 9)
mean_square_in = X_digits.pow(2).mean().item()  # the pixels' E[x^2] sets layer 1's variance
predicted = math.sqrt(gradient_curve("tanh", sigma_w2=25 / 9, depth=10, input_second_moment=mean_square_in)[0])
stats = layer_statistics(tanh_net, X_digits[:512])
measured = stats["grad_std"][0] / stats["grad_std"][-1]
print(f"chi_1 = {chi:.3f}; std of dL/dh, layer 1 / layer 10: measured {measured:.2f}, predicted {predicted:.2f}; "
      f"at depth 50 that would be about {math.sqrt(chi) ** 49:.0f}")
assert 1.15 < chi < 1.25
assert predicted / 1.5 < measured < predicted * 1.5

# %% [markdown]
# **What to notice:** the gradient does grow toward the input, by about the factor
# the theory predicts (about 2.6 over 10 layers, $\sqrt{1.21}$ per layer). At
# depth 10 that is harmless, which is why the tanh network trains; at depth 50 it
# would be a factor of about 100, and notebook 05's critical $\sigma_w^2$ (or
# normalization, notebook 06) is what keeps a much deeper tanh network trainable.
# The gain 5/3 keeps the *forward* signal from shrinking; it does not put tanh
# exactly at the edge of chaos.
#
# ## 3. Dead ReLUs
#
# A ReLU unit with $z \le 0$ on **every** example of a batch outputs 0 and has
# slope 0 everywhere: it passes no gradient back, and the gradient of its own
# weights, $\partial L/\partial W_{i\cdot} = \sum_n \partial L/\partial z_{ni}\, h_{n}$,
# is a sum of zeros. `course_lib.activations.unit_activity` counts such units
# per layer (slope below $10^{-6}$ on every example, the same measure as
# `GradientMonitor`'s `dead`). A negative bias pushes every $z$ down; let's
# sweep a constant bias on all hidden layers of a 4-layer He-initialized ReLU net.

# %% tags=["demo"]
biases = [0.0, -0.25, -0.5, -0.75, -1.0, -1.5]
dead_by_bias = dead_fraction_by_bias("relu", biases, depth=4, seed=0)  # shape (biases, layers), all 1,797 digits

net = build_digits_net("relu", depth=4, bias=-0.5, seed=0)
with GradientMonitor(net) as monitor:
    torch.nn.functional.cross_entropy(net(X_digits), y_digits).backward()
assert np.allclose(monitor.latest("dead"), dead_by_bias[biases.index(-0.5)])  # same measure as the monitor

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for layer in range(dead_by_bias.shape[1]):
    ax.plot(biases, dead_by_bias[:, layer], "o-", color=OKABE_ITO[layer], label=f"layer {layer + 1}")
ax.set(xlabel="bias of every hidden unit at initialization", ylabel="dead fraction (all digits)")
ax.legend(frameon=False)
print("dead fraction per layer, bias 0:", dead_by_bias[0].round(2), " bias -1:", dead_by_bias[4].round(2))
assert dead_by_bias[0].max() < 0.3
assert (np.diff(dead_by_bias.mean(axis=1)) >= 0).all()  # more negative bias, more dead units
assert dead_by_bias[4, 1:].min() > 0.9  # at bias -1 layers 2-4 are (almost) all dead

# %% [markdown]
# **What to notice:** a bias of $-1$ is enough to kill almost every unit above
# layer 1: a dead layer outputs zeros, so the next layer sees only its own
# negative bias, and dies too. Deep layers die first.
#
# ### When does a dead unit come back?
#
# Now set layer 1's bias to $-1$ and layer 2's to $-0.5$, so that many units of
# both layers start dead while the rest of the network can still learn, and train
# for 300 steps. Layer 1 sees the data itself, so a unit that is dead on all
# 1,797 digits gets a gradient of exactly zero on every batch. A unit in layer 2
# also gets zero gradient while it is dead, but its input is layer 1's output,
# which changes as layer 1 learns. Optimizers do more than follow the gradient,
# so we try three: SGD with momentum 0.9 (lr 0.05), the same with weight decay
# $5 \times 10^{-4}$, and AdamW (Loshchilov & Hutter 2019) with PyTorch's defaults
# (lr $10^{-3}$, weight decay $10^{-2}$); and, as a control, momentum with layer 1
# frozen. (The four activations of section 4 train in the same run, with only
# layer 1's bias changed: `revival_experiments` trains all SGD settings side by
# side on the same batches.)

# %% tags=["demo"]
settings = {"momentum": dict(activation="relu", upper_bias=-0.5),
            "momentum + weight decay": dict(activation="relu", upper_bias=-0.5, weight_decay=5e-4),
            "AdamW": dict(activation="relu", upper_bias=-0.5, optimizer="adamw"),
            "momentum, layer 1 frozen": dict(activation="relu", upper_bias=-0.5, freeze_first=True),
            **{name: dict(activation=name) for name in ["leaky_relu", "elu", "gelu", "silu"]}}
revival = revival_experiments(settings, bias=-1.0, depth=3, seed=0)
relu_settings = list(settings)[:4]
for label in relu_settings:
    r = revival[label]
    print(f"{label:25s}" + " | ".join(f"layer {k + 1}: {r['off'][k]:.0%} start dead, weights moved in "
                                      f"{r['off_moved'][k]:.0%}, back to life {r['off_revived'][k]:.0%}"
                                      for k in range(2)) + f" | final loss {r['final_loss']:.3f}")
relu = revival["momentum"]
assert relu["off"][0] > 0.2 and relu["off"][1] > 0.5
assert relu["after"]["dead"][0] >= relu["off"][0]
for label in relu_settings:  # layer 1: not one unit back, whatever the optimizer
    assert revival[label]["off_revived"][0] == 0.0, label
assert relu["off_moved"][0] == 0.0  # not one weight of a dead layer-1 unit changed
assert revival["momentum + weight decay"]["off_moved"][0] == 1.0 and revival["AdamW"]["off_moved"][0] == 1.0
for label in relu_settings[:3]:  # layer 2: most of them come back
    assert revival[label]["off_revived"][1] > 0.5, label
assert revival["momentum, layer 1 frozen"]["off_revived"][1] == 0.0  # ... unless the layer below stands still
assert revival["momentum, layer 1 frozen"]["off_moved"][1] == 0.0

# %% [markdown]
# **What to notice:** in layer 1 not a single weight of a dead unit changed in 300
# steps of SGD with momentum, not even in the last digit: their gradient is exactly
# zero, and so is the momentum built from it. Weight decay and AdamW do move them
# (every weight and the bias of the unit shrink by the same factor at each step), but
# multiplying $z$ by a positive factor never changes its sign: none of them comes
# back. In layer 2 most of the dead units are alive again after training, under all
# three optimizers. Their own gradient was zero too; what changed is their input:
# layer 1 learned, and once $z$ crossed zero on a single digit the unit got gradient
# again. Freeze layer 1 and not one of them comes back.
#
# So a dead ReLU comes back only if the layers below it move its input. In layer 1
# (or above a frozen part of the network) it is lost for good; in a higher layer it
# can revive, but only while the layers below keep changing. Meanwhile the network
# learns with the units that are left.
# CS231n's notes warn that with a too-high learning rate "as much as 40% of your
# network can be dead" (quoted); the next experiment measures that.
#
# ### A large learning rate kills units during training
#
# Same 4-layer ReLU net, two learning rates (SGD with momentum 0.9, gradients
# clipped to norm 1 so the large step does not overflow). `GradientMonitor`
# records the dead fraction of each 128-example batch every 10 steps. (The four
# activations of section 4 train alongside at lr 0.5, on the same batches.)

# %% tags=["demo"]
alternatives = ["leaky_relu", "elu", "gelu", "silu"]
lr_runs = learning_rate_experiments({**{f"relu, lr {lr}": dict(activation="relu", lr=lr) for lr in (0.02, 0.5)},
                                     **{name: dict(activation=name, lr=0.5) for name in alternatives}}, depth=4, seed=0)
by_lr = {lr: lr_runs[f"relu, lr {lr}"] for lr in (0.02, 0.5)}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (lr, r) in enumerate(by_lr.items()):
    ax.plot(r["steps"], r["dead_per_step"][:, 0], color=OKABE_ITO[i], label=f"lr {lr}: layer 1")
ax.set(xlabel="step", ylabel="dead fraction (per batch)", ylim=(0, 1))
ax.legend(frameon=False)
for lr, r in by_lr.items():
    print(f"lr {lr}: dead fraction per layer on all digits after training {r['dead'].round(2)}, "
          f"final loss {r['final_loss']:.3f}")
assert by_lr[0.5]["dead"][0] > 0.3 and by_lr[0.02]["dead"][0] < 0.1

# %% [markdown]
# **What to notice:** at lr 0.02 almost every unit stays alive; at lr 0.5 a few
# large steps early on push many first-layer units below zero on every input,
# and they stay there: the curve keeps climbing. The accuracy can still look fine,
# because the units that are left do the work, which is why dead units go
# unnoticed unless you measure them.
#
# ## 4. Leaky ReLU, ELU, GELU and SiLU: a slope below zero
#
# The fix is to keep some slope for $z < 0$: then a unit pushed below zero still
# gets a gradient and can come back, even in layer 1. The same two experiments, now
# for the four alternatives (each with He init; their layer-1 runs trained alongside
# the ReLU ones above, with layer 1's bias at $-1$).

# %% tags=["demo"]
fast = {name: lr_runs[name] for name in alternatives}
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
labels = ["relu"] + alternatives
ax0.bar(labels, [relu["off_revived"][0]] + [revival[n]["off_revived"][0] for n in alternatives], color=OKABE_ITO[2])
ax0.set(ylabel="fraction back to life", title="layer-1 units that started off (bias -1)")
ax1.bar(labels, [by_lr[0.5]["dead"][0]] + [fast[n]["dead"][0] for n in alternatives], color=OKABE_ITO[1])
ax1.set(ylabel="dead fraction, layer 1", title="after training at lr 0.5", ylim=(0, 1))
for ax in (ax0, ax1):
    ax.tick_params(axis="x", labelrotation=30)
for name in alternatives:
    print(f"{name:10s} bias -1: weights moved in {revival[name]['off_moved'][0]:.0%} of the off units, "
          f"{revival[name]['off_revived'][0]:.0%} back to life | lr 0.5: max dead fraction {fast[name]['dead'].max():.2f}")
    assert revival[name]["off_moved"][0] == 1.0  # every unit that started off still received gradient
    assert fast[name]["dead"].max() < 0.1
assert revival["elu"]["off_revived"][0] > 0.5
assert min(revival["gelu"]["off_revived"][0], revival["silu"]["off_revived"][0]) > 0.05

# %% [markdown]
# **What to notice:** with any slope below zero, every unit that started off kept
# receiving gradient (its weights moved), and no layer has dead units after the
# large learning rate. How fast the units come back depends on the size of that
# slope: ELU's $e^z$ is about 0.37 at $z = -1$ and brings most of them back in
# 300 steps; GELU and SiLU bring back some; Leaky ReLU's 0.01 makes their
# gradient 100 times smaller, so in 300 steps few return. Leaky ReLU prevents
# death, not slowness. GELU (Hendrycks & Gimpel 2016) is the activation of
# BERT and GPT-2; SiLU/Swish is used in many recent vision and language models.
#
# ## 5. Explore: activation, depth and bias
#
# The explorer builds a digits classifier with the activation, depth and initial
# bias you choose (width 64, the activation's usual init), and plots the
# gradient norm per layer next to the dead fraction. Try sigmoid at depth 20;
# ReLU with bias $-0.5$; then Leaky ReLU and ELU with the same bias.

# %% tags=["demo"]
explorer = activation_explorer(activation="relu", depth=10, bias=0.0)
assert explorer.last["kind"] == "healthy"
assert explorer.update(activation="sigmoid", depth=20)["ratio"] < 1e-8
assert explorer.update(activation="relu", depth=10, bias=-1.0)["dead_mean"] > 0.7
explorer.update(activation="relu", depth=10, bias=0.0)
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks try your answer on one public example
# and tell you what is wrong; hidden tests with other inputs decide the grade.
#
# ### Question 1 (3 points): Leaky ReLU and its derivative
#
# Write `leaky_relu(z, negative_slope=0.01)` and `leaky_relu_derivative(z, negative_slope=0.01)`
# for a torch tensor `z` of any shape: $f(z) = z$ for $z > 0$ and $a z$ otherwise;
# $f'(z) = 1$ for $z > 0$ and $a$ otherwise (so $f'(0) = a$). Return tensors of the same
# shape and dtype as `z`, and do not modify `z`. The hidden tests use other shapes, dtypes
# and slopes $a$; relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q1_leaky_relu", "solution": true}
def leaky_relu(z, negative_slope=0.01):
    """Leaky ReLU, elementwise (Maas et al. 2013)."""
    ### BEGIN SOLUTION
    return torch.where(z > 0, z, negative_slope * z)
    ### END SOLUTION


def leaky_relu_derivative(z, negative_slope=0.01):
    """The slope of leaky_relu at every entry of z."""
    ### BEGIN SOLUTION
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, negative_slope))
    ### END SOLUTION

# %% mistake="q1_leaky_relu" label="uses ReLU's derivative (0 below zero)"
def leaky_relu(z, negative_slope=0.01):
    return torch.where(z > 0, z, negative_slope * z)


def leaky_relu_derivative(z, negative_slope=0.01):
    return (z > 0).to(z.dtype)

# %% mistake="q1_leaky_relu" label="hard-codes the default slope 0.01 (passes the visible check)"
def leaky_relu(z, negative_slope=0.01):
    return torch.where(z > 0, z, 0.01 * z)


def leaky_relu_derivative(z, negative_slope=0.01):
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, 0.01))

# %% mistake="q1_leaky_relu" label="gives slope 1 at z = 0 (passes the visible check)"
def leaky_relu(z, negative_slope=0.01):
    return torch.where(z >= 0, z, negative_slope * z)


def leaky_relu_derivative(z, negative_slope=0.01):
    return torch.where(z >= 0, torch.ones_like(z), torch.full_like(z, negative_slope))

# %% mistake="q1_leaky_relu" label="scales the input in place"
def leaky_relu(z, negative_slope=0.01):
    z[z <= 0] *= negative_slope
    return z


def leaky_relu_derivative(z, negative_slope=0.01):
    return torch.where(z > 0, torch.ones_like(z), torch.full_like(z, negative_slope))

# %% right="q1_leaky_relu" label="PyTorch's own leaky_relu, and autograd for the slope"
def leaky_relu(z, negative_slope=0.01):
    return torch.nn.functional.leaky_relu(z, negative_slope)


def leaky_relu_derivative(z, negative_slope=0.01):
    leaf = z.detach().clone().requires_grad_()
    (slope,) = torch.autograd.grad(torch.nn.functional.leaky_relu(leaf, negative_slope).sum(), leaf)
    return slope

# %% nbgrader={"grade_id": "q1_leaky_relu_test", "grade": true, "points": 3}
_z = torch.tensor([-3.0, -0.5, 0.25, 2.0], dtype=torch.float64)
checks.check_function("Question 1 (leaky_relu)", leaky_relu, [((_z,), [-0.03, -0.005, 0.25, 2.0])], rtol=1e-6,
                      mistakes=[(lambda *_: [0.0, 0.0, 0.25, 2.0], "you returned ReLU: below zero the output is "
                                 "a * z, not 0."),
                                (lambda *_: [-0.03, -0.005, 0.0025, 0.02], "you scaled every value by a; only "
                                 "z <= 0 is scaled.")],
                      hint="Treat the entries with z > 0 and the others separately.")
checks.check_function("Question 1 (leaky_relu_derivative)", leaky_relu_derivative, [((_z,), [0.01, 0.01, 1.0, 1.0])],
                      rtol=1e-6,
                      mistakes=[(lambda *_: [0.0, 0.0, 1.0, 1.0], "that is ReLU's derivative: below zero Leaky "
                                 "ReLU's slope is negative_slope, not 0. That slope is the whole point."),
                                (lambda *_: [-0.03, -0.005, 1.0, 1.0], "below zero the derivative of a*z is a "
                                 "constant, not a*z.")],
                      hint="What is the slope of the line a*z?")
_dtypes = [getattr(leaky_relu(_z), "dtype", None), getattr(leaky_relu_derivative(_z), "dtype", None)]
if _dtypes != [torch.float64, torch.float64]:
    raise checks.CheckFailed(f"Question 1: not yet right.\n  for a float64 input, return float64 tensors (got "
                             f"{_dtypes[0]} and {_dtypes[1]}): keep the input's dtype.")
### BEGIN HIDDEN TESTS
def _torch_leaky(z, slope):
    z = z.detach().clone().requires_grad_()
    out = torch.nn.functional.leaky_relu(z, slope)
    out.sum().backward()
    return out.detach(), z.grad


with checks.quiet():
    _g = torch.Generator().manual_seed(404)
    for _shape, _a in [((7,), 0.01), ((3, 5), 0.2), ((2, 3, 4), 0.0), ((1,), 1.0), ((50,), 0.3)]:
        _zz = torch.randn(*_shape, dtype=torch.float64, generator=_g) * 3
        _zz.view(-1)[0] = 0.0  # z = 0 belongs to the a side
        _o, _s = _torch_leaky(_zz, _a)
        checks.check_function("Question 1 (hidden, leaky_relu)", lambda z, a=_a: leaky_relu(z, a), [((_zz,), _o)],
                              rtol=1e-6)
        checks.check_function("Question 1 (hidden, derivative)", lambda z, a=_a: leaky_relu_derivative(z, a),
                              [((_zz,), _s)], rtol=1e-6)
    _zz = -torch.rand(10, dtype=torch.float64, generator=_g) - 0.1  # all negative, default slope
    checks.check_function("Question 1 (hidden, all negative)", leaky_relu_derivative,
                          [((_zz,), torch.full((10,), 0.01, dtype=torch.float64))], rtol=1e-6)
    _zf = torch.randn(4, 6, generator=_g)  # float32 in, float32 out
    _o, _s = _torch_leaky(_zf, 0.05)
    assert leaky_relu(_zf, 0.05).dtype == torch.float32 and leaky_relu_derivative(_zf, 0.05).dtype == torch.float32, \
        "Question 1: keep the input's dtype"
    checks.check_function("Question 1 (hidden, float32)", lambda z: leaky_relu_derivative(z, 0.05), [((_zf,), _s)],
                          rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): count the dead units
#
# Write `dead_fraction(z)`: `z` is a tensor of pre-activations of one ReLU layer
# with shape `(examples, units)`. Return, as a float, the fraction of **units**
# that are dead on this batch: $z \le 0$ on **every** example. ($z = 0$ counts
# as dead: ReLU outputs 0 there and PyTorch's derivative is 0.) The hidden tests
# use other batches (down to one example) and dtypes; relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q2_dead_fraction", "solution": true}
def dead_fraction(z):
    """Fraction of the units (columns of z) that are dead on this batch."""
    ### BEGIN SOLUTION
    return float((z <= 0).all(dim=0).float().mean())
    ### END SOLUTION

# %% mistake="q2_dead_fraction" label="counts inactive entries instead of units inactive on every example"
def dead_fraction(z):
    return float((z <= 0).float().mean())

# %% mistake="q2_dead_fraction" label="looks along the wrong axis (examples instead of units)"
def dead_fraction(z):
    return float((z <= 0).all(dim=1).float().mean())

# %% mistake="q2_dead_fraction" label="treats z = 0 as alive (passes the visible check)"
def dead_fraction(z):
    return float((z < 0).all(dim=0).float().mean())

# %% right="q2_dead_fraction" label="NumPy, a loop over the units"
def dead_fraction(z):
    table = np.asarray(z.detach().cpu())
    dead = 0
    for column in table.T:
        if np.all(column <= 0):
            dead += 1
    return dead / table.shape[1]

# %% nbgrader={"grade_id": "q2_dead_fraction_test", "grade": true, "points": 3}
# Check on layer 1 of a real network with bias -1, against course_lib's measurement.
_net = build_digits_net("relu", depth=1, bias=-1.0, seed=0)
with torch.no_grad():
    _z1 = _net.blocks[0].linear(X_digits)
_expected = float(unit_activity(_net, X_digits)["dead"][0])
checks.check_function("Question 2", dead_fraction, [((_z1,), _expected)], rtol=1e-6,
                      mistakes=[(lambda z: float((z <= 0).float().mean()),
                                 "you counted the inactive ENTRIES (unit, example). A unit is dead only when it is "
                                 "inactive on EVERY example."),
                                (lambda z: float((z <= 0).all(dim=1).float().mean()),
                                 "you looked along the wrong axis: rows are examples, columns are units.")],
                      hint="Decide, for each unit (column), whether it is inactive on every example (row).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _zz = torch.tensor([[-1.0, 2.0, 0.0, -3.0], [-2.0, -1.0, 0.0, 0.5]])
    checks.check_function("Question 2 (hidden, zeros count as dead)", dead_fraction, [((_zz,), 0.5)], rtol=1e-6)
    checks.check_function("Question 2 (hidden, one example)", dead_fraction,
                          [((torch.tensor([[1.0, -1.0, -2.0]]),), 2 / 3)], rtol=1e-6)
    checks.check_function("Question 2 (hidden, all dead)", dead_fraction, [((-torch.ones(5, 3),), 1.0)], rtol=1e-6)
    checks.check_function("Question 2 (hidden, none dead)", dead_fraction, [((torch.ones(2, 7),), 0.0)], rtol=1e-6)
    _g = torch.Generator().manual_seed(7)
    for _trial in range(5):
        _zz = torch.randn(int(torch.randint(1, 9, (1,), generator=_g)), 40, generator=_g) - 1.0
        _zz[:, :3] = torch.minimum(_zz[:, :3], torch.zeros(()))  # some units touch 0 but never go above
        checks.check_function("Question 2 (hidden, random)", dead_fraction,
                              [((_zz,), float((_zz <= 0).all(dim=0).float().mean()))], rtol=1e-6)
    _zz = torch.randn(6, 11, dtype=torch.float64, generator=_g)
    checks.check_function("Question 2 (hidden, float64)", dead_fraction,
                          [((_zz,), float((_zz <= 0).all(dim=0).double().mean()))], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): dead on a batch, or just unlucky?
#
# "Dead" is measured on a batch. Suppose a layer's pre-activations are independent
# $\mathcal N(\mu, 1)$ draws for every unit and every example: every unit is healthy,
# active on part of the inputs. Write `expected_dead_fraction(batch_size, mean)` returning
# the fraction of units you expect to **look** dead ($z \le 0$ on every example) on a batch
# of `batch_size` examples when $\mu$ = `mean`. The normal CDF is
# $\Phi(x) = \tfrac12\,(1 + \operatorname{erf}(x/\sqrt 2))$ (`math.erf`). The check uses one
# public setting; the hidden tests use other batch sizes and means (relative tolerance 1%).

# %% nbgrader={"grade_id": "q3_expected_dead", "solution": true}
def expected_dead_fraction(batch_size, mean):
    """Expected fraction of healthy units that are inactive on every example of a batch."""
    ### BEGIN SOLUTION
    p_off = 0.5 * (1 + math.erf(-mean / math.sqrt(2)))  # P(z <= 0) for z ~ N(mean, 1)
    return p_off**batch_size
    ### END SOLUTION

# %% mistake="q3_expected_dead" label="ignores the mean: uses 1/2 per example (passes the visible check)"
def expected_dead_fraction(batch_size, mean):
    return 0.5**batch_size

# %% mistake="q3_expected_dead" label="uses P(z > 0) instead of P(z <= 0) (passes the visible check)"
def expected_dead_fraction(batch_size, mean):
    return (0.5 * (1 + math.erf(mean / math.sqrt(2)))) ** batch_size

# %% mistake="q3_expected_dead" label="off on at least one example instead of on all"
def expected_dead_fraction(batch_size, mean):
    p_off = 0.5 * (1 + math.erf(-mean / math.sqrt(2)))
    return 1 - (1 - p_off) ** batch_size

# %% mistake="q3_expected_dead" label="divides by the batch size instead of raising to it"
def expected_dead_fraction(batch_size, mean):
    return 0.5 * (1 + math.erf(-mean / math.sqrt(2))) / batch_size

# %% right="q3_expected_dead" label="statistics.NormalDist"
from statistics import NormalDist


def expected_dead_fraction(batch_size, mean):
    return NormalDist(mu=mean, sigma=1.0).cdf(0.0) ** batch_size

# %% nbgrader={"grade_id": "q3_expected_dead_test", "grade": true, "points": 2}
# The public setting: a batch of 8, mean 0 (each example is off with probability 1/2).
checks.check_function("Question 3", expected_dead_fraction, [((8, 0.0), 0.00390625)], rtol=0.01, atol=0.0,
                      mistakes=[(lambda *_: 0.5, "0.5 is the chance that a unit is off on ONE example. It must be "
                                                 "off on all 8, independently."),
                                (lambda *_: 0.0625, "independent events multiply; you divided."),
                                (lambda *_: 0.99609375, "that is the chance to be off on AT LEAST one example; "
                                                        "dead means off on every one.")],
                      hint="First the chance that one example gives z <= 0, then that all of them do.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _b, _mu in [(1, 0.0), (3, 1.0), (16, -1.0), (5, 0.5), (100, -2.0), (2, 2.5)]:
        checks.check_function("Question 3 (hidden)", expected_dead_fraction,
                              [((_b, _mu), (0.5 * math.erfc(_mu / math.sqrt(2))) ** _b)], rtol=0.01, atol=0.0)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): the product of slopes
#
# Backprop through a deep network multiplies one activation slope per layer. Write
# `slope_product(activation, z, depth)` returning the product of the activation's slopes over
# `depth` layers when every layer's pre-activation is the number `z`: $f'(z)^{\text{depth}}$,
# for `activation` one of `"sigmoid"`, `"tanh"`, `"relu"` and `"leaky_relu"` (slope 0.01),
# with the conventions of section 1 (ReLU's slope at $z = 0$ is 0, as in PyTorch). The check
# uses two public settings; the hidden tests use others (relative tolerance 1e-4).

# %% nbgrader={"grade_id": "q4_slope_product", "solution": true}
def slope_product(activation, z, depth):
    """f'(z) ** depth for sigmoid, tanh, relu or leaky_relu (a = 0.01)."""
    ### BEGIN SOLUTION
    if activation == "sigmoid":
        s = 1 / (1 + math.exp(-z))
        slope = s * (1 - s)
    elif activation == "tanh":
        slope = 1 - math.tanh(z) ** 2
    elif activation == "relu":
        slope = 1.0 if z > 0 else 0.0
    elif activation == "leaky_relu":
        slope = 1.0 if z > 0 else 0.01
    else:
        raise ValueError(f"unknown activation {activation!r}")
    return slope**depth
    ### END SOLUTION

# %% mistake="q4_slope_product" label="multiplies the slope by the depth"
def slope_product(activation, z, depth):
    s = 1 / (1 + math.exp(-z))
    slopes = {"sigmoid": s * (1 - s), "tanh": 1 - math.tanh(z) ** 2, "relu": float(z > 0),
              "leaky_relu": 1.0 if z > 0 else 0.01}
    return slopes[activation] * depth

# %% mistake="q4_slope_product" label="uses the sigmoid's largest slope 1/4 at every z (passes the visible check)"
def slope_product(activation, z, depth):
    slopes = {"sigmoid": 0.25, "tanh": 1 - math.tanh(z) ** 2, "relu": float(z > 0),
              "leaky_relu": 1.0 if z > 0 else 0.01}
    return slopes[activation] ** depth

# %% mistake="q4_slope_product" label="takes ReLU's slope as 1 everywhere (passes the visible check)"
def slope_product(activation, z, depth):
    s = 1 / (1 + math.exp(-z))
    slopes = {"sigmoid": s * (1 - s), "tanh": 1 - math.tanh(z) ** 2, "relu": 1.0,
              "leaky_relu": 1.0 if z > 0 else 0.01}
    return slopes[activation] ** depth

# %% mistake="q4_slope_product" label="writes tanh's slope as 1 - z^2 (passes the visible check)"
def slope_product(activation, z, depth):
    s = 1 / (1 + math.exp(-z))
    slopes = {"sigmoid": s * (1 - s), "tanh": 1 - z**2, "relu": float(z > 0),
              "leaky_relu": 1.0 if z > 0 else 0.01}
    return slopes[activation] ** depth

# %% right="q4_slope_product" label="course_lib's activation_derivative, in float64"
def slope_product(activation, z, depth):
    slope = activation_derivative(activation, torch.tensor([z], dtype=torch.float64))
    return float(slope.prod() ** depth)

# %% nbgrader={"grade_id": "q4_slope_product_test", "grade": true, "points": 2}
# Public settings: ten sigmoid layers at z = 0 (section 2's network), ten active ReLU layers.
checks.check_function("Question 4", slope_product, [(("sigmoid", 0.0, 10), 9.5367431640625e-07),
                                                     (("relu", 1.5, 10), 1.0)], rtol=1e-4, atol=0.0,
                      mistakes=[(lambda *_: 2.5, "you multiplied the slope by the depth: backprop multiplies one "
                                                 "slope PER LAYER."),
                                (lambda *_: 10.0, "you multiplied by the depth; a slope of 1 stays 1 however many "
                                                  "times it is multiplied.")],
                      hint="What is the sigmoid's slope at z = 0, and what do 10 layers of it make?")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _args in [("sigmoid", 2.0, 6), ("sigmoid", -1.0, 1), ("tanh", 0.5, 8), ("tanh", -1.2, 3), ("tanh", 0.3, 0),
                  ("relu", -0.3, 4), ("relu", 0.0, 3), ("leaky_relu", -2.0, 5), ("leaky_relu", 3.0, 7)]:
        _slope = activation_derivative(_args[0], torch.tensor([_args[1]], dtype=torch.float64)).item()
        checks.check_function("Question 4 (hidden)", slope_product, [(_args, _slope ** _args[2])], rtol=1e-4, atol=0.0)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (1 point): what happens to a dead unit's weights?
#
# A unit in the **first** hidden layer of a ReLU network is dead: $z \le 0$ on
# every training example. Training continues with plain SGD (no weight decay).
# What happens to its incoming weights? Set `q5_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** They slowly shrink toward zero, which eventually revives the unit.
# - **B.** The loss pushes them back until the unit is active again.
# - **C.** They get a gradient of exactly zero on every batch and never change.
# - **D.** They keep changing at random, because every batch is different.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "C"
### END SOLUTION

# %% mistake="q5_answer" label="believes the loss pushes dead units back to life"
q5_answer = "B"

# %% mistake="q5_answer" label="confuses a zero gradient with weight decay"
q5_answer = "A"

# %% mistake="q5_answer" label="thinks a new batch gives a new gradient"
q5_answer = "D"

# %% right="q5_answer" label="lower case"
q5_answer = "c"

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="95250e9c38624479", salt="04_q5",
    explanations={"A": "Shrinking would need weight decay, which this run does not use.",
                  "B": "To push, the loss needs a gradient, and the gradient reaches the weights through "
                       "ReLU'(z).",
                  "D": "Every batch is different, but on every one the unit's slope is the same."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="C")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (3 points): diagnose a network
#
# Write `diagnose(grad_norms, dead)` that labels a network from two measurements taken on one
# batch: `grad_norms`, the gradient norm of each hidden layer's weights (layer 1, next to the
# input, first), and `dead`, the fraction of dead units in each hidden layer (NumPy arrays of
# the same length). Return
#
# - `"dead"` if some layer has at least half of its units dead;
# - otherwise `"vanishing"` if layer 1 receives less than 1/100 of the last hidden layer's gradient norm;
# - otherwise `"healthy"`.
#
# The check uses the three networks below (6 layers each, on 512 digits); the hidden tests
# use other networks, depths and activations.

# %%
example_specs = {"A": ("sigmoid", 0.0), "B": ("relu", -0.2), "C": ("relu", 0.0)}
example_grads, example_dead = {}, {}
for label, (activation, bias) in example_specs.items():
    example_net = build_digits_net(activation, depth=6, bias=bias, seed=0)
    example_grads[label] = gradient_norms(example_net, X_digits[:512], y_digits[:512])
    example_dead[label] = unit_activity(example_net, X_digits[:512])["dead"]
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
plot_gradient_norms(example_grads, ax=ax0, title="gradient norm per layer")
for i, (label, dead) in enumerate(example_dead.items()):
    ax1.plot(np.arange(1, 7), dead, "o-", color=OKABE_ITO[i], label=label)
ax1.set(xlabel="layer (1 = next to the input)", ylabel="dead fraction", ylim=(-0.05, 1.05), title="dead units")
ax1.legend(frameon=False);

# %% nbgrader={"grade_id": "q6_diagnose", "solution": true}
def diagnose(grad_norms, dead):
    """'dead', 'vanishing' or 'healthy' from per-layer gradient norms and dead fractions."""
    ### BEGIN SOLUTION
    grad_norms, dead = np.asarray(grad_norms, dtype=np.float64), np.asarray(dead, dtype=np.float64)
    if dead.max() >= 0.5:
        return "dead"
    if grad_norms[0] < grad_norms[-1] / 100:
        return "vanishing"
    return "healthy"
    ### END SOLUTION

# %% mistake="q6_diagnose" label="checks for vanishing before dead (passes the visible check)"
def diagnose(grad_norms, dead):
    if grad_norms[0] < grad_norms[-1] / 100:
        return "vanishing"
    if max(dead) >= 0.5:
        return "dead"
    return "healthy"

# %% mistake="q6_diagnose" label="averages the dead fraction over layers"
def diagnose(grad_norms, dead):
    if np.mean(dead) >= 0.5:
        return "dead"
    if grad_norms[0] < grad_norms[-1] / 100:
        return "vanishing"
    return "healthy"

# %% mistake="q6_diagnose" label="compares the gradients the wrong way round"
def diagnose(grad_norms, dead):
    if max(dead) >= 0.5:
        return "dead"
    if grad_norms[-1] < grad_norms[0] / 100:
        return "vanishing"
    return "healthy"

# %% mistake="q6_diagnose" label="looks only at layer 1's dead fraction"
def diagnose(grad_norms, dead):
    if dead[0] >= 0.5:
        return "dead"
    if grad_norms[0] < grad_norms[-1] / 100:
        return "vanishing"
    return "healthy"

# %% right="q6_diagnose" label="a loop over layers and a ratio, with a print"
def diagnose(grad_norms, dead):
    for layer, fraction in enumerate(dead, start=1):
        if fraction >= 0.5:
            print(f"layer {layer}: {fraction:.0%} dead")
            return "dead"
    ratio = grad_norms[0] / grad_norms[-1]
    return "vanishing" if ratio < 0.01 else "healthy"

# %% nbgrader={"grade_id": "q6_diagnose_test", "grade": true, "points": 3}
checks.check_verdicts(
    "Question 6", diagnose, [((example_grads[k], example_dead[k]), v)
                             for k, v in {"A": "vanishing", "B": "dead", "C": "healthy"}.items()],
    allowed=["vanishing", "dead", "healthy"],
    # Explanations keyed to what is true of the public network the answer got wrong.
    mistakes=[(lambda g, d: "healthy" if max(d) >= 0.5 else None,
               "one layer with at least half of its units dead is enough: look at each layer on its own "
               "(not at their average, not only at layer 1)."),
              (lambda g, d: "vanishing" if max(d) >= 0.5 else None,
               "a layer with at least half of its units dead comes first: dead units also starve the layers "
               "below them of gradient."),
              (lambda g, d: "healthy" if max(d) < 0.5 and g[0] < g[-1] / 100 else None,
               "vanishing means layer 1, next to the input, gets far LESS than the last hidden layer."),
              (lambda g, d: "dead" if max(d) < 0.5 else None, "no layer of this network has half of its units dead."),
              (lambda g, d: "vanishing" if max(d) < 0.5 and g[0] >= g[-1] / 100 else None,
               "layer 1 gets at least 1/100 of the last hidden layer's gradient: nothing vanishes here.")],
    hint="Apply the rules in the order the question gives them, to every layer.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _cases = []
    for _activation, _depth, _bias, _seed, _label in [
            ("sigmoid", 9, 0.0, 2, "vanishing"), ("leaky_relu", 6, -1.0, 5, "vanishing"), ("relu", 7, -1.0, 3, "dead"),
            ("relu", 5, -0.5, 4, "dead"), ("tanh", 6, 0.0, 1, "healthy"), ("elu", 8, 0.0, 6, "healthy"),
            ("relu", 3, 0.0, 7, "healthy"), ("sigmoid", 3, 0.0, 8, "healthy")]:
        _net = build_digits_net(_activation, depth=_depth, bias=_bias, seed=_seed)
        _measured = (gradient_norms(_net, X_digits[:512], y_digits[:512]), unit_activity(_net, X_digits[:512])["dead"])
        _cases.append((_measured, _label))
    _cases += [((np.array([0.0, 0.0, 1e-4, 0.05, 0.1]), np.array([0.1, 0.6, 0.2, 0.1, 0.0])), "dead"),
               ((np.array([2e-3, 0.01, 0.1, 0.5]), np.array([0.45, 0.3, 0.2, 0.49])), "vanishing"),
               ((np.array([0.3, 0.2, 0.25]), np.array([0.0, 0.5, 0.0])), "dead"),
               ((np.array([0.02]), np.array([0.1])), "healthy")]
    checks.check_verdicts("Question 6 (hidden)", diagnose, _cases, allowed=["vanishing", "dead", "healthy"])
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - ReLU's derivative is exactly 1 on the active side, so gradients pass active
#   units unchanged; a 10-layer ReLU network learns where a 10-layer sigmoid
#   network stays at chance.
# - It is exactly 0 on the other side. A unit that is off on every example is
#   dead: its weights get no gradient. In layer 1 it never comes back, under
#   momentum, weight decay or AdamW alike; in a higher layer it can, when the
#   layers below move its input. Negative biases and large learning rates kill
#   units; deep layers die first.
# - "Dead" is measured on a batch: on a small batch, healthy units can look dead
#   by chance (question 3).
# - Leaky ReLU, ELU, GELU and SiLU keep a slope below zero, so no unit is ever
#   cut off from the gradient; the larger that slope, the faster units come back.
#
# Next: notebook 05 derives the initialization that keeps a deep ReLU network's
# signal from shrinking or growing: why He init has the 2 in $\sqrt{2/\text{fan\_in}}$.
#
# ## References
#
# - V. Nair, G. Hinton (2010). Rectified linear units improve restricted Boltzmann machines. *ICML.*
# - X. Glorot, A. Bordes, Y. Bengio (2011). Deep sparse rectifier neural networks. *AISTATS.*
# - A. Maas, A. Hannun, A. Ng (2013). Rectifier nonlinearities improve neural network acoustic models. *ICML Workshop on Deep Learning for Audio, Speech and Language Processing.*
# - K. He, X. Zhang, S. Ren, J. Sun (2015). Delving deep into rectifiers: surpassing human-level performance on ImageNet classification. *ICCV.*
# - D.-A. Clevert, T. Unterthiner, S. Hochreiter (2016). Fast and accurate deep network learning by exponential linear units (ELUs). *ICLR.*
# - D. Hendrycks, K. Gimpel (2016). Gaussian error linear units (GELUs). *arXiv:1606.08415.*
# - P. Ramachandran, B. Zoph, Q. Le (2017). Searching for activation functions. *arXiv:1710.05941.*
# - S. Elfwing, E. Uchibe, K. Doya (2018). Sigmoid-weighted linear units for neural network function approximation in reinforcement learning. *Neural Networks* 107.
# - L. Lu, Y. Shin, Y. Su, G. Karniadakis (2020). Dying ReLU and initialization: theory and numerical examples. *Communications in Computational Physics* 28(5).
# - I. Loshchilov, F. Hutter (2019). Decoupled weight decay regularization. *ICLR.*
# - A. Karpathy et al. CS231n: Convolutional Neural Networks for Visual Recognition, notes "Neural Networks Part 1" (dead ReLUs), Stanford.
