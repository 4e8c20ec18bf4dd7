# %% [markdown]
# # 01 · The chain rule: where vanishing gradients come from
#
# Backpropagation is the chain rule applied layer after layer. The gradient that
# reaches the first layer of a deep network is a **product** of one local
# derivative (one Jacobian) per layer above it, and a product of many numbers
# smaller than one is tiny. This notebook builds that idea from scratch, and
# every claim in it is an experiment that checks its own result.
#
# **You will learn to**
# 1. write backpropagation as a product of local derivatives and of Jacobians,
#    and check it against PyTorch's autograd;
# 2. check any gradient with central differences (gradient checking);
# 3. compute how fast a gradient shrinks through sigmoid layers (0.25 per layer at best);
# 4. see products of random matrices shrink or blow up with depth;
# 5. place the problem in its history (Hochreiter 1991, Bengio et al. 1994).
#
# Run the cells from top to bottom. Practice questions are at the end: each has
# a check you can run as often as you like, and hidden tests used for grading.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.chains import orthogonal_chain_gradients, random_product_norms, sigmoid_chain_gradient
from course_lib.gradcheck import numerical_gradient, relative_error
from course_lib.models import build_mlp
from course_lib.monitoring import GradientMonitor
from course_lib.plotting import OKABE_ITO, plot_gradient_norms
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import chain_explorer

set_seed(0)
device = get_device()
print(f"torch {torch.__version__} on {device}")

# %% [markdown]
# ## 1. Backpropagation is a product of local derivatives
#
# Take a chain of three functions, $h_1 = x^2$, $h_2 = \sin h_1$, $L = e^{h_2}$.
# The chain rule says
#
# $$\frac{dL}{dx} = \underbrace{e^{h_2}}_{dL/dh_2}\;\underbrace{\cos h_1}_{dh_2/dh_1}\;\underbrace{2x}_{dh_1/dx}.$$
#
# Each factor is a **local** derivative: it only needs the input of its own
# function, saved during the forward pass. Backprop multiplies them from the
# output back to the input. Let's compute that product by hand and compare it
# with what PyTorch's autograd computes.

# %% tags=["demo"]
x = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
h1 = x**2
h2 = torch.sin(h1)
L = torch.exp(h2)
L.backward()

local_derivatives = [torch.exp(h2), torch.cos(h1), 2 * x]  # dL/dh2, dh2/dh1, dh1/dx
by_hand = math.prod(d.item() for d in local_derivatives)
print(f"product of local derivatives: {by_hand:.15f}")
print(f"autograd:                     {x.grad.item():.15f}")
assert math.isclose(by_hand, x.grad.item(), rel_tol=1e-12)

# %% [markdown]
# **What to notice:** autograd did exactly this product. It never forms a formula
# for $dL/dx$; it stores each function's input on the way forward and multiplies
# local derivatives on the way back.
#
# ## 2. With vectors, the local derivatives are Jacobians
#
# In a network each layer maps a vector to a vector, $h_k = f_k(h_{k-1})$. Its
# local derivative is the Jacobian matrix $J_k = \partial h_k / \partial h_{k-1}$.
# The chain rule becomes a product of matrices, and backprop applies their
# transposes to the gradient, starting at the output:
#
# $$\frac{\partial L}{\partial h_0} = J_1^\top J_2^\top \cdots J_L^\top \frac{\partial L}{\partial h_L}.$$
#
# For a tanh layer $h_k = \tanh(W_k h_{k-1})$ the Jacobian is
# $J_k = \operatorname{diag}(1 - h_k^2)\, W_k$: the weights, scaled row by row by
# the activation's slope. Below, a three-layer tanh network: we build each
# Jacobian by that formula, check it against autograd's Jacobian, and multiply.

# %% tags=["demo"]
widths = [4, 5, 3, 2]  # h0 has 4 numbers, h3 has 2
weights = [torch.randn(n_out, n_in, dtype=torch.float64) for n_in, n_out in zip(widths, widths[1:])]
h0 = torch.randn(widths[0], dtype=torch.float64, requires_grad=True)

hs, jacobians = [h0], []
for W in weights:
    hs.append(torch.tanh(W @ hs[-1]))
    jacobians.append(torch.diag(1 - hs[-1].detach() ** 2) @ W)
loss = hs[-1].pow(2).sum()
loss.backward()

grad = 2 * hs[-1].detach()  # dL/dh3
for J in reversed(jacobians):  # backprop: the output's Jacobian first
    grad = J.T @ grad
print("Jacobian product:", grad.numpy().round(6))
print("autograd:        ", h0.grad.numpy().round(6))
assert torch.allclose(grad, h0.grad, rtol=1e-12, atol=0)

layer_1 = lambda h: torch.tanh(weights[0] @ h)
assert torch.allclose(torch.autograd.functional.jacobian(layer_1, h0.detach()), jacobians[0], rtol=1e-12, atol=0)

# %% [markdown]
# **What to notice:** the shapes tell you the order. $J_3$ is $2\times 3$, so
# $J_3^\top$ takes the 2 numbers of $\partial L/\partial h_3$ to the 3 of
# $\partial L/\partial h_2$; starting at the input instead would not even
# multiply. Practice question 2 asks you to write this loop yourself.
#
# ## 3. Gradient checking: trust, but verify (E12)
#
# When you write a backward pass by hand (you will, for BatchNorm in notebook 06),
# check it against **central differences**:
#
# $$\frac{\partial f}{\partial x_i} \approx \frac{f(x + \varepsilon e_i) - f(x - \varepsilon e_i)}{2\varepsilon},$$
#
# whose error shrinks like $\varepsilon^2$. Compare with the **relative error**
# $\max|a - b| / \max(|a| + |b|)$; in float64, below $10^{-7}$ means the backward
# pass is right. Here is the check on $f(x) = \sum \tanh(Wx)^2$.

# %% tags=["demo"]
W = torch.randn(5, 4, dtype=torch.float64)
x0 = torch.randn(4, dtype=torch.float64)


def f(x):
    return (torch.tanh(W @ torch.as_tensor(x)) ** 2).sum().item()


x = x0.clone().requires_grad_()
(torch.tanh(W @ x) ** 2).sum().backward()
analytic = x.grad.numpy()

error = relative_error(numerical_gradient(f, x0.numpy().copy(), eps=1e-6), analytic)
print(f"relative error, float64, eps=1e-6: {error:.1e}")
assert error < 1e-7

# %% [markdown]
# The choice of $\varepsilon$ matters. Too large, and the $\varepsilon^2$ truncation
# error dominates; too small, and $f(x+\varepsilon) - f(x-\varepsilon)$ loses its
# digits to rounding. Float32 has only about 7 significant digits, which is why
# gradient checks run in float64.

# %% tags=["demo"]
eps_values = np.logspace(-13, -1, 25)
errors = [relative_error(numerical_gradient(f, x0.numpy().copy(), eps=eps), analytic) for eps in eps_values]
W32 = W.float()
error_float32 = relative_error(
    numerical_gradient(lambda v: (torch.tanh(W32 @ torch.tensor(v, dtype=torch.float32)) ** 2).sum().item(),
                       x0.numpy().copy(), eps=1e-6), analytic)

fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
ax.loglog(eps_values, errors, "o-", color=OKABE_ITO[0], markersize=3, label="float64")
ax.axhline(1e-7, color="black", linestyle="--", linewidth=1, label="threshold 1e-7")
ax.set_xlabel("step size eps")
ax.set_ylabel("relative error vs autograd")
ax.legend(frameon=False)
best = eps_values[int(np.argmin(errors))]
print(f"best eps {best:.0e} (error {min(errors):.1e}); float32 at eps=1e-6: {error_float32:.1e}")
assert 1e-8 <= best <= 1e-3, "rounding should win below ~1e-8, truncation above ~1e-3"
assert errors[0] > 1e-7 and errors[-1] > 1e-4  # both ends fail the check
assert error_float32 > 1e-3  # float32 is useless for gradient checking

# %% [markdown]
# **What to notice:** the V shape. Rounding error grows to the left, truncation
# error to the right, and a wide valley around $\varepsilon \approx 10^{-6}$ sits
# far below the threshold. In float32 the same check is off by percent.
#
# ## 4. Through ten sigmoid layers: $0.25^{10} \approx 10^{-6}$
#
# The sigmoid $\sigma(z) = 1/(1+e^{-z})$ has derivative $\sigma'(z) = \sigma(z)(1-\sigma(z))$,
# which is **at most 1/4**, reached at $z = 0$. A chain of sigmoid layers
# multiplies one such factor per layer. Let's measure the best case: a chain
# $h_k = \sigma(h_{k-1}) - \tfrac12$ that keeps every pre-activation at exactly 0.

# %% tags=["demo"]
z = torch.linspace(-8, 8, 16001, dtype=torch.float64)
slope = torch.sigmoid(z) * (1 - torch.sigmoid(z))
print(f"largest sigmoid slope: {slope.max().item():.6f} at z = {z[slope.argmax()].item():.3f}")
assert math.isclose(slope.max().item(), 0.25, rel_tol=1e-12)

depths = np.arange(0, 31)
best_case = np.array([sigmoid_chain_gradient(int(d)) for d in depths])
print(f"gradient through 10 sigmoid layers (best case): {best_case[10]:.3e}  vs 0.25**10 = {0.25**10:.3e}")
assert math.isclose(best_case[10], 0.25**10, rel_tol=1e-12)
assert np.allclose(best_case, 0.25**depths, rtol=1e-12)

# %% [markdown]
# Away from $z = 0$ the slope is smaller, so real networks usually do worse than
# this. Multiplying each layer by a weight $w$ changes the factor to $w/4$:
# $w = 4$ would keep the product at 1, but such large weights push the
# pre-activations away from 0, where the slope collapses (notebook 02).

# %% tags=["demo"]
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
for i, (weight, x_start) in enumerate([(1.0, 0.0), (1.0, 2.0), (4.0, 0.0), (4.0, 1.0)]):
    grads = [abs(sigmoid_chain_gradient(int(d), weight=weight, x=x_start)) for d in depths]
    ax.semilogy(depths, grads, "o-", markersize=3, color=OKABE_ITO[i], label=f"w = {weight:g}, x = {x_start:g}")
ax.set_xlabel("number of sigmoid layers")
ax.set_ylabel("|dh_L / dh_0|")
ax.legend(frameon=False)
off_center = sigmoid_chain_gradient(10, x=2.0)
assert abs(off_center) < 0.25**10  # starting off-centre is worse than the best case
assert math.isclose(sigmoid_chain_gradient(30, weight=4.0), 1.0, rel_tol=1e-12)  # w = 4 exactly at z = 0
assert abs(sigmoid_chain_gradient(30, weight=4.0, x=1.0)) < 1e-3  # ...but fragile off z = 0

# %% [markdown]
# **What to notice:** even the best case loses six orders of magnitude in ten
# layers, and a gradient that is $10^{-6}$ of the last layer's means the first
# layer learns a million times slower. The $w = 4$ chain looks like a fix only
# while every pre-activation stays exactly at 0: start at 1 and it decays again.
#
# ## 5. Products of random matrices shrink or blow up
#
# With weights, the local derivatives are matrices, and a product of random
# matrices behaves like a product of numbers: with $W \sim \mathcal N(0, s^2/n)$,
# $\mathbb E\|Wv\|^2 = s^2\|v\|^2$, so each layer scales the norm by about $s$.
# Below, 100 random draws per setting, 50 layers, width 64.

# %% tags=["demo"]
depth = 50
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
slopes = {}
for i, s in enumerate([0.8, 1.0, 1.2]):
    norms = random_product_norms(depth, s, width=64, trials=100, seed=i)
    log_norms = np.log(norms)
    slopes[s] = log_norms[:, -1].mean() / depth
    ax.semilogy(np.arange(depth + 1), np.exp(log_norms.mean(axis=0)), color=OKABE_ITO[i], label=f"s = {s}")
    ax.fill_between(np.arange(depth + 1), np.exp(log_norms.min(axis=0)), np.exp(log_norms.max(axis=0)),
                    color=OKABE_ITO[i], alpha=0.2)
    if s == 1.0:
        spread_5, spread_50 = log_norms[:, 5].std(), log_norms[:, 50].std()
ax.set_xlabel("number of matrices in the product")
ax.set_ylabel("||W_k ... W_1 v|| / ||v||")
ax.legend(frameon=False)
print({s: f"{math.exp(v):.3f} per layer" for s, v in slopes.items()})
for s, v in slopes.items():  # log-norm per layer = log s - 1/(2n) for Gaussian matrices
    assert abs(v - (math.log(s) - 1 / (2 * 64))) < 0.02, (s, v)
assert spread_50 > 2 * spread_5  # at s = 1 the product is stable on average, not per draw

# %% [markdown]
# **What to notice:** the norm changes geometrically, by a factor close to $s$
# per layer: $0.8^{50} \approx 10^{-5}$ and $1.2^{50} \approx 10^{4}$. Even at
# $s = 1$ the shaded band widens with depth: individual products drift up or
# down. Vanishing and exploding are the two sides of the same product.
# Orthogonal matrices ($W^\top W = I$) are the exception: they preserve norms
# exactly, so a chain of $s \cdot Q$ scales by exactly $s$ per layer. The explorer
# below runs such a chain; notebook 05 uses it as an initialization (Saxe et al. 2013).
#
# ## 6. Explore: depth and per-layer factor
#
# Move the sliders. The explorer builds a chain of `depth` layers $h_k = s\,Q_k h_{k-1}$
# (width 16), backpropagates a unit gradient with autograd, and plots
# $\|\partial L/\partial h_k\|$ for every layer next to the formula $s^{L-k}$.
# Try $s = 0.25$ (the sigmoid bound) at depth 10, and $s = 1.1$ at depth 40.

# %% tags=["demo"]
explorer = chain_explorer(depth=10, factor=0.25)
assert math.isclose(explorer.last["ratio"], 0.25**10, rel_tol=1e-9)
explorer

# %% [markdown]
# ## 7. A short history
#
# - **1991.** Sepp Hochreiter's diploma thesis (*Untersuchungen zu dynamischen
#   neuronalen Netzen*, TU Munich) analyses exactly this product for recurrent
#   networks and shows that error signals decay (or blow up) exponentially with
#   the number of steps.
# - **1994.** Bengio, Simard and Frasconi, *Learning long-term dependencies with
#   gradient descent is difficult* (IEEE Trans. Neural Networks): a recurrent
#   network that stores information robustly must have contracting dynamics, and
#   then its gradients vanish.
# - **1997.** Hochreiter and Schmidhuber's LSTM adds a path whose derivative is 1
#   (notebook 03).
# - **2010-2016.** Glorot & Bengio's initialization (notebooks 02 and 05), ReLU
#   (04), He initialization (05), batch normalization (06) and residual
#   connections (07) each keep the product near 1 in a different way.
#
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks tell you what is wrong; hidden
# tests with other inputs decide the grade.
#
# ### Question 1 (3 points): the chain rule for a chain of scalar functions
#
# Write `chain_rule_derivative(x, functions, derivatives)`. `functions` is a list
# $[f_1, \dots, f_L]$ of scalar functions applied in that order, $h_k = f_k(h_{k-1})$
# with $h_0 = x$, and `derivatives` holds their derivatives $[f_1', \dots, f_L']$.
# Return the pair `(h_L, dh_L/dx)` as two floats. An empty chain is the identity.

# %% nbgrader={"grade_id": "q1_chain_rule_derivative", "solution": true}
def chain_rule_derivative(x, functions, derivatives):
    """Return (f_L(...f_1(x)), d/dx of it) by the chain rule."""
    ### BEGIN SOLUTION
    h, grad = float(x), 1.0
    for f_k, df_k in zip(functions, derivatives):
        grad *= df_k(h)  # local derivative at this layer's input
        h = f_k(h)
    return h, grad
    ### END SOLUTION

# %% mistake="q1_chain_rule_derivative" label="evaluates every derivative at x instead of at each layer's input"
def chain_rule_derivative(x, functions, derivatives):
    h, grad = float(x), 1.0
    for f_k, df_k in zip(functions, derivatives):
        grad *= df_k(x)
        h = f_k(h)
    return h, grad

# %% nbgrader={"grade_id": "q1_chain_rule_derivative_test", "grade": true, "points": 3}
# Check: exp(sin(x^2)) at x = 0.7, against autograd.
x_t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
y_t = torch.exp(torch.sin(x_t**2))
y_t.backward()
checks.check_function(
    "Question 1", lambda x: chain_rule_derivative(x, [lambda h: h**2, math.sin, math.exp],
                                                  [lambda h: 2 * h, math.cos, math.exp]),
    [((0.7,), (y_t.item(), x_t.grad.item()))],
    mistakes=[(lambda x: (y_t.item(), 2 * x * math.cos(x) * math.exp(x)),
               "you evaluated every derivative at the original x. Layer k's derivative must be "
               "evaluated at ITS input h_{k-1}: keep h up to date as you go."),
              (lambda x: (y_t.item(), 2 * x + math.cos(x**2) + math.exp(math.sin(x**2))),
               "you added the local derivatives; the chain rule multiplies them.")],
    hint="Walk forward through the chain: multiply the running derivative by f_k'(h) BEFORE "
         "replacing h by f_k(h).")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _autograd_chain(x, torch_fns):
        x_t = torch.tensor(float(x), dtype=torch.float64, requires_grad=True)
        h = x_t
        for fn in torch_fns:
            h = fn(h)
        if h is x_t:
            return float(x), 1.0
        h.backward()
        return h.item(), x_t.grad.item()


    _rng = np.random.default_rng(2024)
    _library = [(math.tanh, lambda h: 1 - math.tanh(h) ** 2, torch.tanh),
                (lambda h: 1 / (1 + math.exp(-h)), lambda h: math.exp(-h) / (1 + math.exp(-h)) ** 2, torch.sigmoid),
                (lambda h: h**2 / (1 + h**2), lambda h: 2 * h / (1 + h**2) ** 2, lambda h: h**2 / (1 + h**2)),
                (math.sin, math.cos, torch.sin), (lambda h: 0.5 * h, lambda h: 0.5, lambda h: 0.5 * h)]
    for _trial in range(20):
        _picks = [_library[i] for i in _rng.integers(0, len(_library), _rng.integers(1, 7))]
        _x = float(_rng.normal())
        _expected = _autograd_chain(_x, [p[2] for p in _picks])
        checks.check_function("Question 1 (hidden)", chain_rule_derivative,
                              [((_x, [p[0] for p in _picks], [p[1] for p in _picks]), _expected)], rtol=1e-9)
    checks.check_function("Question 1 (hidden, empty chain)", chain_rule_derivative, [((1.5, [], []), (1.5, 1.0))])
    checks.check_function("Question 1 (hidden, int input)", chain_rule_derivative,
                          [((2, [lambda h: h * h], [lambda h: 2 * h]), (4.0, 4.0))])
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): backprop through Jacobians
#
# Write `backprop_through_jacobians(jacobians, grad_output)`. `jacobians` is the
# list $[J_1, \dots, J_L]$ of NumPy arrays, $J_k = \partial h_k/\partial h_{k-1}$ of
# shape `(n_k, n_{k-1})`; `grad_output` is $\partial L/\partial h_L$ with shape `(n_L,)`.
# Return $\partial L/\partial h_0$ (shape `(n_0,)`), without changing the inputs.

# %% nbgrader={"grade_id": "q2_backprop_jacobians", "solution": true}
def backprop_through_jacobians(jacobians, grad_output):
    """Return dL/dh_0 = J_1^T ... J_L^T dL/dh_L."""
    ### BEGIN SOLUTION
    grad = np.asarray(grad_output, dtype=np.float64)
    for J in reversed(jacobians):
        grad = J.T @ grad
    return grad
    ### END SOLUTION

# %% mistake="q2_backprop_jacobians" label="applies the Jacobians in forward order"
def backprop_through_jacobians(jacobians, grad_output):
    grad = np.asarray(grad_output, dtype=np.float64)
    for J in jacobians:
        grad = J.T @ grad
    return grad

# %% nbgrader={"grade_id": "q2_backprop_jacobians_test", "grade": true, "points": 3}
# Check against autograd on two chains: square (3 -> 3 -> 3 -> 3) and rectangular (4 -> 5 -> 2).
def _autograd_vjp(jacobians, grad_output):
    h0 = torch.zeros(jacobians[0].shape[1], dtype=torch.float64, requires_grad=True)
    h = h0
    for J in jacobians:
        h = torch.as_tensor(J) @ h
    (h * torch.as_tensor(grad_output)).sum().backward()
    return h0.grad.numpy()


_g = torch.Generator().manual_seed(1)
_square = [torch.randn(3, 3, dtype=torch.float64, generator=_g).numpy() for _ in range(3)]
_rect = [torch.randn(5, 4, dtype=torch.float64, generator=_g).numpy(),
         torch.randn(2, 5, dtype=torch.float64, generator=_g).numpy()]
_g_sq, _g_rect = np.array([1.0, -2.0, 0.5]), np.array([0.3, -1.0])
checks.check_function(
    "Question 2", backprop_through_jacobians,
    [((_square, _g_sq), _autograd_vjp(_square, _g_sq)), ((_rect, _g_rect), _autograd_vjp(_rect, _g_rect))],
    mistakes=[(lambda Js, g: Js[0].T @ Js[1].T @ Js[2].T @ g if len(Js) == 3 else None,
               "you started at J_1. Backprop starts at the OUTPUT: apply J_L^T first, J_1^T last."),
              (lambda Js, g: Js[2].T @ Js[1].T @ Js[0].T @ g if len(Js) == 3 else None,
               "right to left is right, but the product came out as J_3^T J_2^T J_1^T g: "
               "loop over reversed(jacobians)."),
              (lambda Js, g: Js[0] @ Js[1] @ Js[2] @ g if len(Js) == 3 else None,
               "you forgot the transposes: dL/dh_{k-1} = J_k^T dL/dh_k.")],
    hint="Start from g = dL/dh_L and apply g = J.T @ g for J = J_L, ..., J_1. "
         "A shape error usually means a missing transpose or the wrong order.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(7)
    for _trial in range(10):
        _sizes = _rng.integers(1, 7, _rng.integers(2, 8))
        _Js = [_rng.normal(size=(int(b), int(a))) for a, b in zip(_sizes, _sizes[1:])]
        _gout = _rng.normal(size=int(_sizes[-1]))
        checks.check_function("Question 2 (hidden)", backprop_through_jacobians,
                              [((_Js, _gout), _autograd_vjp(_Js, _gout))], rtol=1e-9)
    _single = [np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])]
    checks.check_function("Question 2 (hidden, one layer)", backprop_through_jacobians,
                          [((_single, np.array([1.0, 1.0, 1.0])), np.array([3.0, 4.0]))])
    _result = backprop_through_jacobians(_square, _g_sq)
    assert np.asarray(_result).shape == (3,), "Question 2: return a 1-D array of shape (n_0,)"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): how deep until the gradient is gone?
#
# In the best case each sigmoid layer multiplies the gradient by 0.25 (section 4).
# What is the **smallest** number of sigmoid layers $L$ for which that factor,
# $0.25^L$, is below $10^{-9}$? Set `q3_layers` to an `int`.

# %% nbgrader={"grade_id": "q3_layers", "solution": true}
### BEGIN SOLUTION
q3_layers = math.ceil(9 / math.log10(4))
### END SOLUTION

# %% mistake="q3_layers" label="one layer short (0.25**14 is still above 1e-9)"
q3_layers = 14

# %% nbgrader={"grade_id": "q3_layers_test", "grade": true, "points": 2}
# Check against a real chain of sigmoid layers (section 4).
checks.check_integer("Question 3", q3_layers)  # an int, not a float
_measured = sigmoid_chain_gradient(q3_layers)
assert _measured < 1e-9, (f"Question 3: through {q3_layers} sigmoid layers the best-case gradient is "
                          f"{_measured:.2e}, still above 1e-9: you need more layers.")
assert sigmoid_chain_gradient(q3_layers - 1) >= 1e-9, (
    f"Question 3: {q3_layers - 1} layers already give {sigmoid_chain_gradient(q3_layers - 1):.2e} "
    f"< 1e-9, so {q3_layers} is not the smallest. Solve 0.25**L < 1e-9 with logarithms.")
print("Question 3: passes the check against the experiment.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_integer("Question 3 (hidden)", q3_layers, 15,
                         mistakes=[(14, "0.25**14 = 3.7e-9 is still above 1e-9.")])
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): predict an exploding gradient
#
# A chain of 40 layers multiplies by $W_k = 1.1\,Q_k$ ($Q_k$ orthogonal), as in the
# explorer. By what factor is the norm of the gradient multiplied between the
# output and the input? Set `q4_factor` to a number (1% tolerance).

# %% nbgrader={"grade_id": "q4_factor", "solution": true}
### BEGIN SOLUTION
q4_factor = 1.1**40
### END SOLUTION

# %% mistake="q4_factor" label="multiplies the factor by the depth instead of raising it to the depth"
q4_factor = 1.1 * 40

# %% nbgrader={"grade_id": "q4_factor_test", "grade": true, "points": 2}
_norms = orthogonal_chain_gradients(40, 1.1)
checks.check_prediction("Question 4", q4_factor, _norms[0] / _norms[-1], rtol=0.01,
                        mistakes=[(1.1 * 40, "you multiplied 1.1 by 40. The chain rule multiplies one "
                                   "factor per layer: 1.1 * 1.1 * ... (40 times)."),
                                  (1.1**39, "one layer short: 40 layers give 40 factors.")])
### BEGIN HIDDEN TESTS
with checks.quiet():
    assert isinstance(q4_factor, (int, float, np.floating)) and not isinstance(q4_factor, bool), \
        "Question 4: give a plain number"
    assert math.isclose(float(q4_factor), 45.2592555681761, rel_tol=0.01), \
        f"Question 4: {q4_factor} is not within 1% of the right factor"
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (2 points): why do the first layers learn slowest?
#
# In a deep sigmoid network trained with SGD, the first layers change far more
# slowly than the last ones. Which explanation is right? Set `q5_answer` to
# `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** Their gradient is a product of one local derivative per layer above them, each at most 0.25, so it is tiny.
# - **B.** They have fewer parameters, so their gradient has a smaller norm.
# - **C.** SGD applies a smaller learning rate to layers near the input.
# - **D.** The loss does not depend on the first layers' weights.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "A"
### END SOLUTION

# %% mistake="q5_answer" label="blames the number of parameters"
q5_answer = "B"

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 2}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="93832d71eb40ba10",
    explanations={"B": "The number of parameters does not set a gradient's size: the first layer often "
                       "has the MOST parameters and still the smallest gradient.",
                  "C": "SGD uses one learning rate for every layer. The step is lr * gradient, and it "
                       "is the gradient that is small.",
                  "D": "It does: change a first-layer weight and the output changes. The dependence "
                       "passes through every later layer, and each one scales the gradient."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="A")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (3 points): diagnose three networks
#
# Three 20-layer networks, A, B and C, get the same batch, and we measure the
# gradient arriving at each layer's output, $\|\partial L/\partial h_k\|$.
# Read the plot (layer 1 is next to the input) and label each network
# `"vanishing"`, `"exploding"` or `"healthy"` (gradient within 100x between the
# last layer and layer 1). Set `q6_diagnosis` to a dict such as
# `{"A": "healthy", "B": "healthy", "C": "healthy"}`.

# %%
X_probe = torch.randn(256, 64, generator=torch.Generator().manual_seed(1))
mystery = {"A": build_mlp(20, 64, activation="tanh", init="normal", std=4 / 8, seed=0),
           "B": build_mlp(20, 64, activation="sigmoid", init="standard", seed=0),
           "C": build_mlp(20, 64, activation="relu", init="he", seed=0)}
mystery_grads = {}
for label, net in mystery.items():
    with GradientMonitor(net) as monitor:
        net(X_probe).pow(2).sum().backward()
    mystery_grads[label] = monitor.latest("out_grad_norm")
plot_gradient_norms(mystery_grads, ylabel="||dL/dh_k||", title="Which network is which?");

# %% nbgrader={"grade_id": "q6_diagnosis", "solution": true}
### BEGIN SOLUTION
q6_diagnosis = {"A": "exploding", "B": "vanishing", "C": "healthy"}
### END SOLUTION

# %% mistake="q6_diagnosis" label="reads the layer axis backwards"
q6_diagnosis = {"A": "vanishing", "B": "exploding", "C": "healthy"}

# %% nbgrader={"grade_id": "q6_diagnosis_test", "grade": true, "points": 3}
checks.check_labels(
    "Question 6", q6_diagnosis, ["A", "B", "C"], ["vanishing", "exploding", "healthy"],
    expected_digests={"A": "3caad11acf119481", "B": "3aaeb61592b1db16", "C": "47512e82024e61d2"},
    explanations={(k, v): "Layer 1 is on the LEFT. Vanishing means the left end (input side) is far "
                          "BELOW the right end; exploding means it is far above."
                  for k in "ABC" for v in ("vanishing", "exploding")})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_labels("Question 6 (hidden)", q6_diagnosis, ["A", "B", "C"], ["vanishing", "exploding", "healthy"],
                        expected={"A": "exploding", "B": "vanishing", "C": "healthy"})
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Backprop multiplies one local derivative (one Jacobian, transposed) per layer,
#   from the output back to the input.
# - Check hand-written gradients with central differences in float64: relative
#   error below $10^{-7}$.
# - A sigmoid's slope is at most 1/4, so ten sigmoid layers cost at least a factor
#   $0.25^{10} \approx 10^{-6}$.
# - Products of random matrices change the norm geometrically: vanishing and
#   exploding are the two sides of the same product.
#
# Next: notebook 02 watches this happen inside a real sigmoid network.
#
# ## References
#
# - S. Hochreiter (1991). *Untersuchungen zu dynamischen neuronalen Netzen.* Diploma thesis, TU Munich.
# - Y. Bengio, P. Simard, P. Frasconi (1994). Learning long-term dependencies with gradient descent is difficult. *IEEE Transactions on Neural Networks* 5(2).
# - S. Hochreiter, J. Schmidhuber (1997). Long short-term memory. *Neural Computation* 9(8).
# - X. Glorot, Y. Bengio (2010). Understanding the difficulty of training deep feedforward neural networks. *AISTATS.*
# - A. Saxe, J. McClelland, S. Ganguli (2013). Exact solutions to the nonlinear dynamics of learning in deep linear neural networks. *arXiv:1312.6120.*
# - A. Karpathy et al. CS231n: gradient checking notes, Stanford.
