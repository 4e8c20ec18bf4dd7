# %% [markdown]
# # 07 · ResNets: the gradient highway
#
# Normalization (notebook 06) keeps each layer's inputs at a healthy scale, yet very
# deep plain networks still train badly: He et al. (2016) found that a 56-layer network
# ends with a **higher training error** than a 20-layer one. Their fix is a single `+`:
# each block outputs $h + F(h)$ instead of $F(h)$. This notebook shows what that `+`
# does to the chain rule, reproduces the degradation problem and Balduzzi et al.'s
# shattered gradients, and switches off the residual connections and LayerNorm of a
# small transformer to watch the vanishing gradient come back.
#
# **You will learn to**
# 1. derive and measure the Jacobian of a residual block, $I + F'(h)$, and see why a
#    product of such matrices does not vanish;
# 2. reproduce degradation: a deeper plain net that trains worse, and a residual net
#    that does not (E9);
# 3. measure how "shattered" a network's gradient is with its autocorrelation (E10);
# 4. see that a transformer stack relies on residual connections and LayerNorm, and
#    diagnose what happens without them.
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.plotting import OKABE_ITO, plot_gradient_norms, plot_training_curves
from course_lib.residual import (block_jacobians, input_gradients, jacobian_product_norms, lag1_autocorrelation,
                                 resnet_gradient_norms, train_resnet, transformer_gradient_norms)
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import residual_explorer

set_seed(0)
torch.set_num_threads(1)  # tiny networks: one thread is faster, and much faster on a busy CPU
device = get_device()
print(f"torch {torch.__version__} on {device}")

# %% [markdown]
# ## 1. The Jacobian of a residual block is $I + F'(h)$
#
# A plain block maps $h \mapsto F(h)$; a residual block maps $h \mapsto h + F(h)$. The
# derivative of a sum is the sum of the derivatives, and the derivative of $h$ with
# respect to itself is the identity:
#
# $$\frac{\partial\,(h + F(h))}{\partial h} = I + F'(h).$$
#
# Let's check this with autograd for $F(h) = \tanh(Wh)$, width 16, and compare the
# singular values of the two Jacobians.

# %% tags=["demo"]
J = block_jacobians(width=16, activation="tanh", gain=1.0, seed=0)
difference = np.abs(J["residual"] - J["plain"] - J["identity"]).max()
sv_plain = np.linalg.svd(J["plain"], compute_uv=False)
sv_residual = np.linalg.svd(J["residual"], compute_uv=False)
print(f"max |J_residual - J_plain - I| = {difference:.1e}")
print("singular values, plain:   ", sv_plain.round(2))
print("singular values, residual:", sv_residual.round(2))
assert difference < 1e-12
assert sv_plain.min() < 0.1  # the plain block nearly kills some directions

# %% [markdown]
# **What to notice:** the two Jacobians differ by exactly the identity. The plain block
# shrinks some directions almost to zero; adding $I$ shifts every eigenvalue of $F'$ by 1,
# so a direction the branch ignores passes through unchanged.
#
# Backprop multiplies one Jacobian per block. Below, 50 blocks whose branches all
# shrink ($F(h) = \tanh(Wh)$ with $W \sim \mathcal N(0, 0.5^2/16)$): the spectral norm of
# $\partial h_{50}/\partial h_k$, the most any gradient can be amplified from block 50
# back to block $k$, for the plain and the residual stack.

# %% tags=["demo"]
plain = jacobian_product_norms(50, residual=False, gain=0.5, seed=0)
residual = jacobian_product_norms(50, residual=True, gain=0.5, seed=0)
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.semilogy(np.arange(51), plain, "o-", markersize=3, color=OKABE_ITO[0], label="plain: F(h)")
ax.semilogy(np.arange(51), residual, "o-", markersize=3, color=OKABE_ITO[1], label="residual: h + F(h)")
ax.set_xlabel("block k (50 = output)")
ax.set_ylabel("||dh_50 / dh_k||  (spectral norm)")
ax.legend(frameon=False)
print(f"from block 50 back to the input: plain {plain[0]:.1e}, residual {residual[0]:.1f}")
assert plain[0] < 1e-10
assert 0.1 < residual[0] < 1e3

# %% [markdown]
# **What to notice:** through 50 plain blocks even the most amplified direction loses
# fifteen orders of magnitude; through the same 50 branches with skip connections the
# gradient keeps its size (it even grows a little, since each factor $I + F'$ can stretch
# some directions). This is the "gradient highway": expanding the product
# $\prod_k (I + F_k')$ gives $I$ plus sums of products of the branches, so the gradient
# always has a path with derivative exactly 1.
#
# ## 2. Degradation: deeper plain nets train worse (E9)
#
# He et al. (2016) trained plain networks of 20 and 56 layers on CIFAR-10 and found the
# 56-layer one worse **on the training set** (their Fig. 1), so overfitting cannot be
# the reason: the deeper net could copy the shallower one and set its extra layers to the
# identity, yet SGD does not find such a solution. We reproduce this with their design in
# small: a stem layer, $(d - 2)/2$ blocks $\mathrm{relu}(h + \mathrm{BN}(W_2\,\mathrm{relu}(\mathrm{BN}(W_1 h))))$
# (without the $h +$ for the plain net) and a linear head, width 32, He initialization,
# SGD with momentum 0.9 and learning rate 0.05 for 300 steps of 128 digits. The training
# error is measured on all 1,797 digits.

# %% tags=["demo"]
runs = {f"{'residual' if res else 'plain'}-{depth}": train_resnet(depth, residual=res, num_steps=300, seed=0)
        for depth, res in [(20, False), (56, False), (56, True)]}
plot_training_curves({label: r["loss"] for label, r in runs.items()}, smooth=10)
errors = {label: r["train_error"] for label, r in runs.items()}
print({label: f"training error {e:.3f}" for label, e in errors.items()})
assert errors["plain-56"] - errors["plain-20"] > 0.3  # deeper plain net: much worse on its own training data
assert errors["residual-56"] < 0.05  # the same depth with skip connections trains

# %% [markdown]
# **What to notice:** the plain 56-layer net barely moves, while the 20-layer one and the
# residual 56-layer one learn. Notice also *what kind* of gradient problem the plain net
# has: measure it (the explorer below, and practice question 5). With BatchNorm after every
# layer, the deep plain net's gradient does not vanish; it grows toward the input, by a
# factor of about $2\times10^4$ over 56 layers here (Yang et al. 2019 derive this growth
# for BatchNorm networks). Either way, the product of Jacobians is far from 1, and the residual
# connections bring it back.
#
# ## 3. Shattered gradients (E10)
#
# Balduzzi et al. (2017) looked at a network with a **one-dimensional** input and plotted
# $d(\text{output})/d(\text{input})$ over 256 points in $[-2, 2]$. For a shallow net it is a
# smooth, piecewise-constant curve; for a deep plain net it looks like white noise:
# neighbouring inputs get unrelated gradients, so the gradient carries no information a
# step of SGD could use. ReLU layers of width 200 with BatchNorm; we measure the lag-1
# autocorrelation $\sum_i (g_i - \bar g)(g_{i+1} - \bar g) / \sum_i (g_i - \bar g)^2$:
# near 1 for a smooth curve, near 0 for noise.

# %% tags=["demo"]
curves = {"depth 1": input_gradients(1, residual=False, seed=0),
          "plain, depth 24": input_gradients(24, residual=False, seed=0),
          "residual, depth 24": input_gradients(24, residual=True, seed=0)}
fig, axes = plt.subplots(1, 3, figsize=(10, 3), layout="constrained")
autocorrelation = {}
for ax, (label, (x, g)) in zip(axes, curves.items()):
    autocorrelation[label] = lag1_autocorrelation(g)
    ax.plot(x, g, color=OKABE_ITO[0], linewidth=1)
    ax.set_title(f"{label}: autocorrelation {autocorrelation[label]:.2f}", fontsize="medium")
    ax.set_xlabel("input x")
axes[0].set_ylabel("d output / d x")
assert autocorrelation["depth 1"] > 0.85
assert abs(autocorrelation["plain, depth 24"]) < 0.2
assert autocorrelation["residual, depth 24"] > 0.6

# %% [markdown]
# How fast does the structure disappear? The autocorrelation by depth:

# %% tags=["demo"]
depths = [1, 2, 4, 8, 12, 16, 24]
by_depth = {kind: [lag1_autocorrelation(input_gradients(d, residual=kind == "residual", seed=0)[1]) for d in depths]
            for kind in ("plain", "residual")}
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (kind, values) in enumerate(by_depth.items()):
    ax.plot(depths, values, "o-", color=OKABE_ITO[i], label=kind)
ax.axhline(0, color="black", linewidth=0.8)
ax.set_xlabel("depth (layers)")
ax.set_ylabel("lag-1 autocorrelation of the gradient")
ax.legend(frameon=False)
print({kind: np.round(values, 2).tolist() for kind, values in by_depth.items()})
assert by_depth["plain"][-1] < by_depth["plain"][0] - 0.7  # plain: from smooth to noise
assert min(by_depth["residual"]) > 0.6  # residual: smooth at every depth

# %% [markdown]
# **What to notice:** the plain net's gradient loses its structure within a dozen or so
# layers, while the residual net's stays smooth at every depth. Balduzzi et al. prove that
# the correlation decays exponentially with depth in plain rectifier nets and only like
# $1/\sqrt{L}$ in residual ones (quoted from the paper: our plot shows the trend, we do
# not fit the rates).
#
# ## 4. Transformers rely on residuals and LayerNorm
#
# A transformer block has two sublayers, self-attention and an MLP. In the now usual
# **pre-LN** arrangement (Xiong et al. 2020) each is wrapped as
# $h \leftarrow h + \mathrm{Sublayer}(\mathrm{LN}(h))$. Below, a stack of 24 such blocks
# (width 32, 4 heads, 16 tokens, PyTorch's default initialization) in four versions:
# as designed, without LayerNorm, without the residual connections, and without both.
# We backpropagate a unit gradient from the output and measure $\|\partial L/\partial h_k\|$
# at the input of every block.

# %% tags=["demo"]
variants = {"residual + LayerNorm": dict(residual=True, norm=True), "residual only": dict(residual=True, norm=False),
            "LayerNorm only": dict(residual=False, norm=True), "neither": dict(residual=False, norm=False)}
stack = {label: transformer_gradient_norms(24, **flags, seed=0) for label, flags in variants.items()}
ratios = {label: g[0] / g[-1] for label, g in stack.items()}
plot_gradient_norms({label: np.where(g > 0, g, np.nan) for label, g in stack.items()},
                    ylabel="||dL/dh_k|| at block input", title="24 pre-LN transformer blocks")
print({label: f"{r:.1e}" for label, r in ratios.items()})
zeros = int((stack["neither"] == 0).sum())
print(f"'neither': block 12 gets {stack['neither'][11]:.0e}; blocks that get exactly 0: {zeros}")
assert 1e-2 < ratios["residual + LayerNorm"] < 1e2 and 1e-2 < ratios["residual only"] < 1e2  # healthy
assert ratios["LayerNorm only"] < 0.5  # the gradient starts to fade
assert ratios["neither"] < 1e-10  # vanishing is back, completely

# %% [markdown]
# **What to notice:** with residual connections the gradient reaches the first block at
# the same order of magnitude as the last, with or without LayerNorm. Without residual
# connections every block multiplies by the Jacobians of attention and of the MLP: with
# LayerNorm alone the gradient already fades (block 1 gets a fifth of the last block's
# here), and without both it falls below the smallest float32 number on its way down
# (the points missing from the plot are exact zeros). In the residual stack LayerNorm
# has a different job, keeping every sublayer's input at unit scale: without it the
# gradient grows toward the input as the stack gets deeper (try
# `transformer_gradient_norms(48, residual=True, norm=False)`: block 1 gets around 100
# times the last block's gradient).
#
# ## 5. Explore: depth, plain or residual
#
# The explorer builds the E9 network at initialization for the depth you choose and
# shows the gradient arriving at each block, for the plain or the residual version (the
# other one is drawn faintly). Compare depth 8 with depth 110.

# %% tags=["demo"]
explorer = residual_explorer(depth=56, architecture="plain")
assert explorer.last["kind"] == "exploding" and explorer.last["ratio"] > 1e4  # section 2's "about 2e4"
assert explorer.update(architecture="residual")["kind"] == "healthy"
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. Inputs are float64 torch tensors; return torch
# tensors (NumPy arrays work too).
#
# ### Question 1 (3 points): a residual block
#
# Write `residual_block(X, W1, W2)` for a batch `X` of shape (N, D): the block adds a
# two-layer ReLU branch to its input, $h = x + W_2\,\mathrm{relu}(W_1 x)$ for each row $x$.
# The weights are stored as in `nn.Linear`, shape (out, in): `W1` is (H, D), `W2` is (D, H).

# %% nbgrader={"grade_id": "q1_residual_block", "solution": true}
def residual_block(X, W1, W2):
    """x + W2 relu(W1 x) for every row x of X."""
    ### BEGIN SOLUTION
    return X + torch.relu(X @ W1.T) @ W2.T
    ### END SOLUTION

# %% mistake="q1_residual_block" label="forgets the skip connection"
def residual_block(X, W1, W2):
    return torch.relu(X @ W1.T) @ W2.T

# %% nbgrader={"grade_id": "q1_residual_block_test", "grade": true, "points": 3}
_g1 = torch.Generator().manual_seed(21)
_case = (torch.randn(5, 3, generator=_g1).double(), torch.randn(4, 3, generator=_g1).double(),
         torch.randn(3, 4, generator=_g1).double())
checks.check_function(
    "Question 1", residual_block, [(_case, _case[0] + torch.relu(_case[0] @ _case[1].T) @ _case[2].T)],
    rtol=1e-10, atol=1e-12,
    mistakes=[(lambda X, W1, W2: torch.relu(X @ W1.T) @ W2.T,
               "the skip connection is missing: a residual block returns x + F(x), not F(x)."),
              (lambda X, W1, W2: torch.relu(X + torch.relu(X @ W1.T) @ W2.T),
               "you applied a ReLU after the sum; this block is x + W2 relu(W1 x), nothing after the '+'."),
              (lambda X, W1, W2: X + (X @ W1.T) @ W2.T, "the ReLU inside the branch is missing.")],
    hint="With weights stored as (out, in), a batch goes through a layer as X @ W.T.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(5)
    for _n, _d, _h in [(1, 1, 1), (1, 6, 2), (7, 2, 9), (16, 8, 8), (3, 5, 1)]:
        _args = (torch.randn(_n, _d, generator=_rng).double(), torch.randn(_h, _d, generator=_rng).double(),
                 torch.randn(_d, _h, generator=_rng).double())
        _lin1 = torch.nn.Linear(_d, _h, bias=False, dtype=torch.float64)
        _lin2 = torch.nn.Linear(_h, _d, bias=False, dtype=torch.float64)
        with torch.no_grad():
            _lin1.weight.copy_(_args[1])
            _lin2.weight.copy_(_args[2])
            _want = _args[0] + _lin2(torch.relu(_lin1(_args[0])))
        checks.check_function("Question 1 (hidden)", residual_block, [(_args, _want)], rtol=1e-10, atol=1e-12)
    _zero = (torch.randn(4, 3, generator=_rng).double(), torch.zeros(2, 3, dtype=torch.float64),
             torch.randn(3, 2, generator=_rng).double())
    checks.check_function("Question 1 (hidden, zero branch is the identity)", residual_block, [(_zero, _zero[0])])
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): the Jacobian of a residual block
#
# For the block $h(x) = x + \tanh(Wx)$ with $x$ of shape (D,) and $W$ of shape (D, D),
# write `residual_jacobian(x, W)` returning the (D, D) matrix $\partial h/\partial x$
# (row $i$, column $j$: $\partial h_i/\partial x_j$).

# %% nbgrader={"grade_id": "q2_residual_jacobian", "solution": true}
def residual_jacobian(x, W):
    """d/dx of x + tanh(W x), a (D, D) matrix."""
    ### BEGIN SOLUTION
    slope = 1 - torch.tanh(W @ x) ** 2
    return torch.eye(len(x), dtype=W.dtype) + slope[:, None] * W
    ### END SOLUTION

# %% mistake="q2_residual_jacobian" label="returns the branch's Jacobian without the identity"
def residual_jacobian(x, W):
    return torch.diag(1 - torch.tanh(W @ x) ** 2) @ W

# %% nbgrader={"grade_id": "q2_residual_jacobian_test", "grade": true, "points": 3}
def _jacobian_reference(x, W):
    return torch.autograd.functional.jacobian(lambda v: v + torch.tanh(W @ v), x)


_g2 = torch.Generator().manual_seed(22)
_case = (torch.randn(4, generator=_g2).double(), torch.randn(4, 4, generator=_g2).double())
checks.check_function(
    "Question 2", residual_jacobian, [(_case, _jacobian_reference(*_case))], rtol=1e-10, atol=1e-12,
    mistakes=[(lambda x, W: torch.diag(1 - torch.tanh(W @ x) ** 2) @ W,
               "the identity is missing: d(x)/dx = I, so the Jacobian is I + diag(tanh') W."),
              (lambda x, W: torch.eye(4, dtype=W.dtype) + W @ torch.diag(1 - torch.tanh(W @ x) ** 2),
               "the slopes scale the ROWS of W (output i's slope multiplies row i): diag(s) @ W, not W @ diag(s)."),
              (lambda x, W: torch.eye(4, dtype=W.dtype) + W, "the tanh slope 1 - tanh(Wx)^2 is missing."),
              (lambda x, W: (torch.eye(4, dtype=W.dtype) + torch.diag(1 - torch.tanh(W @ x) ** 2) @ W).T,
               "that is the transpose: row i should hold the derivatives of h_i.")],
    hint="Chain rule for tanh(Wx): diag(1 - tanh(Wx)^2) @ W. Then add the derivative of x itself.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(6)
    for _d in (1, 2, 5, 9):
        for _scale in (0.1, 3.0):
            _args = (torch.randn(_d, generator=_rng).double() * _scale,
                     torch.randn(_d, _d, generator=_rng).double())
            checks.check_function("Question 2 (hidden)", residual_jacobian, [(_args, _jacobian_reference(*_args))],
                                  rtol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): predict a gradient through 40 residual blocks
#
# Forty scalar blocks $h_k = h_{k-1} + f(h_{k-1})$, where each branch $f$ has derivative
# $0.01$ (for example $f(h) = 0.01\,h$). A plain stack of the same branches,
# $h_k = f(h_{k-1})$, gives $dh_{40}/dh_0 = 0.01^{40} = 10^{-80}$. What is
# $dh_{40}/dh_0$ for the residual stack? Set `q3_gradient` to a number (1% tolerance).

# %% nbgrader={"grade_id": "q3_gradient", "solution": true}
### BEGIN SOLUTION
q3_gradient = 1.01**40
### END SOLUTION

# %% mistake="q3_gradient" label="adds the branch derivatives (first-order expansion) instead of multiplying"
q3_gradient = 1 + 40 * 0.01

# %% nbgrader={"grade_id": "q3_gradient_test", "grade": true, "points": 2}
_h0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
_h = _h0
for _ in range(40):
    _h = _h + 0.01 * _h
_h.backward()
checks.check_prediction(
    "Question 3", q3_gradient, _h0.grad.item(), rtol=0.01,
    mistakes=[(1.4, "1 + 40 * 0.01 keeps only the first-order terms. Each block multiplies by (1 + 0.01), and "
                    "the chain rule multiplies the 40 factors."),
              (1e-80, "that is the plain stack. In the residual stack each factor is 1 + f', not f'."),
              (1.0, "the skip path alone gives 1, but the branches add to it: every factor is 1 + 0.01.")],
    hint="Each block's derivative is d(h + f(h))/dh = 1 + f'(h).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    assert isinstance(q3_gradient, (int, float, np.floating)) and not isinstance(q3_gradient, bool), \
        "Question 3: give a plain number"
    assert math.isclose(float(q3_gradient), 1.4888637335882209, rel_tol=0.01), f"Question 3: {q3_gradient} is off"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): why does the deeper plain net train worse?
#
# In section 2 the plain 56-layer network ends with a much higher **training** error than
# the plain 20-layer one. Which explanation is right? Set `q4_answer` to `"A"`, `"B"`,
# `"C"` or `"D"`.
#
# - **A.** The 56-layer net overfits: it has more parameters, so it memorizes noise in the training set.
# - **B.** It is an optimization problem: the 56-layer net could represent the 20-layer one (extra blocks set to the identity), but SGD does not find such weights; residual blocks make the identity the easy default.
# - **C.** Its sigmoid units saturate, so every layer multiplies the gradient by at most 1/4.
# - **D.** 56 layers of width 32 have too few parameters to fit 1,797 digits.

# %% nbgrader={"grade_id": "q4_answer", "solution": true}
### BEGIN SOLUTION
q4_answer = "B"
### END SOLUTION

# %% mistake="q4_answer" label="blames overfitting"
q4_answer = "A"

# %% nbgrader={"grade_id": "q4_answer_test", "grade": true, "points": 2}
checks.check_choice(
    "Question 4", q4_answer, "ABCD", expected_digest="08d44203af14a118",
    explanations={"A": "Overfitting makes the TEST error worse while the training error stays low. Here the "
                       "TRAINING error is higher: the deep net does not even fit the data it sees.",
                  "C": "There are no sigmoids here: the blocks are BatchNorm and ReLU.",
                  "D": "It has more parameters than the 20-layer net, which fits the digits well."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 4 (hidden)", q4_answer, "ABCD", expected="B")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (3 points): diagnose three networks
#
# Three networks from section 2, at initialization: a plain 8-layer, a plain 56-layer and
# a residual 56-layer one. For each, does the gradient reaching block 1 **vanish** (less
# than 1/100 of the last block's), **explode** (more than 100 times the last block's) or
# stay **healthy**? Measure it: `resnet_gradient_norms(depth, residual=..., seed=0)` returns
# $\|\partial L/\partial h_k\|$ for every block, block 1 first. Set `q5_diagnosis` to a
# dict such as `{"plain-8": "healthy", "plain-56": "healthy", "residual-56": "healthy"}`.

# %% nbgrader={"grade_id": "q5_diagnosis", "solution": true}
### BEGIN SOLUTION
q5_diagnosis = {"plain-8": "healthy", "plain-56": "exploding", "residual-56": "healthy"}
### END SOLUTION

# %% mistake="q5_diagnosis" label="assumes the deep plain net's gradient vanishes without measuring"
q5_diagnosis = {"plain-8": "healthy", "plain-56": "vanishing", "residual-56": "healthy"}

# %% nbgrader={"grade_id": "q5_diagnosis_test", "grade": true, "points": 3}
checks.check_labels(
    "Question 5", q5_diagnosis, ["plain-8", "plain-56", "residual-56"], ["vanishing", "exploding", "healthy"],
    expected_digests={"plain-8": "47512e82024e61d2", "plain-56": "3caad11acf119481",
                      "residual-56": "47512e82024e61d2"},
    explanations={("plain-56", "vanishing"): "Measure before you diagnose: with BatchNorm after every layer the "
                                             "gradient does not shrink toward the input. Plot it.",
                  ("residual-56", "vanishing"): "The skip connections give the gradient a path with derivative 1.",
                  ("residual-56", "exploding"): "It grows a little toward the input, but far less than 100x."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    _verdicts, _nets = ("vanishing", "exploding", "healthy"), ("plain-8", "plain-56", "residual-56")
    checks.check_labels("Question 5 (hidden)", q5_diagnosis, list(_nets), _verdicts,
                        expected={"plain-8": "healthy", "plain-56": "exploding", "residual-56": "healthy"})
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (2 points): a pre-LN transformer block
#
# Write `pre_ln_block(X, attn, mlp, norm1, norm2)`: one pre-LN block (section 4) applied
# to `X`, where `attn`, `mlp`, `norm1` and `norm2` are functions from a tensor to a tensor
# of the same shape. First the attention sublayer with its own LayerNorm `norm1`, then the
# MLP sublayer with `norm2`, each added to the residual stream.

# %% nbgrader={"grade_id": "q6_pre_ln_block", "solution": true}
def pre_ln_block(X, attn, mlp, norm1, norm2):
    """h = X + attn(norm1(X)); return h + mlp(norm2(h))."""
    ### BEGIN SOLUTION
    h = X + attn(norm1(X))
    return h + mlp(norm2(h))
    ### END SOLUTION

# %% mistake="q6_pre_ln_block" label="post-LN: normalizes after adding the sublayer"
def pre_ln_block(X, attn, mlp, norm1, norm2):
    h = norm1(X + attn(X))
    return norm2(h + mlp(h))

# %% nbgrader={"grade_id": "q6_pre_ln_block_test", "grade": true, "points": 2}
def _make_parts(d, generator):
    A = torch.randn(d, d, generator=generator).double()
    B = torch.randn(d, d, generator=generator).double()
    gain1, gain2 = torch.rand(d, generator=generator).double() + 0.5, torch.rand(d, generator=generator).double() + 2
    attn = lambda Z: torch.softmax(Z @ Z.transpose(-1, -2), dim=-1) @ Z @ A  # noqa: E731
    mlp = lambda Z: torch.tanh(Z @ B)  # noqa: E731
    norm1 = lambda Z: gain1 * torch.nn.functional.layer_norm(Z, (d,))  # noqa: E731
    norm2 = lambda Z: gain2 * torch.nn.functional.layer_norm(Z, (d,))  # noqa: E731
    return attn, mlp, norm1, norm2


def _pre_ln_reference(X, attn, mlp, norm1, norm2):
    h = X + attn(norm1(X))
    return h + mlp(norm2(h))


_g6 = torch.Generator().manual_seed(26)
_parts = _make_parts(4, _g6)
_X6 = torch.randn(2, 3, 4, generator=_g6).double()
checks.check_function(
    "Question 6", lambda X: pre_ln_block(X, *_parts), [((_X6,), _pre_ln_reference(_X6, *_parts))],
    rtol=1e-10, atol=1e-12,
    mistakes=[(lambda X: _parts[3](_parts[2](X + _parts[0](X)) + _parts[1](_parts[2](X + _parts[0](X)))),
               "that is a post-LN block: LayerNorm after the sum. Pre-LN normalizes the INPUT of each sublayer "
               "and leaves the residual stream itself un-normalized."),
              (lambda X: _parts[1](_parts[3](X + _parts[0](_parts[2](X)))),
               "the second residual connection is missing: add the MLP's output to h."),
              (lambda X: (lambda h: h + _parts[1](_parts[2](h)))(X + _parts[0](_parts[2](X))),
               "each sublayer has its own LayerNorm: the MLP's input goes through norm2, not norm1.")],
    hint="Two lines: h = X + attn(norm1(X)), then h + mlp(norm2(h)).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(8)
    for _shape in [(1, 1, 3), (4, 5, 6), (2, 8, 2)]:
        _parts_h = _make_parts(_shape[-1], _rng)
        _X = torch.randn(*_shape, generator=_rng).double() * 3
        checks.check_function("Question 6 (hidden)", lambda X: pre_ln_block(X, *_parts_h),
                              [((_X,), _pre_ln_reference(_X, *_parts_h))], rtol=1e-10, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - A residual block's Jacobian is $I + F'(h)$: backprop through many blocks multiplies
#   factors near the identity, so the gradient always has a path with derivative 1.
# - Deep plain networks degrade: the 56-layer one trains worse than the 20-layer one,
#   on its own training data. Their gradients are far from healthy (with BatchNorm they
#   explode toward the input) and shattered (white noise along the input); residual
#   connections fix both.
# - Transformers are stacks of residual blocks: remove the residual connections and
#   the vanishing gradient comes back, remove LayerNorm too and it is total.
#
# Next: notebook 08 puts every diagnostic of the course together.
#
# ## References
#
# - K. He, X. Zhang, S. Ren, J. Sun (2016). Deep residual learning for image recognition. *CVPR.*
# - K. He, X. Zhang, S. Ren, J. Sun (2016). Identity mappings in deep residual networks. *ECCV.*
# - D. Balduzzi, M. Frean, L. Leary, J. P. Lewis, K. W.-D. Ma, B. McWilliams (2017). The shattered gradients problem: if resnets are the answer, then what is the question? *ICML.*
# - G. Yang, J. Pennington, V. Rao, J. Sohl-Dickstein, S. S. Schoenholz (2019). A mean field theory of batch normalization. *ICLR.*
# - A. Vaswani et al. (2017). Attention is all you need. *NeurIPS.*
# - R. Xiong et al. (2020). On layer normalization in the transformer architecture. *ICML.*
# - S. Ioffe, C. Szegedy (2015). Batch normalization. *ICML.*
