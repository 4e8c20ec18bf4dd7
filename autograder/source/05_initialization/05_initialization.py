# %% [markdown]
# # 05 · Initialization: keeping the signal alive from the first step
#
# Before a network has learned anything, its random weights already decide
# whether a signal survives 30 layers, and whether a gradient makes it back.
# Each layer multiplies the size of the activations (forward) and of the
# gradients (backward) by a factor set by the weights' variance; after $L$
# layers that factor is raised to the power $L$. Good initialization makes it 1.
# This notebook derives that factor, checks the derivation layer by layer, and
# reproduces the experiments behind the schemes everyone uses.
#
# **You will learn to**
# 1. derive how the variance of activations and gradients changes per layer
#    (fan-in, gain) and check the derivation by simulation;
# 2. explain why all-zero or constant weights cannot learn (symmetry);
# 3. measure what PyTorch's default `nn.Linear` init does to a 30-layer ReLU network;
# 4. derive Xavier/Glorot and He/Kaiming initialization and reproduce He et al.'s
#    30-layer experiment;
# 5. measure how long a deep linear network takes to learn as it gets deeper:
#    from orthogonal weights the time stops growing, from Gaussian weights it
#    does not (Saxe et al. 2014);
# 6. (advanced) find the edge of chaos of a tanh network from the mean-field
#    recursion and train on both sides of it (Schoenholz et al. 2017).
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.initialization import init_weight_
from course_lib.models import build_mlp
from course_lib.plotting import OKABE_ITO, plot_training_curves
from course_lib.seeding import get_device, set_seed
from course_lib.variance import (chi_1, critical_sigma_w2, deep_linear_learning_time, deep_linear_singular_values,
                                 default_init_shrinkage, depth_scale, fixed_point, gradient_curve, layer_statistics,
                                 random_network, symmetry_experiments, train_at_sigmas, train_deep_relus,
                                 variance_curve)
from course_lib.widgets import variance_explorer

set_seed(0)
device = get_device()
torch.set_num_threads(1)  # tiny networks: one thread is faster, and much faster on a busy CPU
print(f"torch {torch.__version__} on {device}")

# %% [markdown]
# ## 1. Variance propagation, step by step
#
# Take one layer, $z_i = \sum_{j=1}^{n_\text{in}} W_{ij} h_j + b_i$, then $h' = f(z)$.
# Assume the weights are independent, with mean 0 and variance $\operatorname{Var}(W)$,
# independent of the inputs $h_j$, and $b = 0$. Then:
#
# 1. each term has mean 0 and variance $\operatorname{Var}(W_{ij} h_j) = \mathbb E[W^2]\,\mathbb E[h^2] = \operatorname{Var}(W)\,\mathbb E[h^2]$;
# 2. the $n_\text{in}$ terms are independent, so their variances add:
#    $$\operatorname{Var}(z) = n_\text{in}\,\operatorname{Var}(W)\,\mathbb E[h^2];$$
# 3. the activation turns $\operatorname{Var}(z)$ into $\mathbb E[h'^2] = \mathbb E[f(z)^2]$.
#    For ReLU and $z$ symmetric around 0, half the values are zeroed and the
#    other half kept: $\mathbb E[\mathrm{ReLU}(z)^2] = \tfrac12 \operatorname{Var}(z)$.
#
# So through a ReLU layer, $\operatorname{Var}(z_l) = \tfrac12\, n_\text{in} \operatorname{Var}(W)\, \operatorname{Var}(z_{l-1})$.
# Write $\operatorname{Var}(W) = \sigma_w^2 / n_\text{in}$; each layer multiplies the
# variance by $\sigma_w^2/2$, and the std by $\sqrt{\sigma_w^2/2}$. Only
# $\sigma_w^2 = 2$ keeps it constant. Its square root is the **gain**:
# $\mathrm{std}(W) = \text{gain}/\sqrt{n_\text{in}}$, with gain $\sqrt 2$ for ReLU.
#
# Backward, the same steps with $W^\top$: $\partial L/\partial h_{l-1} = W_l^\top\,(f'(z_l) \odot \partial L/\partial h_l)$, so
# $\operatorname{Var}(\partial L/\partial h_{l-1}) = n_\text{out} \operatorname{Var}(W)\,\mathbb E[f'(z)^2]\,\operatorname{Var}(\partial L/\partial h_l)$,
# and $\mathbb E[\mathrm{ReLU}'(z)^2] = \tfrac12$: the same factor $\sigma_w^2/2$ when $n_\text{in} = n_\text{out}$.
#
# `course_lib.variance.variance_curve` and `gradient_curve` iterate these maps
# for any activation (expectations by Gauss-Hermite quadrature). Let's check
# them against real 30-layer, 256-unit networks with $W \sim \mathcal N(0, \sigma_w^2/n_\text{in})$,
# on 256 Gaussian inputs, measuring the std of $z_l$ and of $\partial L/\partial h_l$ at every layer.

# %% tags=["demo"]
depth, width = 30, 256
X_probe = torch.randn(256, width, generator=torch.Generator().manual_seed(0))
settings = {"ReLU, sigma_w^2 = 1": ("relu", 1.0), "ReLU, sigma_w^2 = 2 (He)": ("relu", 2.0),
            "ReLU, sigma_w^2 = 3": ("relu", 3.0), "tanh, sigma_w^2 = 1": ("tanh", 1.0)}
fig, (ax_fwd, ax_bwd) = plt.subplots(1, 2, figsize=(9.5, 3.6), layout="constrained")
layers = np.arange(1, depth + 1)
for i, (label, (activation, sigma_w2)) in enumerate(settings.items()):
    stats = layer_statistics(random_network(activation, depth=depth, width=width, sigma_w2=sigma_w2, seed=0), X_probe)
    predicted = np.sqrt(variance_curve(activation, sigma_w2=sigma_w2, depth=depth))
    predicted_grad = np.sqrt(gradient_curve(activation, sigma_w2=sigma_w2, depth=depth))
    ax_fwd.semilogy(layers, stats["pre_std"], "o", color=OKABE_ITO[i], markersize=3, label=label)
    ax_fwd.semilogy(layers, predicted, "-", color=OKABE_ITO[i], linewidth=1)
    ax_bwd.semilogy(layers, stats["grad_std"], "o", color=OKABE_ITO[i], markersize=3)
    ax_bwd.semilogy(layers, predicted_grad, "-", color=OKABE_ITO[i], linewidth=1)
    ratio, grad_ratio = stats["pre_std"] / predicted, stats["grad_std"] / predicted_grad
    print(f"{label:26s} measured/predicted std: forward {ratio.min():.2f}-{ratio.max():.2f}, "
          f"backward {grad_ratio.min():.2f}-{grad_ratio.max():.2f}")
    assert 0.4 < ratio.min() and ratio.max() < 2.5 and 0.67 < grad_ratio.min() and grad_ratio.max() < 1.5
    if activation == "relu":  # the std changes by sqrt(sigma_w^2 / 2) per layer
        per_layer = (stats["pre_std"][-1] / stats["pre_std"][0]) ** (1 / (depth - 1))
        assert abs(per_layer / math.sqrt(sigma_w2 / 2) - 1) < 0.05, (label, per_layer)
ax_fwd.set(xlabel="layer", ylabel="std of z_l (dots: measured, lines: predicted)")
ax_bwd.set(xlabel="layer", ylabel="std of dL/dh_l")
ax_fwd.legend(frameon=False, fontsize="small");

# %% [markdown]
# **What to notice:** the predictions (lines) follow the measurements (dots)
# over nine orders of magnitude. With $\sigma_w^2 = 1$ a ReLU network loses a
# factor $\sqrt 2$ per layer, $2^{-14.5}$ over 30 layers; with 3 it gains
# $1.22$ per layer; only 2 is flat, forward **and** backward. The single
# networks scatter around the prediction by up to a factor of about 2 (a
# width of 256 is not infinite), but the trend per layer is right within a
# few percent. Tanh with $\sigma_w^2 = 1$ behaves differently: its slope is
# below 1 away from 0, so its variance drifts down slowly, not geometrically.
#
# ## 2. Zero init and the symmetry problem
#
# Why not start from zero? Train a 2-layer tanh digits classifier (32 units per
# layer) from three starts: all weights 0, all weights 0.1, and He's random init
# (side by side on the same batches, in one run).

# %% tags=["demo"]
starts = {"zeros": "zeros", "constant 0.1": 0.1, "random (He)": "he"}
symmetry = symmetry_experiments(starts, activation="tanh", depth=2, width=32, seed=0)
for label, r in symmetry.items():
    print(f"{label:13s} hidden weights changed: {r['changed']}, spread between units: {r['row_spread'].round(3)}, "
          f"final loss {r['final_loss']:.3f}, accuracy {r['accuracy']:.3f}")
assert not symmetry["zeros"]["changed"].any()  # not a single hidden weight moved
assert symmetry["constant 0.1"]["changed"].all() and symmetry["constant 0.1"]["row_spread"].max() < 1e-6
assert symmetry["random (He)"]["row_spread"].min() > 0.5
assert min(symmetry["zeros"]["final_loss"], symmetry["constant 0.1"]["final_loss"]) > 2.2
assert symmetry["random (He)"]["final_loss"] < 0.2

# %% [markdown]
# **What to notice:** from zeros, the hidden weights never move: every hidden
# unit outputs $\tanh(0) = 0$, so the gradient of every weight that reads them
# is 0, and the gradient reaching the first layer passes through the zero
# weights above it. From a constant, the weights do move, but every unit of a
# layer computes the same function and receives the same gradient, so they stay
# identical: the spread between units is 0, and a layer of 32 units works like
# a layer of one. Random weights break the symmetry.
#
# ## 3. PyTorch's default `nn.Linear` init in a 30-layer ReLU network
#
# `nn.Linear` draws $W \sim U(-1/\sqrt{n_\text{in}}, 1/\sqrt{n_\text{in}})$. A uniform
# distribution on $(-a, a)$ has variance $a^2/3$, so $\operatorname{Var}(W) = 1/(3 n_\text{in})$,
# $\sigma_w^2 = 1/3$, and each ReLU layer multiplies the mean square by
# $\sigma_w^2/2 = 1/6$. After 30 layers the rms of the activations should be
# $6^{-15} \approx 2 \times 10^{-12}$ of the input's. First, our `"default"`
# scheme against `nn.Linear` itself, then the measurement (biases set to 0 to
# isolate the weights, then with PyTorch's default biases).

# %% tags=["demo"]
linear = torch.nn.Linear(512, 512)
print(f"nn.Linear(512, 512): weight std {linear.weight.std().item():.5f}, 1/sqrt(3 * 512) = {1 / math.sqrt(1536):.5f}")
assert abs(linear.weight.std().item() * math.sqrt(1536) - 1) < 0.02
assert linear.weight.abs().max().item() <= 1 / math.sqrt(512)

shrink = default_init_shrinkage(depth=30, width=64, seed=0)
with_bias = default_init_shrinkage(depth=30, width=64, biases=True, seed=0)
ratio = shrink["rms"][-1] / shrink["rms_in"]
print(f"rms after 30 layers / input rms: {ratio:.2e}   (predicted 6^-15 = {6**-15:.2e})")
print(f"with default biases: rms {with_bias['rms'][-1]:.3f}, but the part that depends on the input: "
      f"{with_bias['input_std'][-1] / with_bias['input_std_in']:.1e} of the input's")
assert 3e-13 < ratio < 3e-12  # about 1e-12: within a factor of 3 (5e-13 to 1.3e-12 on seeds 0-4)
assert with_bias["rms"][-1] > 0.01
assert 5e-10 < with_bias["input_std"][-1] / with_bias["input_std_in"] < 2e-9  # about 1e-9: float32 rounding

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.semilogy(np.arange(1, 31), shrink["rms"], "o-", markersize=3, color=OKABE_ITO[0], label="rms, biases 0")
ax.semilogy(np.arange(1, 31), 6.0 ** (-np.arange(1, 31) / 2), "--", color="black", label="6^(-l/2)")
ax.semilogy(np.arange(1, 31), with_bias["input_std"], "o-", markersize=3, color=OKABE_ITO[1],
            label="default biases: std across inputs")
ax.set(xlabel="layer", ylabel="size of the activations")
ax.legend(frameon=False);

# %% [markdown]
# **What to notice:** twelve orders of magnitude in 30 layers, as predicted: the
# measured ratio is about $10^{-12}$ (a little below $6^{-15}$; a width of 64 is not
# infinite, and 30 layers multiply its fluctuations).
# PyTorch's biases keep the activations from reaching zero, but they do so by
# replacing the signal: the part of layer 30 that depends on the input has
# fallen to float32 rounding, about $10^{-9}$ of the input's spread (the orange
# curve flattens there), so every input gives the same output. Such a network
# cannot tell its inputs apart. (For
# the shallow networks most people train, this init is fine; it was chosen for
# them, not for 30 ReLU layers.)
#
# ## 4. Xavier/Glorot and He/Kaiming initialization
#
# **Glorot & Bengio (2010)** asked for both the forward and the backward variance
# to be preserved by units that are linear around 0 (tanh, sigmoid after
# centering): $n_\text{in}\operatorname{Var}(W) = 1$ and $n_\text{out}\operatorname{Var}(W) = 1$.
# Both cannot hold when $n_\text{in} \neq n_\text{out}$; the compromise is
# $$\operatorname{Var}(W) = \frac{2}{n_\text{in} + n_\text{out}}, \qquad W \sim U\!\left(-\sqrt{\tfrac{6}{n_\text{in}+n_\text{out}}}, \sqrt{\tfrac{6}{n_\text{in}+n_\text{out}}}\right).$$
# **He, Zhang, Ren & Sun (2015)** redid the derivation for ReLU, which halves the
# mean square (section 1): $\tfrac12 n_\text{in}\operatorname{Var}(W) = 1$, so
# $$\operatorname{Var}(W) = \frac{2}{n_\text{in}}, \qquad W \sim \mathcal N\!\left(0, \tfrac{2}{n_\text{in}}\right).$$
# `course_lib.initialization` writes each scheme out; here they are next to
# `torch.nn.init` on a $256 \times 512$ weight (fan-out 256, fan-in 512).

# %% tags=["demo"]
ours_vs_torch = {"xavier": torch.nn.init.xavier_uniform_, "xavier_normal": torch.nn.init.xavier_normal_,
                 "he": lambda t: torch.nn.init.kaiming_normal_(t, nonlinearity="relu"),
                 "he_uniform": lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu")}
formula = {"xavier": math.sqrt(2 / (512 + 256)), "xavier_normal": math.sqrt(2 / (512 + 256)),
           "he": math.sqrt(2 / 512), "he_uniform": math.sqrt(2 / 512)}
for scheme, torch_init in ours_vs_torch.items():
    ours = init_weight_(torch.empty(256, 512), scheme, gain=None if scheme.startswith("he") else 1.0,
                        generator=torch.Generator().manual_seed(1)).std().item()
    theirs = torch_init(torch.empty(256, 512)).std().item()
    print(f"{scheme:14s} course_lib {ours:.5f}   torch.nn.init {theirs:.5f}   formula {formula[scheme]:.5f}")
    assert abs(ours / formula[scheme] - 1) < 0.01 and abs(theirs / formula[scheme] - 1) < 0.01

# %% [markdown]
# ### He et al.'s experiment: 30 ReLU layers, Xavier against He (E3)
#
# He et al. (2015, Fig. 3) trained a 30-layer ReLU network: with Xavier init it
# did not learn at all, with theirs it did. Our version: 30 layers of 64 ReLUs
# on the digits, SGD with momentum 0.9, lr 0.01, gradients clipped to norm 1,
# batch 128, 300 steps (the two side by side on the same batches, each clipped on its
# own). Xavier's variance $2/(64+64) = 1/64$ is $\sigma_w^2 = 1$:
# by section 1 the activations should shrink by $\sqrt 2$ per layer, $2^{-14.5}$
# from layer 1 to layer 30.

# %% tags=["demo"]
e3 = train_deep_relus(["xavier", "he"], depth=30, width=64, lr=0.01, momentum=0.9, clip=1.0, num_steps=300, seed=0)
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(9.5, 3.4), layout="constrained")
for i, (init, r) in enumerate(e3.items()):
    ax0.semilogy(np.arange(1, 31), r["act_std"], "o-", markersize=3, color=OKABE_ITO[i], label=init)
    print(f"{init:6s}: activation std layer 30 / layer 1 = {r['std_ratio']:.1e}; final loss {r['final_loss']:.3f}, "
          f"accuracy {r['accuracy']:.3f}")
ax0.set(xlabel="layer", ylabel="activation std at init (all digits)")
ax0.legend(frameon=False)
plot_training_curves({k: r["loss"] for k, r in e3.items()}, ax=ax1, smooth=10)
assert 1.5e-5 < e3["xavier"]["std_ratio"] < 6e-5  # about 2^-15 = 3e-5
assert 0.25 < e3["he"]["std_ratio"] < 4
assert e3["xavier"]["final_loss"] > 2.2 and e3["he"]["final_loss"] < 0.8

# %% [markdown]
# **What to notice:** with Xavier init the activations at layer 30 are about
# $2^{-15} \approx 3 \times 10^{-5}$ of layer 1's (other seeds give $10^{-5}$ to
# $5 \times 10^{-5}$: each of the 30 layers of 64 units adds a little noise), and
# the loss never leaves $\ln 10 \approx 2.30$; with He init the std at layer 30 is
# within a factor of 4 of layer 1's and the loss falls. Same data, same optimizer, same architecture: only the
# factor $\sqrt 2$ in the weights differs. Xavier init is right for tanh; for
# ReLU use He.
#
# ## 5. Orthogonal initialization (E4)
#
# Matching variances only fixes the *average* gain. A product of random
# Gaussian matrices stretches some directions and crushes others, more so the
# deeper it is (notebook 01). An orthogonal matrix ($W^\top W = I$) preserves
# every length, so a deep *linear* network made of them has an input-output
# Jacobian whose singular values are all exactly 1, at any depth ("dynamical
# isometry"; that holds by construction). Here is what the Gaussian product does
# instead: the Jacobian's singular values for networks 10, 30 and 100 layers
# deep, width 100, float64, with weights $\mathcal N(0, 1/n)$ (the same variance).

# %% tags=["demo"]
fig, (ax, ax_time) = plt.subplots(1, 2, figsize=(10, 3.6), layout="constrained")
for i, depth_e4 in enumerate((10, 30, 100)):
    s_gauss = deep_linear_singular_values("lecun", depth=depth_e4, width=100, seed=0)
    ax.semilogy(np.arange(1, 101), s_gauss, color=OKABE_ITO[i], label=f"Gaussian, depth {depth_e4}")
    print(f"depth {depth_e4:3d}: Gaussian largest singular value {s_gauss.max():.1f}, median {np.median(s_gauss):.1e}")
    assert s_gauss.max() > 3 and np.median(s_gauss) < 0.1
ax.axhline(1.0, color="black", linestyle="--", label="orthogonal, every depth")
ax.set(xlabel="singular value index (largest first)", ylabel="singular value of the Jacobian")
ax.legend(frameon=False, fontsize="small")

# Saxe et al.: steps to learn a random linear map, against depth (full-batch GD, lr 2/depth)
depths = (1, 2, 4, 8, 16, 32)
e4 = deep_linear_learning_time(("orthogonal", "lecun"), depths, width=16, max_steps=400, seeds=(0, 1, 2))
for i, (init, label) in enumerate([("orthogonal", "orthogonal"), ("lecun", "Gaussian N(0, 1/n)")]):
    shown = np.where(np.isinf(e4[init]), 400, e4[init])  # not reached in 400 steps: drawn at 400
    ax_time.plot(depths, np.median(shown, axis=0), "o-", color=OKABE_ITO[i], label=label)
    print(f"{label:19s} steps to 5% of the loss, depth {depths}:", np.median(e4[init], axis=0))
ax_time.axhline(400, color="gray", linewidth=0.8, linestyle=":")
ax_time.set(xscale="log", yscale="log", xlabel="depth", ylabel="steps to reach 5% of the loss",
            title="deep linear networks (median of 3 seeds)")
ax_time.set_xticks(depths, [str(d) for d in depths])
ax_time.legend(frameon=False, fontsize="small")
orth, gauss = e4["orthogonal"], e4["lecun"]
assert np.median(orth[:, depths.index(32)]) < 2 * np.median(orth[:, depths.index(8)])  # depth x4, steps < x2
assert (gauss[:, depths.index(8)] > 3 * orth[:, depths.index(8)]).all()  # Gaussian: 3x slower at depth 8 ...
assert np.isinf(gauss[:, [depths.index(16), depths.index(32)]]).all()  # ... and not there in 400 steps at 16, 32
assert 50 < np.median(orth[:, depths.index(32)]) < 200  # about 100 steps at depth 32

# %% [markdown]
# **What to notice:** the Gaussian network's singular values spread over many
# decades (the floor near $10^{-16}$ is float64 rounding): a gradient along the
# largest direction is amplified several times while most directions are
# crushed, although the average variance is right.
#
# What that does to learning is the point of Saxe, McClelland & Ganguli (2014).
# Right panel: deep linear networks of width 16 learn a random linear map from 16
# orthonormal (whitened) inputs by full-batch gradient descent, with the learning
# rate scaled as $2/\text{depth}$ so that the end-to-end map moves at the same speed
# at every depth; we count the steps until the loss is 5% of where it started.
# From orthogonal weights the count grows from depth 1 to about 8 and then **nearly
# stops growing**: at depth 32 (about 100 steps) it is less than twice depth 8's,
# while the depth grew four times.
# From Gaussian weights it keeps growing: more than 3 times the orthogonal count at
# depth 8, and at depths 16 and 32 not reached in 400 steps. Saxe et al. derived
# this: with orthogonal initial weights, very deep linear networks learn with only a
# finite, depth-independent delay relative to shallow ones, which scaled Gaussian
# weights cannot give. Orthogonal init (`init="orthogonal"`) is cheap and common
# for recurrent and very deep networks.
#
# ## 6. Advanced: the edge of chaos (E11)
#
# For tanh, section 1's map has a fixed point. With biases $b \sim \mathcal N(0, \sigma_b^2)$,
# $$q_l = \sigma_w^2\, \mathbb E_{z \sim \mathcal N(0, q_{l-1})}\!\left[\tanh(z)^2\right] + \sigma_b^2 \;\longrightarrow\; q^*,$$
# and at that fixed point each layer multiplies the gradient variance by
# $$\chi_1 = \sigma_w^2\, \mathbb E_{z \sim \mathcal N(0, q^*)}\!\left[\tanh'(z)^2\right].$$
# Schoenholz, Gilmer, Ganguli & Sohl-Dickstein (2017), after Poole et al. (2016),
# showed that $\chi_1 < 1$ is an **ordered** phase (gradients vanish like
# $\chi_1^L$, different inputs converge to the same representation) and
# $\chi_1 > 1$ a **chaotic** one (gradients explode, nearby inputs are torn
# apart). At $\chi_1 = 1$, the edge of chaos, signals travel through very deep
# networks. The gradient variance changes by a factor $e$ every $\xi = -1/\ln\chi_1$ layers.

# %% tags=["demo"]
sigma_b2 = 0.05
critical = critical_sigma_w2("tanh", sigma_b2=sigma_b2)
grid = np.linspace(0.5, 4.0, 36)
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.plot(grid, [chi_1("tanh", sigma_w2=s, sigma_b2=sigma_b2) for s in grid], color=OKABE_ITO[2])
ax.axhline(1, color="black", linewidth=0.8)
ax.axvline(critical, color=OKABE_ITO[3], linestyle="--", label=f"critical sigma_w^2 = {critical:.3f}")
ax.set(xlabel="sigma_w^2", ylabel="chi_1", title="tanh, sigma_b^2 = 0.05")
ax.legend(frameon=False)
for s in (1.0, critical, 4.0):
    scale = "diverges" if s == critical else f"{abs(depth_scale('tanh', sigma_w2=s, sigma_b2=sigma_b2)):.1f} layers"
    print(f"sigma_w^2 = {s:.3f}: q* = {fixed_point('tanh', sigma_w2=s, sigma_b2=sigma_b2):.3f}, "
          f"chi_1 = {chi_1('tanh', sigma_w2=s, sigma_b2=sigma_b2):.4f}, depth scale {scale}")
assert abs(critical - 1.76) < 0.01
assert all(3 < abs(depth_scale("tanh", sigma_w2=s, sigma_b2=sigma_b2)) < 4 for s in (1.0, 4.0))
assert abs(chi_1("tanh", sigma_w2=critical, sigma_b2=sigma_b2) - 1) < 1e-6

# %% [markdown]
# The critical value is $\sigma_w^2 \approx 1.76$ for $\sigma_b^2 = 0.05$. At
# $\sigma_w^2 = 1$ and $4$ the depth scale is only 3 to 4 layers: a 40-layer
# network is more than ten depth scales deep. Now train 40-layer, 48-unit tanh
# networks on the digits at the three settings (SGD with momentum 0.9, lr 0.003,
# batch 128, 300 steps; the three side by side on the same batches).

# %% tags=["demo"]
phases = {"ordered (1.0)": 1.0, f"critical ({critical:.2f})": critical, "chaotic (4.0)": 4.0}
e11 = dict(zip(phases, train_at_sigmas(list(phases.values()), sigma_b2=sigma_b2, depth=40, width=48, lr=0.003,
                                        momentum=0.9, num_steps=300, seed=0)))
ax = plot_training_curves({label: r["loss"] for label, r in e11.items()}, smooth=10)
ax.set_title("40-layer tanh networks")
for label, r in e11.items():
    print(f"{label:17s} final loss {r['final_loss']:.3f}, accuracy {r['accuracy']:.3f}")
ordered, at_edge, chaotic = (r["final_loss"] for r in e11.values())
assert at_edge < 0.3 and ordered > 2.2 and chaotic > 2.2  # ln 10 = 2.30

# %% [markdown]
# **What to notice:** only the critical network learns in 300 steps (its loss
# falls below 0.3). The ordered one stays near $\ln 10$ (its first layers get
# $\chi_1^{40}$ of the gradient variance, about $10^{-5}$); so does the chaotic
# one: nearby inputs get unrelated outputs, and its gradients blow up toward the
# input.
# The initialization alone decides. Schoenholz et al. found that networks
# train up to about six times their correlation depth scale (quoted; in the
# ordered phase that scale is our $\xi$), and that scale diverges at the
# critical point.
#
# ## 7. Explore: $\sigma_w^2$ and depth
#
# The explorer builds a random network (width 128, $\sigma_b^2 = 0.05$) for the
# activation, $\sigma_w^2$ and depth you choose, and plots the measured std of
# $z_l$ and of $\partial L/\partial h_l$ per layer next to the mean-field
# prediction; the right panel marks where you are on the $\chi_1$ curve and the
# critical value. Try tanh at 1.0, 1.76 and 4.0 with depth 60; then ReLU at 2.

# %% tags=["demo"]
explorer = variance_explorer(activation="tanh", sigma_w2=1.0, depth=30)
assert explorer.last["phase"] == "ordered" and explorer.last["ratio"] < 0.1
assert explorer.update(sigma_w2=4.0)["phase"] == "chaotic" and explorer.last["ratio"] > 10
assert abs(explorer.update(sigma_w2=1.75)["chi_1"] - 1) < 0.02
explorer.update(sigma_w2=1.0)
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks tell you what is wrong; hidden
# tests with other inputs decide the grade.
#
# ### Question 1 (3 points): He std for a layer
#
# Write `he_std(weight_shape)`: the standard deviation of He (Kaiming) normal
# initialization for a ReLU layer whose weight has shape `weight_shape` (a tuple
# or list of ints), laid out as PyTorch does: `(fan_out, fan_in)` for a linear
# layer, `(out_channels, in_channels, *kernel_size)` for a convolution of any
# dimension (1-D, 2-D, 3-D), where each output sums over `in_channels` times
# every kernel dimension. Return a float. Checked with relative tolerance 1e-6;
# the hidden tests use other shapes.

# %% nbgrader={"grade_id": "q1_he_std", "solution": true}
def he_std(weight_shape):
    """The std of He normal initialization for a ReLU layer with this weight shape (He et al. 2015)."""
    ### BEGIN SOLUTION
    fan_in = math.prod(weight_shape[1:])
    return math.sqrt(2.0 / fan_in)
    ### END SOLUTION

# %% mistake="q1_he_std" label="uses fan_out (shape[0]) instead of fan_in"
def he_std(weight_shape):
    return math.sqrt(2.0 / weight_shape[0])

# %% mistake="q1_he_std" label="LeCun's 1/fan_in: forgets that ReLU halves the mean square"
def he_std(weight_shape):
    return math.sqrt(1.0 / math.prod(weight_shape[1:]))

# %% mistake="q1_he_std" label="counts the kernel only for 2-D convolutions"
def he_std(weight_shape):
    if len(weight_shape) == 4:
        fan_in = weight_shape[1] * weight_shape[2] * weight_shape[3]
    else:
        fan_in = weight_shape[1]
    return math.sqrt(2.0 / fan_in)

# %% mistake="q1_he_std" label="returns the variance 2/fan_in, not its square root"
def he_std(weight_shape):
    return 2.0 / math.prod(weight_shape[1:])

# %% right="q1_he_std" label="course_lib's fan-in and gain on an empty tensor"
from course_lib.initialization import calculate_gain, fan_in_and_fan_out


def he_std(weight_shape):
    fan_in, _ = fan_in_and_fan_out(torch.empty(*weight_shape))
    return calculate_gain("relu") / math.sqrt(fan_in)

# %% right="q1_he_std" label="a loop over the dimensions, NumPy float"
def he_std(weight_shape):
    fan_in = 1
    for size in list(weight_shape)[1:]:
        fan_in *= int(size)
    print("fan_in =", fan_in)
    return np.sqrt(2.0 / fan_in)

# %% nbgrader={"grade_id": "q1_he_std_test", "grade": true, "points": 3}
# Public shapes: a linear layer and a 3x3 convolution (expected values computed in advance).
checks.check_function(
    "Question 1", he_std, [(((300, 600),), 0.05773502691896258)], rtol=1e-6,
    mistakes=[(lambda s: 0.08164965809277261, "you used fan_out = 300. The forward variance sums over the "
                                               "INPUTS of each unit: which dimension counts them?"),
              (lambda s: 0.0033333333333333335, "that looks like a variance; the question asks for a std."),
              (lambda s: 0.040824829046386304, "that keeps the variance for a linear unit (LeCun); ReLU zeroes "
                                               "half of its inputs, so the variance must make up for it.")],
    hint="Var(z) = fan_in * Var(W) * E[h^2], and a ReLU layer halves the mean square: which Var(W) keeps "
         "Var(z) constant?")
checks.check_function(
    "Question 1", he_std, [(((64, 32, 3, 3),), 0.08333333333333333)], rtol=1e-6,
    mistakes=[(lambda s: 0.25, "you counted the 32 input channels only; each output of a convolution also "
                               "sums over every position of its kernel."),
              (lambda s: 0.1767766952966369, "you used the 64 output channels. Count the inputs of one output.")],
    hint="For a convolution, fan_in is the number of input values one output sums over.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _shape in [(10, 20), (7, 1), (1, 50), (8, 3, 5, 5), (16, 4, 3), (2, 3, 2, 5, 7), (5, 5), [12, 48]]:
        checks.check_function("Question 1 (hidden)", he_std, [((_shape,), math.sqrt(2 / math.prod(_shape[1:])))],
                              rtol=1e-6)
        _value = he_std(_shape)
        assert isinstance(_value, (int, float, np.floating)) and not isinstance(_value, bool), \
            f"Question 1: return a float, got {type(_value).__name__}"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): predict the activations after many layers
#
# A network of `depth` layers, $h_l = f(W_l h_{l-1})$, all layers of the same
# (large) width $n$, biases 0, weights $W \sim \mathcal N(0, \sigma_w^2/n)$,
# inputs $\mathcal N(0, 1)$ (root mean square 1). The activation is a Leaky
# ReLU with negative slope $a$: $f(z) = z$ for $z > 0$, $a z$ otherwise
# ($a = 0$ is ReLU, $a = 1$ is linear). Work out $\mathbb E[f(z)^2]$ for
# $z \sim \mathcal N(0, q)$ (half of the mass on each side), then write
# `predict_rms(depth, sigma_w2, slope)`: the root mean square
# $\sqrt{\mathbb E[h_\text{depth}^2]}$ of the last layer's outputs (after the
# activation) that section 1's variance propagation predicts. Graded against
# that prediction on settings you do not see, with relative tolerance 1e-6: derive
# it, do not simulate.

# %% nbgrader={"grade_id": "q2_predict_rms", "solution": true}
def predict_rms(depth, sigma_w2, slope):
    """Predicted sqrt(E[h_depth^2]) of a Leaky ReLU network from section 1's variance propagation."""
    ### BEGIN SOLUTION
    per_layer = sigma_w2 * (1 + slope**2) / 2  # E[h_l^2] / E[h_{l-1}^2]
    return math.sqrt(per_layer**depth)
    ### END SOLUTION

# %% mistake="q2_predict_rms" label="gives the mean square instead of its root"
def predict_rms(depth, sigma_w2, slope):
    return (sigma_w2 * (1 + slope**2) / 2) ** depth

# %% mistake="q2_predict_rms" label="ignores the negative side: keeps ReLU's 1/2 for every slope"
def predict_rms(depth, sigma_w2, slope):
    return math.sqrt((sigma_w2 / 2) ** depth)

# %% mistake="q2_predict_rms" label="the negative side keeps a q/2 instead of a^2 q/2"
def predict_rms(depth, sigma_w2, slope):
    return math.sqrt((sigma_w2 * (1 + slope) / 2) ** depth)

# %% mistake="q2_predict_rms" label="counts depth - 1 layers (the first layer does not halve)"
def predict_rms(depth, sigma_w2, slope):
    return math.sqrt(sigma_w2 * (sigma_w2 * (1 + slope**2) / 2) ** (depth - 1))

# %% right="q2_predict_rms" label="iterates the mean square layer by layer"
def predict_rms(depth, sigma_w2, slope):
    mean_square = 1.0
    for _ in range(depth):
        q = sigma_w2 * mean_square            # Var(z) = n * Var(W) * E[h^2]
        mean_square = 0.5 * q + 0.5 * slope**2 * q
    return mean_square**0.5

# %% right="q2_predict_rms" label="E[f(z)^2] by Gauss-Hermite quadrature, and torch's leaky_relu gain"
def predict_rms(depth, sigma_w2, slope):
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    f = np.where(nodes > 0, nodes, slope * nodes)
    second_moment = float((weights * f**2).sum() / weights.sum())   # E[f(z)^2] for z ~ N(0, 1)
    gain = torch.nn.init.calculate_gain("leaky_relu", slope)
    assert abs(second_moment - 1 / gain**2) < 1e-9
    return float(np.sqrt(sigma_w2 * second_moment) ** depth)

# %% nbgrader={"grade_id": "q2_predict_rms_test", "grade": true, "points": 3}
# Public setting: 20 ReLU layers with sigma_w^2 = 1 (gain 1, as LeCun, or Xavier for square layers).
checks.check_function(
    "Question 2", predict_rms, [((20, 1.0, 0.0), 0.0009765625)], rtol=1e-6,
    mistakes=[(lambda *a: 9.5367431640625e-07, "that is the mean square E[h^2]; the question asks for its "
                                               "root."),
              (lambda *a: 1.0, "with sigma_w^2 = 1 the variance is not preserved: what does ReLU do to the "
                               "mean square at each layer?"),
              (lambda *a: 0.0013810679320049757, "count again: 20 layers, each with its own activation."),
              (lambda *a: 0.02, "the factors of the layers multiply: raise the per-layer factor to a power.")],
    hint="Per layer: Var(z) = n * Var(W) * E[h^2] = sigma_w^2 * E[h^2], then the activation turns Var(z) into "
         "E[f(z)^2]. Try depth 1 by hand first.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _depth, _sigma_w2, _slope in [(1, 2.0, 0.0), (30, 2.0, 0), (5, 1.0, 0.2), (12, 3.0, 0.01), (7, 0.5, 1.0),
                                      (3, 2 / 1.04, 0.2), (50, 1.9, 0.1), (4, 1.5, 0.5)]:
        checks.check_function("Question 2 (hidden)", predict_rms, [((_depth, _sigma_w2, _slope),
                              (_sigma_w2 * (1 + _slope**2) / 2) ** (_depth / 2))], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (3 points): which init is it?
#
# Write `identify_init(act_std)`. Its input is the std of the activations at
# layers 1, 2, ..., L (layer 1 first) of a deep ReLU network: L square hidden
# layers of some width $n$, biases 0, random inputs of some scale, weights from
# one of three schemes. Return which: `"default"` (PyTorch's
# $U(-1/\sqrt{n}, 1/\sqrt{n})$), `"xavier"` (Xavier/Glorot uniform, gain 1) or
# `"he"` (He normal). The three public examples below are 30 layers of 64 units
# on $\mathcal N(0, 1)$ inputs; the hidden networks have other depths (6 to 60),
# widths, input scales and seeds.

# %%
example_std = {}
X_gauss = torch.randn(512, 64, generator=torch.Generator().manual_seed(5))
for scheme in ("default", "xavier", "he"):
    example_net = build_mlp(30, 64, activation="relu", init=scheme, gain=1.0 if scheme == "xavier" else None,
                            seed=11)
    with torch.no_grad():
        for block in example_net.blocks:
            block.linear.bias.zero_()
    example_std[scheme] = layer_statistics(example_net, X_gauss)["act_std"]
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (scheme, stds) in enumerate(example_std.items()):
    ax.semilogy(np.arange(1, 31), stds, "o-", markersize=3, color=OKABE_ITO[i], label=scheme)
ax.set(xlabel="layer", ylabel="activation std")
ax.legend(frameon=False);

# %% nbgrader={"grade_id": "q3_identify_init", "solution": true}
def identify_init(act_std):
    """'default', 'xavier' or 'he': the init of a deep ReLU net, from its activation std per layer."""
    ### BEGIN SOLUTION
    act_std = np.asarray(act_std, dtype=np.float64)
    # the std changes by the same factor at every layer: sqrt(sigma_w^2 / 2)
    per_layer = (act_std[-1] / act_std[0]) ** (1 / (len(act_std) - 1))
    predicted = {"default": math.sqrt(1 / 6), "xavier": math.sqrt(1 / 2), "he": 1.0}
    return min(predicted, key=lambda scheme: abs(math.log(per_layer / predicted[scheme])))
    ### END SOLUTION

# %% mistake="q3_identify_init" label="thresholds the ratio of the last to the first layer, tuned to 30 layers"
def identify_init(act_std):
    ratio = act_std[-1] / act_std[0]
    if ratio < 1e-8:
        return "default"
    if ratio < 1e-2:
        return "xavier"
    return "he"

# %% mistake="q3_identify_init" label="thresholds the last layer's std, whatever the input scale"
def identify_init(act_std):
    if act_std[-1] < 1e-8:
        return "default"
    if act_std[-1] < 1e-2:
        return "xavier"
    return "he"

# %% mistake="q3_identify_init" label="thinks Xavier shrinks faster than PyTorch's default"
def identify_init(act_std):
    per_layer = (act_std[-1] / act_std[0]) ** (1 / (len(act_std) - 1))
    if per_layer > 0.85:
        return "he"
    return "xavier" if per_layer < 0.55 else "default"

# %% right="q3_identify_init" label="fits a line to log(std) against the layer"
def identify_init(act_std):
    layers = np.arange(len(act_std))
    slope = np.polyfit(layers, np.log(np.asarray(act_std, dtype=float)), 1)[0]
    rates = {"default": -0.5 * np.log(6), "xavier": -0.5 * np.log(2), "he": 0.0}
    return min(rates, key=lambda k: abs(rates[k] - slope))

# %% right="q3_identify_init" label="median of the layer-to-layer ratios, as a list comprehension"
def identify_init(act_std):
    ratios = [b / a for a, b in zip(list(act_std)[:-1], list(act_std)[1:])]
    rate = float(np.median(ratios))
    if rate < math.sqrt(math.sqrt(1 / 6) * math.sqrt(1 / 2)):
        return "default"
    return "xavier" if rate < math.sqrt(math.sqrt(1 / 2)) else "he"

# %% nbgrader={"grade_id": "q3_identify_init_test", "grade": true, "points": 3}
checks.check_verdicts(
    "Question 3", identify_init, [((example_std[scheme],), scheme) for scheme in ("he", "default", "xavier")],
    allowed=("default", "xavier", "he"),
    hint="How much does the std change from one layer to the next with each scheme? Section 1 gives the factor "
         "sqrt(sigma_w^2 / 2) per ReLU layer; work out sigma_w^2 = n Var(W) for each scheme.")
### BEGIN HIDDEN TESTS
def _hidden_init_std(scheme, depth, width, scale, seed):
    net = build_mlp(depth, width, activation="relu", init=scheme, gain=1.0 if scheme == "xavier" else None,
                    seed=seed)
    with torch.no_grad():
        for block in net.blocks:
            block.linear.bias.zero_()
    return layer_statistics(net, scale * torch.randn(256, width, generator=torch.Generator().manual_seed(seed)))[
        "act_std"]


with checks.quiet():
    for _scheme, _depth, _width, _scale, _seed in [
            ("he", 6, 100, 1e-3, 101), ("default", 6, 48, 1.0, 102), ("xavier", 7, 128, 30.0, 103),
            ("default", 60, 40, 1e3, 104), ("xavier", 60, 32, 1e-2, 105), ("he", 45, 48, 1e2, 106),
            ("xavier", 12, 80, 1.0, 107), ("he", 20, 32, 1.0, 108), ("default", 15, 96, 1e-3, 109)]:
        checks.check_verdicts("Question 3 (hidden)", identify_init,
                              [((_hidden_init_std(_scheme, _depth, _width, _scale, _seed),), _scheme)],
                              allowed=("default", "xavier", "he"))
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (1 point): which phase?
#
# A 40-layer tanh network is initialized with $\sigma_w^2 = 4$, $\sigma_b^2 = 0.05$
# ($\chi_1 \approx 1.34$). What happens at initialization? Set `q4_answer` to
# `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** The gradient shrinks toward the input; all inputs collapse to one representation.
# - **B.** The activations shrink to zero layer after layer, as with PyTorch's default init.
# - **C.** The gradient grows toward the input; close inputs get far-apart representations.
# - **D.** Nothing goes wrong: tanh is bounded, so no gradient can grow or shrink by much.

# %% nbgrader={"grade_id": "q4_answer", "solution": true}
### BEGIN SOLUTION
q4_answer = "C"
### END SOLUTION

# %% mistake="q4_answer" label="describes the ordered phase"
q4_answer = "A"

# %% mistake="q4_answer" label="thinks a bounded activation keeps gradients bounded"
q4_answer = "D"

# %% mistake="q4_answer" label="confuses the chaotic phase with vanishing activations"
q4_answer = "B"

# %% right="q4_answer" label="lower case with spaces"
q4_answer = " c "

# %% nbgrader={"grade_id": "q4_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 4", q4_answer, "ABCD", expected_digest="f80bc7e12e1fa027", salt="05_q4",
    explanations={"A": "chi_1 tells how each layer scales the gradient variance. Which side of 1 is 1.34 on?",
                  "B": "Look at the fixed point q* of the variance map at sigma_w^2 = 4: do the activations "
                       "shrink?",
                  "D": "Bounded activations, yes; but the gradient is a product of sigma_w * tanh' factors. What "
                       "does chi_1 say about that product?"})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 4 (hidden)", q4_answer, "ABCD", expected="C")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (3 points): orthogonal initialization
#
# Write `orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0)`: a float tensor
# of shape `(fan_out, fan_in)` equal to `gain` times a random matrix with
# orthonormal rows (when `fan_out <= fan_in`) or orthonormal columns
# (otherwise). Use the QR decomposition of a Gaussian matrix:
# `torch.linalg.qr(A)` returns `Q, R` with `Q` having orthonormal columns; draw
# `A` with `torch.randn(..., generator=torch.Generator().manual_seed(seed))`, so
# that the same seed gives the same matrix and different seeds different ones.
# The hidden tests use other shapes (including a single row or column), gains
# and seeds.

# %% nbgrader={"grade_id": "q5_orthogonal", "solution": true}
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    """gain * Q with orthonormal rows or columns, from the QR decomposition of a Gaussian matrix."""
    ### BEGIN SOLUTION
    generator = torch.Generator().manual_seed(seed)
    rows, cols = max(fan_out, fan_in), min(fan_out, fan_in)
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # fold in R's signs: uniformly distributed Q
    if fan_out < fan_in:
        q = q.T
    return (gain * q).float()
    ### END SOLUTION

# %% mistake="q5_orthogonal" label="a Gaussian matrix with the right variance instead of an orthogonal one"
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return gain * torch.randn(fan_out, fan_in, generator=generator) / math.sqrt(fan_in)

# %% mistake="q5_orthogonal" label="takes the QR of a (fan_out, fan_in) matrix whatever its shape"
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(fan_out, fan_in, generator=generator))
    return gain * q

# %% mistake="q5_orthogonal" label="scales by gain squared"
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(max(fan_out, fan_in), min(fan_out, fan_in), generator=generator))
    return gain**2 * (q.T if fan_out < fan_in else q)

# %% mistake="q5_orthogonal" label="ignores the seed: draws from the global random generator"
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    q, _ = torch.linalg.qr(torch.randn(max(fan_out, fan_in), min(fan_out, fan_in)))
    return gain * (q.T if fan_out < fan_in else q)

# %% right="q5_orthogonal" label="torch.nn.init.orthogonal_ with a seeded generator"
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    weight = torch.empty(fan_out, fan_in)
    return torch.nn.init.orthogonal_(weight, gain=gain, generator=torch.Generator().manual_seed(seed))

# %% right="q5_orthogonal" label="U V^T of an SVD (the polar factor), in NumPy"
def orthogonal_weight(fan_out, fan_in, gain=1.0, seed=0):
    A = torch.randn(fan_out, fan_in, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    U, _, Vt = np.linalg.svd(A, full_matrices=False)
    return torch.from_numpy(gain * U @ Vt).float()

# %% nbgrader={"grade_id": "q5_orthogonal_test", "grade": true, "points": 3}
for _shape, _gain in [((5, 5), 1.0), ((4, 6), 1.0), ((6, 4), 1.0), ((3, 3), 2.0)]:
    try:
        _W = orthogonal_weight(*_shape, gain=_gain, seed=1)
    except NotImplementedError:
        raise checks.CheckFailed("Question 5: not yet right.\n  the function still raises NotImplementedError: "
                                 "write your code in its body.") from None
    if not isinstance(_W, torch.Tensor):
        raise checks.CheckFailed(f"Question 5: return a torch tensor, got {type(_W).__name__}.")
    if tuple(_W.shape) != _shape:
        raise checks.CheckFailed(
            f"Question 5: for fan_out, fan_in = {_shape} expected shape {_shape}, got {tuple(_W.shape)}. For a "
            "wide matrix, orthonormalize the columns of a tall one and transpose.")
    _W = _W.double()
    _gram = _W @ _W.T if _shape[0] <= _shape[1] else _W.T @ _W
    _error = (_gram - _gain**2 * torch.eye(min(_shape), dtype=torch.float64)).abs().max().item()
    if _error > 1e-4:
        raise checks.CheckFailed(
            f"Question 5: for shape {_shape} and gain {_gain}, W W^T (or W^T W for a tall W) should be gain^2 "
            f"times the identity; it is off by {_error:.2g}. "
            + ("A Gaussian matrix has the right variance but is not orthogonal: use the Q of a QR decomposition."
               if _gain == 1.0 else "Check how the gain enters: it multiplies the entries of Q."))
if torch.allclose(orthogonal_weight(8, 8, seed=1), orthogonal_weight(8, 8, seed=2)):
    raise checks.CheckFailed("Question 5: seeds 1 and 2 gave the same matrix; draw a random one from the seed.")
print("Question 5: passes the visible checks.")
### BEGIN HIDDEN TESTS
def _hidden_orthogonal(fan_out, fan_in, gain, seed):
    W = orthogonal_weight(fan_out, fan_in, gain=gain, seed=seed)
    assert isinstance(W, torch.Tensor), "Question 5: return a torch tensor"
    assert tuple(W.shape) == (fan_out, fan_in), f"Question 5: wrong shape for ({fan_out}, {fan_in})"
    W = W.double()
    gram = W @ W.T if fan_out <= fan_in else W.T @ W
    error = (gram - gain**2 * torch.eye(min(fan_out, fan_in), dtype=torch.float64)).abs().max().item()
    assert error < 1e-4 * max(1.0, gain**2), f"Question 5: not gain * orthonormal for ({fan_out}, {fan_in})"
    assert torch.equal(W, orthogonal_weight(fan_out, fan_in, gain=gain, seed=seed).double()), \
        "Question 5: the same seed must give the same matrix"
    return W


with checks.quiet():
    for _seed in (3, 17, 40, 123, 2024):
        for _shape, _gain in [((1, 1), 1.0), ((1, 7), 1.0), ((7, 1), 3.0), ((30, 50), math.sqrt(2)),
                              ((50, 30), 0.5), ((9, 9), 1.0)]:
            _hidden_orthogonal(*_shape, _gain, _seed)
        _s = torch.linalg.svdvals(_hidden_orthogonal(40, 40, 1.0, _seed))
        assert (_s - 1).abs().max() < 1e-4, "Question 5: singular values of a square orthogonal matrix must all be 1"
        assert _hidden_orthogonal(40, 40, 1.0, _seed).abs().max() < 0.999, "Question 5: a random rotation, please"
        assert not torch.allclose(_hidden_orthogonal(6, 10, 1.0, _seed), _hidden_orthogonal(6, 10, 1.0, _seed + 1)), \
            "Question 5: different seeds must give different matrices"
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Each layer multiplies the variance of the activations by $n_\text{in}\operatorname{Var}(W)\,\mathbb E[f(z)^2]/\operatorname{Var}(z)$
#   and of the gradients by $n_\text{out}\operatorname{Var}(W)\,\mathbb E[f'(z)^2]$; through $L$
#   layers these factors are raised to the power $L$.
# - Zero or constant weights keep every unit of a layer identical: random init breaks the symmetry.
# - PyTorch's default `nn.Linear` init gives $\sigma_w^2 = 1/3$: a 30-layer ReLU net shrinks its
#   activations by $6^{-15}$.
# - Xavier/Glorot ($2/(n_\text{in}+n_\text{out})$) suits tanh and sigmoid; He/Kaiming ($2/n_\text{in}$)
#   suits ReLU: at 30 layers Xavier does not train, He does.
# - Orthogonal weights keep every singular value of a deep linear network at 1, not just the average,
#   and its learning time stops growing with depth; with Gaussian weights of the same variance it keeps
#   growing (Saxe et al. 2014).
# - For tanh the critical $\sigma_w^2$ (1.76 for $\sigma_b^2 = 0.05$) puts the network at the edge
#   of chaos, where 40 layers train; both sides of it stall.
#
# Next: notebook 06 keeps activations healthy *during* training, not just at
# the start, with batch and layer normalization.
#
# ## References
#
# - Y. LeCun, L. Bottou, G. Orr, K.-R. Müller (1998). Efficient BackProp. In *Neural Networks: Tricks of the Trade*, Springer.
# - X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks. *AISTATS.*
# - A. Saxe, J. McClelland, S. Ganguli (2014). Exact solutions to the nonlinear dynamics of learning in deep linear neural networks. *ICLR* (arXiv:1312.6120).
# - K. He, X. Zhang, S. Ren, J. Sun (2015). Delving deep into rectifiers: surpassing human-level performance on ImageNet classification. *ICCV.*
# - B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein, S. Ganguli (2016). Exponential expressivity in deep neural networks through transient chaos. *NeurIPS.*
# - S. Schoenholz, J. Gilmer, S. Ganguli, J. Sohl-Dickstein (2017). Deep information propagation. *ICLR.*
# - J. Pennington, S. Schoenholz, S. Ganguli (2017). Resurrecting the sigmoid in deep learning through dynamical isometry: theory and practice. *NeurIPS.*
