# %% [markdown]
# # 09 · Vanishing gradients in modern training
#
# Notebooks 01-08 met the vanishing gradient in sigmoid nets, recurrent nets and deep
# plain stacks, and its classic cures: ReLU, careful initialization, normalization and
# residual connections. Modern networks use all of them, and the problem still shows up
# in new places: where a transformer puts its LayerNorm, inside attention's softmax, in
# deep networks trained without any normalization, behind an adaptive optimizer that
# hides it, and in 16-bit arithmetic, where a small gradient becomes exactly zero. Each
# section measures one of them on a network that trains in about a second.
#
# **You will learn to**
# 1. measure why post-LN transformers need a learning-rate warmup and pre-LN ones do not (E13);
# 2. explain the $1/\sqrt{d_k}$ in attention by the softmax's Jacobian (E14);
# 3. train a deep residual net without normalization by scaling its branches: ReZero,
#    SkipInit, Fixup, GPT-2's initialization (E15);
# 4. see what Adam does to a vanishing gradient, which measurement still shows it, and
#    where Adam's $\epsilon$ brings it back (E16);
# 5. watch float16 flush small gradients to zero, and restore them with loss scaling (E17).
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.attention import attention_jacobian_norms, logit_scale_jacobian_norms
from course_lib.branch_scaling import SCHEMES, stream_variances, train_scaled_resnet
from course_lib.optimizers import layer_statistics_under
from course_lib.plotting import OKABE_ITO, integer_ticks, plot_gradient_norms, plot_training_curves
from course_lib.precision import first_layer_gradients, float_format, flushed_fraction, relative_error, rounding_errors
from course_lib.seeding import get_device, set_seed
from course_lib.transformer import block_gradient_norms, train_sequence_transformer
from course_lib.widgets import transformer_explorer

set_seed(0)
torch.set_num_threads(1)  # tiny networks: one thread is faster, and much faster on a busy CPU
device = get_device()
print(f"torch {torch.__version__} on {device} (these small networks run on the CPU)")

# %% [markdown]
# ## 1. Where the LayerNorm goes: post-LN and pre-LN (E13)
#
# The original transformer (Vaswani et al. 2017) normalizes **after** each residual sum:
# $h \leftarrow \mathrm{LN}(h + \mathrm{Attn}(h))$, then $h \leftarrow \mathrm{LN}(h + \mathrm{MLP}(h))$.
# GPT-2 (Radford et al. 2019) moved the LayerNorm to the **input** of each sublayer,
# $h \leftarrow h + \mathrm{Attn}(\mathrm{LN}(h))$, $h \leftarrow h + \mathrm{MLP}(\mathrm{LN}(h))$,
# with one more LN at the end (notebook 07's blocks). Xiong et al. (2020) analysed the
# difference: at initialization, post-LN's parameter gradients are largest next to the
# output, while pre-LN's are even across blocks and smaller by about $\sqrt{L}$ for $L$
# blocks. Large gradients at the top and Adam's full-size first steps are why post-LN
# transformers are trained with a learning-rate **warmup**.
#
# A stack of 12 blocks (width 64, 4 heads, Xavier initialization as in their analysis)
# on a sequence task, reversing 8 random tokens of a 16-token vocabulary; the gradient
# norm of each block's parameters at initialization:

# %% tags=["demo"]
grads = {placement: block_gradient_norms(12, placement=placement, seed=0) for placement in ("post", "pre")}
plot_gradient_norms({f"{p}-LN": g for p, g in grads.items()}, ylabel="||dL/d(block parameters)||",
                    title="12 transformer blocks at initialization").set_xlabel("block (1 = next to the input)")
top_ratio = grads["post"][-1] / grads["pre"][-1]
spread = {p: g.max() / g.min() for p, g in grads.items()}
print(f"last block, post-LN / pre-LN: {top_ratio:.1f} (sqrt(12) = {math.sqrt(12):.1f})")
print(f"largest / smallest block: post-LN {spread['post']:.1f}, pre-LN {spread['pre']:.1f}")
assert math.sqrt(12) / 2 < top_ratio < 2 * math.sqrt(12)  # about sqrt(L) larger at the top
assert grads["post"].mean() > grads["pre"].mean() and spread["pre"] < 2.5  # pre-LN: even and smaller

# %% [markdown]
# **What to notice:** pre-LN's blocks all get about the same gradient (within a factor of 2);
# post-LN's are larger, and its last block gets about $\sqrt{12} \approx 3.5$ times pre-LN's
# (Xiong et al.'s $\sqrt{L}$; between 2 and 7 over other random draws). Xiong et al. also
# find post-LN's gradients growing from block to block toward the output; in a stack this
# small that trend depends on the random draw (try other seeds with
# `block_gradient_norms(12, placement="post", seed=...)`). Now train a 4-block stack of width 32 both ways with Adam at
# learning rate $10^{-2}$, with no warmup, for 80 steps of 32 sequences, and post-LN a second
# time with the learning rate raised linearly over the first 30 steps. A model that has learned nothing predicts
# every token with probability 1/16: a loss of $\ln 16 \approx 2.77$.

# %% tags=["demo"]
runs = {"post-LN, no warmup": train_sequence_transformer("post", seed=0),
        "post-LN, 30 warmup steps": train_sequence_transformer("post", warmup_steps=30, seed=0),
        "pre-LN, no warmup": train_sequence_transformer("pre", seed=0)}
ax = plot_training_curves({label: r["loss"] for label, r in runs.items()}, smooth=5)
ax.axhline(math.log(16), color="black", linestyle="--", linewidth=1)
final = {label: r["final_loss"] for label, r in runs.items()}
print({label: f"final loss {value:.3f}" for label, value in final.items()})
assert final["post-LN, no warmup"] > 0.9 * math.log(16)  # stuck at or near chance
assert final["pre-LN, no warmup"] < 0.02  # learns the task
assert final["post-LN, 30 warmup steps"] < 0.5 * math.log(16)  # warmup rescues post-LN

# %% [markdown]
# **What to notice:** without warmup, post-LN never leaves the chance level: its first
# full-size Adam steps throw it into a state it does not recover from in 80 steps. The
# same network with 30 warmup steps learns (its loss falls well below half of chance),
# and the pre-LN one learns without any warmup (its final loss is below 0.02). Pre-LN keeps a path from the output to the
# input that passes through no LayerNorm, only sums: the gradient highway of notebook 07.
#
# ## 2. The softmax saturates: why attention divides by $\sqrt{d_k}$ (E14)
#
# Attention weights are $p = \mathrm{softmax}(z)$ over logits $z_j = q \cdot k_j$. The
# gradient reaching the queries and keys passes through the softmax's Jacobian
# $\partial p / \partial z$ (practice question 1 asks for it). How large is it? Below,
# its spectral norm (the median over 200 draws of 16 logits) against the spread of the
# logits:

# %% tags=["demo"]
scales = np.geomspace(0.01, 100, 17)
by_scale = logit_scale_jacobian_norms(scales, seed=0)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
axes[0].loglog(scales, by_scale, "o-", markersize=3, color=OKABE_ITO[0])
axes[0].axhline(1 / 16, color="black", linestyle=":", linewidth=1)
axes[0].set_xlabel("std of the 16 logits")
axes[0].set_ylabel("||d softmax / dz|| (median)")
key_dims = [16, 64, 256, 1024]
attention = {scaled: attention_jacobian_norms(key_dims, scaled=scaled, seed=0) for scaled in (False, True)}
for i, (scaled, label) in enumerate([(False, "q . k"), (True, "q . k / sqrt(d_k)")]):
    axes[1].loglog(key_dims, attention[scaled]["norm"], "o-", color=OKABE_ITO[i + 1], label=label)
axes[1].set_xlabel("d_k (query and key size)")
axes[1].set_ylabel("||d softmax / dz|| (median)")
axes[1].legend(frameon=False)
print("unscaled:", np.round(attention[False]["norm"], 5), " logit std", np.round(attention[False]["logit_std"], 1))
print("scaled:  ", np.round(attention[True]["norm"], 3), " logit std", np.round(attention[True]["logit_std"], 2))
assert abs(by_scale[0] - 1 / 16) < 0.01 and by_scale.max() > 0.2 and by_scale[-1] < 1e-6  # uniform, peak, one-hot
assert attention[False]["norm"][-1] < 1e-3 * attention[False]["norm"][0]  # unscaled at d_k = 1024: saturated
assert np.allclose(attention[False]["logit_std"], np.sqrt(key_dims), rtol=0.1)  # q . k spreads like sqrt(d_k)
assert np.all((attention[True]["norm"] > 0.1) & (attention[True]["norm"] < 0.4))  # scaled: the same at every d_k

# %% [markdown]
# **What to notice:** the Jacobian is small at both ends. With tiny logits the softmax
# is uniform and its Jacobian is $\frac{1}{16}$ in every direction; with logits spread
# over tens of units it is one-hot and its Jacobian vanishes (below $10^{-6}$ at a spread
# of 100): moving a logit changes nothing, so no gradient flows back into $q$ and $k$.
# With $q$ and $k$ of independent unit-variance entries, $q \cdot k$ has standard
# deviation $\sqrt{d_k}$ (the printed stds: 4, 8, 16, 32), so at $d_k = 1024$ the
# typical Jacobian is a thousand times smaller than at $d_k = 16$, or less. Dividing by
# $\sqrt{d_k}$ brings the spread back to 1 and the Jacobian back to about 0.2 at every
# size: Vaswani et al.'s scaled dot-product attention.
#
# ## 3. Scaling the residual branches instead of normalizing (E15)
#
# Without normalization, what keeps a deep residual network stable? A block adds its
# branch to the stream, $h_{k+1} = h_k + \alpha\, F(h_k)$, and when the branch's output
# is uncorrelated with $h_k$ the variances add: $\mathrm{Var}(h_{k+1}) = \mathrm{Var}(h_k)
# + \alpha^2\,\mathrm{Var}(F(h_k))$. With a branch that keeps the scale of its input
# ($F(h) = W_2\,\mathrm{relu}(W_1 h)$, He init for $W_1$, gain 1 for $W_2$) and
# $\alpha = 1$, the variance doubles in every block: $2^{16} \approx 6.6\times10^{4}$ after
# 16 blocks, $2^{32} \approx 4\times10^{9}$ after 32. The remedies make each branch start small:
#
# | scheme | at initialization | paper |
# |---|---|---|
# | ReZero | a learnable $\alpha_k = 0$ per block | Bachlechner et al. 2021 |
# | SkipInit | a learnable $\alpha_k$ started small (here $\frac{1}{2\sqrt{L}}$) | De & Smith 2020 |
# | Fixup | $W_2 = 0$, $W_1$ scaled by $L^{-1/2}$, a zero head, scalar biases and multipliers | Zhang et al. 2019 |
# | GPT-2 | $W_2$ scaled by $1/\sqrt{L}$ ($1/\sqrt{2N}$ for $N$ transformer blocks of two branches) | Radford et al. 2019 |
#
# (ReZero and SkipInit are the same idea, a scalar on the branch, from two papers:
# ReZero for transformers, SkipInit for ResNets.) First the variance of the stream at
# initialization, 16 blocks of width 64 on digits:

# %% tags=["demo"]
variances = {scheme: stream_variances(scheme, 16, seed=0) for scheme in SCHEMES}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (scheme, v) in enumerate(variances.items()):
    ax.semilogy(np.arange(17), v, "o-", markersize=3, color=OKABE_ITO[i], label=scheme)
ax.set_xlabel("block k")
ax.set_ylabel("Var(h_k) / Var(h_0)")
integer_ticks(ax)
ax.legend(frameon=False)
growth = variances["unscaled"][-1] ** (1 / 16)
print(f"unscaled: x{growth:.2f} per block, {variances['unscaled'][-1]:.1e} after 16 blocks")
print({scheme: round(float(v[-1]), 2) for scheme, v in variances.items() if scheme != "unscaled"})
assert 1.6 < growth < 2.4  # the variance about doubles per block
assert variances["rezero"][-1] == 1.0 and variances["fixup"][-1] == 1.0  # branches start at exactly zero
assert math.e / 2 < variances["gpt2"][-1] < 2 * math.e and variances["skipinit"][-1] < 2  # (1 + 1/L)^L ~ e

# %% [markdown]
# **What to notice:** unscaled, the variance grows by a factor of about 2 per block
# (1.9 here: the branch's gain on real digits is a little below 1), about $3\times10^{4}$
# after 16 blocks. ReZero and Fixup start as the identity exactly; GPT-2's scaling gives
# $(1 + 1/L)^L \approx e$ (2.0 measured), whatever the depth. Now train each (width 32) for
# 60 steps of SGD (learning rate 0.01, momentum 0.9, batches of 128 digits):

# %% tags=["demo"]
trained = {scheme: train_scaled_resnet(scheme, 16, width=32, num_steps=60, seed=0) for scheme in SCHEMES}
plot_training_curves({s: r["loss"] for s, r in trained.items() if not r["diverged"]}, smooth=5)
print({s: "diverged" if r["diverged"] else f"accuracy {r['accuracy']:.3f}" for s, r in trained.items()})
assert trained["unscaled"]["diverged"]  # the loss became inf or NaN
assert all(trained[s]["accuracy"] > 0.6 for s in SCHEMES if s != "unscaled")

# %% [markdown]
# **What to notice:** the unscaled network's loss starts in the hundreds (its logits are
# huge) and becomes infinite within a few steps; every scaled one trains, to between about 70% (Fixup,
# whose zero-initialized layers must first grow) and 95% training accuracy. None of them
# normalizes anything: at initialization each branch is small enough that the network is
# close to the identity, which is what BatchNorm does to a residual block too (De & Smith).
#
# ## 4. Adam hides vanishing gradients (E16)
#
# SGD moves a weight by $\mathrm{lr}\cdot g$: a layer whose gradient is a millionth of the
# last layer's moves a millionth as far, so one learning rate cannot serve both. Adam
# (Kingma & Ba 2015) divides each coordinate's step by a running estimate of its gradient's
# size, $\Delta w = -\mathrm{lr}\,\hat m / (\sqrt{\hat v} + \epsilon)$, so every layer moves
# about $\mathrm{lr}$ per step. A 10-layer sigmoid network (width 64, Xavier init) trained
# on digits for 50 steps, once with SGD (lr 0.1) and once with Adam (lr $10^{-3}$), both
# watched by `GradientMonitor`: the gradient norm $\|\partial L/\partial W_k\|$ and the
# update:data ratio (the step's std over the weights' std) per layer.

# %% tags=["demo"]
stats = {opt: layer_statistics_under(opt, num_steps=50, seed=0) for opt in ("sgd", "adam")}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
plot_gradient_norms({opt: s["grad_norm"] for opt, s in stats.items()}, ax=axes[0])
plot_gradient_norms({opt: s["update_data"] for opt, s in stats.items()}, ax=axes[1], ylabel="update:data ratio")
axes[1].axhline(1e-3, color="black", linestyle="--", linewidth=1)
ratio = {opt: {m: s[m][0] / s[m][-1] for m in ("grad_norm", "update_data")} for opt, s in stats.items()}
print("layer 1 / layer 10:", {opt: {m: f"{r:.1e}" for m, r in rs.items()} for opt, rs in ratio.items()})
print("update:data under Adam:", np.array2string(stats["adam"]["update_data"], precision=4))
assert all(1e-6 < ratio[opt]["grad_norm"] < 1e-5 for opt in stats)  # vanishing under both
assert ratio["sgd"]["update_data"] < 1e-5  # SGD: the first layer does not move
assert 1 / 3 < ratio["adam"]["update_data"] < 3  # Adam: every layer moves alike
assert 1.5e-3 < stats["adam"]["update_data"].min() and stats["adam"]["update_data"].max() < 5e-3

# %% [markdown]
# **What to notice:** the gradient norms look the same under both optimizers (layer 1
# gets a few millionths of layer 10's gradient). The update:data ratios do not: under SGD
# they span five to six decades, under Adam every layer's is between $2\times10^{-3}$ and
# $4\times10^{-3}$. Adam hides the vanishing gradient from the updates: judged by
# update:data alone this network looks healthy, and only the per-layer gradient norms
# still show that layer 1 gets almost no signal. Read both: the gradient norms say where
# the signal is lost, update:data says what each layer actually does. (Moving every layer
# is not the same as moving it in a useful direction: the loss is still near $\ln 10$
# after 50 steps.)
#
# **Where $\epsilon$ takes over.** While a coordinate's gradient is much larger than
# $\epsilon = 10^{-8}$, $\sqrt{\hat v}$ is about its size and the step is about $\mathrm{lr}$ whatever
# that size. Once the gradient falls well below $\epsilon$, the denominator is about $\epsilon$ and
# the step shrinks in proportion to the gradient again, as under SGD. A 16-layer sigmoid
# net's first layers get gradients of $10^{-12}$ per weight:

# %% tags=["demo"]
deep = layer_statistics_under("adam", depth=16, num_steps=40, seed=0)
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
layers = np.arange(1, 17)
ax.semilogy(layers, deep["grad_rms"], "o-", color=OKABE_ITO[0], label="gradient per weight (rms)")
ax.semilogy(layers, deep["update_data"], "s-", color=OKABE_ITO[1], label="update:data")
ax.axhline(1e-8, color="black", linestyle=":", linewidth=1)
ax.set_xlabel("layer (1 = next to the input)")
integer_ticks(ax)
ax.legend(frameon=False)
below, above = deep["grad_rms"] < 1e-9, deep["grad_rms"] > 1e-7
print("update:data", np.array2string(deep["update_data"], precision=1))
assert deep["update_data"][below].max() < 0.2 * deep["update_data"][-1]  # eps dominates: steps shrink with g
assert deep["update_data"][above].min() > 0.5 * deep["update_data"][-1]  # |g| >> eps: full-size steps
assert 3e-7 < deep["update_data"][0] < 2e-6

# %% [markdown]
# **What to notice:** every layer whose gradient per weight is above $10^{-7}$ moves about
# as fast as the last one; below $10^{-9}$ the steps shrink with the gradient (layer 1's
# update:data is about $10^{-6}$), and the vanishing gradient is back even under Adam.
# A smaller $\epsilon$ would move the threshold, not remove it.
#
# ## 5. Mixed precision: float16 flushes small gradients to zero (E17)
#
# Training in 16-bit floats halves memory and is much faster on GPUs, but float16 has
# only 5 exponent bits:

# %% tags=["demo"]
for dtype in (torch.float32, torch.float16, torch.bfloat16):
    f = float_format(dtype)
    print(f"{f.name:>9}: largest {f.largest:.3g}, smallest normal {f.smallest_normal:.3g}, "
          f"smallest subnormal {f.smallest_subnormal:.3g}, relative precision {f.epsilon:.3g}")
assert abs(float_format(torch.float16).smallest_subnormal - 6e-8) < 1e-9

# %% [markdown]
# Below about $6\times10^{-8}$ (half of that, in fact, rounds to zero) a float16 number is
# exactly 0. Micikevicius et al. (2018) found that many gradients of real networks live
# there, and proposed **loss scaling**: multiply the loss by $S$ before backward, so every
# gradient is $S$ times larger while it is in float16, and divide the float32 result by $S$.
# `torch.amp.GradScaler` does this with $S = 2^{16}$ to start. Below, the first-layer weight
# gradient of an 8-layer sigmoid net on 256 digits, computed under `torch.autocast`
# (float32 weights, 16-bit arithmetic) in each precision, against float32:

# %% tags=["demo"]
grads16 = first_layer_gradients(seed=0)
reference = grads16["float32"]
flushed = {name: flushed_fraction(g, reference) for name, g in grads16.items()}
errors = {name: relative_error(g, reference) for name, g in grads16.items()}
print(f"median |gradient| in float32: {reference[reference != 0].abs().median():.1e}")
for name in grads16:
    print(f"{name:>23}: {flushed[name]:6.1%} flushed to zero, relative error {errors[name]:.1e}")
assert 2.5e-8 < reference[reference != 0].abs().median() < 1e-7
assert flushed["float16"] > 0.9 and errors["float16"] > 0.5  # most of the gradient is gone
assert flushed["float16 + loss scaling"] == 0 and errors["float16 + loss scaling"] < 3e-3  # restored
assert flushed["bfloat16"] == 0 and 3e-3 < errors["bfloat16"] < 2e-2  # nothing flushed, fewer digits

# %% [markdown]
# **What to notice:** the typical first-layer gradient is about $5\times10^{-8}$, right at
# float16's limit, and over 90% of them come out as exactly 0: that layer would not learn
# at all. With loss scaling none is lost and the gradient is within about $10^{-3}$ of
# float32. bfloat16 keeps float32's exponent range, so nothing is flushed, but with 8
# bits of precision instead of 11 its gradient is off by about $10^{-2}$. The trade,
# value by value:

# %% tags=["demo"]
values = np.geomspace(1e-36, 1e6, 200)
rounding = rounding_errors(values)
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (name, err) in enumerate(rounding.items()):
    ax.loglog(values, np.where(np.isfinite(err), np.maximum(err, 1e-6), np.nan), color=OKABE_ITO[i], label=name)
ax.set_xlabel("value")
ax.set_ylabel("relative rounding error")
ax.legend(frameon=False)
representable = {name: values[np.isfinite(err)] for name, err in rounding.items()}
print({name: f"{v.min():.0e} to {v.max():.0e}" for name, v in representable.items()})
assert representable["float16"].min() > 2.5e-8 and representable["float16"].max() < 7e4
assert np.isfinite(rounding["bfloat16"]).all() and rounding["bfloat16"].max() <= 2 ** -8  # every value, 2-3 digits

# %% [markdown]
# **What to notice:** float16 represents values from about $6\times10^{-8}$ to 65504, with an
# error below $2^{-11}$ only from $6\times10^{-5}$ up; bfloat16 covers every value here (and
# down to about $10^{-38}$, like float32), always with an error of up to $2^{-8} \approx 0.4\%$.
# This is why bfloat16 training usually needs no loss scaling, and float16 training does.
#
# ## 6. Explore: post-LN or pre-LN, and depth
#
# The explorer builds section 1's stack at initialization for the depth you choose and
# shows the gradient norm of every block, for post-LN or pre-LN (the other faintly).
# Compare 2 blocks with 48: how does post-LN's lead over pre-LN at the last block grow?

# %% tags=["demo"]
explorer = transformer_explorer(depth=12, placement="post")
assert math.sqrt(12) / 2 < explorer.last["top_ratio"] < 2 * math.sqrt(12)  # section 1's "about sqrt(L)"
assert explorer.update(placement="pre")["spread"] < 2.5  # pre-LN: even across blocks
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks try your answer on one public example
# and tell you what kind of mistake they see; hidden tests with other inputs decide the
# grade.
#
# ### Question 1 (3 points): the softmax's Jacobian, by hand
#
# Write `softmax_jacobian(z)` for a 1-D **NumPy array** of logits `z` (float64 or float32,
# any length from 1 up, entries possibly large, like 1000): return the (n, n) NumPy array
# whose entry (i, j) is $\partial p_i/\partial z_j$ for $p = \mathrm{softmax}(z)$. Derive it
# with the chain rule and compute it with NumPy (no autograd), stably for large logits, and
# leave `z` unchanged. Compared with relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q1_softmax_jacobian", "solution": true}
def softmax_jacobian(z):
    """d softmax(z) / dz, an (n, n) NumPy array."""
    ### BEGIN SOLUTION
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.diag(p) - np.outer(p, p)
    ### END SOLUTION

# %% mistake="q1_softmax_jacobian" label="keeps only the diagonal p_i (1 - p_i)"
def softmax_jacobian(z):
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.diag(p * (1 - p))

# %% mistake="q1_softmax_jacobian" label="exponentiates without subtracting the max (overflows at z = 1000)"
def softmax_jacobian(z):
    p = np.exp(z) / np.exp(z).sum()
    return np.diag(p) - np.outer(p, p)

# %% mistake="q1_softmax_jacobian" label="flips the sign: p p^T - diag(p)"
def softmax_jacobian(z):
    z = np.asarray(z, dtype=np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    return np.outer(p, p) - np.diag(p)

# %% mistake="q1_softmax_jacobian" label="uses the sigmoid's derivative for each logit on its own"
def softmax_jacobian(z):
    s = 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))
    return np.diag(s * (1 - s))

# %% mistake="q1_softmax_jacobian" label="normalizes in place, changing the caller's z"
def softmax_jacobian(z):
    z -= z.max()
    p = np.exp(z) / np.exp(z).sum()
    return np.diag(p) - np.outer(p, p)

# %% right="q1_softmax_jacobian" label="element by element in loops, with a Kronecker delta"
def softmax_jacobian(z):
    z = [float(v) for v in z]
    top = max(z)
    exps = [math.exp(v - top) for v in z]
    p = [e / sum(exps) for e in exps]
    n = len(p)
    J = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            J[i, j] = p[i] * ((1.0 if i == j else 0.0) - p[j])
    return J

# %% right="q1_softmax_jacobian" label="torch.softmax and the formula in torch, back to NumPy"
def softmax_jacobian(z):
    p = torch.softmax(torch.tensor(np.array(z), dtype=torch.float64), dim=0)
    return (torch.diag(p) - torch.outer(p, p)).numpy()

# %% nbgrader={"grade_id": "q1_softmax_jacobian_test", "grade": true, "points": 3}
# The public example: 3 logits.
_z1 = np.array([1.0, 2.0, 0.5])
checks.check_function(
    "Question 1", softmax_jacobian,
    [((_z1,), [[0.177759406790571, -0.1453315538952939, -0.03242785289527709],
               [-0.1453315538952939, 0.23347959715646865, -0.08814804326117474],
               [-0.03242785289527709, -0.08814804326117474, 0.12057589615645184]])],
    rtol=1e-6,
    # what typical mistakes return on the public example (values, not code: no oracle in a visible cell)
    mistakes=[(lambda z: np.diag([0.177759406790571, 0.23347959715646863, 0.12057589615645187]),
               "only the diagonal is right: p_i also depends on every OTHER logit z_j, through the sum in "
               "the denominator."),
              (lambda z: [[-0.177759406790571, 0.14533155389529392, 0.032427852895277096],
                          [0.14533155389529392, -0.23347959715646865, 0.08814804326117477],
                          [0.032427852895277096, 0.08814804326117477, -0.12057589615645185]],
               "the sign is flipped: raising z_i raises p_i, so the diagonal must be positive."),
              (lambda z: np.diag([0.19661193324148185, 0.10499358540350662, 0.2350037122015945]),
               "that is the sigmoid's derivative, logit by logit; the softmax couples all of them.")],
    hint="Write p_i = exp(z_i) / sum_k exp(z_k) and differentiate by z_j twice: once for j == i, once for j != i.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _softmax_jacobian_reference(z):  # autograd, in float64
        z = torch.tensor(np.asarray(z, dtype=np.float64))
        return torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), z).numpy()

    _rng = np.random.default_rng(9)
    for _z, _atol in [(np.array([0.3]), 1e-9), (np.array([2.0, -1.0]), 1e-9), (_rng.standard_normal(7) * 3, 1e-9),
                      (np.array([1000.0, 999.0, 990.0, -1000.0]), 1e-9), (np.zeros(5), 1e-9),
                      ((_rng.standard_normal(6) * 2).astype(np.float32), 1e-6)]:
        checks.check_function("Question 1 (hidden)", softmax_jacobian, [((_z,), _softmax_jacobian_reference(_z))],
                              rtol=1e-6, atol=_atol)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): a post-LN transformer block
#
# Write `post_ln_block(X, attn, mlp, norm1, norm2)`: one **post-LN** block (section 1)
# applied to `X`, where `attn`, `mlp`, `norm1` and `norm2` are functions from a tensor to a
# tensor of the same shape. First the attention sublayer followed by its LayerNorm `norm1`,
# then the MLP sublayer followed by `norm2`. The check uses one public block whose two
# LayerNorms happen to be equal; hidden tests use blocks whose sublayers and norms all
# differ, and other shapes. Compared with relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q2_post_ln_block", "solution": true}
def post_ln_block(X, attn, mlp, norm1, norm2):
    """One post-LN transformer block (section 1) applied to X."""
    ### BEGIN SOLUTION
    h = norm1(X + attn(X))
    return norm2(h + mlp(h))
    ### END SOLUTION

# %% mistake="q2_post_ln_block" label="pre-LN: normalizes each sublayer's input instead"
def post_ln_block(X, attn, mlp, norm1, norm2):
    h = X + attn(norm1(X))
    return h + mlp(norm2(h))

# %% mistake="q2_post_ln_block" label="uses norm1 after both sublayers"
def post_ln_block(X, attn, mlp, norm1, norm2):
    h = norm1(X + attn(X))
    return norm1(h + mlp(h))

# %% mistake="q2_post_ln_block" label="normalizes the sublayer's output before adding it"
def post_ln_block(X, attn, mlp, norm1, norm2):
    h = X + norm1(attn(X))
    return h + norm2(mlp(h))

# %% mistake="q2_post_ln_block" label="feeds the MLP the un-normalized sum"
def post_ln_block(X, attn, mlp, norm1, norm2):
    s = X + attn(X)
    return norm2(norm1(s) + mlp(s))

# %% right="q2_post_ln_block" label="a loop over (sublayer, norm) pairs, with a print"
def post_ln_block(X, attn, mlp, norm1, norm2):
    h = X
    for sublayer, norm in ((attn, norm1), (mlp, norm2)):
        h = norm(h + sublayer(h))
    print("output shape:", tuple(h.shape))
    return h

# %% nbgrader={"grade_id": "q2_post_ln_block_test", "grade": true, "points": 3}
# The public block: 1 sequence of 2 tokens of width 3; both norms are a plain LayerNorm.
_A2 = torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.5, -0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
_B2 = torch.tensor([[1.0, 0.0, -0.5], [-0.5, 1.0, 0.5], [0.5, -1.0, 1.0]], dtype=torch.float64)
_attn2 = lambda Z: Z.flip(-2) @ _A2  # noqa: E731 - mixes the two tokens
_mlp2 = lambda Z: torch.tanh(Z @ _B2)  # noqa: E731
_norm2 = lambda Z: torch.nn.functional.layer_norm(Z, (3,))  # noqa: E731
_X2 = torch.tensor([[[1.0, -0.5, 2.0], [0.0, 1.5, -1.0]]], dtype=torch.float64)
checks.check_function(
    "Question 2", lambda X: post_ln_block(X, _attn2, _mlp2, _norm2, _norm2),
    [((_X2,), [[[1.4137026783442739, -0.6740099883243914, -0.7396926900198827],
                [-1.3768081421862968, 0.40859301692724725, 0.9682151252590496]]])],
    rtol=1e-6,
    # what typical mistakes return on the public example (values, not code: no oracle in a visible cell)
    mistakes=[(lambda X: [[[3.140020558192391, -0.6707106256530596, -0.710320863955302],
                           [-2.140020558192391, 1.6707106256530593, 1.710320863955302]]],
               "that is a pre-LN block: LayerNorm on each sublayer's input. Post-LN normalizes AFTER adding "
               "the sublayer's output to the stream."),
              (lambda X: [[[3.5187639069331667, -1.1963793785164338, 0.17761547158326707],
                           [-1.9125758550003418, 0.9039760522172475, 1.5085998027830947]]],
               "the LayerNorm goes on the SUM of the stream and the sublayer's output, not on the output alone."),
              (lambda X: [[[1.4140186733588647, -0.7272209986755236, -0.6867976746833411],
                           [-1.3477126442324483, 0.3027176803173627, 1.0449949639150857]]],
               "the MLP must read the normalized stream, the output of the first LayerNorm.")],
    hint="Follow the stream: two steps, each adds one sublayer's output to it and then normalizes the sum.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _make_parts(d, generator):
        A = torch.randn(d, d, generator=generator).double()
        B = torch.randn(d, d, generator=generator).double()
        gain1 = torch.rand(d, generator=generator).double() + 0.5
        gain2 = torch.rand(d, generator=generator).double() + 2
        attn = lambda Z: torch.softmax(Z @ Z.transpose(-1, -2), dim=-1) @ Z @ A  # noqa: E731
        mlp = lambda Z: torch.tanh(Z @ B)  # noqa: E731
        norm1 = lambda Z: gain1 * torch.nn.functional.layer_norm(Z, (d,))  # noqa: E731
        norm2 = lambda Z: gain2 * torch.nn.functional.layer_norm(Z, (d,)) - 0.5  # noqa: E731
        return attn, mlp, norm1, norm2

    def _post_ln_reference(X, attn, mlp, norm1, norm2):
        h = norm1(X + attn(X))
        return norm2(h + mlp(h))

    _rng = torch.Generator().manual_seed(19)
    for _shape in [(1, 1, 3), (4, 5, 6), (2, 8, 2)]:
        _parts_h = _make_parts(_shape[-1], _rng)
        _X = torch.randn(*_shape, generator=_rng).double() * 3
        checks.check_function("Question 2 (hidden)", lambda X: post_ln_block(X, *_parts_h),
                              [((_X,), _post_ln_reference(_X, *_parts_h))], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): predict the stream's variance
#
# A residual stack without normalization, $h_k = h_{k-1} + s_k\,F_k(h_{k-1})$ for
# $k = 1, \dots, L$, where each branch's output is uncorrelated with its input and
# multiplies the variance by $g^2$: $\mathrm{Var}(F_k(h)) = g^2\,\mathrm{Var}(h)$ (section 3).
# Write `predict_stream_variance(branch_scales, branch_gain)` returning
# $\mathrm{Var}(h_L)/\mathrm{Var}(h_0)$, where `branch_scales` is the list
# $[s_1, \dots, s_L]$ (any length, 0 included; scales may differ from block to block) and
# `branch_gain` is $g \ge 0$. The check uses 8 blocks with $s = 0.5$ and $g = 1$; hidden tests
# use other lengths, scales and gains. Compared with relative tolerance 1%.

# %% nbgrader={"grade_id": "q3_stream_variance", "solution": true}
def predict_stream_variance(branch_scales, branch_gain):
    """Var(h_L) / Var(h_0) through residual blocks h + s_k F_k(h) whose branches have gain `branch_gain`."""
    ### BEGIN SOLUTION
    return float(np.prod([1.0 + (s * branch_gain) ** 2 for s in branch_scales]))
    ### END SOLUTION

# %% mistake="q3_stream_variance" label="ignores the branch gain (right only for g = 1)"
def predict_stream_variance(branch_scales, branch_gain):
    return float(np.prod([1.0 + s ** 2 for s in branch_scales]))

# %% mistake="q3_stream_variance" label="adds the branches' variances to 1 instead of compounding them"
def predict_stream_variance(branch_scales, branch_gain):
    return 1.0 + sum((s * branch_gain) ** 2 for s in branch_scales)

# %% mistake="q3_stream_variance" label="scales the standard deviation: (1 + s g) per block"
def predict_stream_variance(branch_scales, branch_gain):
    return float(np.prod([1.0 + s * branch_gain for s in branch_scales]))

# %% mistake="q3_stream_variance" label="doubles per block whatever the scale, as the unscaled stack does"
def predict_stream_variance(branch_scales, branch_gain):
    return 2.0 ** len(branch_scales)

# %% right="q3_stream_variance" label="a loop, variance updated block by block"
def predict_stream_variance(branch_scales, branch_gain):
    variance = 1.0
    for scale in branch_scales:
        variance = variance + scale ** 2 * branch_gain ** 2 * variance
    return variance

# %% right="q3_stream_variance" label="a sum of logarithms"
def predict_stream_variance(branch_scales, branch_gain):
    return math.exp(sum(math.log1p((s * branch_gain) ** 2) for s in branch_scales))

# %% nbgrader={"grade_id": "q3_stream_variance_test", "grade": true, "points": 2}
# The public setting: 8 blocks with s = 0.5, g = 1.
checks.check_function(
    "Question 3", predict_stream_variance, [(([0.5] * 8, 1.0), 5.9604644775390625)], rtol=0.01,
    mistakes=[(lambda s, g: 3.0, "that keeps only the first-order terms: each block multiplies the variance it "
                                 "receives, so the factors compound."),
              (lambda s, g: 25.62890625, "variances add, standard deviations do not: the branch adds its "
                                         "variance, a square, to the stream's."),
              (lambda s, g: 256.0, "2 per block holds for s = g = 1 only; here each branch is scaled.")],
    hint="Write Var(h_k) in terms of Var(h_(k-1)) for one block, then chain the blocks.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _scales, _gain in [([], 1.0), ([1.0] * 10, 1.0), ([0.25] * 64, 2.0), ([0.0] * 5, 3.0),
                           ([0.1, 0.5, 1.0, 2.0], 1.0), ([1 / math.sqrt(48)] * 48, 1.0), ([0.3, 0.3], 0.0),
                           ([0.5, 1.5, 0.2], 1.4142135623730951)]:
        _want = 1.0
        for _s in _scales:
            _want *= 1.0 + (_s * _gain) ** 2
        checks.check_function("Question 3 (hidden)", predict_stream_variance, [((_scales, _gain), _want)], rtol=0.01)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): Adam's first step
#
# Write `adam_first_step(grad, lr, eps)`: the change $w_1 - w_0$ that `torch.optim.Adam`
# (with its default $\beta_1 = 0.9$, $\beta_2 = 0.999$, bias correction, no weight decay)
# makes to a weight on its **first** step, when that weight's gradient is `grad`. `grad` is a
# float or a NumPy array (elementwise; any sign, 0 and tiny values included), `lr` and `eps`
# positive floats. The check uses one gradient much larger than `eps`; hidden tests use
# gradients of every size. Compared with relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q4_adam_first_step", "solution": true}
def adam_first_step(grad, lr, eps):
    """w_1 - w_0 for Adam's first step with gradient `grad` (elementwise)."""
    ### BEGIN SOLUTION
    g = np.asarray(grad, dtype=np.float64)
    m_hat = g  # (1 - b1) g / (1 - b1)
    v_hat = g * g  # (1 - b2) g^2 / (1 - b2)
    return -lr * m_hat / (np.sqrt(v_hat) + eps)
    ### END SOLUTION

# %% mistake="q4_adam_first_step" label="ignores eps: every step is lr in size"
def adam_first_step(grad, lr, eps):
    return -lr * np.sign(np.asarray(grad, dtype=np.float64))

# %% mistake="q4_adam_first_step" label="forgets the bias correction: m = 0.1 g, v = 0.001 g^2"
def adam_first_step(grad, lr, eps):
    g = np.asarray(grad, dtype=np.float64)
    return -lr * 0.1 * g / (np.sqrt(0.001 * g * g) + eps)

# %% mistake="q4_adam_first_step" label="puts eps inside the square root"
def adam_first_step(grad, lr, eps):
    g = np.asarray(grad, dtype=np.float64)
    return -lr * g / np.sqrt(g * g + eps)

# %% mistake="q4_adam_first_step" label="returns the step's size, without its sign"
def adam_first_step(grad, lr, eps):
    g = np.asarray(grad, dtype=np.float64)
    return lr * np.abs(g) / (np.abs(g) + eps)

# %% right="q4_adam_first_step" label="runs torch.optim.Adam for one step"
def adam_first_step(grad, lr, eps):
    g = torch.tensor(np.asarray(grad, dtype=np.float64))
    w = torch.zeros_like(g, requires_grad=True)
    optimizer = torch.optim.Adam([w], lr=lr, eps=eps)
    w.grad = g.clone()
    optimizer.step()
    return w.detach().numpy() if g.dim() else w.item()

# %% right="q4_adam_first_step" label="the moments written out with the betas"
def adam_first_step(grad, lr, eps):
    beta1, beta2 = 0.9, 0.999
    g = np.asarray(grad, dtype=np.float64)
    m = (1 - beta1) * g
    v = (1 - beta2) * g ** 2
    return -lr * (m / (1 - beta1)) / (np.sqrt(v / (1 - beta2)) + eps)

# %% nbgrader={"grade_id": "q4_adam_first_step_test", "grade": true, "points": 2}
# The public setting: a gradient of 0.02, lr 1e-3, eps 1e-8.
checks.check_function(
    "Question 4", adam_first_step, [((0.02, 1e-3, 1e-8), -0.00099999950000025)], rtol=1e-6,
    mistakes=[(lambda g, lr, eps: 0.00099999950000025,
               "the size is right, the direction is not: Adam steps AGAINST the gradient."),
              (lambda g, lr, eps: -0.0031622276609589365,
               "m and v start at 0, so after one step they are (1 - beta) times too small: Adam divides them "
               "by 1 - beta^t (bias correction)."),
              (lambda g, lr, eps: -0.0009999875002343701,
               "eps is added to sqrt(v_hat), outside the square root.")],
    hint="Write m_1 and v_1 from m_0 = v_0 = 0, correct them for bias, then apply the update rule of section 4.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    from course_lib.training import Adam as _Adam  # torch.optim.Adam's update, bit for bit (tested)

    def _adam_reference(grad, lr, eps):  # Adam in float64, one step
        g = torch.tensor(np.asarray(grad, dtype=np.float64))
        w = torch.zeros_like(g, requires_grad=True)
        optimizer = _Adam([w], lr=lr, eps=eps)
        w.grad = g.clone()
        optimizer.step()
        return w.detach().numpy()

    for _args in [(1e-12, 1e-3, 1e-8), (-3.0, 0.1, 1e-8), (0.0, 1e-3, 1e-8), (1e-8, 1e-2, 1e-8),
                  (np.array([1e-14, -1e-9, 1e-6, -0.5, 0.0]), 1e-3, 1e-8), (2e-5, 1e-3, 1e-4),
                  (np.geomspace(1e-15, 1e-1, 8), 3e-4, 1e-12)]:
        checks.check_function("Question 4 (hidden)", adam_first_step, [(_args, _adam_reference(*_args))],
                              rtol=1e-6, atol=1e-15)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (3 points): a loss scale for float16
#
# Before a float16 backward pass you multiply the loss, and so every gradient, by a
# power of two $S = 2^k$ ($k$ an integer: positive, zero or negative): the larger $S$,
# the fewer small gradients flush to zero, but no scaled gradient may exceed float16's
# largest finite value, 65504. Write `choose_loss_scale(grads)`: given the float32
# gradients of one batch (a NumPy array or a tensor, any shape, any signs, at least one
# entry nonzero), return the **largest** $S = 2^k$ with $|S \cdot g| \le 65504$ for every
# entry $g$, as a float. The check uses one public batch; hidden tests use gradients of
# other sizes and shapes, including ones exactly at the limit. Compared exactly
# (relative tolerance 0).

# %% nbgrader={"grade_id": "q5_loss_scale", "solution": true}
def choose_loss_scale(grads):
    """The largest power of two S with |S g| <= 65504 for every gradient g."""
    ### BEGIN SOLUTION
    largest = float(np.max(np.abs(np.asarray(grads, dtype=np.float64))))
    k = math.floor(math.log2(65504.0 / largest))
    while largest * 2.0 ** (k + 1) <= 65504.0:  # log2 may round either way near a power of two
        k += 1
    while largest * 2.0 ** k > 65504.0:
        k -= 1
    return 2.0 ** k
    ### END SOLUTION

# %% mistake="q5_loss_scale" label="uses 65536 (2^16) as float16's largest value"
def choose_loss_scale(grads):
    largest = float(np.max(np.abs(np.asarray(grads, dtype=np.float64))))
    return 2.0 ** math.floor(math.log2(65536.0 / largest))

# %% mistake="q5_loss_scale" label="rounds the exponent up, so the largest gradient overflows"
def choose_loss_scale(grads):
    largest = float(np.max(np.abs(np.asarray(grads, dtype=np.float64))))
    return 2.0 ** math.ceil(math.log2(65504.0 / largest))

# %% mistake="q5_loss_scale" label="takes the largest value, not the largest magnitude"
def choose_loss_scale(grads):
    largest = float(np.max(np.asarray(grads, dtype=np.float64)))
    return 2.0 ** math.floor(math.log2(65504.0 / largest))

# %% mistake="q5_loss_scale" label="lifts the smallest gradient to 2^-24 instead of bounding the largest"
def choose_loss_scale(grads):
    values = np.abs(np.asarray(grads, dtype=np.float64))
    smallest = float(values[values > 0].min())
    return 2.0 ** math.ceil(math.log2(2.0 ** -24 / smallest))

# %% right="q5_loss_scale" label="halves from 2^40 until the largest gradient fits, in torch"
def choose_loss_scale(grads):
    largest = torch.as_tensor(grads).double().abs().max().item()
    scale = 2.0 ** 40
    while largest * scale > 65504:
        scale /= 2
    while largest * scale * 2 <= 65504:
        scale *= 2
    return scale

# %% right="q5_loss_scale" label="math.frexp of the ratio"
def choose_loss_scale(grads):
    largest = max(abs(float(g)) for g in np.ravel(np.asarray(grads, dtype=np.float64)))
    mantissa, exponent = math.frexp(65504.0 / largest)  # ratio = mantissa * 2^exponent, 0.5 <= mantissa < 1
    return 2.0 ** (exponent - 1)

# %% nbgrader={"grade_id": "q5_loss_scale_test", "grade": true, "points": 3}
# The public batch: six gradients.
_g5 = np.array([3e-9, -4e-7, 2.5e-6, -1e-10, 8e-8, 0.0], dtype=np.float32)
checks.check_function(
    "Question 5", choose_loss_scale, [((_g5,), 17179869184.0)], rtol=0.0,
    mistakes=[(lambda g: 34359738368.0,
               "one power of two too large: the largest gradient times S would exceed 65504 and become inf."),
              (lambda g: 1024.0,
               "you lifted the smallest gradient; the limit on S comes from the LARGEST one, which must stay "
               "finite.")],
    hint="Find the largest |g|, then the largest k with |g| * 2^k <= 65504.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _cases = [np.array([1.0]), np.array([-65504.0, 1.0]), np.array([1e5, -2.0]), np.array([0.0, 65504.0 / 8]),
              np.array([[1e-9, -3e-3], [2e-4, 0.0]]), torch.tensor([-0.75, 0.5, 1e-20], dtype=torch.float32),
              np.array([65504.0 / 2.0 ** 30, 1e-30]), np.full(7, -3.5e-12), np.array([1.0000001])]
    for _g in _cases:
        _largest = float(np.abs(np.asarray(_g, dtype=np.float64)).max())
        _k = 60
        while _largest * 2.0 ** _k > 65504.0:
            _k -= 1
        checks.check_function("Question 5 (hidden)", choose_loss_scale, [((_g,), 2.0 ** _k)], rtol=0.0)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (1 point): why bfloat16 rarely needs loss scaling
#
# Section 5 trains in bfloat16 without loss scaling, while float16 needs it. Why? Set
# `q6_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** It has more mantissa bits than float16, so small gradients keep their digits.
# - **B.** Its hardware flushes subnormal numbers, so tiny values are never computed.
# - **C.** It rounds every gradient to a power of two, so no gradient can reach zero.
# - **D.** It keeps float32's 8 exponent bits, so small gradients stay representable.

# %% nbgrader={"grade_id": "q6_answer", "solution": true}
### BEGIN SOLUTION
q6_answer = "D"
### END SOLUTION

# %% mistake="q6_answer" label="credits more mantissa bits"
q6_answer = "A"

# %% mistake="q6_answer" label="credits flushing subnormals"
q6_answer = "B"

# %% mistake="q6_answer" label="credits rounding to powers of two"
q6_answer = "C"

# %% right="q6_answer" label="lower case with spaces"
q6_answer = " d "

# %% nbgrader={"grade_id": "q6_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 6", q6_answer, "ABCD", expected_digest="9e385375ad4de089", salt="09_q6",
    explanations={"A": "Look at the relative precision printed in section 5: bfloat16 has FEWER mantissa bits "
                       "(8 against float16's 11).",
                  "B": "Flushing subnormals to zero loses MORE small values, not fewer.",
                  "C": "Rounding keeps 8 significant bits, not one; and a value below a format's smallest "
                       "number still becomes 0."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 6 (hidden)", q6_answer, "ABCD", expected="D")
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - **LayerNorm placement** decides whether a transformer has a gradient highway: pre-LN
#   keeps an un-normalized residual stream and trains without warmup; post-LN's gradients
#   are largest at the top and it needs a warmup (Xiong et al. 2020).
# - **The softmax saturates** when its logits spread: its Jacobian vanishes, and with it
#   the gradient into queries and keys. Dividing by $\sqrt{d_k}$ keeps the logits at unit
#   scale (Vaswani et al. 2017).
# - **Branch scaling** replaces normalization in deep residual nets: start each branch at
#   or near zero (ReZero, SkipInit, Fixup) or scale it by $1/\sqrt{L}$ (GPT-2).
# - **Adam hides a vanishing gradient**: every layer moves at about the learning rate, so
#   read update:data, not gradient norms, to see what each layer does; below $\epsilon$ the
#   vanishing gradient comes back.
# - **Low precision** turns small gradients into exact zeros: float16 needs loss scaling,
#   bfloat16 trades precision for float32's range.
#
# ## References
#
# - R. Xiong, Y. Yang, D. He, K. Zheng, S. Zheng, C. Xing, H. Zhang, Y. Lan, L. Wang, T.-Y. Liu (2020). On layer normalization in the transformer architecture. *ICML.*
# - A. Radford, J. Wu, R. Child, D. Luan, D. Amodei, I. Sutskever (2019). Language models are unsupervised multitask learners. *OpenAI technical report* (GPT-2).
# - A. Vaswani, N. Shazeer, N. Parmar, J. Uszkoreit, L. Jones, A. N. Gomez, Ł. Kaiser, I. Polosukhin (2017). Attention is all you need. *NeurIPS.*
# - T. Bachlechner, B. P. Majumder, H. H. Mao, G. W. Cottrell, J. McAuley (2021). ReZero is all you need: fast convergence at large depth. *UAI* (arXiv 2020).
# - S. De, S. L. Smith (2020). Batch normalization biases residual blocks towards the identity function in deep networks. *NeurIPS.*
# - H. Zhang, Y. N. Dauphin, T. Ma (2019). Fixup initialization: residual learning without normalization. *ICLR.*
# - D. P. Kingma, J. Ba (2015). Adam: a method for stochastic optimization. *ICLR.*
# - P. Micikevicius, S. Narang, J. Alben, G. Diamos, E. Elsen, D. Garcia, B. Ginsburg, M. Houston, O. Kuchaiev, G. Venkatesh, H. Wu (2018). Mixed precision training. *ICLR.*
