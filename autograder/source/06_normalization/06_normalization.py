# %% [markdown]
# # 06 · Normalization: BatchNorm and LayerNorm
#
# Notebooks 02 to 05 kept gradients alive by choosing the activation and the
# initial weights carefully. Normalization layers take a different route: they
# **re-standardize** the pre-activations of every layer, on every step, so each
# layer sees inputs of a healthy scale whatever the weights did. This notebook
# builds BatchNorm and LayerNorm from scratch, forward and backward, checks them
# against PyTorch and by gradient checking, and measures what they do to the
# gradients of a deep sigmoid network.
#
# **You will learn to**
# 1. write BatchNorm and LayerNorm forward and backward passes, and check them
#    against `torch.nn.functional` and with central differences (E12);
# 2. tell BatchNorm's training mode (batch statistics) from its eval mode
#    (running statistics), and see why the difference matters;
# 3. measure per-layer gradient norms of a deep sigmoid net with and without
#    normalization, and explain why BatchNorm makes them independent of the
#    weight scale;
# 4. reproduce, in small, Ioffe & Szegedy's MNIST experiment (their figure 1:
#    BatchNorm trains a sigmoid net much faster, E8), and CS231n's weight-scale sweep.
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import checks
from course_lib.gradcheck import numerical_gradient, relative_error
from course_lib.normalization import (BatchNorm, batch_norm_backward, batch_norm_forward, layer_norm_backward,
                                      layer_norm_forward, layer_statistics_at_init, train_digits,
                                      weight_scale_sweep)
from course_lib.plotting import OKABE_ITO, plot_gradient_norms, plot_training_curves
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import normalization_explorer

set_seed(0)
torch.set_num_threads(1)  # tiny networks: one thread is faster, and much faster on a busy CPU
device = get_device()
print(f"torch {torch.__version__} on {device}")

# %% [markdown]
# ## 1. BatchNorm, forward
#
# Ioffe & Szegedy (2015) normalize each feature $j$ over the $N$ examples of a batch,
# then let the network scale and shift the result with two learned vectors
# $\gamma$ and $\beta$:
#
# $$\mu_j = \frac1N\sum_i x_{ij},\qquad \sigma_j^2 = \frac1N\sum_i (x_{ij}-\mu_j)^2,\qquad
# \hat x_{ij} = \frac{x_{ij}-\mu_j}{\sqrt{\sigma_j^2+\varepsilon}},\qquad y_{ij} = \gamma_j\hat x_{ij}+\beta_j.$$
#
# The variance divides by $N$ (biased), and $\varepsilon = 10^{-5}$ guards against
# dividing by zero. `course_lib.normalization.batch_norm_forward` is these four
# lines; let's feed it features with very different means and scales and compare
# with PyTorch's `F.batch_norm`.

# %% tags=["demo"]
gen = torch.Generator().manual_seed(0)
X = torch.randn(64, 4, dtype=torch.float64, generator=gen) * torch.tensor([0.01, 1.0, 30.0, 5.0]) \
    + torch.tensor([5.0, -2.0, 100.0, 0.0])
gamma, beta = torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64)

Y, cache = batch_norm_forward(X, gamma, beta)
Y_torch = F.batch_norm(X, None, None, gamma, beta, training=True, eps=1e-5)
print("input  mean per feature:", X.mean(0).numpy().round(3), " std:", X.std(0).numpy().round(3))
print("output mean per feature:", Y.mean(0).numpy().round(6), " std:", Y.std(0, unbiased=False).numpy().round(4))
print(f"largest difference from F.batch_norm: {(Y - Y_torch).abs().max().item():.1e}")
assert torch.allclose(Y, Y_torch, rtol=0, atol=1e-12)
assert torch.allclose(Y.mean(0), torch.zeros(4, dtype=torch.float64), atol=1e-12)
# unit variance, except where eps matters: feature 0 has variance 1e-4, so it gets 1 / sqrt(1 + 0.1)
assert torch.allclose(Y.var(0, unbiased=False), X.var(0, unbiased=False) / (X.var(0, unbiased=False) + 1e-5))

# %% [markdown]
# **What to notice:** whatever scale a feature comes in at, it leaves with mean 0 and
# standard deviation 1, except when its variance is not much larger than $\varepsilon$
# (feature 0 here: variance $10^{-4}$, so the output's variance is $1/1.1$). Remember
# this exception: it comes back in the weight-scale sweep.
#
# ## 2. BatchNorm, backward, checked three ways (E12)
#
# Each $\hat x_{ij}$ depends on **every** example of the batch, through $\mu_j$ and
# $\sigma_j$. Carrying the chain rule through them (Ioffe & Szegedy 2015, section 3)
# gives, with $g = \partial L/\partial y$ and $\hat g = \gamma\, g$, averaging over the batch:
#
# $$\frac{\partial L}{\partial x} = \frac{1}{\sqrt{\sigma^2+\varepsilon}}\Big(\hat g - \operatorname{mean}(\hat g) - \hat x \operatorname{mean}(\hat g\,\hat x)\Big),
# \qquad \frac{\partial L}{\partial\gamma} = \sum_i g\,\hat x,\qquad \frac{\partial L}{\partial\beta} = \sum_i g.$$
#
# The two subtracted means are the gradient flowing through $\mu$ and $\sigma^2$.
# Below, `batch_norm_backward` against autograd through `F.batch_norm`, then against
# central differences in float64 (notebook 01), then the classic bug: treating $\mu$
# and $\sigma$ as constants.

# %% tags=["demo"]
X = torch.randn(16, 5, dtype=torch.float64, generator=gen) * 3 + 1
gamma = torch.randn(5, dtype=torch.float64, generator=gen)
beta = torch.randn(5, dtype=torch.float64, generator=gen)
G = torch.randn(16, 5, dtype=torch.float64, generator=gen)  # dL/dY for L = sum(Y * G)

Y, cache = batch_norm_forward(X, gamma, beta)  # cache = (x_hat, sqrt(var + eps), gamma, axis)
dX, dgamma, dbeta = batch_norm_backward(G, cache)

leaves = [t.clone().requires_grad_() for t in (X, gamma, beta)]
(F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True) * G).sum().backward()
for name, ours, theirs in zip(["dX", "dgamma", "dbeta"], [dX, dgamma, dbeta], leaves):
    print(f"{name:7s} vs autograd: {(ours - theirs.grad).abs().max().item():.1e}")
    assert torch.allclose(ours, theirs.grad, rtol=0, atol=1e-12)


def loss_of_X(x):
    return (batch_norm_forward(torch.as_tensor(x), gamma, beta)[0] * G).sum().item()


check_X = relative_error(numerical_gradient(loss_of_X, X.numpy().copy()), dX.numpy())
check_gamma = relative_error(
    numerical_gradient(lambda g: (batch_norm_forward(X, torch.as_tensor(g), beta)[0] * G).sum().item(),
                       gamma.numpy().copy()), dgamma.numpy())
naive_dX = G * gamma / cache[1]  # the bug: mu and sigma treated as constants
check_naive = relative_error(numerical_gradient(loss_of_X, X.numpy().copy()), naive_dX.numpy())
print(f"gradient check, float64: dX {check_X:.1e}, dgamma {check_gamma:.1e}; "
      f"constant-statistics bug: {check_naive:.2f}")
assert check_X < 1e-7 and check_gamma < 1e-7
assert check_naive > 0.1

# %% [markdown]
# **What to notice:** our backward pass agrees with autograd to rounding and passes the
# gradient check far below the $10^{-7}$ threshold. Forgetting that $\mu$ and $\sigma$
# depend on $x$ is not a small error: the gradient is wrong by tens of percent.
#
# ## 3. LayerNorm: the same formula, along the other axis
#
# Ba, Kiros & Hinton (2016) normalize each **example** over its own $D$ features
# (the last axis) instead of each feature over the batch. Same four lines, same
# backward formula with the means taken over features, and $\gamma$, $\beta$ still
# one value per feature. Transformers apply it to every token of every sequence, so we
# test it on a (batch, tokens, features) tensor.

# %% tags=["demo"]
X = torch.randn(3, 7, 6, dtype=torch.float64, generator=gen) * 4 - 2
gamma = torch.randn(6, dtype=torch.float64, generator=gen)
beta = torch.randn(6, dtype=torch.float64, generator=gen)
G = torch.randn(3, 7, 6, dtype=torch.float64, generator=gen)

Y, cache = layer_norm_forward(X, gamma, beta)
dX, dgamma, dbeta = layer_norm_backward(G, cache)
leaves = [t.clone().requires_grad_() for t in (X, gamma, beta)]
Y_torch = F.layer_norm(leaves[0], (6,), leaves[1], leaves[2], eps=1e-5)
(Y_torch * G).sum().backward()
assert torch.allclose(Y, Y_torch, rtol=0, atol=1e-12)
for ours, theirs in zip([dX, dgamma, dbeta], leaves):
    assert torch.allclose(ours, theirs.grad, rtol=0, atol=1e-12)

check_ln = relative_error(
    numerical_gradient(lambda x: (layer_norm_forward(torch.as_tensor(x), gamma, beta)[0] * G).sum().item(),
                       X.numpy().copy()), dX.numpy())
X_hat = cache[0]
print(f"LayerNorm matches F.layer_norm; gradient check {check_ln:.1e}")
print(f"per-token mean of x_hat: max |.| = {X_hat.mean(-1).abs().max().item():.1e}")
assert check_ln < 1e-7
assert torch.allclose(X_hat.mean(-1), torch.zeros(3, 7, dtype=torch.float64), atol=1e-12)

# one token's LayerNorm output does not depend on anything else in the batch
alone, _ = layer_norm_forward(X[:1, :1], gamma, beta)
assert torch.allclose(alone, Y[:1, :1], rtol=0, atol=1e-14)

# %% [markdown]
# **What to notice:** a token normalized on its own gives exactly the value it got
# inside the batch. That is why LayerNorm needs no batch statistics, behaves the same in
# training and at test time, and works with a batch of one.
#
# ## 4. BatchNorm's two modes: training and eval
#
# At test time we may want a prediction for a single example, and we want it not to
# depend on which other examples happen to share its batch. So BatchNorm keeps
# **running** estimates of the mean and variance while it trains,
#
# $$\text{running} \leftarrow (1 - m)\,\text{running} + m\,\text{batch statistic},\qquad m = 0.1,$$
#
# (PyTorch stores the *unbiased* batch variance, $N/(N-1)$ times $\sigma^2$), and in eval
# mode normalizes with them: a fixed affine map. Our `BatchNorm` class does both; we
# run it next to `nn.BatchNorm1d` on 50 batches drawn from features with mean 3 and
# variance 4.

# %% tags=["demo"]
ours, theirs = BatchNorm(4), nn.BatchNorm1d(4, dtype=torch.float64)
for step in range(50):
    X_batch = 3 + 2 * torch.randn(32, 4, dtype=torch.float64, generator=gen)
    with torch.no_grad():
        assert torch.allclose(ours(X_batch), theirs(X_batch), rtol=0, atol=1e-12)
print("running mean:", ours.running_mean.numpy().round(3), " running var:", ours.running_var.numpy().round(3))
assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-12)
assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-12)
assert torch.allclose(ours.running_mean, torch.full((4,), 3.0, dtype=torch.float64), atol=0.3)
assert torch.allclose(ours.running_var, torch.full((4,), 4.0, dtype=torch.float64), rtol=0.3)

x0 = X_batch[:1]  # one example, placed in two different batches
batch_a = torch.cat([x0, 3 + 2 * torch.randn(31, 4, dtype=torch.float64, generator=gen)])
batch_b = torch.cat([x0, 10 + torch.randn(31, 4, dtype=torch.float64, generator=gen)])
gamma, beta = ours.gamma, ours.beta
train_a, train_b = batch_norm_forward(batch_a, gamma, beta)[0][0], batch_norm_forward(batch_b, gamma, beta)[0][0]
ours.eval()
theirs.eval()
eval_a, eval_b, eval_alone = ours(batch_a)[0], ours(batch_b)[0], ours(x0)[0]
print("train mode, x0 in batch A:", train_a.numpy().round(3), " in batch B:", train_b.numpy().round(3))
print("eval mode,  x0 in batch A:", eval_a.numpy().round(3), " in batch B:", eval_b.numpy().round(3))
assert (train_a - train_b).abs().max() > 1.0  # train mode: the other examples change x0's output
assert torch.equal(eval_a, eval_b) and torch.equal(eval_a, eval_alone)  # eval mode: they do not
with torch.no_grad():
    assert torch.allclose(eval_alone, theirs(x0)[0], atol=1e-12)

# %% [markdown]
# **What to notice:** in training mode the same example gets a different output
# depending on its batch-mates; in eval mode it gets one answer, also alone. Forgetting
# `model.eval()` before testing a BatchNorm network is a classic bug (practice
# question 2 has you write eval mode yourself).
#
# ## 5. Why normalization keeps gradients healthy
#
# Take the deep sigmoid network of notebook 02: 10 layers of 100 units, weights
# $\mathcal N(0, 0.1^2)$, one batch of 256 digits. Below: the gradient arriving at each
# layer, $\|\partial L/\partial h_k\|$, without normalization, with BatchNorm and with
# LayerNorm after every linear layer.

# %% tags=["demo"]
grads = {label: layer_statistics_at_init(10, 100, activation="sigmoid", norm=norm, std=0.1, seed=0)["out_grad_norm"]
         for label, norm in [("no normalization", None), ("BatchNorm", "batch"), ("LayerNorm", "layer")]}
ratios = {label: g[0] / g[-1] for label, g in grads.items()}
plot_gradient_norms(grads, ylabel="||dL/dh_k||", title="10 sigmoid layers, W ~ N(0, 0.1^2)")
print({label: f"{r:.1e}" for label, r in ratios.items()})
assert ratios["no normalization"] < 1e-5  # vanishing
assert 0.5 < ratios["BatchNorm"] < 2  # healthy: about as much as the last layer
assert 50 < ratios["LayerNorm"] / ratios["no normalization"] < 200  # about 100 times more ...
assert ratios["LayerNorm"] < 1e-2  # ... and still vanishing

# %% [markdown]
# **What to notice:** without normalization layer 1 gets less than $10^{-5}$ of the last
# layer's gradient; with BatchNorm about as much as the last layer (within a factor of 2). Why? In the
# backward pass BatchNorm divides by the batch standard deviation of its input,
# $\sigma_j$. If the weights are small, $\sigma_j$ is small by the same factor, and the
# two cancel: BN$(aWx) = $ BN$(Wx)$ for any $a > 0$ (up to $\varepsilon$), so the gradient
# that flows *through* a BN layer does not depend on the weight scale.
#
# LayerNorm helps (about a hundred times more gradient reaches layer 1), but the sigmoid
# net still vanishes. Per layer, the gradient is multiplied by the sigmoid's slope, by
# $W^\top$ (which scales a vector by about $0.1\sqrt{100} = 1$ here), and divided by the
# normalizer's standard deviation of $u = Wh$. BatchNorm divides by how much $u$ varies
# **across the batch**; LayerNorm by how much it varies **across units** of one example,
# which the 0.5 every sigmoid output carries inflates ($W \cdot 0.5\,\mathbf 1$ differs
# from unit to unit). Let's measure the three numbers for one layer.

# %% tags=["demo"]
h = torch.sigmoid(torch.randn(256, 100, generator=gen))  # sigmoid of unit-variance inputs, as after BN or LN
W = 0.1 * torch.randn(100, 100, generator=gen)
u = h @ W.T  # the next layer's pre-activations
slope = (h * (1 - h)).mean().item()
across_batch, across_units = u.std(dim=0).mean().item(), u.std(dim=1).mean().item()
factor = {"BatchNorm": slope * 1.0 / across_batch, "LayerNorm": slope * 1.0 / across_units}
print(f"slope {slope:.3f}; std of u across the batch {across_batch:.3f}, across units {across_units:.3f}")
print({k: f"{v:.2f} per layer, {v**9:.1e} over 9 layers" for k, v in factor.items()})
assert 0.15 < slope < 0.25 and across_units > 2 * across_batch
assert 0.8 < factor["BatchNorm"] < 1.25
assert 0.35 < factor["LayerNorm"] < 0.5  # about 0.4
assert 0.4 < factor["LayerNorm"] ** 9 / ratios["LayerNorm"] < 2.5  # the measured ratio, within 2.5x (1.6 here)

# %% [markdown]
# **What to notice:** the sigmoid's slope (about 0.2) and the spread of $u$ across the
# batch nearly cancel, so a BatchNorm layer passes the gradient on at about its size. The
# spread across units is more than twice as large, so LayerNorm keeps a factor of about
# 0.4 per layer, and $0.4^9$ is within a factor of 2.5 of the ratio measured above (1.4
# to 2.3 times the ratio of section 5's network on seeds 0 to 4). In transformers
# LayerNorm works together with residual connections (notebook 07).
#
# ## 6. BatchNorm trains a sigmoid net much faster (E8)
#
# Ioffe & Szegedy's figure 1, in small. Their MNIST experiment trained 3 fully connected
# sigmoid layers of 100 units, with and without BatchNorm; their headline result, an
# Inception network on ImageNet that reaches the same accuracy in 14 times fewer
# training steps, is far beyond a notebook. Ours: 3 sigmoid layers of 100 units,
# $\mathcal N(0, 0.1^2)$ init, plain SGD with learning rate 0.1, 300 steps of 128 digits,
# with and without BatchNorm. Accuracy is measured on all 1,797 digits in eval mode.

# %% tags=["demo"]
runs = {label: train_digits(3, 100, activation="sigmoid", norm=norm, std=0.1, lr=0.1, num_steps=300, seed=0)
        for label, norm in [("no normalization", None), ("BatchNorm", "batch")]}
plot_training_curves({label: r["loss"] for label, r in runs.items()}, smooth=10)
print({label: f"accuracy {r['accuracy']:.3f}" for label, r in runs.items()})
assert runs["BatchNorm"]["accuracy"] > 0.9
assert runs["no normalization"]["accuracy"] < 0.5
assert runs["no normalization"]["final_loss"] > 2.2  # still at ln 10, the loss of guessing

# %% [markdown]
# **What to notice:** without normalization the loss sits at $\ln 10 \approx 2.3$, the
# loss of guessing, for all 300 steps: the network predicts one class. With BatchNorm
# the same network, the same learning rate and the same 300 steps reach over 90%.
#
# ## 7. The weight-scale sweep
#
# CS231n's BatchNorm assignment asks how sensitive training is to the initial weight
# scale. We train a 6-layer sigmoid network (width 50, SGD with momentum 0.9, learning
# rate 0.1, 100 steps) from $W \sim \mathcal N(0, s^2)$ for nine scales $s$ between
# $10^{-3}$ and $10$, with and without BatchNorm.

# %% tags=["demo"]
scales = np.logspace(-3, 1, 9)
sweep = {label: weight_scale_sweep(scales, norm=norm, seed=0)
         for label, norm in [("no normalization", None), ("BatchNorm", "batch")]}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (label, accs) in enumerate(sweep.items()):
    ax.semilogx(scales, np.nan_to_num(accs, nan=0.0), "o-", color=OKABE_ITO[i], label=label)
ax.axhline(0.8, color="black", linestyle="--", linewidth=1)
ax.set_xlabel("initial weight std s")
ax.set_ylabel("accuracy after 100 steps")
ax.legend(frameon=False)
trains = {label: int(np.sum(np.nan_to_num(accs) > 0.8)) for label, accs in sweep.items()}
print({label: np.round(accs, 2).tolist() for label, accs in sweep.items()})
print(f"scales that reach 80%: {trains}")
assert trains["BatchNorm"] >= 6 and trains["no normalization"] <= 2
assert sweep["no normalization"][np.argmin(np.abs(np.log10(scales)))] > 0.8  # the scale that trains without BN: 1

# %% [markdown]
# **What to notice:** without normalization at most two of the nine scales get past 80%
# (here only $s = 1$; its neighbours do not); with BatchNorm at least six of the nine do
# (here seven), across three decades. The exceptions are at the far left, where the
# pre-activations' variance falls to the size of $\varepsilon$ and BatchNorm stops
# normalizing (section 1).
#
# ## 8. Explore: weight scale with and without BatchNorm
#
# The explorer builds two digits classifiers with the same weight scale, one without
# normalization and one with BatchNorm after every linear layer, and shows the gradient
# arriving at each layer and each layer's activation std. Try the three activations at
# scales 0.01 and 1; then find the scale where BatchNorm stops helping a sigmoid net.

# %% tags=["demo"]
explorer = normalization_explorer(weight_scale=0.1, depth=10, activation="sigmoid")
assert explorer.last["kind_plain"] == "vanishing" and explorer.last["kind_batch"] == "healthy"
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks try one public example and tell you
# what kind of mistake they see; hidden tests with other inputs decide the grade.
# Questions 1 and 2 get torch tensors (float64 or float32) and return torch tensors;
# question 3 gets NumPy arrays. Write the formulas yourself rather than calling
# `course_lib.normalization` or `torch.nn.functional`: that is the exercise.
#
# ### Question 1 (3 points): a BatchNorm training step
#
# Write `batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5)`
# for `X` of shape (N, D), N >= 2. Return the triple `(Y, new_running_mean, new_running_var)`:
# `Y` normalized with the batch's mean and **biased** variance, and the running
# statistics updated as PyTorch does (section 4: the running variance takes the
# **unbiased** batch variance). Do not modify the inputs. Checked with
# relative tolerance 1e-6; the hidden tests use other shapes, dtypes, `momentum` and `eps`.

# %% nbgrader={"grade_id": "q1_batch_norm_train", "solution": true}
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    """Training-mode BatchNorm: (Y, new_running_mean, new_running_var)."""
    ### BEGIN SOLUTION
    n = X.shape[0]
    mean = X.mean(dim=0)
    var = ((X - mean) ** 2).mean(dim=0)
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    new_mean = (1 - momentum) * running_mean + momentum * mean
    new_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    return Y, new_mean, new_var
    ### END SOLUTION

# %% mistake="q1_batch_norm_train" label="normalizes with the unbiased variance (torch.var's default)"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0)
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    return Y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var

# %% mistake="q1_batch_norm_train" label="stores the biased variance in the running variance"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0, unbiased=False)
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    return Y, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var

# %% mistake="q1_batch_norm_train" label="momentum weighs the old running value"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0, unbiased=False)
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    return Y, momentum * running_mean + (1 - momentum) * mean, momentum * running_var + (1 - momentum) * X.var(dim=0)

# %% mistake="q1_batch_norm_train" label="hard-codes eps = 1e-5 and momentum = 0.1"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0, unbiased=False)
    Y = gamma * (X - mean) / torch.sqrt(var + 1e-5) + beta
    return Y, 0.9 * running_mean + 0.1 * mean, 0.9 * running_var + 0.1 * X.var(dim=0)

# %% mistake="q1_batch_norm_train" label="updates the running statistics in place"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0, unbiased=False)
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    running_mean.mul_(1 - momentum).add_(momentum * mean)
    running_var.mul_(1 - momentum).add_(momentum * X.var(dim=0))
    return Y, running_mean, running_var

# %% right="q1_batch_norm_train" label="F.batch_norm on copies of the running statistics"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    new_mean, new_var = running_mean.clone(), running_var.clone()
    Y = F.batch_norm(X, new_mean, new_var, gamma, beta, training=True, momentum=momentum, eps=eps)
    return Y, new_mean, new_var

# %% right="q1_batch_norm_train" label="torch.var_mean, the unbiased variance by Bessel's correction"
def batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    var, mean = torch.var_mean(X, dim=0, correction=0)
    unbiased = var * X.shape[0] / (X.shape[0] - 1)
    Y = (X - mean) * torch.rsqrt(var + eps) * gamma + beta
    return (Y, torch.lerp(running_mean, mean, momentum), torch.lerp(running_var, unbiased, momentum))

# %% nbgrader={"grade_id": "q1_batch_norm_train_test", "grade": true, "points": 3}
# Public example (expected values computed in advance): 4 examples, 2 features, momentum 0.1, eps 1e-5.
_case = (torch.tensor([[1.0, 2.0], [3.0, -2.0], [5.0, 0.0], [-1.0, 4.0]], dtype=torch.float64),
         torch.tensor([1.0, 2.0], dtype=torch.float64), torch.tensor([0.0, -1.0], dtype=torch.float64),
         torch.tensor([0.5, -0.5], dtype=torch.float64), torch.tensor([2.0, 0.5], dtype=torch.float64))
checks.check_function(
    "Question 1 (Y)", lambda *a: batch_norm_train(*a)[0],
    [(_case, [[-0.4472131482870333, -0.10557370342593342], [0.4472131482870333, -3.6832788897221995],
              [1.3416394448610998, -1.8944262965740666], [-1.3416394448610998, 1.6832788897221995]])],
    rtol=1e-6,
    mistakes=[(lambda *a: [[-0.3872980441473175, -0.225403911705365], [0.3872980441473175, -3.323788264883905],
                           [1.1618941324419525, -1.774596088294635], [-1.1618941324419525, 1.323788264883905]],
               "Y was normalized with the unbiased variance (divided by N - 1). Which variance does BatchNorm use "
               "for Y?"),
              (lambda *a: [[-0.9999800005999799, 0.9999600011999599], [0.99999920000096, -2.99999840000192],
                           [0.99999920000096, -2.99999840000192], [-0.99999920000096, 0.99999840000192]],
               "you normalized each example over its features (that is LayerNorm). Which axis does BatchNorm "
               "average over?")],
    hint="Compare your Y's mean and std per feature with beta and |gamma|.")
checks.check_function(
    "Question 1 (new_running_mean)", lambda *a: batch_norm_train(*a)[1], [(_case, [0.65, -0.35])], rtol=1e-6,
    mistakes=[(lambda *a: [1.85, 0.8500000000000001], "momentum weighs the NEW batch statistic, not the old "
                                                      "running value."),
              (lambda *a: [2.0, 1.0], "that is the batch mean alone; the running mean keeps most of its old value.")],
    hint="Section 4: running <- (1 - m) running + m batch statistic.")
checks.check_function(
    "Question 1 (new_running_var)", lambda *a: batch_norm_train(*a)[2], [(_case, [2.466666666666667,
                                                                                   1.1166666666666667])],
    rtol=1e-6,
    mistakes=[(lambda *a: [2.3, 0.95], "the running variance takes the UNBIASED batch variance, as PyTorch does."),
              (lambda *a: [6.2, 6.05], "momentum weighs the NEW batch statistic, not the old running value.")],
    hint="Section 4: running <- (1 - m) running + m batch statistic, with the unbiased batch variance.")
### BEGIN HIDDEN TESTS
def _bn_reference(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    X, gamma, beta, running_mean, running_var = (t.double() for t in (X, gamma, beta, running_mean, running_var))
    layer = nn.BatchNorm1d(X.shape[1], eps=eps, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        for target, value in [(layer.weight, gamma), (layer.bias, beta), (layer.running_mean, running_mean),
                              (layer.running_var, running_var)]:
            target.copy_(value)
        return layer(X), layer.running_mean.clone(), layer.running_var.clone()


with checks.quiet():
    _rng = torch.Generator().manual_seed(2024)
    for _n, _d, _dtype in [(2, 1, torch.float64), (7, 5, torch.float64), (33, 3, torch.float32), (3, 9, torch.float64)]:
        _args = (torch.randn(_n, _d, generator=_rng).double() * 5 - 3,
                 torch.randn(_d, generator=_rng).double(), torch.randn(_d, generator=_rng).double(),
                 torch.randn(_d, generator=_rng).double(), torch.rand(_d, generator=_rng).double() + 0.5)
        _args = tuple(a.to(_dtype) for a in _args)
        for _momentum, _eps in [(0.1, 1e-5), (0.3, 0.5)]:
            _want = _bn_reference(*_args, momentum=_momentum, eps=_eps)
            for _part in range(3):
                checks.check_function("Question 1 (hidden)",
                                      lambda *a, _p=_part, _m=_momentum, _e=_eps: batch_norm_train(*a, _m, _e)[_p],
                                      [(_args, _want[_part])], rtol=1e-6, atol=1e-5 if _dtype == torch.float32 else 1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (2 points): BatchNorm in eval mode
#
# Write `batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5)`: the
# output of a BatchNorm layer in eval mode for `X` of shape (N, D) (section 4). It must
# work for any N, including a single example, and must not modify its inputs. Checked
# with relative tolerance 1e-6; the hidden tests use other shapes, dtypes and `eps`.

# %% nbgrader={"grade_id": "q2_batch_norm_eval", "solution": true}
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    """Eval-mode BatchNorm of X (N, D)."""
    ### BEGIN SOLUTION
    return gamma * (X - running_mean) / torch.sqrt(running_var + eps) + beta
    ### END SOLUTION

# %% mistake="q2_batch_norm_eval" label="uses the batch's statistics instead of the running ones"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0, unbiased=False)
    return gamma * (X - mean) / torch.sqrt(var + eps) + beta

# %% mistake="q2_batch_norm_eval" label="divides by the running variance, not its square root"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    return gamma * (X - running_mean) / (running_var + eps) + beta

# %% mistake="q2_batch_norm_eval" label="drops gamma and beta in eval mode"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    return (X - running_mean) / torch.sqrt(running_var + eps)

# %% mistake="q2_batch_norm_eval" label="hard-codes eps = 1e-5"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    return gamma * (X - running_mean) / torch.sqrt(running_var + 1e-5) + beta

# %% right="q2_batch_norm_eval" label="folds the layer into one scale and shift, with a print"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    scale = gamma / torch.sqrt(running_var + eps)
    shift = beta - running_mean * scale
    print(f"eval mode is the affine map x * {scale.tolist()} + {shift.tolist()}")
    return X * scale + shift

# %% right="q2_batch_norm_eval" label="F.batch_norm with training=False"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    return F.batch_norm(X, running_mean.clone(), running_var.clone(), gamma, beta, training=False, eps=eps)

# %% nbgrader={"grade_id": "q2_batch_norm_eval_test", "grade": true, "points": 2}
# Public example (expected values computed in advance): 3 examples, 2 features, eps 1e-5.
_case = (torch.tensor([[1.0, 2.0], [3.0, -2.0], [0.5, 0.0]], dtype=torch.float64),
         torch.tensor([1.5, -1.0], dtype=torch.float64), torch.tensor([0.5, 0.0], dtype=torch.float64),
         torch.tensor([1.0, -1.0], dtype=torch.float64), torch.tensor([4.0, 0.25], dtype=torch.float64))
checks.check_function(
    "Question 2", batch_norm_eval,
    [(_case, [[0.5, -5.99988000359988], [1.9999981250035155, 1.9999600011999599],
              [0.12500046874912113, -1.9999600011999599]])], rtol=1e-6,
    mistakes=[(lambda *a: [[-0.1943620989982232, -1.2247425750014138], [2.5830862969946695, 1.2247425750014138],
                           [-0.8887241979964464, 0.0]],
               "you used this batch's mean and variance. In eval mode a prediction must not depend on the rest of "
               "the batch: which statistics does the layer keep for that?"),
              (lambda *a: [[0.5, -11.999520019199231], [1.2499981250046877, 3.9998400063997437],
                           [0.3125004687488281, -3.9998400063997437]],
               "check the units: x - mean is divided by a standard deviation, not by a variance."),
              (lambda *a: [[0.0, 5.99988000359988], [0.9999987500023437, -1.9999600011999599],
                           [-0.24999968750058593, 1.9999600011999599]],
               "the output is normalized but gamma and beta are missing; the layer still scales and shifts.")],
    hint="Eval mode is the training-mode formula with different statistics. Compare feature by feature.")
### BEGIN HIDDEN TESTS
def _bn_eval_reference(X, gamma, beta, running_mean, running_var, eps=1e-5):
    layer = nn.BatchNorm1d(X.shape[1], eps=eps, dtype=torch.float64).eval()
    with torch.no_grad():
        for target, value in [(layer.weight, gamma), (layer.bias, beta), (layer.running_mean, running_mean),
                              (layer.running_var, running_var)]:
            target.copy_(value.double())
        return layer(X.double())


with checks.quiet():
    _rng = torch.Generator().manual_seed(7)
    for _n, _d, _dtype, _eps in [(1, 4, torch.float64, 1e-5), (2, 1, torch.float64, 0.25), (5, 7, torch.float32, 1e-5),
                                 (33, 3, torch.float64, 0.5)]:
        _args = (torch.randn(_n, _d, generator=_rng).double() * 3, torch.randn(_d, generator=_rng).double(),
                 torch.randn(_d, generator=_rng).double(), torch.randn(_d, generator=_rng).double(),
                 torch.rand(_d, generator=_rng).double() * 0.5 + 0.01)
        _args = tuple(a.to(_dtype) for a in _args)
        checks.check_function("Question 2 (hidden)", lambda *a, _e=_eps: batch_norm_eval(*a, eps=_e),
                              [(_args, _bn_eval_reference(*_args, eps=_eps))], rtol=1e-6,
                              atol=1e-5 if _dtype == torch.float32 else 1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (4 points): the backward pass of RMSNorm
#
# RMSNorm (Zhang & Sennrich 2019, used in LLaMA) is LayerNorm without the centering:
#
# $$r = \sqrt{\operatorname{mean}(x^2) + \varepsilon},\qquad \hat x = x / r,\qquad y = \gamma\,\hat x,$$
#
# with the mean over the last axis (the features of one example). Write
# `rms_norm_backward(grad_out, X, gamma, eps=1e-6)` returning $\partial L/\partial X$
# (same shape as `X`, any number of leading axes) given `grad_out` $= \partial L/\partial y$.
# Derive it as in section 2: $r$ depends on every feature of the example.
#
# The arguments are **NumPy arrays** (float64) and the answer must be a NumPy array: the
# grader calls your function on NumPy inputs, which carry no autograd history, so write the
# backward formula yourself. Checked with relative tolerance 1e-6; the hidden tests use
# other shapes (a single feature, three or four axes), values and `eps`.

# %% nbgrader={"grade_id": "q3_rms_norm_backward", "solution": true}
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    """dL/dX of y = gamma * X / sqrt(mean(X**2, last axis) + eps), for NumPy arrays."""
    ### BEGIN SOLUTION
    r = np.sqrt((X**2).mean(axis=-1, keepdims=True) + eps)
    X_hat = X / r
    g_hat = grad_out * gamma
    return (g_hat - X_hat * (g_hat * X_hat).mean(axis=-1, keepdims=True)) / r
    ### END SOLUTION

# %% mistake="q3_rms_norm_backward" label="treats r as a constant (ignores that r depends on x)"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    r = np.sqrt((X**2).mean(axis=-1, keepdims=True) + eps)
    return grad_out * gamma / r

# %% mistake="q3_rms_norm_backward" label="copies LayerNorm's backward, with its mean-subtraction term"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    r = np.sqrt((X**2).mean(axis=-1, keepdims=True) + eps)
    X_hat, g_hat = X / r, grad_out * gamma
    return (g_hat - g_hat.mean(axis=-1, keepdims=True) - X_hat * (g_hat * X_hat).mean(axis=-1, keepdims=True)) / r

# %% mistake="q3_rms_norm_backward" label="forgets gamma in the gradient reaching x_hat"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    r = np.sqrt((X**2).mean(axis=-1, keepdims=True) + eps)
    X_hat = X / r
    return (grad_out - X_hat * (grad_out * X_hat).mean(axis=-1, keepdims=True)) / r

# %% mistake="q3_rms_norm_backward" label="hard-codes eps = 1e-6"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    r = np.sqrt((X**2).mean(axis=-1, keepdims=True) + 1e-6)
    X_hat, g_hat = X / r, grad_out * gamma
    return (g_hat - X_hat * (g_hat * X_hat).mean(axis=-1, keepdims=True)) / r

# %% mistake="q3_rms_norm_backward" label="means over axis 0 (the batch) instead of the features"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    r = np.sqrt((X**2).mean(axis=0, keepdims=True) + eps)
    X_hat, g_hat = X / r, grad_out * gamma
    return (g_hat - X_hat * (g_hat * X_hat).mean(axis=0, keepdims=True)) / r

# %% right="q3_rms_norm_backward" label="the full Jacobian of each example, with einsum"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    D = X.shape[-1]
    r = np.sqrt(np.mean(X * X, axis=-1) + eps)[..., None, None]
    # dx_hat_i / dx_j = (delta_ij - x_i x_j / (D r^2)) / r
    jac = (np.eye(D) - np.einsum("...i,...j->...ij", X, X) / (D * r**2)) / r
    return np.einsum("...i,...ij->...j", grad_out * gamma, jac)

# %% right="q3_rms_norm_backward" label="written in torch from scratch, converted back to NumPy"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    g, x, w = (torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in (grad_out, X, gamma))
    r = torch.sqrt((x**2).mean(dim=-1, keepdim=True) + eps)
    g_hat = g * w
    dr = -(g_hat * x).sum(dim=-1, keepdim=True) / r**2          # dL/dr
    return (g_hat / r + dr * x / (x.shape[-1] * r)).numpy()      # dr/dx = x / (D r)

# %% nbgrader={"grade_id": "q3_rms_norm_backward_test", "grade": true, "points": 4}
# Public example (expected values computed in advance): 2 examples, 3 features, eps 1e-6.
_case = (np.array([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0]]), np.array([[2.0, -1.0, 0.5], [1.0, 1.0, -3.0]]),
         np.array([1.0, 2.0, -0.5]))
checks.check_function(
    "Question 3", rms_norm_backward,
    [(_case, [[-0.9359107942350368, -2.1777951580184505, -0.6119420635781833],
              [-0.3085920820428767, 0.7358737112641663, 0.14242690114834777]])], rtol=1e-6,
    mistakes=[(lambda *a: [[0.7559287300388482, -3.023714920155393, -0.18898218250971205],
                           [0.0, 1.0444657933070431, -0.7833493449802823]],
               "you treated r as a constant. r = sqrt(mean(x**2) + eps) depends on every feature of the example: "
               "the chain rule through r adds a term."),
              (lambda *a: [[-0.11698800335961809, -1.3588723671430316, 0.20698072729723554],
                           [-0.395630898151797, 0.6488348951552461, 0.055388085039427486]],
               "that has a term for a mean that RMSNorm never subtracts (LayerNorm's backward)."),
              (lambda *a: [[-0.4679551811380044, -0.8999155044892702, 0.07199338722521095],
                           [0.3798056394373866, 0.9020385360909081, 0.4272817716484047]],
               "gamma is missing: the gradient reaching x_hat is gamma * grad_out."),
              (lambda *a: [[-4.319589842782807, -0.48595563374456535, -1.4578618257151257],
                           [-0.9257762461286301, 0.11868954717841299, 1.9939793934056074]],
               "r uses the MEAN of x**2 over the features; check what your correction term averages or sums.")],
    hint="Write dL/dx_j = sum_i dL/dy_i dy_i/dx_j by hand for one example of 2 features, then vectorise. "
         "Check your formula with course_lib.gradcheck.numerical_gradient on a small example.")
### BEGIN HIDDEN TESTS
def _rms_reference(grad_out, X, gamma, eps=1e-6):  # autograd, in the grader only
    X = torch.tensor(X, requires_grad=True)
    (torch.tensor(gamma) * X / torch.sqrt((X**2).mean(dim=-1, keepdim=True) + eps) * torch.tensor(grad_out)).sum(
        ).backward()
    return X.grad.numpy()


with checks.quiet():
    _rng = np.random.default_rng(99)
    for _shape, _eps in [((1, 1), 1e-6), ((3, 1), 0.5), ((2, 3, 7), 1e-6), ((5, 16), 0.5), ((2, 2, 2, 4), 1e-6),
                         ((1, 9), 2.0)]:
        _args = (_rng.standard_normal(_shape), _rng.standard_normal(_shape) * 3, _rng.standard_normal(_shape[-1]))
        checks.check_function("Question 3 (hidden)", lambda *a, _e=_eps: rms_norm_backward(*a, eps=_e),
                              [(_args, _rms_reference(*_args, eps=_eps))], rtol=1e-6, atol=1e-9)
        assert isinstance(rms_norm_backward(*_args, eps=_eps), np.ndarray), "Question 3: return a NumPy array"
    _args = (_rng.standard_normal((4, 6)), np.zeros((4, 6)), _rng.standard_normal(6))  # x = 0: r = sqrt(eps)
    checks.check_function("Question 3 (hidden, x = 0)", rms_norm_backward, [(_args, _rms_reference(*_args))],
                          rtol=1e-6, atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (3 points): predict a gradient
#
# A layer computes $\mathrm{BN}(Wx)$ in training mode (with its $\gamma$ and $\beta$),
# followed by the rest of the network. You multiply $W$ by `scale` > 0 and run the
# same batch again. By what factor does the size (the norm) of each of these
# gradients change: `"weight"` ($\partial L/\partial W$), `"input"`
# ($\partial L/\partial x$, what the layer passes on to the layers below) and
# `"gamma"` ($\partial L/\partial\gamma$)? Write `predict_grad_factor(scale, quantity)`.
# Graded against measurements for other scales (between 0.1 and 100) and the three
# quantities, with relative tolerance 1%.

# %% nbgrader={"grade_id": "q4_predict_grad_factor", "solution": true}
def predict_grad_factor(scale, quantity):
    """||grad(quantity)|| after W -> scale * W, over ||grad(quantity)|| before, for BN(Wx)."""
    ### BEGIN SOLUTION
    # BN(scale * Wx) = BN(Wx): the forward pass and dL/dy do not change, but BN's backward divides
    # dL/d(Wx) by a std that is `scale` times larger. dL/dW = dL/d(Wx) x^T shrinks by `scale`;
    # dL/dx = W^T dL/d(Wx) gets `scale` back from W; dL/dgamma = sum(dL/dy * x_hat) does not move.
    return 1.0 / scale if quantity == "weight" else 1.0
    ### END SOLUTION

# %% mistake="q4_predict_grad_factor" label="thinks the gradient grows with the weights"
def predict_grad_factor(scale, quantity):
    return scale if quantity == "weight" else 1.0

# %% mistake="q4_predict_grad_factor" label="every gradient below BN shrinks by the scale, the input's too"
def predict_grad_factor(scale, quantity):
    return 1.0 if quantity == "gamma" else 1.0 / scale

# %% mistake="q4_predict_grad_factor" label="the output does not change, so no gradient changes"
def predict_grad_factor(scale, quantity):
    return 1.0

# %% mistake="q4_predict_grad_factor" label="answers for the public setting only (scale 10)"
def predict_grad_factor(scale, quantity):
    return 0.1

# %% right="q4_predict_grad_factor" label="measures it with autograd on a random BN layer"
def predict_grad_factor(scale, quantity):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 5, generator=generator, dtype=torch.float64)
    W = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    upstream = torch.randn(128, 4, generator=generator, dtype=torch.float64)
    norms = []
    for s in (1.0, scale):
        leaves = {"weight": (s * W).requires_grad_(), "input": x.clone().requires_grad_(),
                  "gamma": torch.ones(4, dtype=torch.float64, requires_grad=True)}
        out = F.batch_norm(leaves["input"] @ leaves["weight"].T, None, None, leaves["gamma"], training=True)
        (torch.tanh(out) * upstream).sum().backward()
        norms.append(leaves[quantity].grad.norm().item())
    return norms[1] / norms[0]

# %% right="q4_predict_grad_factor" label="a table of exponents"
def predict_grad_factor(scale, quantity):
    exponent = {"weight": -1, "input": 0, "gamma": 0}[quantity]
    return float(scale) ** exponent

# %% nbgrader={"grade_id": "q4_predict_grad_factor_test", "grade": true, "points": 3}
# Public setting: scale 10, the weight's gradient, measured on a small layer followed by a sigmoid.
_g4 = torch.Generator().manual_seed(4)
_X4, _W4 = torch.randn(64, 8, generator=_g4).double(), torch.randn(6, 8, generator=_g4).double()
_gamma4, _R4 = torch.rand(6, generator=_g4).double() + 0.5, torch.randn(64, 6, generator=_g4).double()
_norms = []
for _scale in (1.0, 10.0):
    _W = (_scale * _W4).requires_grad_()
    (torch.sigmoid(F.batch_norm(_X4 @ _W.T, None, None, _gamma4, training=True)) * _R4).sum().backward()
    _norms.append(_W.grad.norm().item())
checks.check_function(
    "Question 4", predict_grad_factor, [((10.0, "weight"), _norms[1] / _norms[0])], rtol=0.01,
    mistakes=[(lambda *a: 10.0, "the weights grew, but BN(10 Wx) = BN(Wx): what happens to dL/d(Wx) when BN "
                                "divides by a standard deviation 10 times larger?"),
              (lambda *a: 1.0, "the output does not change, but the backward pass divides by the batch standard "
                               "deviation, which grew with W."),
              (lambda *a: 0.01, "one factor 1/10 comes from BN's backward; dL/dW = dL/d(Wx) x^T has no other.")],
    hint="BN(aWx) = BN(Wx). Write dL/dW = dL/d(Wx) x^T and ask how dL/d(Wx) scales with a; then do the same for "
         "dL/dx = W^T dL/d(Wx) and dL/dgamma.")
### BEGIN HIDDEN TESTS
def _measured_factor(scale, quantity, seed):
    generator = torch.Generator().manual_seed(seed)
    x, W = torch.randn(48, 7, generator=generator).double(), torch.randn(5, 7, generator=generator).double()
    gamma, beta = torch.rand(5, generator=generator).double() + 0.5, torch.randn(5, generator=generator).double()
    upstream = torch.randn(48, 5, generator=generator).double()
    norms = []
    for s in (1.0, scale):
        leaves = {"weight": (s * W).requires_grad_(), "input": x.clone().requires_grad_(),
                  "gamma": gamma.clone().requires_grad_()}
        out = F.batch_norm(leaves["input"] @ leaves["weight"].T, None, None, leaves["gamma"], beta, training=True)
        (torch.tanh(out) * upstream).sum().backward()
        norms.append(leaves[quantity].grad.norm().item())
    return norms[1] / norms[0]


with checks.quiet():
    for _seed, (_scale, _quantity) in enumerate([(0.1, "weight"), (3.0, "input"), (50.0, "gamma"), (0.5, "input"),
                                                 (2.0, "weight"), (7.0, "gamma"), (1.0, "weight"), (100.0, "input")]):
        checks.check_function("Question 4 (hidden)", predict_grad_factor,
                              [((_scale, _quantity), _measured_factor(_scale, _quantity, _seed))], rtol=0.01)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (1 point): which normalization for a transformer?
#
# You train a transformer language model with batches of 32 sequences and then generate
# text one sequence at a time. Which normalization layer, and why? Set `q5_answer` to
# `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** BatchNorm: its running statistics give better test-time predictions than LayerNorm's.
# - **B.** Either one: with a single sequence per batch, both of them compute the same thing.
# - **C.** BatchNorm: LayerNorm cannot be backpropagated when a batch holds a single sequence.
# - **D.** LayerNorm: it normalizes each token alone, so batch size and mode do not matter.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "D"
### END SOLUTION

# %% mistake="q5_answer" label="thinks BatchNorm and LayerNorm agree with one sequence per batch"
q5_answer = "B"

# %% mistake="q5_answer" label="trusts running statistics over per-token normalization"
q5_answer = "A"

# %% mistake="q5_answer" label="thinks LayerNorm needs a batch for its backward pass"
q5_answer = "C"

# %% right="q5_answer" label="lower case"
q5_answer = "d"

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="e4179bbcae744a7f", salt="06_q5",
    explanations={"A": "Running statistics are averages over the TRAINING batches, and a second code path (train "
                       "vs eval mode) that must be kept in sync. Is there a layer that needs neither?",
                  "B": "They normalize along different axes. What does BatchNorm in train mode do to a batch of "
                       "one example?",
                  "C": "Section 3 normalized a single token on its own. Does its backward pass need other "
                       "examples?"})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="D")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (2 points): diagnose a network from its gradients
#
# Write `diagnose(grad_norms)`. Its input is $\|\partial L/\partial h_k\|$ for layers
# $k = 1, \dots, L$ (layer 1 first), measured on one batch, as
# `layer_statistics_at_init(...)["out_grad_norm"]` returns it. Return `"vanishing"` when
# the gradient reaching layer 1 is less than 1/100 of the last layer's, `"exploding"`
# when it is more than 100 times the last layer's or when any value is not finite (NaN
# or infinity), and `"healthy"` otherwise. The public examples are the four networks in
# `mystery` below (20 layers of 64 units, measured with
# `layer_statistics_at_init(20, 64, **mystery["A"], seed=0)["out_grad_norm"]` and so on);
# the hidden tests use other networks and depths, and made-up measurements. Before you
# measure them, predict each mystery network's verdict: which normalization rescues which
# activation?

# %%
mystery = {"A": dict(activation="tanh", norm="batch", std=1.0),
           "B": dict(activation="sigmoid", norm=None, std=0.1),
           "C": dict(activation="tanh", norm=None, std=1.0),
           "D": dict(activation="sigmoid", norm="layer", std=0.1)}

# %% nbgrader={"grade_id": "q6_diagnose", "solution": true}
def diagnose(grad_norms):
    """'vanishing', 'exploding' or 'healthy', from ||dL/dh_k|| per layer (layer 1 first)."""
    ### BEGIN SOLUTION
    grad_norms = np.asarray(grad_norms, dtype=np.float64)
    if not np.isfinite(grad_norms).all():
        return "exploding"
    first, last = grad_norms[0], grad_norms[-1]
    if first < last / 100:
        return "vanishing"
    if first > 100 * last:
        return "exploding"
    return "healthy"
    ### END SOLUTION

# %% mistake="q6_diagnose" label="reads the list backwards (takes the last entry for layer 1)"
def diagnose(grad_norms):
    g = np.asarray(grad_norms, dtype=float)
    if not np.isfinite(g).all():
        return "exploding"
    first, last = g[-1], g[0]
    return "vanishing" if first < last / 100 else "exploding" if first > 100 * last else "healthy"

# %% mistake="q6_diagnose" label="thresholds at a factor 10 instead of 100"
def diagnose(grad_norms):
    g = np.asarray(grad_norms, dtype=float)
    if not np.isfinite(g).all():
        return "exploding"
    return "vanishing" if g[0] < g[-1] / 10 else "exploding" if g[0] > 10 * g[-1] else "healthy"

# %% mistake="q6_diagnose" label="lets NaN through (every comparison with NaN is False)"
def diagnose(grad_norms):
    first, last = grad_norms[0], grad_norms[-1]
    return "vanishing" if first < last / 100 else "exploding" if first > 100 * last else "healthy"

# %% mistake="q6_diagnose" label="compares the smallest and largest layer instead of first and last"
def diagnose(grad_norms):
    g = np.asarray(grad_norms, dtype=float)
    if not np.isfinite(g).all():
        return "exploding"
    if g.max() > 100 * g.min():
        return "vanishing" if g.argmin() < g.argmax() else "exploding"
    return "healthy"

# %% right="q6_diagnose" label="log10 of the ratio, with a plain loop for the NaN check"
def diagnose(grad_norms):
    for value in grad_norms:
        if math.isnan(value) or math.isinf(value):
            return "exploding"
    with np.errstate(divide="ignore"):
        decades = np.log10(grad_norms[0]) - np.log10(grad_norms[-1])
    if decades < -2:
        return "vanishing"
    return "exploding" if decades > 2 else "healthy"

# %% nbgrader={"grade_id": "q6_diagnose_test", "grade": true, "points": 2}
# Public examples: the mystery networks, measured in advance with
# layer_statistics_at_init(20, 64, **mystery[name], seed=0)["out_grad_norm"] (3 significant digits).
_public = {
    "A": [3.88, 3.32, 3.05, 2.8, 2.53, 2.29, 2.14, 1.87, 1.63, 1.5, 1.32, 1.13, 1.02, 0.989, 0.884, 0.838, 0.759,
          0.708, 0.642, 0.616],
    "B": [1.13e-15, 5.55e-15, 2.83e-14, 1.44e-13, 7.63e-13, 4.04e-12, 2.22e-11, 1.2e-10, 6.03e-10, 3.16e-09,
          1.57e-08, 8.17e-08, 4.05e-07, 2.03e-06, 1.05e-05, 5.86e-05, 0.00032, 0.00171, 0.00913, 0.0476],
    "C": [6.37e+05, 3.52e+05, 1.46e+05, 6.46e+04, 3.32e+04, 1.73e+04, 8e+03, 3.75e+03, 1.88e+03, 884, 450, 223,
          95.6, 46.9, 24.4, 10.8, 5.24, 2.51, 1.26, 0.638],
    "D": [5.92e-10, 1.58e-09, 3.81e-09, 9.77e-09, 2.62e-08, 7.26e-08, 1.87e-07, 5.27e-07, 1.32e-06, 3.1e-06,
          8.95e-06, 2.32e-05, 5.64e-05, 0.000123, 0.000313, 0.00101, 0.00274, 0.00783, 0.021, 0.0477]}
checks.check_verdicts(
    "Question 6", diagnose,
    [((_public[_name],), _verdict) for _name, _verdict in [("C", "exploding"), ("D", "vanishing"), ("A", "healthy"),
                                                           ("B", "vanishing")]],
    allowed=("vanishing", "exploding", "healthy"),
    hint="Compare the FIRST layer's gradient with the LAST layer's: the ratio first / last.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    # measured like the public examples; tests/test_experiments_06.py checks these verdicts over ten seeds
    _hidden = [(([4.89e+03, 1.89e+03, 738, 296, 116, 45.8, 18.6, 8.64, 3.69, 1.75, 0.757, 0.284],), "exploding"),
               (([0.00188, 0.00944, 0.0473],), "healthy"),
               (([27, 22.4, 20.3, 16.8, 12.7, 10.6, 8.87, 6.76, 5.39, 4.45, 3.51, 2.69, 2.13, 1.68, 1.49],), "healthy"),
               (([5.12e-07, 1.52e-06, 4.72e-06, 1.56e-05, 5.13e-05, 0.000184, 0.000572, 0.00188, 0.00601, 0.0182],),
                "vanishing"),
               ((np.array([7.32e-05, 0.000183, 0.000558, 0.00115, 0.00318, 0.0084, 0.0206, 0.0498]),), "vanishing")]
    _hidden += [(([1.0, 1e-3, 1e-3, 1.0],), "healthy"), (([0.5, np.nan, 1.0],), "exploding"),
                (([np.inf, 1.0],), "exploding"), (([0.0, 1e-3, 1.0],), "vanishing"), (([3e-3, 0.1, 0.2],), "healthy"),
                ((np.array([5.0, 1.0, 0.04]),), "exploding"), (([2e4, 3e2, 1e2, 150.0],), "exploding")]
    checks.check_verdicts("Question 6 (hidden)", diagnose, _hidden, allowed=("vanishing", "exploding", "healthy"))
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - BatchNorm normalizes each feature over the batch, LayerNorm each example over its
#   features; both then scale by $\gamma$ and shift by $\beta$.
# - Their backward pass has two extra terms, the gradient through the mean and the
#   variance; a gradient check in float64 (relative error $< 10^{-7}$) catches a missing one.
# - BatchNorm uses batch statistics while training and running statistics in eval mode;
#   LayerNorm does the same thing in both.
# - Because BN$(aWx) = $ BN$(Wx)$, the gradient that passes through a BatchNorm layer does
#   not depend on the weight scale: a deep sigmoid net gets healthy gradients, trains
#   within 300 steps, and trains from a wide range of initial scales.
# - LayerNorm alone does not fix a deep sigmoid net; in transformers it works with
#   residual connections, the subject of notebook 07.
#
# ## References
#
# - S. Ioffe, C. Szegedy (2015). Batch normalization: accelerating deep network training by reducing internal covariate shift. *ICML.*
# - J. L. Ba, J. R. Kiros, G. E. Hinton (2016). Layer normalization. *arXiv:1607.06450.*
# - B. Zhang, R. Sennrich (2019). Root mean square layer normalization. *NeurIPS.*
# - X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks. *AISTATS.*
# - A. Karpathy, J. Johnson et al. CS231n: Convolutional Neural Networks for Visual Recognition, assignment 2 (batch normalization), Stanford.
