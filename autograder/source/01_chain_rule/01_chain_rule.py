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
from course_lib.gradcheck import deep_sigmoid_gradcheck, numerical_gradient, relative_error
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
# $\max|a - b| / \max(|a| + |b|)$, computed for each tensor on its own; in float64,
# below $10^{-7}$ means the backward pass is right. Here is the check on
# $f(x) = \sum \tanh(Wx)^2$.

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
valley = [e for eps, e in zip(eps_values, errors) if 1e-7 <= eps <= 1e-5]
assert max(valley) < 1e-9  # a wide valley around 1e-6, far below the threshold
assert 5e-3 < error_float32 < 0.2  # float32 is off by percent: useless for gradient checking

# %% [markdown]
# **What to notice:** the V shape. Rounding error grows to the left, truncation
# error to the right, and a wide valley around $\varepsilon \approx 10^{-6}$ sits
# far below the threshold. In float32 the same check is off by percent.
#
# **One normaliser per tensor.** A network's gradient is many tensors, and in a deep
# network their sizes differ by orders of magnitude (that is this notebook's subject).
# Concatenate them and divide by the largest entry, and an error in a small tensor
# disappears. Below, a chain of 14 sigmoid layers (width 6, float64) whose first
# layer's backward is written by hand, once right and once with a classic bug: the
# slope $\sigma'(z)$ left out, so that gradient is 4 or more times too large.

# %% tags=["demo"]
deep = deep_sigmoid_gradcheck(depth=14, width=6, seed=0)
print(f"largest |dL/dW_1| / largest |dL/dW_14|: {deep['layer1_over_last']:.1e}")
print(f"bug, one normaliser for all 14 tensors: {deep['global_bug']:.1e}")
print(f"layer 1 on its own: bug {deep['layer1_bug']:.2f}, right backward {deep['layer1_right']:.1e}")
print(f"layer 1 checked alone (loss r . sigmoid(W_1 x)): bug {deep['local_bug']:.2f}, right {deep['local_right']:.1e}")
assert 1e-8 < deep["layer1_over_last"] < 4e-8  # layer 1's gradient: about 2e-8 of the last layer's
assert deep["global_bug"] < 1e-7  # one normaliser: the bug passes the check
assert 0.3 < deep["layer1_bug"] < 1.2 and 0.02 < deep["layer1_right"] < 0.08  # per tensor: caught, but unresolvable
assert 0.3 < deep["local_bug"] < 1.2 and deep["local_right"] < 2e-10  # alone: the bug, and only the bug, fails

# %% [markdown]
# **What to notice:** layer 1's gradient is about $2\times10^{-8}$ of the last
# layer's, so one shared normaliser lets a backward that is off by a factor of 4 pass
# with an error below $10^{-7}$. Per tensor the bug shows (0.61), but so does a
# problem with the check itself: central differences lose about $10^{-10}$ to
# rounding in $f(x \pm \varepsilon)$, more than a gradient this small can absorb, so
# even the right backward reads 0.04. The cure is to check each layer's backward on
# its own, with an upstream gradient of order 1: then the right backward passes at
# $10^{-10}$ and the bug fails at 0.6. Relative errors per tensor, layers one at a time.
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
# then run the check below each one. A check runs your answer on one public example
# and tells you what kind of mistake it sees; hidden tests with other inputs decide
# the grade, so make your answer right for every input the question allows.
#
# ### Question 1 (3 points): the chain rule for a chain of scalar functions
#
# Write `chain_rule_derivative(x, functions, derivatives)`. `functions` is a list
# $[f_1, \dots, f_L]$ of scalar functions applied in that order, $h_k = f_k(h_{k-1})$
# with $h_0 = x$, and `derivatives` holds their derivatives $[f_1', \dots, f_L']$.
# Return the pair `(h_L, dh_L/dx)` as two floats. An empty chain is the identity.
# The hidden tests use other chains and inputs, with relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q1_chain_rule_derivative", "solution": true}
def chain_rule_derivative(x, functions, derivatives):
    """Return the pair (h_L, dh_L/dx) for the chain h_k = f_k(h_{k-1}), h_0 = x."""
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

# %% mistake="q1_chain_rule_derivative" label="evaluates each derivative at its layer's output"
def chain_rule_derivative(x, functions, derivatives):
    h, grad = float(x), 1.0
    for f_k, df_k in zip(functions, derivatives):
        h = f_k(h)
        grad *= df_k(h)
    return h, grad

# %% mistake="q1_chain_rule_derivative" label="gives an empty chain the derivative 0 (passes the visible check)"
def chain_rule_derivative(x, functions, derivatives):
    if not functions:
        return float(x), 0.0
    h, grad = float(x), 1.0
    for f_k, df_k in zip(functions, derivatives):
        grad *= df_k(h)
        h = f_k(h)
    return h, grad

# %% right="q1_chain_rule_derivative" label="recursion on the rest of the chain"
def chain_rule_derivative(x, functions, derivatives):
    if len(functions) == 0:
        return float(x), 1.0
    h_out, d_rest = chain_rule_derivative(functions[0](x), functions[1:], derivatives[1:])
    return float(h_out), float(derivatives[0](x) * d_rest)

# %% right="q1_chain_rule_derivative" label="stores the forward pass, then multiplies backwards, with prints"
def chain_rule_derivative(x, functions, derivatives):
    inputs = [float(x)]
    for f in functions:
        inputs.append(f(inputs[-1]))
    grad = 1.0
    for k in reversed(range(len(functions))):
        grad = grad * derivatives[k](inputs[k])
    print("forward values:", inputs)
    return inputs[-1], grad

# %% nbgrader={"grade_id": "q1_chain_rule_derivative_test", "grade": true, "points": 3}
# Check: exp(sin(x^2)) at x = 0.7, against autograd.
x_t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
y_t = torch.exp(torch.sin(x_t**2))
y_t.backward()
checks.check_function(
    "Question 1", lambda x: chain_rule_derivative(x, [lambda h: h**2, math.sin, math.exp],
                                                  [lambda h: 2 * h, math.cos, math.exp]),
    [((0.7,), (y_t.item(), x_t.grad.item()))], rtol=1e-6,
    mistakes=[(lambda x: (y_t.item(), 2 * x * math.cos(x) * math.exp(x)),
               "you evaluated every derivative at the original x. Each f_k' belongs at the input "
               "of its own function, h_{k-1}."),
              (lambda x: (y_t.item(), 2 * x**2 * math.cos(math.sin(x**2)) * math.exp(y_t.item())),
               "each derivative was evaluated at its function's OUTPUT h_k; it needs the input h_{k-1}."),
              (lambda x: (y_t.item(), 2 * x + math.cos(x**2) + math.exp(math.sin(x**2))),
               "you added the local derivatives; the chain rule multiplies them.")],
    hint="Write out d/dx exp(sin(x^2)) by hand and print, at every step of your loop, the value "
         "at which you evaluate each derivative; compare the two.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _autograd_chain(x, torch_fns):
        x_t = torch.tensor(float(x), dtype=torch.float64, requires_grad=True)
        h = x_t
        for fn in torch_fns:
            h = fn(h)
        h.backward()
        return h.item(), x_t.grad.item()


    _rng = np.random.default_rng(2024)
    _library = [(math.tanh, lambda h: 1 - math.tanh(h) ** 2, torch.tanh),
                (lambda h: 1 / (1 + math.exp(-h)), lambda h: math.exp(-h) / (1 + math.exp(-h)) ** 2, torch.sigmoid),
                (lambda h: h**2 / (1 + h**2), lambda h: 2 * h / (1 + h**2) ** 2, lambda h: h**2 / (1 + h**2)),
                (math.sin, math.cos, torch.sin), (lambda h: 0.5 * h, lambda h: 0.5, lambda h: 0.5 * h)]
    for _trial in range(8):
        _picks = [_library[i] for i in _rng.integers(0, len(_library), _rng.integers(1, 7))]
        _x = float(_rng.normal())
        _expected = _autograd_chain(_x, [p[2] for p in _picks])
        checks.check_function("Question 1 (hidden)", chain_rule_derivative,
                              [((_x, [p[0] for p in _picks], [p[1] for p in _picks]), _expected)], rtol=1e-6)
    checks.check_function("Question 1 (hidden, empty chain)", chain_rule_derivative, [((1.5, [], []), (1.5, 1.0))],
                          rtol=1e-6)
    checks.check_function("Question 1 (hidden, int input)", chain_rule_derivative,
                          [((2, [lambda h: h * h], [lambda h: 2 * h]), (4.0, 4.0))], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (3 points): backprop through Jacobians
#
# Write `backprop_through_jacobians(jacobians, grad_output)`. `jacobians` is the
# list $[J_1, \dots, J_L]$ of NumPy arrays, $J_k = \partial h_k/\partial h_{k-1}$ of
# shape `(n_k, n_{k-1})`; `grad_output` is $\partial L/\partial h_L$ with shape `(n_L,)`.
# Return $\partial L/\partial h_0$ (shape `(n_0,)`), without changing the inputs. An
# empty list is a chain with no layers: then $\partial L/\partial h_0$ is `grad_output`.
# The hidden tests use chains of other lengths and shapes (some of width 1), with
# relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q2_backprop_jacobians", "solution": true}
def backprop_through_jacobians(jacobians, grad_output):
    """Return dL/dh_0 for the chain of Jacobians J_1, ..., J_L, given dL/dh_L."""
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

# %% mistake="q2_backprop_jacobians" label="forgets the transposes"
def backprop_through_jacobians(jacobians, grad_output):
    grad = np.asarray(grad_output, dtype=np.float64)
    for J in reversed(jacobians):
        grad = J @ grad
    return grad

# %% mistake="q2_backprop_jacobians" label="multiplies the Jacobians first with reduce, which fails on an empty chain (passes the visible check)"
import functools


def backprop_through_jacobians(jacobians, grad_output):
    product = functools.reduce(lambda a, b: a @ b, [J.T for J in jacobians])
    return product @ np.asarray(grad_output, dtype=np.float64)

# %% right="q2_backprop_jacobians" label="one matrix product with multi_dot, the empty chain handled"
def backprop_through_jacobians(jacobians, grad_output):
    g = np.array(grad_output, dtype=float)
    if not jacobians:
        return g
    if len(jacobians) == 1:
        return jacobians[0].T @ g
    return np.linalg.multi_dot([J.T for J in jacobians] + [g])

# %% right="q2_backprop_jacobians" label="torch, index loop from the last layer"
def backprop_through_jacobians(jacobians, grad_output):
    grad = torch.tensor(np.asarray(grad_output, dtype=np.float64))
    for k in range(len(jacobians) - 1, -1, -1):
        grad = torch.as_tensor(jacobians[k], dtype=torch.float64).T @ grad
    return grad.numpy()

# %% nbgrader={"grade_id": "q2_backprop_jacobians_test", "grade": true, "points": 3}
# Check on two chains: square (3 -> 3 -> 3 -> 3) and rectangular (4 -> 5 -> 2). The expected
# values were computed with autograd.
_g = torch.Generator().manual_seed(1)
_square = [torch.randn(3, 3, dtype=torch.float64, generator=_g).numpy() for _ in range(3)]
_rect = [torch.randn(5, 4, dtype=torch.float64, generator=_g).numpy(),
         torch.randn(2, 5, dtype=torch.float64, generator=_g).numpy()]
_g_sq, _g_rect = np.array([1.0, -2.0, 0.5]), np.array([0.3, -1.0])
checks.check_function(
    "Question 2", backprop_through_jacobians,
    [((_square, _g_sq), np.array([7.730527679860533, -0.9660515611909091, 5.582964480365268])),
     ((_rect, _g_rect), np.array([4.250259466817857, -1.2037976180975007, -0.5312849875430677, -1.119979939436493]))],
    rtol=1e-6,
    mistakes=[(lambda Js, g: np.array([-0.3659609455385735, -0.5047208879972682, 2.71195225441085]),
               "you started at J_1. Backprop starts at the OUTPUT, where dL/dh_L is known, and walks "
               "back to the input."),
              (lambda Js, g: np.array([4.845881986758015, -0.1513506063652899, -6.2982524836544105]),
               "the order is right, but a Jacobian maps forward; to carry a gradient backwards you "
               "need its transpose."),
              (lambda Js, g: np.array([5.330802891654811, -3.04999498452849, 2.0466403634263877]),
               "two problems: the order (backprop starts at the output) and the missing transposes.")],
    hint="Follow the shapes: dL/dh_k has n_k entries. Which Jacobian, transposed, turns the n_L "
         "entries of dL/dh_L into n_{L-1}? Then repeat.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _autograd_vjp(jacobians, grad_output):
        h0 = torch.zeros(jacobians[0].shape[1], dtype=torch.float64, requires_grad=True)
        h = h0
        for J in jacobians:
            h = torch.as_tensor(J, dtype=torch.float64) @ h
        (h * torch.as_tensor(grad_output, dtype=torch.float64)).sum().backward()
        return h0.grad.numpy()


    _rng = np.random.default_rng(7)
    for _sizes in ([1, 4, 1], [6, 1, 5, 2], [2, 7, 3, 5, 4, 1, 3], [5, 3]):
        _Js = [_rng.normal(size=(b, a)) for a, b in zip(_sizes, _sizes[1:])]
        _gout = _rng.normal(size=_sizes[-1])
        checks.check_function("Question 2 (hidden)", backprop_through_jacobians,
                              [((_Js, _gout), _autograd_vjp(_Js, _gout))], rtol=1e-6)
    _ints = [np.array([[2, 0], [0, 3], [1, 1]])]
    checks.check_function("Question 2 (hidden, int arrays)", backprop_through_jacobians,
                          [((_ints, np.array([1, 1, 1])), np.array([3.0, 4.0]))], rtol=1e-6)
    checks.check_function("Question 2 (hidden, empty chain)", backprop_through_jacobians,
                          [(([], np.array([0.5, -2.0])), np.array([0.5, -2.0]))], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (2 points): how deep until the gradient is gone?
#
# Each layer of a chain multiplies the gradient by the same `factor`, $0 < \text{factor} < 1$
# (0.25 for sigmoid layers in the best case, section 4). Write
# `layers_until_below(factor, threshold)`: the **smallest** number of layers $L$ for
# which $\text{factor}^L$ is strictly below `threshold` ($0 < \text{threshold} < 1$),
# as an `int`. The answer is a whole number, so the checks compare exactly
# (relative tolerance 0). The visible check uses factor 0.25 and threshold $10^{-9}$;
# the hidden tests use other factors and thresholds.

# %% nbgrader={"grade_id": "q3_layers_until_below", "solution": true}
def layers_until_below(factor, threshold):
    """The smallest L with factor**L < threshold."""
    ### BEGIN SOLUTION
    return math.floor(math.log(threshold) / math.log(factor)) + 1
    ### END SOLUTION

# %% mistake="q3_layers_until_below" label="one layer short: rounds log(threshold)/log(factor) down"
def layers_until_below(factor, threshold):
    return math.floor(math.log(threshold) / math.log(factor))

# %% mistake="q3_layers_until_below" label="rounds to the nearest whole number (passes the visible check)"
def layers_until_below(factor, threshold):
    return round(math.log(threshold) / math.log(factor))

# %% mistake="q3_layers_until_below" label="ignores the factor and always uses 0.25 (passes the visible check)"
def layers_until_below(factor, threshold):
    return math.floor(math.log(threshold) / math.log(0.25)) + 1

# %% right="q3_layers_until_below" label="multiplies layer by layer in a loop"
def layers_until_below(factor, threshold):
    layers, gradient = 0, 1.0
    while gradient >= threshold:
        gradient *= factor
        layers += 1
    return layers

# %% right="q3_layers_until_below" label="ceil of log10 ratio, with numpy"
def layers_until_below(factor, threshold):
    return int(np.ceil(np.log10(threshold) / np.log10(factor)))

# %% nbgrader={"grade_id": "q3_layers_until_below_test", "grade": true, "points": 2}
# Check on the public setting: factor 0.25, threshold 1e-9 (0.25**14 = 3.7e-09, 0.25**15 = 9.3e-10).
checks.check_function(
    "Question 3", layers_until_below, [((0.25, 1e-9), 15)], rtol=0, atol=0,
    mistakes=[(lambda factor, threshold: 14, "with 14 layers the gradient is still 3.7e-09, above 1e-9: "
                                             "one layer short. Rounding the logarithm down gives the last L "
                                             "that is NOT below the threshold."),
              (lambda factor, threshold: 16, "with 15 layers it is already 9.3e-10, below 1e-9: the "
                                             "question asks for the smallest L.")],
    hint="Solve factor**L < threshold for L with logarithms (careful: log(factor) is negative), "
         "then check your L and L - 1 by computing factor**L.")
checks.check_integer("Question 3", layers_until_below(0.25, 1e-9))
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _factor, _threshold, _layers in [(0.5, 1e-3, 10), (0.9, 0.01, 44), (0.75, 1e-6, 49), (0.99, 0.5, 69),
                                         (0.3, 0.2, 2)]:
        assert _factor**_layers < _threshold <= _factor ** (_layers - 1)  # the expected values, verified
        checks.check_function("Question 3 (hidden)", layers_until_below, [((_factor, _threshold), _layers)],
                              rtol=0, atol=0)
        checks.check_integer("Question 3 (hidden)", layers_until_below(_factor, _threshold))
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (2 points): predict the gradient factor of a chain
#
# A chain of `depth` layers $h_k = \text{factor}\cdot Q_k h_{k-1}$, with $Q_k$ random
# orthogonal matrices, as in the explorer. Write `predict_gradient_factor(factor, depth)`:
# the ratio $\|\partial L/\partial h_0\| \,/\, \|\partial L/\partial h_L\|$ by which the
# gradient's norm changes between the output and the input. `factor` is any non-zero
# number (a negative one flips every sign), `depth` a whole number $\ge 0$. The
# visible check measures one chain (factor 0.8, depth 25) with autograd; the hidden tests
# measure others. Relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q4_gradient_factor", "solution": true}
def predict_gradient_factor(factor, depth):
    """||dL/dh_0|| / ||dL/dh_L|| through depth layers of factor * (orthogonal matrix)."""
    ### BEGIN SOLUTION
    return abs(factor) ** depth
    ### END SOLUTION

# %% mistake="q4_gradient_factor" label="multiplies the factor by the depth instead of raising it to the depth"
def predict_gradient_factor(factor, depth):
    return factor * depth

# %% mistake="q4_gradient_factor" label="one layer short: factor ** (depth - 1)"
def predict_gradient_factor(factor, depth):
    return abs(factor) ** (depth - 1)

# %% mistake="q4_gradient_factor" label="forgets that a norm is never negative (passes the visible check)"
def predict_gradient_factor(factor, depth):
    return factor**depth

# %% right="q4_gradient_factor" label="a loop over the layers, with numpy"
def predict_gradient_factor(factor, depth):
    ratio = np.float64(1.0)
    for _ in range(depth):
        ratio *= np.abs(factor)
    return ratio

# %% right="q4_gradient_factor" label="exp of depth times log|factor|"
def predict_gradient_factor(factor, depth):
    return math.exp(depth * math.log(abs(factor)))

# %% nbgrader={"grade_id": "q4_gradient_factor_test", "grade": true, "points": 2}
# Check on the public setting: a chain of 25 layers of 0.8 * Q_k, measured with autograd.
_norms = orthogonal_chain_gradients(25, 0.8)
checks.check_function(
    "Question 4", predict_gradient_factor, [((0.8, 25), _norms[0] / _norms[-1])], rtol=1e-6,
    mistakes=[(lambda factor, depth: 20.0, "you multiplied 0.8 by 25. The chain rule multiplies one factor "
                                           "per layer: 0.8 * 0.8 * ... once for each layer."),
              (lambda factor, depth: 0.004722366482869652, "one layer short: 25 layers multiply the gradient "
                                                           "25 times.")],
    hint="Each orthogonal Q_k keeps the norm; only the factor changes it, once per layer.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _factor, _depth in [(1.05, 60), (0.5, 7), (-0.9, 5), (2.0, 1), (-1.3, 12), (0.3, 0)]:
        _measured = orthogonal_chain_gradients(_depth, _factor, width=8, seed=_depth)
        checks.check_function("Question 4 (hidden)", predict_gradient_factor,
                              [((_factor, _depth), _measured[0] / _measured[-1])], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (1 point): why do the first layers learn slowest?
#
# In a deep sigmoid network trained with SGD, the first layers change far more
# slowly than the last ones. Which explanation is right? Set `q5_answer` to
# `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** Their gradient multiplies one slope per layer above, each at most 1/4.
# - **B.** SGD scales the learning rate down for the layers close to the input.
# - **C.** They hold fewer parameters, so their gradient vector has a smaller norm.
# - **D.** The loss depends on the last layers, and barely on the first ones.

# %% nbgrader={"grade_id": "q5_answer", "solution": true}
### BEGIN SOLUTION
q5_answer = "A"
### END SOLUTION

# %% mistake="q5_answer" label="blames the number of parameters"
q5_answer = "C"

# %% mistake="q5_answer" label="thinks SGD gives early layers a smaller learning rate"
q5_answer = "B"

# %% mistake="q5_answer" label="thinks the loss barely depends on the first layers"
q5_answer = "D"

# %% right="q5_answer" label="lower case with spaces"
q5_answer = " a "

# %% nbgrader={"grade_id": "q5_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 5", q5_answer, "ABCD", expected_digest="f9a50daab803b658", salt="01_q5",
    explanations={"C": "The number of parameters does not set a gradient's size: the first layer often "
                       "has the MOST parameters and still the smallest gradient.",
                  "B": "SGD uses one learning rate for every layer. The step is lr * gradient, and it "
                       "is the gradient that is small.",
                  "D": "Change a first-layer weight and the output changes. The dependence passes "
                       "through every later layer, and each one scales the gradient."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 5 (hidden)", q5_answer, "ABCD", expected="A")
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (4 points): diagnose a network from its gradient norms
#
# We measure the gradient arriving at each layer's output, $\|\partial L/\partial h_k\|$,
# for one batch. Write `diagnose(grad_norms)`: `grad_norms` lists these norms layer by
# layer, **layer 1 (next to the input) first** and the last layer last. Compare layer 1
# with the last layer and return `"vanishing"` if layer 1 gets less than 1/100 of the
# last layer's gradient, `"exploding"` if it gets more than 100 times as much, and
# `"healthy"` otherwise (within 100x, either way). The visible check uses the three
# 20-layer networks plotted below; the hidden tests use other networks and curves
# (other depths, a list instead of an array).

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
fig, ax = plt.subplots(figsize=(6, 3.5), layout="constrained")
plot_gradient_norms(mystery_grads, ax=ax, ylabel="||dL/dh_k||", title="Three networks: which is which?")
ax.set_xticks([1, 5, 10, 15, 20])
plt.show()

# %% nbgrader={"grade_id": "q6_diagnose", "solution": true}
def diagnose(grad_norms):
    """'vanishing', 'exploding' or 'healthy', from per-layer gradient norms (layer 1 first)."""
    ### BEGIN SOLUTION
    ratio = grad_norms[0] / grad_norms[-1]
    if ratio < 1e-2:
        return "vanishing"
    if ratio > 1e2:
        return "exploding"
    return "healthy"
    ### END SOLUTION

# %% mistake="q6_diagnose" label="reads the layers backwards (last layer first)"
def diagnose(grad_norms):
    ratio = grad_norms[-1] / grad_norms[0]
    if ratio < 1e-2:
        return "vanishing"
    if ratio > 1e2:
        return "exploding"
    return "healthy"

# %% mistake="q6_diagnose" label="compares the largest and smallest layers instead of layer 1 and the last (passes the visible check)"
def diagnose(grad_norms):
    norms = np.asarray(grad_norms)
    if norms.max() / norms.min() <= 1e2:
        return "healthy"
    return "vanishing" if norms.argmin() < norms.argmax() else "exploding"

# %% mistake="q6_diagnose" label="calls a factor of 10 vanishing or exploding (passes the visible check)"
def diagnose(grad_norms):
    ratio = grad_norms[0] / grad_norms[-1]
    if ratio < 0.1:
        return "vanishing"
    if ratio > 10:
        return "exploding"
    return "healthy"

# %% right="q6_diagnose" label="decades with log10, prints the ratio"
def diagnose(grad_norms):
    decades = float(np.log10(grad_norms[0]) - np.log10(grad_norms[-1]))
    print(f"layer 1 / last layer: 10^{decades:.1f}")
    if decades < -2:
        return "vanishing"
    return "exploding" if decades > 2 else "healthy"

# %% right="q6_diagnose" label="a lookup on the comparison"
def diagnose(grad_norms):
    first, last = float(grad_norms[0]), float(grad_norms[-1])
    verdicts = {(True, False): "vanishing", (False, True): "exploding", (False, False): "healthy"}
    return verdicts[(100 * first < last, first > 100 * last)]

# %% nbgrader={"grade_id": "q6_diagnose_test", "grade": true, "points": 4}
_verdicts = ["vanishing", "exploding", "healthy"]
checks.check_verdicts(
    "Question 6 (network A)", diagnose, [((mystery_grads["A"],), "exploding")], allowed=_verdicts,
    hint="In network A, layer 1 (the first entry, the left end of the plot) gets far MORE gradient than "
         "the last layer. If you said 'vanishing', you compared them the wrong way round.")
checks.check_verdicts(
    "Question 6 (network B)", diagnose, [((mystery_grads["B"],), "vanishing")], allowed=_verdicts,
    hint="In network B, layer 1 gets about 1e-17 of the last layer's gradient: far less than 1/100.")
checks.check_verdicts(
    "Question 6 (network C)", diagnose, [((mystery_grads["C"],), "healthy")], allowed=_verdicts,
    hint="In network C, layer 1 gets about 7 times the last layer's gradient: within 100x.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _measured_norms(net, width):
        with GradientMonitor(net) as _monitor:
            net(torch.randn(64, width, generator=torch.Generator().manual_seed(11))).pow(2).sum().backward()
        return _monitor.latest("out_grad_norm")


    _cases = [(_measured_norms(build_mlp(12, 32, activation="sigmoid", init="standard", seed=3), 32), "vanishing"),
              (_measured_norms(build_mlp(15, 24, activation="tanh", init="normal", std=1.2, seed=4), 24), "exploding"),
              (_measured_norms(build_mlp(9, 40, activation="relu", init="he", seed=5), 40), "healthy"),
              (0.7 ** np.arange(19, -1, -1.0), "vanishing"),  # 0.7^19 = 1.1e-3
              (1.3 ** np.arange(19, -1, -1.0), "exploding"),  # 1.3^19 = 146
              (np.geomspace(30.0, 1.0, 8), "healthy"), (np.geomspace(1 / 30, 1.0, 8), "healthy"),
              (np.array([1.0, 1e-4, 1e-3, 1.0]), "healthy"), (np.array([1e-3, 5.0, 0.2]), "vanishing"),
              ([2e-3, 1.0], "vanishing"), ([500.0, 2.0], "exploding")]
    for _norms, _label in _cases:
        checks.check_verdicts("Question 6 (hidden)", diagnose, [((_norms,), _label)], allowed=_verdicts)
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - Backprop multiplies one local derivative (one Jacobian, transposed) per layer,
#   from the output back to the input.
# - Check hand-written gradients with central differences in float64: relative
#   error below $10^{-7}$, one normaliser per tensor, each layer's backward on its own
#   (a deep network's first-layer gradient is too small to check end to end).
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
