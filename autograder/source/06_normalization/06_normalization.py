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
# 4. reproduce Ioffe & Szegedy's claim that BatchNorm trains a deep sigmoid net
#    much faster (E8), and CS231n's weight-scale sweep.
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
assert 0.1 < ratios["BatchNorm"] < 10  # healthy
assert ratios["no normalization"] * 10 < ratios["LayerNorm"] < 1e-2  # better, still vanishing

# %% [markdown]
# **What to notice:** without normalization layer 1 gets less than $10^{-5}$ of the last
# layer's gradient; with BatchNorm about as much as the last layer. Why? In the
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
assert 0.8 < factor["BatchNorm"] < 1.25
assert factor["LayerNorm"] < 0.5
assert 0.1 < factor["LayerNorm"] ** 9 / ratios["LayerNorm"] < 10  # predicts the measured ratio to within 10x

# %% [markdown]
# **What to notice:** the sigmoid's slope (about 0.2) and the spread of $u$ across the
# batch nearly cancel, so a BatchNorm layer passes the gradient on at about its size. The
# spread across units is more than twice as large, so LayerNorm keeps a factor of about
# 0.4 per layer, and $0.4^9$ is close to the ratio measured above. In transformers
# LayerNorm works together with residual connections (notebook 07).
#
# ## 6. BatchNorm trains a deep sigmoid net much faster (E8)
#
# Ioffe & Szegedy's headline result, in small: 3 sigmoid layers of 100 units,
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

# %% [markdown]
# **What to notice:** without normalization one of the nine scales ($s = 1$) gets past 80%
# and its neighbours do not; with BatchNorm seven of the nine do, across three decades. The exceptions are at the far left, where the
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
# then run the check below each one. Inputs are float64 torch tensors; return torch
# tensors (NumPy arrays work too). Write the formulas yourself rather than calling
# `course_lib.normalization` or `torch.nn.functional`: that is the exercise.
#
# ### Question 1 (3 points): a BatchNorm training step
#
# Write `batch_norm_train(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5)`
# for `X` of shape (N, D). Return the triple `(Y, new_running_mean, new_running_var)`:
# `Y` normalized with the batch's mean and **biased** variance, and the running
# statistics updated as PyTorch does (section 4: the running variance takes the
# **unbiased** batch variance). Do not modify the inputs.

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

# %% nbgrader={"grade_id": "q1_batch_norm_train_test", "grade": true, "points": 3}
def _bn_reference(X, gamma, beta, running_mean, running_var, momentum=0.1, eps=1e-5):
    layer = nn.BatchNorm1d(X.shape[1], eps=eps, momentum=momentum, dtype=torch.float64)
    with torch.no_grad():
        for target, value in [(layer.weight, gamma), (layer.bias, beta), (layer.running_mean, running_mean),
                              (layer.running_var, running_var)]:
            target.copy_(value)
        return layer(X), layer.running_mean.clone(), layer.running_var.clone()


def _bn_wrong(X, gamma, beta, rm, rv, momentum=0.1, eps=1e-5, *, unbiased_y=False, biased_rv=False, swap=False,
              axis=0):
    mean, var = X.mean(dim=axis, keepdim=True), X.var(dim=axis, unbiased=unbiased_y, keepdim=True)
    Y = gamma * (X - mean) / torch.sqrt(var + eps) + beta
    m = 1 - momentum if swap else momentum
    batch_var = X.var(dim=0, unbiased=not biased_rv)
    return Y, (1 - m) * rm + m * X.mean(dim=0), (1 - m) * rv + m * batch_var


_g1 = torch.Generator().manual_seed(11)
_case = (torch.randn(8, 3, generator=_g1).double() * 2 + 1, torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
         torch.tensor([0.0, -1.0, 1.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64),
         torch.ones(3, dtype=torch.float64))
_expected = _bn_reference(*_case)
_mistakes = {"unbiased_y": "Y used the unbiased variance (divides by N - 1; torch.var's default). "
                           "BatchNorm normalizes with the biased one: ((X - mean)**2).mean(0).",
             "biased_rv": "the running variance must take the UNBIASED batch variance, N / (N - 1) times "
                          "the biased one, as PyTorch does.",
             "swap": "momentum weighs the NEW batch statistic: (1 - m) * running + m * batch.",
             "axis": "you normalized each example over its features (that is LayerNorm); BatchNorm "
                     "normalizes each feature over the batch (axis 0)."}
for _part, _name in enumerate(["Y", "new_running_mean", "new_running_var"]):
    checks.check_function(
        f"Question 1 ({_name})", lambda *a, _part=_part: batch_norm_train(*a)[_part], [(_case, _expected[_part])],
        rtol=1e-9, atol=1e-12,
        mistakes=[(lambda *a, _k=k, _part=_part: _bn_wrong(*a, **{_k: 1 if _k == "axis" else True})[_part], text)
                  for k, text in _mistakes.items()],
        hint="Follow section 4: mean and biased variance over axis 0 for Y; running statistics with momentum "
             "m: (1 - m) * running + m * batch statistic.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(2024)
    for _trial in range(6):
        _n, _d = int(torch.randint(2, 40, (1,), generator=_rng)), int(torch.randint(1, 9, (1,), generator=_rng))
        _args = (torch.randn(_n, _d, generator=_rng).double() * 5 - 3,
                 torch.randn(_d, generator=_rng).double(), torch.randn(_d, generator=_rng).double(),
                 torch.randn(_d, generator=_rng).double(), torch.rand(_d, generator=_rng).double() + 0.5)
        for _momentum in (0.1, 0.3):
            _want = _bn_reference(*_args, momentum=_momentum, eps=1e-3)
            _got = batch_norm_train(*[a.clone() for a in _args], momentum=_momentum, eps=1e-3)
            assert len(_got) == 3, "Question 1: return three things (Y, new_running_mean, new_running_var)"
            for _part in range(3):
                checks.check_close("Question 1 (hidden)", _got[_part], _want[_part], rtol=1e-9, atol=1e-12)
    _one, _zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    _args = (torch.tensor([[1.0], [3.0]], dtype=torch.float64), _one, _zero, _zero.clone(), _one.clone())
    _copies = [a.clone() for a in _args]
    _got = batch_norm_train(*_args)
    assert all(torch.equal(a, c) for a, c in zip(_args, _copies)), "Question 1: do not modify the inputs in place"
    for _part, _want in enumerate(_bn_reference(*_copies)):
        checks.check_close("Question 1 (hidden, N=2)", _got[_part], _want, rtol=1e-9, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (2 points): BatchNorm in eval mode
#
# Write `batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5)`: the
# output of a BatchNorm layer in eval mode for `X` of shape (N, D). It must work for
# any N, including a single example.

# %% nbgrader={"grade_id": "q2_batch_norm_eval", "solution": true}
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    """Eval-mode BatchNorm: normalize with the running statistics."""
    ### BEGIN SOLUTION
    return gamma * (X - running_mean) / torch.sqrt(running_var + eps) + beta
    ### END SOLUTION

# %% mistake="q2_batch_norm_eval" label="uses the batch's statistics instead of the running ones"
def batch_norm_eval(X, gamma, beta, running_mean, running_var, eps=1e-5):
    mean, var = X.mean(dim=0), X.var(dim=0, unbiased=False)
    return gamma * (X - mean) / torch.sqrt(var + eps) + beta

# %% nbgrader={"grade_id": "q2_batch_norm_eval_test", "grade": true, "points": 2}
def _bn_eval_reference(X, gamma, beta, running_mean, running_var, eps=1e-5):
    layer = nn.BatchNorm1d(X.shape[1], eps=eps, dtype=torch.float64).eval()
    with torch.no_grad():
        for target, value in [(layer.weight, gamma), (layer.bias, beta), (layer.running_mean, running_mean),
                              (layer.running_var, running_var)]:
            target.copy_(value)
        return layer(X)


_g2 = torch.Generator().manual_seed(12)
_case = (torch.randn(6, 3, generator=_g2).double() + 2, torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64),
         torch.tensor([0.0, -1.0, 1.0], dtype=torch.float64), torch.tensor([1.5, 2.0, 2.5], dtype=torch.float64),
         torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64))
checks.check_function(
    "Question 2", batch_norm_eval, [(_case, _bn_eval_reference(*_case))], rtol=1e-9, atol=1e-12,
    mistakes=[(lambda X, g, b, rm, rv, eps=1e-5: g * (X - X.mean(0)) / torch.sqrt(X.var(0, unbiased=False) + eps) + b,
               "you used this batch's mean and variance. Eval mode uses the RUNNING statistics, so that a "
               "prediction does not depend on the rest of the batch."),
              (lambda X, g, b, rm, rv, eps=1e-5: g * (X - rm) / (rv + eps) + b,
               "you divided by the running variance; divide by its square root, sqrt(running_var + eps)."),
              (lambda X, g, b, rm, rv, eps=1e-5: (X - rm) / torch.sqrt(rv + eps),
               "you forgot gamma and beta: y = gamma * x_hat + beta in eval mode too.")],
    hint="y = gamma * (X - running_mean) / sqrt(running_var + eps) + beta, broadcast over the batch.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(7)
    for _n in (1, 2, 5, 33):
        _d = 4
        _args = (torch.randn(_n, _d, generator=_rng).double() * 3, torch.randn(_d, generator=_rng).double(),
                 torch.randn(_d, generator=_rng).double(), torch.randn(_d, generator=_rng).double(),
                 torch.rand(_d, generator=_rng).double() + 0.1)
        checks.check_function("Question 2 (hidden)", batch_norm_eval, [(_args, _bn_eval_reference(*_args))],
                              rtol=1e-9, atol=1e-12)
    _args = (torch.ones(3, 2).double(), torch.ones(2).double(), torch.zeros(2).double(), torch.zeros(2).double(),
             torch.zeros(2).double())
    checks.check_function("Question 2 (hidden, eps)", lambda *a: batch_norm_eval(*a, eps=0.25),
                          [(_args, torch.full((3, 2), 2.0, dtype=torch.float64))], rtol=1e-9)
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

# %% nbgrader={"grade_id": "q3_rms_norm_backward", "solution": true}
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    """dL/dX of y = gamma * X / sqrt(mean(X**2, last axis) + eps)."""
    ### BEGIN SOLUTION
    r = torch.sqrt((X**2).mean(dim=-1, keepdim=True) + eps)
    X_hat = X / r
    g_hat = grad_out * gamma
    return (g_hat - X_hat * (g_hat * X_hat).mean(dim=-1, keepdim=True)) / r
    ### END SOLUTION

# %% mistake="q3_rms_norm_backward" label="treats r as a constant (ignores that r depends on x)"
def rms_norm_backward(grad_out, X, gamma, eps=1e-6):
    r = torch.sqrt((X**2).mean(dim=-1, keepdim=True) + eps)
    return grad_out * gamma / r

# %% nbgrader={"grade_id": "q3_rms_norm_backward_test", "grade": true, "points": 4}
def _rms_autograd(grad_out, X, gamma, eps=1e-6):
    X = X.clone().requires_grad_()
    (gamma * X / torch.sqrt((X**2).mean(dim=-1, keepdim=True) + eps) * grad_out).sum().backward()
    return X.grad


def _rms_wrong(grad_out, X, gamma, eps=1e-6, *, kind):
    r = torch.sqrt((X**2).mean(dim=-1, keepdim=True) + eps)
    X_hat, g_hat = X / r, grad_out * (1 if kind == "no_gamma" else gamma)
    if kind == "constant_r":
        return g_hat / r
    if kind == "layer_norm":
        return (g_hat - g_hat.mean(dim=-1, keepdim=True) - X_hat * (g_hat * X_hat).mean(dim=-1, keepdim=True)) / r
    return (g_hat - X_hat * (g_hat * X_hat).mean(dim=-1, keepdim=True)) / r


_g3 = torch.Generator().manual_seed(13)
_case = (torch.randn(4, 5, generator=_g3).double(), torch.randn(4, 5, generator=_g3).double() + 1,
         torch.tensor([1.0, 2.0, 0.5, -1.0, 3.0], dtype=torch.float64))
checks.check_function(
    "Question 3", rms_norm_backward, [(_case, _rms_autograd(*_case))], rtol=1e-8, atol=1e-12,
    mistakes=[(lambda *a: _rms_wrong(*a, kind="constant_r"),
               "you treated r as a constant. r = sqrt(mean(x**2) + eps) depends on every feature, which adds "
               "a term - x_hat * mean(g_hat * x_hat) / r."),
              (lambda *a: _rms_wrong(*a, kind="layer_norm"),
               "you subtracted mean(g_hat) as in LayerNorm. RMSNorm does not subtract the mean, so that term "
               "is not there."),
              (lambda *a: _rms_wrong(*a, kind="no_gamma"),
               "gamma is missing: the gradient reaching x_hat is g_hat = gamma * grad_out.")],
    hint="With x_hat = x / r and g_hat = gamma * grad_out: dL/dx = (g_hat - x_hat * mean(g_hat * x_hat)) / r, "
         "means over the last axis. Compare with section 2's BatchNorm formula.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(99)
    for _shape in [(1, 1), (3, 1), (2, 3, 7), (5, 16), (2, 2, 2, 4)]:
        _args = (torch.randn(*_shape, generator=_rng).double(),
                 torch.randn(*_shape, generator=_rng).double() * 3,
                 torch.randn(_shape[-1], generator=_rng).double())
        checks.check_function("Question 3 (hidden)", rms_norm_backward, [(_args, _rms_autograd(*_args))],
                              rtol=1e-8, atol=1e-12)
        checks.check_function("Question 3 (hidden, eps)", lambda *a: rms_norm_backward(*a, eps=0.5),
                              [(_args, _rms_autograd(*_args, eps=0.5))], rtol=1e-8, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): predict a gradient
#
# A layer computes $\mathrm{BN}(Wx)$ in training mode, followed by the rest of the
# network. You multiply $W$ by 10 and run the same batch again. By what factor does
# $\|\partial L/\partial W\|$ change? Set `q4_factor` to a number (1% tolerance).

# %% nbgrader={"grade_id": "q4_factor", "solution": true}
### BEGIN SOLUTION
q4_factor = 0.1
### END SOLUTION

# %% mistake="q4_factor" label="thinks the gradient grows with the weights"
q4_factor = 10.0

# %% nbgrader={"grade_id": "q4_factor_test", "grade": true, "points": 2}
_g4 = torch.Generator().manual_seed(4)
_X4 = torch.randn(64, 8, generator=_g4).double()
_W4 = torch.randn(6, 8, generator=_g4).double()
_R4 = torch.randn(64, 6, generator=_g4).double()


def _weight_gradient_norm(W):
    W = W.clone().requires_grad_()
    (torch.sigmoid(F.batch_norm(_X4 @ W.T, None, None, training=True)) * _R4).sum().backward()
    return W.grad.norm().item()


checks.check_prediction(
    "Question 4", q4_factor, _weight_gradient_norm(10 * _W4) / _weight_gradient_norm(_W4), rtol=0.01,
    mistakes=[(10.0, "the forward pass does not change at all (BN(10 Wx) = BN(Wx)), so dL/d(Wx) shrinks by "
                     "10: BN divides it by a standard deviation that is now 10 times larger."),
              (1.0, "the output does not change, but the gradient does: BN's backward divides by the batch "
                    "standard deviation, which grew tenfold with W.")],
    hint="BN(aWx) = BN(Wx). Write dL/dW = dL/d(Wx) x^T and ask how dL/d(Wx) scales with a.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    assert isinstance(q4_factor, (int, float, np.floating)) and not isinstance(q4_factor, bool), \
        "Question 4: give a plain number"
    assert math.isclose(float(q4_factor), 0.1, rel_tol=0.01), f"Question 4: {q4_factor} is not within 1%"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (2 points): which normalization for a transformer?
#
# You train a transformer language model with batches of 32 sequences and then generate
# text one sequence at a time. Which normalization layer, and why? Set `q5_answer` to
# `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** LayerNorm: it normalizes each token over its own features, so it computes the same function at any batch size, in training and at test time.
# - **B.** BatchNorm: its running statistics make test-time predictions more accurate than LayerNorm's.
# - **C.** BatchNorm: LayerNorm cannot be backpropagated through when the batch holds one sequence.
# - **D.** Either one: with one sequence per batch, both compute the same thing.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "A"
### END SOLUTION

# %% mistake="q5_answer" label="thinks BatchNorm and LayerNorm agree with one sequence per batch"
q5_answer = "D"

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 2}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="93832d71eb40ba10",
    explanations={"B": "Running statistics are averages over the TRAINING batches: they only approximate the "
                       "statistics of the data at test time, and they are a second code path that must be "
                       "kept in sync (train vs eval mode).",
                  "C": "LayerNorm needs no batch at all: section 3 normalized a single token and got exactly "
                       "the value it had inside the batch, and its backward pass is per example too.",
                  "D": "They normalize along different axes: BatchNorm over the examples of the batch (with one "
                       "example in train mode, every feature becomes 0), LayerNorm over the features of each "
                       "token."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="A")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (3 points): diagnose four networks
#
# Four 20-layer digits classifiers (width 64) are described in `mystery` below by their
# activation, normalization and weight std. For each, does the gradient reaching layer 1
# **vanish** (less than 1/100 of the last layer's), **explode** (more than 100 times
# the last layer's) or stay **healthy**? Reason first, then measure: for example
# `layer_statistics_at_init(20, 64, **mystery["A"], seed=0)["out_grad_norm"]` gives
# $\|\partial L/\partial h_k\|$ for layers 1 to 20. Set `q6_diagnosis` to a dict such as
# `{"A": "healthy", "B": "healthy", "C": "healthy", "D": "healthy"}`.

# %%
mystery = {"A": dict(activation="tanh", norm="batch", std=1.0),
           "B": dict(activation="sigmoid", norm=None, std=0.1),
           "C": dict(activation="tanh", norm=None, std=1.0),
           "D": dict(activation="sigmoid", norm="layer", std=0.1)}

# %% nbgrader={"grade_id": "q6_diagnosis", "solution": true}
### BEGIN SOLUTION
q6_diagnosis = {"A": "healthy", "B": "vanishing", "C": "exploding", "D": "vanishing"}
### END SOLUTION

# %% mistake="q6_diagnosis" label="assumes any normalization layer fixes the gradient"
q6_diagnosis = {"A": "healthy", "B": "vanishing", "C": "exploding", "D": "healthy"}

# %% nbgrader={"grade_id": "q6_diagnosis_test", "grade": true, "points": 3}
checks.check_labels(
    "Question 6", q6_diagnosis, ["A", "B", "C", "D"], ["vanishing", "exploding", "healthy"],
    expected_digests={"A": "47512e82024e61d2", "B": "3aaeb61592b1db16", "C": "3caad11acf119481",
                      "D": "3aaeb61592b1db16"},
    explanations={("D", "healthy"): "Measure it: LayerNorm does not rescue a deep SIGMOID net (section 5).",
                  ("A", "exploding"): "BatchNorm divides by the batch std, which grows with the weights: the "
                                      "weight scale cancels.",
                  ("A", "vanishing"): "BatchNorm keeps every tanh layer's input at unit scale, so the slopes "
                                      "stay near 1.",
                  ("C", "vanishing"): "Large tanh weights saturate units, but each layer also multiplies the "
                                      "gradient by W, which is huge here: measure it.",
                  ("B", "healthy"): "Small weights and sigmoid slopes of at most 1/4, twenty times over."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    _verdicts = ("vanishing", "exploding", "healthy")
    checks.check_labels("Question 6 (hidden)", q6_diagnosis, list("ABCD"), _verdicts,
                        expected={"A": "healthy", "B": "vanishing", "C": "exploding", "D": "vanishing"})
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
