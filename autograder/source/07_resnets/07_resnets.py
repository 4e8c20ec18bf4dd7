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
                                 resnet_gradient_norms, train_resnets, transformer_gradient_norms)
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
per_block = plain[0] ** (1 / 50)  # the geometric mean of the plain stack's factor per block
print(f"from block 50 back to the input: plain {plain[0]:.1e} ({per_block:.2f} per block), "
      f"residual {residual[0]:.1f}")
assert 0.45 < per_block < 0.55  # about 0.5 per block: 0.5^50 ~ 1e-15
assert 8 < residual[0] < 90  # not vanishing: it grows, about 20-fold

# %% [markdown]
# **What to notice:** through 50 plain blocks even the most amplified direction loses
# about fifteen orders of magnitude (a factor of about 0.5 per block, $0.5^{50} \approx 10^{-15}$);
# through the same 50 branches with skip connections the gradient does not vanish at all:
# it grows, about 20-fold over the 50 blocks (15 to 45 over seeds 0-4), since each factor
# $I + F'$ stretches some directions a little. This is the "gradient highway": expanding the product
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
# SGD with momentum 0.9 and learning rate 0.05 for 200 steps of 128 digits. The training
# error is measured on all 1,797 digits.

# %% tags=["demo"]
networks = [(20, False), (56, False), (56, True)]  # (depth, residual), trained side by side on the same batches
runs = {f"{'residual' if res else 'plain'}-{depth}": result
        for (depth, res), result in zip(networks, train_resnets(networks, num_steps=200, seed=0))}
plot_training_curves({label: r["loss"] for label, r in runs.items()}, smooth=10)
errors = {label: r["train_error"] for label, r in runs.items()}
print({label: f"training error {e:.3f}" for label, e in errors.items()})
assert errors["plain-56"] > 0.6  # near chance (0.9)
assert errors["plain-56"] - errors["plain-20"] > 0.3  # deeper plain net: much worse on its own training data
assert errors["residual-56"] < 0.05  # the same depth with skip connections trains

# %% [markdown]
# **What to notice:** the plain 56-layer net barely moves (a training error of about 0.8,
# where guessing gives 0.9), while the 20-layer one and the residual 56-layer one learn.
# Notice also *what kind* of gradient problem the plain net has: measure it (the explorer
# below, and practice question 5). With BatchNorm after every layer, the deep plain net's
# gradient does not vanish; it grows toward the input, by a factor of about $2\times10^4$
# over 56 layers here (between $10^4$ and $10^5$ for other seeds; Yang et al. 2019 derive
# this growth for BatchNorm networks). Either way, the product of Jacobians is far from 1,
# and the residual connections bring it back.
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
assert abs(by_depth["plain"][depths.index(16)]) < 0.2  # noise from 16 layers on
assert min(by_depth["residual"]) > 0.6  # residual: smooth at every depth

# %% [markdown]
# **What to notice:** the plain net's gradient loses its structure within about 16
# layers (autocorrelation near 0 from there on), while the residual net's stays smooth at every depth. Balduzzi et al. prove that
# the correlation decays exponentially with depth in plain rectifier nets and only like
# $1/\sqrt{L}$ in residual ones (quoted from the paper: our plot shows the trend, we do
# not fit the rates).
#
# ## 4. Transformers rely on residuals and LayerNorm
#
# A transformer block has two sublayers, self-attention and an MLP. In the now usual
# **pre-LN** arrangement (used by GPT-2, Radford et al. 2019; Xiong et al. 2020 showed why it
# trains without the learning-rate warmup the original post-LN block needs) each is wrapped as
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
per_block = ratios["neither"] ** (1 / 23)  # the factor per block without residual or LayerNorm
deeper = {depth: transformer_gradient_norms(depth, **flags, seed=0)
          for depth, flags in [(96, variants["LayerNorm only"]), (48, variants["residual only"])]}
deeper = {depth: g[0] / g[-1] for depth, g in deeper.items()}
print({label: f"{r:.1e}" for label, r in ratios.items()})
print(f"'neither': {per_block:.3f} per block; 'LayerNorm only', 96 blocks: {deeper[96]:.1e}; "
      f"'residual only', 48 blocks: {deeper[48]:.0f}")
assert 0.1 < ratios["residual + LayerNorm"] < 10 and 0.1 < ratios["residual only"] < 10  # same order as the top
assert ratios["LayerNorm only"] < 0.5 and deeper[96] < 1e-4  # fades with depth: vanishing at 96 blocks
assert 0.04 < per_block < 0.08  # about 1/18 per block: 30 orders of magnitude over 24 blocks
assert 50 < deeper[48] < 200  # without LayerNorm the residual stack's gradient grows toward the input

# %% [markdown]
# **What to notice:** with residual connections the gradient reaches the first block at
# the same order of magnitude as the last, with or without LayerNorm. Without residual
# connections every block multiplies by the Jacobians of attention and of the MLP. With
# LayerNorm alone the gradient fades block by block: at 24 blocks block 1 gets a fifth of
# the last block's here (between 1/60 and 1/5 for other seeds, not yet below the 1/100 of
# our rule), and at 96 blocks less than $10^{-4}$ of it: the vanishing gradient is back.
# Without both, each block multiplies the gradient by about 1/18, so block 1 gets about
# $10^{-29}$ of the last block's gradient, thirty orders of magnitude down. In the residual
# stack LayerNorm has a different job, keeping every sublayer's input at unit scale:
# without it the gradient grows toward the input as the stack gets deeper (at 48 blocks,
# block 1 gets around 100 times the last block's gradient).
#
# ## 5. Explore: depth, plain or residual
#
# The explorer builds the E9 network at initialization for the depth you choose and
# shows the gradient arriving at each block, for the plain or the residual version (the
# other one is drawn faintly). Compare depth 8 with depth 110.

# %% tags=["demo"]
explorer = residual_explorer(depth=56, architecture="plain")
assert explorer.last["kind"] == "exploding" and 1e4 < explorer.last["ratio"] < 4e4  # section 2's "about 2e4"
assert explorer.update(architecture="residual")["kind"] == "healthy"
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks try your answer on one public example
# and tell you what kind of mistake they see; hidden tests with other inputs decide the
# grade.
#
# ### Question 1 (3 points): a residual block
#
# Write `residual_block(X, W1, W2)` for a batch `X` of shape (N, D): the block adds a
# two-layer ReLU branch to its input, $h = x + W_2\,\mathrm{relu}(W_1 x)$ for each row $x$.
# The weights are stored as in `nn.Linear`, shape (out, in): `W1` is (H, D), `W2` is (D, H).
# Inputs are torch tensors (float64 or float32, any N, D and H, a batch of 1 included);
# return a tensor of shape (N, D) and leave the inputs unchanged. Compared with
# relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q1_residual_block", "solution": true}
def residual_block(X, W1, W2):
    """The residual block of question 1, applied to every row of X."""
    ### BEGIN SOLUTION
    return X + torch.relu(X @ W1.T) @ W2.T
    ### END SOLUTION

# %% mistake="q1_residual_block" label="forgets the skip connection"
def residual_block(X, W1, W2):
    return torch.relu(X @ W1.T) @ W2.T

# %% mistake="q1_residual_block" label="puts a ReLU after the sum, as in the E9 block"
def residual_block(X, W1, W2):
    return torch.relu(X + torch.relu(X @ W1.T) @ W2.T)

# %% mistake="q1_residual_block" label="loops over the columns instead of the rows (right only when N == D)"
def residual_block(X, W1, W2):
    return torch.stack([X[i] + W2 @ torch.relu(W1 @ X[i]) for i in range(X.shape[1])])

# %% mistake="q1_residual_block" label="adds the branch in place, changing the caller's X"
def residual_block(X, W1, W2):
    X += torch.relu(X @ W1.T) @ W2.T
    return X

# %% right="q1_residual_block" label="NumPy, one row at a time"
def residual_block(X, W1, W2):
    X, W1, W2 = (np.asarray(a, dtype=np.float64) for a in (X, W1, W2))
    rows = [x + W2 @ np.maximum(W1 @ x, 0.0) for x in X]
    return np.array(rows).reshape(X.shape)

# %% right="q1_residual_block" label="torch.nn.functional.linear and clamp, with a print"
def residual_block(X, W1, W2):
    branch = torch.nn.functional.linear(torch.nn.functional.linear(X, W1).clamp(min=0), W2)
    print("branch scale:", float(branch.abs().max()))
    return X + branch

# %% nbgrader={"grade_id": "q1_residual_block_test", "grade": true, "points": 3}
# The public example: N = D = 4, H = 3 (weights as in nn.Linear: (out, in)).
_X1 = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.5, 0.5, -0.5, 1.0], [-2.0, 1.0, 0.0, 0.5], [0.0, -0.5, 1.0, -1.5]],
                   dtype=torch.float64)
_W1 = torch.tensor([[1.0, 0.5, -0.5, 0.0], [-1.0, 0.0, 0.5, 1.0], [0.5, -0.5, 0.0, 0.5]], dtype=torch.float64)
_W2 = torch.tensor([[0.5, -1.0, 0.0], [0.0, 0.5, 1.0], [-0.5, 0.0, 0.5], [1.0, 0.5, -0.5]], dtype=torch.float64)
checks.check_function(
    "Question 1", residual_block,
    [((_X1, _W1, _W2), [[0.0, 0.0, 2.375, -0.125], [2.5, 1.5, -1.0, 2.5], [-4.5, 2.25, 0.0, 1.75],
                        [0.0, -0.5, 1.0, -1.5]])],
    rtol=1e-6,
    mistakes=[(lambda X, W1, W2: torch.relu(X @ W1.T) @ W2.T,
               "the skip connection is missing: a residual block returns x + F(x), not F(x)."),
              (lambda X, W1, W2: torch.relu(X + torch.relu(X @ W1.T) @ W2.T),
               "you applied a ReLU after the sum; this block has nothing after the '+'."),
              (lambda X, W1, W2: X + (X @ W1.T) @ W2.T, "the ReLU inside the branch is missing.")],
    hint="Work out the branch for one row x by hand (first W1, then the ReLU, then W2) and compare with a "
         "row of your output; mind that the weights are stored as (out, in).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = torch.Generator().manual_seed(5)
    for _n, _d, _h, _dtype in [(1, 1, 1, torch.float64), (1, 6, 2, torch.float64), (7, 2, 9, torch.float64),
                               (3, 5, 1, torch.float64), (6, 4, 3, torch.float32)]:
        _args = tuple(torch.randn(*shape, generator=_rng).to(_dtype) for shape in [(_n, _d), (_h, _d), (_d, _h)])
        _lin1 = torch.nn.Linear(_d, _h, bias=False, dtype=torch.float64)
        _lin2 = torch.nn.Linear(_h, _d, bias=False, dtype=torch.float64)
        with torch.no_grad():
            _lin1.weight.copy_(_args[1])
            _lin2.weight.copy_(_args[2])
            _want = _args[0].double() + _lin2(torch.relu(_lin1(_args[0].double())))
        checks.check_function("Question 1 (hidden)", residual_block, [(_args, _want)], rtol=1e-6,
                              atol=1e-5 if _dtype == torch.float32 else 1e-9)
    _zero = (torch.randn(4, 3, generator=_rng).double(), torch.zeros(2, 3, dtype=torch.float64),
             torch.randn(3, 2, generator=_rng).double())
    checks.check_function("Question 1 (hidden, zero branch is the identity)", residual_block, [(_zero, _zero[0])],
                          rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): the Jacobian of a residual block, by hand
#
# For the block $h(x) = x + \tanh(Wx)$ with $x$ of shape (D,) and $W$ of shape (D, D),
# write `residual_jacobian(x, W)` returning the (D, D) matrix $\partial h/\partial x$
# (row $i$, column $j$: $\partial h_i/\partial x_j$). Derive it with the chain rule and
# compute it with NumPy: `x` and `W` are **NumPy arrays** (float64, any D from 1 up),
# so autograd is not available; return a NumPy array. Compared with
# relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q2_residual_jacobian", "solution": true}
def residual_jacobian(x, W):
    """d/dx of x + tanh(W x), a (D, D) NumPy array."""
    ### BEGIN SOLUTION
    slope = 1 - np.tanh(W @ x) ** 2
    return np.eye(len(x)) + slope[:, None] * W
    ### END SOLUTION

# %% mistake="q2_residual_jacobian" label="returns the branch's Jacobian without the identity"
def residual_jacobian(x, W):
    return np.diag(1 - np.tanh(W @ x) ** 2) @ W

# %% mistake="q2_residual_jacobian" label="scales the columns of W instead of its rows"
def residual_jacobian(x, W):
    return np.eye(len(x)) + W @ np.diag(1 - np.tanh(W @ x) ** 2)

# %% mistake="q2_residual_jacobian" label="takes the tanh slope at x instead of at Wx"
def residual_jacobian(x, W):
    return np.eye(len(x)) + np.diag(1 - np.tanh(x) ** 2) @ W

# %% mistake="q2_residual_jacobian" label="hard-codes the size of the example (np.eye(3))"
def residual_jacobian(x, W):
    return np.eye(3) + np.diag(1 - np.tanh(W @ x) ** 2) @ W

# %% right="q2_residual_jacobian" label="element by element in loops, with 1 / cosh^2"
def residual_jacobian(x, W):
    D = len(x)
    J = np.zeros((D, D))
    for i in range(D):
        slope = 1.0 / math.cosh(sum(W[i, k] * x[k] for k in range(D))) ** 2
        for j in range(D):
            J[i, j] = (1.0 if i == j else 0.0) + slope * W[i, j]
    return J

# %% right="q2_residual_jacobian" label="torch from the NumPy inputs, back to NumPy"
def residual_jacobian(x, W):
    x, W = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(W))
    return (torch.eye(len(x), dtype=W.dtype) + torch.diag(1 - torch.tanh(W @ x) ** 2) @ W).numpy()

# %% nbgrader={"grade_id": "q2_residual_jacobian_test", "grade": true, "points": 3}
# The public example: D = 3.
_x2 = np.array([0.5, -1.0, 0.25])
_W2 = np.array([[0.8, -0.3, 0.5], [0.2, 0.6, -0.9], [-0.7, 0.4, 0.1]])
checks.check_function(
    "Question 2", residual_jacobian,
    [((_x2, _W2), [[1.4324891390173267, -0.1621834271314975, 0.2703057118858292],
                   [0.12312077674163331, 1.3693623302248998, -0.5540434953373499],
                   [-0.43092271859571657, 0.24624155348326662, 1.0615603883708167]])],
    rtol=1e-6,
    mistakes=[(lambda x, W: np.diag(1 - np.tanh(W @ x) ** 2) @ W,
               "the identity is missing: the skip path x contributes its own derivative, dx/dx = I."),
              (lambda x, W: np.eye(3) + W @ np.diag(1 - np.tanh(W @ x) ** 2),
               "the slopes scale the wrong side of W: output i's slope belongs to every entry of row i."),
              (lambda x, W: np.eye(3) + W, "the tanh slope 1 - tanh(.)^2 is missing from the branch."),
              (lambda x, W: (np.eye(3) + np.diag(1 - np.tanh(W @ x) ** 2) @ W).T,
               "that is the transpose: row i should hold the derivatives of h_i."),
              (lambda x, W: np.eye(3) + np.diag(1 - np.tanh(x) ** 2) @ W,
               "the tanh slope must be taken where tanh is applied, at the pre-activation, not at x.")],
    hint="Write h_i as a sum over k and differentiate it by x_j: one term from x_i, one from the tanh.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _jacobian_reference(x, W):  # autograd, in float64, as the reference
        x, W = torch.from_numpy(np.array(x, dtype=np.float64)), torch.from_numpy(np.array(W, dtype=np.float64))
        return torch.autograd.functional.jacobian(lambda v: v + torch.tanh(W @ v), x).numpy()

    _rng = np.random.default_rng(6)
    for _d in (1, 2, 5, 9):
        for _scale in (0.1, 3.0):
            _args = (_rng.standard_normal(_d) * _scale, _rng.standard_normal((_d, _d)))
            checks.check_function("Question 2 (hidden)", residual_jacobian, [(_args, _jacobian_reference(*_args))],
                                  rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): predict the gradient through a residual stack
#
# A stack of `depth` scalar blocks $h_k = h_{k-1} + f(h_{k-1})$, where every branch $f$
# has the same derivative `slope` (for example $f(h) = \text{slope}\cdot h$). A plain
# stack of the same branches, $h_k = f(h_{k-1})$, gives $dh_L/dh_0 = \text{slope}^{L}$.
# Write `predict_residual_gradient(slope, depth)` returning $dh_L/dh_0$ for the
# residual stack, $L$ = `depth` (an int, 0 or more; `slope` a float above -1). The
# check uses slope 0.01 and depth 40; hidden tests use other slopes (positive and
# negative, small and large) and depths. Compared with relative tolerance 1%.

# %% nbgrader={"grade_id": "q3_residual_gradient", "solution": true}
def predict_residual_gradient(slope, depth):
    """dh_depth / dh_0 through `depth` residual scalar blocks whose branches have derivative `slope`."""
    ### BEGIN SOLUTION
    return (1 + slope) ** depth
    ### END SOLUTION

# %% mistake="q3_residual_gradient" label="adds the branch derivatives (first-order expansion) instead of multiplying"
def predict_residual_gradient(slope, depth):
    return 1 + depth * slope

# %% mistake="q3_residual_gradient" label="forgets the skip path: the plain stack's slope ** depth"
def predict_residual_gradient(slope, depth):
    return slope ** depth

# %% mistake="q3_residual_gradient" label="uses exp(slope * depth), right only for tiny slopes"
def predict_residual_gradient(slope, depth):
    return math.exp(slope * depth)

# %% mistake="q3_residual_gradient" label="multiplies by the depth instead of raising to its power"
def predict_residual_gradient(slope, depth):
    return (1 + slope) * depth

# %% right="q3_residual_gradient" label="measures it with autograd through a real scalar stack"
def predict_residual_gradient(slope, depth):
    h0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    h = h0
    for _ in range(depth):
        h = h + slope * h
    if depth == 0:
        return 1.0
    h.backward()
    return h0.grad.item()

# %% right="q3_residual_gradient" label="a loop multiplying the factors"
def predict_residual_gradient(slope, depth):
    product = 1.0
    for _ in range(depth):
        product *= 1.0 + slope
    return product

# %% nbgrader={"grade_id": "q3_residual_gradient_test", "grade": true, "points": 2}
# The public setting: 40 blocks whose branches have derivative 0.01 (the plain stack gives 1e-80).
checks.check_function(
    "Question 3", predict_residual_gradient, [((0.01, 40), 1.4888637335882213)], rtol=0.01,
    mistakes=[(lambda s, d: 1 + d * s, "that keeps only the first-order terms: the chain rule multiplies one "
                                       "factor per block, it does not add them."),
              (lambda s, d: s ** d, "that is the plain stack; in the residual stack each factor is 1 + f', "
                                    "not f'."),
              (lambda s, d: (1 + s) * d, "you multiplied by the depth instead of raising to its power."),
              (lambda s, d: 1.0, "the skip path alone gives 1, but every block's factor also holds f'.")],
    hint="Write down one block's derivative d(h + f(h))/dh, then chain `depth` of them.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _slope, _depth in [(0.5, 10), (-0.5, 6), (0.0, 7), (2.0, 3), (0.3, 0), (-0.9, 4), (0.05, 100), (1.0, 1)]:
        checks.check_function("Question 3 (hidden)", predict_residual_gradient,
                              [((_slope, _depth), (1.0 + _slope) ** _depth)], rtol=0.01)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (1 point): why does the deeper plain net train worse?
#
# In section 2 the plain 56-layer network ends with a much higher **training** error than
# the plain 20-layer one. Which explanation is right? Set `q4_answer` to `"A"`, `"B"`,
# `"C"` or `"D"`.
#
# - **A.** It overfits: its extra parameters memorize noise in the training digits, so it fits them worse.
# - **B.** Its units saturate like sigmoids, so every layer multiplies the gradient by at most 1/4.
# - **C.** Optimization: extra blocks set to the identity would copy the 20-layer net, but SGD misses it.
# - **D.** 56 layers of width 32 hold too few parameters to fit all 1,797 digits of the set.

# %% nbgrader={"grade_id": "q4_answer", "solution": true}
### BEGIN SOLUTION
q4_answer = "C"
### END SOLUTION

# %% mistake="q4_answer" label="blames overfitting"
q4_answer = "A"

# %% mistake="q4_answer" label="blames saturating units"
q4_answer = "B"

# %% mistake="q4_answer" label="blames too few parameters"
q4_answer = "D"

# %% right="q4_answer" label="lower case with spaces"
q4_answer = " c "

# %% nbgrader={"grade_id": "q4_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 4", q4_answer, "ABCD", expected_digest="12c8d5911d2a1178", salt="07_q4",
    explanations={"A": "Overfitting makes the TEST error worse while the training error stays low. Here the "
                       "TRAINING error is higher: the deep net does not even fit the data it sees.",
                  "B": "There are no sigmoids here: the blocks are BatchNorm and ReLU.",
                  "D": "It has more parameters than the 20-layer net, which fits the digits well."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 4 (hidden)", q4_answer, "ABCD", expected="C")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (3 points): diagnose a network from its gradient norms
#
# Write `diagnose_gradient(grad_norms)`. Its argument holds $\|\partial L/\partial h_k\|$ for
# every block, block 1 (next to the input) first, as a list, a NumPy array or a tensor,
# like `resnet_gradient_norms(depth, residual=..., seed=...)` returns. Return
# `"vanishing"` when block 1 gets less than 1/100 of the last block's gradient,
# `"exploding"` when it gets more than 100 times the last block's, and `"healthy"`
# otherwise (exactly 1/100 or 100 times is still healthy). The check uses one public
# network; hidden tests use other networks, depths and seeds. Try yours on the three
# networks of section 2 first.

# %% nbgrader={"grade_id": "q5_diagnose_gradient", "solution": true}
def diagnose_gradient(grad_norms):
    """'vanishing', 'exploding' or 'healthy', from per-block gradient norms (block 1 first)."""
    ### BEGIN SOLUTION
    norms = np.asarray(grad_norms, dtype=np.float64)
    ratio = norms[0] / norms[-1]
    if ratio < 1e-2:
        return "vanishing"
    if ratio > 1e2:
        return "exploding"
    return "healthy"
    ### END SOLUTION

# %% mistake="q5_diagnose_gradient" label="reads the list backwards: last block against block 1"
def diagnose_gradient(grad_norms):
    norms = np.asarray(grad_norms, dtype=np.float64)
    ratio = norms[-1] / norms[0]
    return "vanishing" if ratio < 1e-2 else "exploding" if ratio > 1e2 else "healthy"

# %% mistake="q5_diagnose_gradient" label="compares neighbouring blocks only, not the whole way down"
def diagnose_gradient(grad_norms):
    norms = np.asarray(grad_norms, dtype=np.float64)
    ratio = norms[0] / norms[1]
    return "vanishing" if ratio < 1e-2 else "exploding" if ratio > 1e2 else "healthy"

# %% mistake="q5_diagnose_gradient" label="counts exactly 100x as exploding (>= instead of >)"
def diagnose_gradient(grad_norms):
    norms = np.asarray(grad_norms, dtype=np.float64)
    ratio = norms[0] / norms[-1]
    return "vanishing" if ratio <= 1e-2 else "exploding" if ratio >= 1e2 else "healthy"

# %% mistake="q5_diagnose_gradient" label="uses the spread max/min, which cannot tell a bump from a trend"
def diagnose_gradient(grad_norms):
    norms = np.asarray(grad_norms, dtype=np.float64)
    if norms.max() / norms.min() <= 1e2:
        return "healthy"
    return "exploding" if norms[0] > norms[-1] else "vanishing"

# %% right="q5_diagnose_gradient" label="decades with log10, plain Python indexing"
def diagnose_gradient(grad_norms):
    first, last = float(grad_norms[0]), float(grad_norms[-1])
    decades = np.log10(first) - np.log10(last) if first > 0 else -np.inf
    return "vanishing" if decades < -2 else "exploding" if decades > 2 else "healthy"

# %% nbgrader={"grade_id": "q5_diagnose_gradient_test", "grade": true, "points": 3}
# The public network: the plain 56-layer net of section 2 at initialization, seed 0.
_norms5 = resnet_gradient_norms(56, residual=False, seed=0)
checks.check_verdicts(
    "Question 5", diagnose_gradient, [((_norms5,), "exploding")], allowed=("vanishing", "exploding", "healthy"),
    mistakes=[(lambda g: "vanishing", "block 1 is the FIRST entry; compare it with the LAST one: which is "
                                      "larger here?")],
    hint="Plot the norms on a log axis (block 1 first) and compute block 1's norm divided by the last "
         "block's: the verdict follows from that one ratio.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _allowed = ("vanishing", "exploding", "healthy")
    _hidden = [((resnet_gradient_norms(8, residual=False, seed=3),), "healthy"),
               ((resnet_gradient_norms(56, residual=True, seed=1).tolist(),), "healthy"),
               ((torch.tensor(resnet_gradient_norms(56, residual=False, seed=2)),), "exploding"),
               ((np.geomspace(1e-6, 1.0, 12).astype(np.float32),), "vanishing"),
               (([0.0, 0.0, 1e-3, 1.0],), "vanishing"),
               (([100.0, 10.0, 1.0],), "healthy"),  # exactly 100x is not more than 100x
               (([1.0, 10.0, 100.0],), "healthy"),
               (([1.0, 1e4, 1e-3, 1.0],), "healthy"),  # a bump in the middle is not a trend
               (([1e3, 1.0],), "exploding"),
               (([2e-3, 5.0, 0.5],), "vanishing")]
    checks.check_verdicts("Question 5 (hidden)", diagnose_gradient, _hidden, allowed=_allowed)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (3 points): a pre-LN transformer block
#
# Write `pre_ln_block(X, attn, mlp, norm1, norm2)`: one pre-LN block (section 4) applied
# to `X`, where `attn`, `mlp`, `norm1` and `norm2` are functions from a tensor to a tensor
# of the same shape. First the attention sublayer with its own LayerNorm `norm1`, then the
# MLP sublayer with its own LayerNorm `norm2`. The check uses one public block whose two
# LayerNorms happen to be equal; hidden tests use blocks whose sublayers and norms all
# differ, and other shapes. Compared with relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q6_pre_ln_block", "solution": true}
def pre_ln_block(X, attn, mlp, norm1, norm2):
    """One pre-LN transformer block (section 4) applied to X."""
    ### BEGIN SOLUTION
    h = X + attn(norm1(X))
    return h + mlp(norm2(h))
    ### END SOLUTION

# %% mistake="q6_pre_ln_block" label="post-LN: normalizes after adding the sublayer"
def pre_ln_block(X, attn, mlp, norm1, norm2):
    h = norm1(X + attn(X))
    return norm2(h + mlp(h))

# %% mistake="q6_pre_ln_block" label="uses norm1 for both sublayers"
def pre_ln_block(X, attn, mlp, norm1, norm2):
    h = X + attn(norm1(X))
    return h + mlp(norm1(h))

# %% mistake="q6_pre_ln_block" label="normalizes the sublayer's output instead of its input"
def pre_ln_block(X, attn, mlp, norm1, norm2):
    h = X + norm1(attn(X))
    return h + norm2(mlp(h))

# %% mistake="q6_pre_ln_block" label="drops the second residual connection"
def pre_ln_block(X, attn, mlp, norm1, norm2):
    return mlp(norm2(X + attn(norm1(X))))

# %% right="q6_pre_ln_block" label="a loop over (sublayer, norm) pairs"
def pre_ln_block(X, attn, mlp, norm1, norm2):
    h = X
    for sublayer, norm in ((attn, norm1), (mlp, norm2)):
        h = h + sublayer(norm(h))
    return h

# %% nbgrader={"grade_id": "q6_pre_ln_block_test", "grade": true, "points": 3}
# The public block: 1 sequence of 2 tokens of width 3; both norms are a plain LayerNorm.
_A6 = torch.tensor([[0.5, -1.0, 0.0], [1.0, 0.5, -0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
_B6 = torch.tensor([[1.0, 0.0, -0.5], [-0.5, 1.0, 0.5], [0.5, -1.0, 1.0]], dtype=torch.float64)
_attn6 = lambda Z: Z.flip(-2) @ _A6  # noqa: E731 - mixes the two tokens
_mlp6 = lambda Z: torch.tanh(Z @ _B6)  # noqa: E731
_norm6 = lambda Z: torch.nn.functional.layer_norm(Z, (3,))  # noqa: E731
_X6 = torch.tensor([[[1.0, -0.5, 2.0], [0.0, 1.5, -1.0]]], dtype=torch.float64)
checks.check_function(
    "Question 6", lambda X: pre_ln_block(X, _attn6, _mlp6, _norm6, _norm6),
    [((_X6,), [[[3.140020558192391, -0.6707106256530596, -0.710320863955302],
                [-2.140020558192391, 1.6707106256530593, 1.710320863955302]]])],
    rtol=1e-6,
    mistakes=[(lambda X: _norm6(_norm6(X + _attn6(X)) + _mlp6(_norm6(X + _attn6(X)))),
               "that is a post-LN block: LayerNorm after the sum. Pre-LN normalizes the INPUT of each sublayer "
               "and leaves the residual stream itself un-normalized."),
              (lambda X: _mlp6(_norm6(X + _attn6(_norm6(X)))),
               "the second residual connection is missing: add the MLP's output to the stream."),
              (lambda X: (lambda h: h + _norm6(_mlp6(h)))(X + _norm6(_attn6(X))),
               "the LayerNorm goes on each sublayer's INPUT, not on its output.")],
    hint="Follow the stream: two steps, each adds one sublayer's output to it; see section 4's formula.")
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

    def _pre_ln_reference(X, attn, mlp, norm1, norm2):
        h = X + attn(norm1(X))
        return h + mlp(norm2(h))

    _rng = torch.Generator().manual_seed(8)
    for _shape in [(1, 1, 3), (4, 5, 6), (2, 8, 2)]:
        _parts_h = _make_parts(_shape[-1], _rng)
        _X = torch.randn(*_shape, generator=_rng).double() * 3
        checks.check_function("Question 6 (hidden)", lambda X: pre_ln_block(X, *_parts_h),
                              [((_X,), _pre_ln_reference(_X, *_parts_h))], rtol=1e-6)
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
#   the vanishing gradient comes back as the stack gets deeper, remove LayerNorm too and
#   it is total (thirty orders of magnitude over 24 blocks).
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
# - A. Radford, J. Wu, R. Child, D. Luan, D. Amodei, I. Sutskever (2019). Language models are unsupervised multitask learners. *OpenAI technical report* (GPT-2, pre-LN blocks).
# - R. Xiong, Y. Yang, D. He, K. Zheng, S. Zheng, C. Xing, H. Zhang, Y. Lan, L. Wang, T.-Y. Liu (2020). On layer normalization in the transformer architecture. *ICML.*
# - S. Ioffe, C. Szegedy (2015). Batch normalization. *ICML.*
