# %% [markdown]
# # 03 · Recurrent networks and long-range dependencies
#
# A recurrent network applies the same layer at every time step. Unrolled over $T$
# steps it is a $T$-layer network whose layers share one weight matrix, and
# backpropagation through time (BPTT) multiplies one Jacobian per step. The product
# of notebook 01 is back, now over time: what happened at step 1 reaches the loss at
# step $T$ only through $T - 1$ factors. This notebook measures that product, shows
# its two failure modes (vanishing and exploding), and reproduces the experiments that
# made the LSTM and gradient clipping standard.
#
# **You will learn to**
# 1. write BPTT as a product of Jacobians and measure $\|\partial L/\partial h_t\|$ against $t$;
# 2. relate its decay or growth to the singular values and the spectral radius of $W_{hh}$;
# 3. see the loss cliffs of Pascanu et al. (2013) and fix exploding gradients by clipping;
# 4. reproduce the long-lag failures of a vanilla RNN and the LSTM's success (E5, E6);
# 5. explain why the LSTM's additive cell path (a residual connection through time), the GRU's
#    interpolation path and their gate biases keep gradients alive, and what truncated BPTT gives up.
#
# Run the cells from top to bottom. Practice questions are at the end.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from course_lib import checks
from course_lib.plotting import OKABE_ITO
from course_lib.recurrent import (RecurrentNet, gradient_through_time, linear_rnn_jacobian, loss_cliff,
                                  make_sequence_task, orthogonal_rnn_gradients,
                                  run_sequence_tasks)
from course_lib.seeding import get_device, set_seed
from course_lib.widgets import recurrent_explorer

set_seed(0)
device = get_device()
print(f"torch {torch.__version__} on {device}")

# %% [markdown]
# ## 1. Backpropagation through time
#
# A vanilla (Elman) RNN reads $x_1, \dots, x_T$ and updates its hidden state
#
# $$h_t = \tanh(W_{ih} x_t + W_{hh} h_{t-1} + b), \qquad h_0 = 0,$$
#
# and here a linear head reads the last state $h_T$ only. The loss depends on $h_t$
# only through $h_{t+1}, \dots, h_T$, so by the chain rule
#
# $$\frac{\partial L}{\partial h_t} = J_{t+1}^\top \cdots J_T^\top \frac{\partial L}{\partial h_T},
# \qquad J_s = \frac{\partial h_s}{\partial h_{s-1}} = \operatorname{diag}(1 - h_s^2)\, W_{hh}.$$
#
# Every factor contains the same $W_{hh}$. Each one can stretch a vector by at most
# $\sigma_\max(W_{hh})$, its largest singular value (tanh's slope is at most 1), so
# $\|\partial L/\partial h_t\| \le \sigma_\max^{T-t}\, \|\partial L/\partial h_T\|$. Over many
# steps, though, powers of a matrix grow or shrink like its **spectral radius**
# $\rho(W_{hh})$, the largest $|\lambda|$ of its eigenvalues ($\|W^k\|^{1/k} \to \rho$), which is
# never larger than $\sigma_\max$.
#
# Below, an RNN of 32 tanh units with PyTorch's default init on the sign-memory task of
# length 50 (section 5). `RecurrentNet.unroll` recomputes PyTorch's fused forward pass
# step by step, so autograd can give us $\partial L/\partial h_t$ for every $t$.

# %% tags=["demo"]
X, y = make_sequence_task("sign", 256, 50, seed=0)
rnn = RecurrentNet(1, 32, 2, cell="rnn", seed=0)
hs, _ = rnn.unroll(X)
assert torch.allclose(torch.stack(hs, dim=1), rnn.core(X)[0], atol=1e-6)  # same states as nn.RNN
grads = gradient_through_time(rnn, X, y)  # ||dL/dh_t||, t = 1..50
W_hh = rnn.W_hh.detach().double()
sigma_max = torch.linalg.matrix_norm(W_hh, ord=2).item()
rho = torch.linalg.eigvals(W_hh).abs().max().item()
steps_back = 50 - np.arange(1, 51)  # T - t
rate = (grads[0] / grads[-1]) ** (1 / 49)

fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
ax.semilogy(np.arange(1, 51), grads, "o-", markersize=3, color=OKABE_ITO[0], label="measured ||dL/dh_t||")
ax.semilogy(np.arange(1, 51), grads[-1] * sigma_max**steps_back, "--", color=OKABE_ITO[1],
            label=f"bound: sigma_max^(T-t), sigma_max = {sigma_max:.2f}")
ax.semilogy(np.arange(1, 51), grads[-1] * rho**steps_back, ":", color=OKABE_ITO[2],
            label=f"rho^(T-t), spectral radius rho = {rho:.2f}")
ax.set_xlabel("time step t (T = 50)")
ax.set_ylabel("||dL/dh_t||")
ax.legend(frameon=False, fontsize="small")
print(f"dL/dh_1 / dL/dh_50 = {grads[0] / grads[-1]:.1e}; decay per step {rate:.3f}; "
      f"sigma_max = {sigma_max:.3f}, rho = {rho:.3f}")
assert 1.3e-11 < grads[0] / grads[-1] < 6e-11  # step 1 gets about 3e-11 of step 50's gradient
assert np.all(grads <= grads[-1] * sigma_max**steps_back * (1 + 1e-5))  # the bound holds at every step
assert 1.05 < sigma_max < 1.15 and abs(rate - rho) < 0.03  # the decay follows rho (0.62), not sigma_max (1.1)
assert abs(rate - 0.61) < 0.02 and abs(rho - 0.62) < 0.02  # the figures the text quotes

# %% [markdown]
# **What to notice:** the gradient reaching step 1 is about $3 \times 10^{-11}$ of the one at
# step 50: whatever the first input says, the network cannot learn to use it. The
# bound with $\sigma_\max \approx 1.1$ would even allow growth, yet the gradient decays
# by a nearly constant factor of about 0.61 per step, close to the spectral radius
# $\rho \approx 0.62$ (tanh's slope is near 1 here, as the states are small). A
# product of many copies of the same matrix is governed by its eigenvalues.
#
# ## 2. Vanishing and exploding: two sides of one product (E7b)
#
# Take the simplest case, a linear RNN $h_t = W h_{t-1}$ with $W = s\,Q$ and $Q$
# orthogonal. Every singular value and every eigenvalue modulus of $W$ equals $s$, and
# the $T$-step Jacobian $\partial h_T/\partial h_0 = W^T$ has norm exactly $s^T$
# (Pascanu, Mikolov & Bengio 2013). We compute that Jacobian with autograd and compare.

# %% tags=["demo"]
lengths = np.arange(1, 61, 3)
fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
worst = 0.0
for i, s in enumerate([0.9, 1.0, 1.1]):
    singular = [np.linalg.svd(linear_rnn_jacobian(s, int(T)), compute_uv=False) for T in lengths]
    largest = np.array([sv.max() for sv in singular])
    worst = max(worst, max(np.abs(sv / s**T - 1).max() for sv, T in zip(singular, lengths)))
    ax.semilogy(lengths, largest, "o", markersize=3, color=OKABE_ITO[i], label=f"s = {s}: measured")
    ax.semilogy(lengths, s**lengths.astype(float), "-", color=OKABE_ITO[i], alpha=0.6)
ax.set_xlabel("number of steps T")
ax.set_ylabel("||dh_T / dh_0||  (largest singular value)")
ax.legend(frameon=False)
print(f"largest relative deviation of any singular value from s^T: {worst:.1e}")
assert worst < 1e-12  # equals s^T to rounding: every singular value, every T

# %% [markdown]
# **What to notice:** $0.9^{60} \approx 2 \times 10^{-3}$ and $1.1^{60} \approx 300$: the same product
# vanishes or explodes depending only on which side of 1 the factor sits. There is no
# middle ground for a generic matrix: only $s = 1$ exactly keeps the norm, and a tanh
# RNN cannot stay there, since its slopes pull every factor below $s$. For tanh
# networks Pascanu et al. state it as two conditions (quoted from the paper, not
# measured here): $\sigma_\max(W_{hh}) < 1$ is **sufficient** for vanishing gradients,
# and $\sigma_\max(W_{hh}) > 1$ is **necessary** for exploding ones.
#
# ## 3. Cliffs in the loss surface (E7a)
#
# When gradients can explode, the loss surface has walls. Pascanu et al. show it with a
# one-unit RNN, $x_t = w\,\sigma(x_{t-1}) + b$ from $x_0 = 0.5$, trained so that
# $\sigma(x_{50}) = 0.7$: loss $(\sigma(x_{50}) - 0.7)^2$. We evaluate the loss and its
# gradient on a grid of $(w, b)$.

# %% tags=["demo"]
ws, bs = np.linspace(0, 10, 121), np.linspace(-6, 1, 121)
cliff_loss, cliff_grad = loss_cliff(ws, bs)
spikiness = cliff_grad.max() / np.median(cliff_grad)
fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(9.5, 3.5), layout="constrained")
extent = (ws[0], ws[-1], bs[0], bs[-1])
image = ax_l.imshow(cliff_loss, origin="lower", extent=extent, aspect="auto", cmap="viridis")
fig.colorbar(image, ax=ax_l, label="loss")
image = ax_g.imshow(np.log10(cliff_grad + 1e-12), origin="lower", extent=extent, aspect="auto", cmap="magma")
fig.colorbar(image, ax=ax_g, label="log10 ||gradient||")
for ax in (ax_l, ax_g):
    ax.set_xlabel("recurrent weight w")
    ax.set_ylabel("bias b")
print(f"gradient norm: median {np.median(cliff_grad):.2e}, max {cliff_grad.max():.2e} (ratio {spikiness:.0f})")
assert 1e2 < spikiness < 1e4  # a few points have gradients hundreds to thousands of times the typical one

# %% [markdown]
# **What to notice:** the loss is flat almost everywhere, then jumps along a thin curve,
# where the map $x \mapsto w\sigma(x) + b$ switches between one and two stable fixed
# points (a bifurcation; it needs $w > 4$, the inverse of the sigmoid's largest slope).
# On that wall the gradient is hundreds to thousands of times larger than typical. A
# gradient step taken on the wall throws the parameters far away, undoing earlier
# progress. Note also how small the typical gradient is: the flat plateaus are the
# vanishing-gradient side of the same picture.
#
# ## 4. Exploding gradients and clipping (E7c)
#
# The remedy Pascanu et al. proposed is **gradient norm clipping**: when the gradient's
# total norm $\|g\|$ exceeds a threshold $c$, rescale it to $g \leftarrow c\, g/\|g\|$. The
# direction is kept; only the step length is capped. We train a tanh RNN whose
# recurrent matrix starts at $W_{hh} = 1.8\,Q$ (every singular value 1.8) on the adding
# problem ($T = 50$, section 6) with plain SGD, learning rate 0.05, with and without
# clipping at 1.0.

# %% tags=["demo"]
clips = (None, 1.0)
e7 = dict(zip(clips, run_sequence_tasks([dict(cell="rnn", task="adding", length=50, num_steps=200, optimizer="sgd",
                                              lr=0.05, clip=clip, recurrent_gain=1.8) for clip in clips])))
fig, (ax_l, ax_g) = plt.subplots(1, 2, figsize=(9.5, 3.3), layout="constrained")
for i, (clip, run) in enumerate(e7.items()):
    label = "no clipping" if clip is None else f"clip at {clip}"
    ax_l.semilogy(np.clip(run.history.loss, None, 1e30), color=OKABE_ITO[i], label=label)
    ax_g.semilogy(np.clip(run.history.grad_norm, None, 1e30), color=OKABE_ITO[i], label=label)
ax_l.set_ylabel("training loss (MSE)")
ax_g.set_ylabel("gradient norm before clipping")
for ax in (ax_l, ax_g):
    ax.set_xlabel("step")
    ax.legend(frameon=False)
unclipped, clipped = e7[None].history, e7[1.0].history
print(f"no clipping: after {len(unclipped.loss)} steps loss {unclipped.loss[-1]:.3g}, "
      f"gradient norm {unclipped.grad_norm[-1]:.3g}")
print(f"clip 1.0: final loss {clipped.final_loss:.3f}, largest gradient norm {clipped.grad_norm.max():.0f}")
assert unclipped.diverged or not np.isfinite(unclipped.loss).all() or unclipped.grad_norm[:50].max() > 1e6
assert unclipped.diverged or unclipped.loss[-50:].mean() > 1.0  # ...and here the loss stays far above the baseline
assert not clipped.diverged and np.isfinite(clipped.loss).all() and 100 < clipped.grad_norm.max() < 1000
assert abs(clipped.final_loss - 1 / 6) < 0.05  # settles near the baseline 1/6 (0.18 here)

# %% [markdown]
# **What to notice:** without clipping, one large gradient produces a huge step, the
# next gradient is larger still: within 50 steps the gradient norm passes $10^6$, and
# in this run the loss jumps around far above the baseline to the end (on other seeds
# it overflows to infinity, or drifts back to the baseline after the blow-up). With
# clipping the gradients themselves still spike (the right plot shows them before
# rescaling: a few hundred), but each step is capped, and the run settles near the
# adding problem's baseline of 1/6 (final loss 0.18). Clipping cures exploding
# gradients; it does nothing for vanishing ones. The baseline here is not beaten, and
# that is the next problem.
#
# ## 5. E5: remember the first sign (Bengio et al. 1994; Hochreiter & Schmidhuber 1997)
#
# The first input is $+1$ or $-1$; the next $T - 1$ inputs are noise $\mathcal N(0, 0.2^2)$;
# the network must output the first sign after reading everything. Chance is 50%. We
# train a vanilla RNN and an LSTM, both with 32 units (Adam, learning rate $3\times10^{-3}$,
# clipping at 1, 400 steps of 64 fresh sequences, LSTM forget-gate bias 2), and score
# them on 1,000 new sequences, for three lengths. The runs are independent, so this cell
# trains them two at a time (the three vanilla RNNs side by side, as one batched network),
# together with the networks of sections 6 and 8.

# %% tags=["demo"]
e5_lengths = [10, 20, 50]
specs = [dict(cell=cell, task="sign", length=T, num_steps=400) for cell in ("rnn", "lstm") for T in e5_lengths]
specs += [dict(cell=cell, task="adding", length=50, num_steps=1000) for cell in ("rnn", "lstm")]  # section 6
specs += [dict(cell="lstm", task="sign", length=50, num_steps=400, truncate=20)]  # section 8
runs = run_sequence_tasks(specs)
e5 = {"rnn": runs[0:3], "lstm": runs[3:6]}
e6 = {"rnn": runs[6], "lstm": runs[7]}
truncated_run = runs[8]
accuracy = {cell: np.array([run.score for run in e5_runs]) for cell, e5_runs in e5.items()}
fig, ax = plt.subplots(figsize=(6, 3.3), layout="constrained")
for i, cell in enumerate(("rnn", "lstm")):
    ax.plot(e5_lengths, accuracy[cell], "o-", color=OKABE_ITO[i], label="vanilla RNN" if cell == "rnn" else "LSTM")
ax.axhline(0.5, color="black", linestyle=":", linewidth=1, label="chance")
ax.set_xlabel("sequence length T (lag between the sign and the answer)")
ax.set_ylabel("test accuracy")
ax.set_ylim(0.4, 1.02)
ax.legend(frameon=False)
print("test accuracy by T:", {cell: {T: round(float(a), 3) for T, a in zip(e5_lengths, acc)} for cell, acc in accuracy.items()})
assert accuracy["rnn"][0] > 0.95  # short lags are easy for the RNN too
assert accuracy["rnn"][-1] < 0.6 and accuracy["lstm"][-1] > 0.95  # E5 at T = 50: the RNN at chance, the LSTM solves it

# %% [markdown]
# **What to notice:** at $T = 10$ both networks are perfect; at $T = 50$ the RNN is at
# chance while the LSTM still solves the task, within the same 400 steps. The RNN's
# loss sits on a plateau at $\ln 2$ until the gradient from the first step is strong
# enough to be found, and section 1 showed how weak it is. The outcome is a matter of
# odds, not a law: in our calibration over 12 seeds at $T = 50$, the RNN escaped the
# plateau in 3 (between steps 200 and 350), and the LSTM solved the task in 11, mostly
# within 100 steps (in the twelfth it solved it, then a late Adam step threw it off).
# Gating postpones the problem rather than abolishing it: at $T = 100$ the same LSTM
# solved the task in only 1 of 6 seeds (and so did the RNN).
#
# ## 6. E6: the adding problem (Le et al. 2015's form of Hochreiter & Schmidhuber 1997's task)
#
# Each step carries two numbers: a value uniform in $[0, 1]$ and a marker. Exactly two
# steps are marked, one in each half of the sequence; the target is the sum of their two
# values. Always answering 1 gives a mean squared error of $1/6 \approx 0.167$ (the
# variance of a sum of two uniforms). This is the version Le, Jaitly & Hinton (2015)
# used; Hochreiter & Schmidhuber's original draws the values from $[-1, 1]$, marks the
# first value among the first ten steps and the second in the first half, and asks for
# $0.5 + (x_1 + x_2)/4$ (quoted from the paper). Same
# networks as E5, 1,000 steps, $T = 50$ (trained in section 5's cell).

# %% tags=["demo"]
fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
for i, (cell, run) in enumerate(e6.items()):
    ax.plot(np.convolve(run.history.loss, np.ones(25) / 25, mode="valid"), color=OKABE_ITO[i],
            label="vanilla RNN" if cell == "rnn" else "LSTM")
ax.axhline(1 / 6, color="black", linestyle="--", linewidth=1, label="baseline 1/6 (always answer 1)")
ax.set_yscale("log")
ax.set_xlabel("training step")
ax.set_ylabel("training MSE (running mean)")
ax.legend(frameon=False)
lstm_plateau = e6["lstm"].history.loss[200:400].mean()
print(f"test MSE: RNN {e6['rnn'].score:.4f}, LSTM {e6['lstm'].score:.4f} (baseline {1 / 6:.4f}); "
      f"LSTM training MSE over steps 200-400: {lstm_plateau:.3f}")
assert e6["rnn"].score > 0.12  # E6: the RNN stays at the baseline 1/6...
assert e6["lstm"].score < (1 / 6) / 10  # ...the LSTM ends more than ten times below it
assert 0.006 < e6["lstm"].score < 0.024 and lstm_plateau > 0.12  # about 0.012, after a long plateau

# %% [markdown]
# **What to notice:** both networks first learn the baseline (answer about 1). The RNN
# stays there. The LSTM sits on the same plateau for several hundred steps, then finds
# the two marked values and its error drops more than ten times below the baseline (here
# about 0.012, 14 times below). The
# original LSTM paper solved much longer versions of this task, after many more training
# sequences (quoted, not re-checked here).
#
# ## 7. Why gating helps: the LSTM's cell and the GRU's interpolation
#
# The LSTM keeps a **cell** $c_t$ next to its hidden state, updated additively:
#
# $$c_t = f_t \odot c_{t-1} + i_t \odot g_t, \qquad h_t = o_t \odot \tanh(c_t),$$
#
# with gates $f_t, i_t, o_t = \sigma(\cdot)$ computed from $x_t$ and $h_{t-1}$. Along the cell
# path the Jacobian is $\partial c_t/\partial c_{t-1} = \operatorname{diag}(f_t)$: no weight matrix,
# no tanh slope, just the forget gate. With $f_t = 1$ the update is $c_t = c_{t-1} + i_t \odot g_t$:
# a **residual connection through time**, the same $x + F(x)$ whose derivative $I + F'$
# notebook 07 calls the gradient highway, here between time steps instead of layers. The
# original LSTM (Hochreiter & Schmidhuber 1997) had exactly that path, with no forget gate
# (their "constant error carousel"); Gers et al. (2000) added the gate, which makes it a
# residual path only while $f_t \approx 1$.
#
# The **GRU** (Cho et al. 2014) has no separate cell; it interpolates between the old state
# and a candidate $n_t$: $h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1}$ (PyTorch's convention),
# so its Jacobian contains $\operatorname{diag}(z_t)$ along the same kind of path, with the
# update gate $z_t$ in the forget gate's role.
#
# At initialization a gate is $\sigma(b + \dots)$: with bias $b = 0$ it is about $0.5$, and
# $0.5^{50} \approx 10^{-15}$; with $b = 2$ it is about $\sigma(2) = 0.88$, and
# $0.88^{50} \approx 2 \times 10^{-3}$. Here is the same plot as in section 1, for five fresh
# networks on the same batch.

# %% tags=["demo"]
nets = {"vanilla RNN": RecurrentNet(1, 32, 2, cell="rnn", seed=0),
        "LSTM, forget bias 0": RecurrentNet(1, 32, 2, cell="lstm", forget_bias=0.0, seed=0),
        "LSTM, forget bias 2": RecurrentNet(1, 32, 2, cell="lstm", forget_bias=2.0, seed=0),
        "GRU, update bias 0": RecurrentNet(1, 32, 2, cell="gru", forget_bias=0.0, seed=0),
        "GRU, update bias 2": RecurrentNet(1, 32, 2, cell="gru", forget_bias=2.0, seed=0)}
through_time = {name: gradient_through_time(net, X, y) for name, net in nets.items()}
fig, ax = plt.subplots(figsize=(6.5, 3.5), layout="constrained")
for i, (name, g) in enumerate(through_time.items()):
    ax.semilogy(np.arange(1, 51), g / g[-1], "o-", markersize=3, color=OKABE_ITO[i], label=name)
ax.set_xlabel("time step t (T = 50)")
ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||")
ax.legend(frameon=False, fontsize="small")
first = {name: g[0] / g[-1] for name, g in through_time.items()}
print({name: f"{v:.1e}" for name, v in first.items()})
assert 0.05 < first["LSTM, forget bias 2"] < 0.2  # about a tenth reaches step 1...
assert first["LSTM, forget bias 2"] > 1e9 * first["vanilla RNN"]  # ...about ten orders more than the RNN
assert 3e-3 < first["GRU, update bias 2"] < 1.2e-2  # the GRU's interpolation path: about 6e-3
assert first["LSTM, forget bias 0"] < 1e-6 and first["GRU, update bias 0"] < 1e-6  # gates at 0.5: gone

torch_lstm = torch.nn.LSTM(1, 32)  # PyTorch's own initialization
torch_forget = torch.sigmoid(torch_lstm.bias_ih_l0[32:64] + torch_lstm.bias_hh_l0[32:64]).detach()
print(f"torch.nn.LSTM's forget gates at init (input 0): {torch_forget.min():.2f} to {torch_forget.max():.2f}")
assert abs(torch_forget.mean() - 0.5) < 0.05 and 0.41 < torch_forget.min() and torch_forget.max() < 0.59  # about 0.5

# %% [markdown]
# **What to notice:** with $b_f = 2$ the LSTM's first step gets about a tenth of the
# last step's gradient, about ten orders of magnitude more than the RNN's (seven to ten
# over seeds, in the tests), and even more than the cell path alone would carry
# ($0.88^{49} \approx 2\times10^{-3}$): the paths through the gates, which also read
# $h_{t-1}$, add to it. The GRU with an update-gate bias of 2 keeps about $6\times10^{-3}$,
# close to what its interpolation path alone carries. With biases 0 both are no better
# than the RNN at initialization: gating only helps if the gate starts (or learns to be)
# open. Keras and TensorFlow initialize the LSTM's forget-gate bias to 1 by default
# (Keras `unit_forget_bias=True`, following Jozefowicz et al. 2015; quoted from their
# documentation, not run here); **`torch.nn.LSTM` does not**: its biases are uniform in
# $\pm 1/\sqrt{32}$ (two of them per gate), so its forget gates start between 0.41 and 0.59,
# about 0.5, as measured above. In PyTorch you set the bias yourself (this notebook's `RecurrentNet(forget_bias=2.0)`
# does). Gating does not remove the product of Jacobians; it adds a path whose factors
# are gates the network can hold near 1.
#
# ## 8. Truncated BPTT: a window on the past
#
# Long sequences make full BPTT expensive: every step's states are stored for the
# backward pass. **Truncated BPTT** (Williams & Peng 1990) runs the sequence in windows of
# $k$ steps, carries the state forward from window to window, but cuts the gradient at
# each window's start (in PyTorch: `h = h.detach()`). Language models are trained this
# way. The price is exact: no gradient reaches a step before the last window, whatever the
# gates do. Below, the LSTM with forget bias 2 from section 7 with windows of $k = 20$
# (windows 1-20, 21-40, 41-50), and the same LSTM trained on E5's sign task at $T = 50$
# with those windows (trained in section 5's cell).

# %% tags=["demo"]
cut = gradient_through_time(nets["LSTM, forget bias 2"], X, y, truncate=20)
full = through_time["LSTM, forget bias 2"]
fig, ax = plt.subplots(figsize=(6.5, 3.3), layout="constrained")
ax.semilogy(np.arange(1, 51), full / full[-1], "o-", markersize=3, color=OKABE_ITO[2], label="full BPTT")
ax.semilogy(np.arange(41, 51), cut[40:] / cut[-1], "s-", markersize=3, color=OKABE_ITO[5],
            label="truncated, k = 20 (0 before step 41)")
ax.axvline(40.5, color="black", linestyle=":", linewidth=1)
ax.set_xlabel("time step t (T = 50)")
ax.set_ylabel("||dL/dh_t|| / ||dL/dh_T||")
ax.legend(frameon=False)
print(f"steps with no gradient: {int((cut == 0).sum())} of 50; sign task at T = 50, test accuracy: "
      f"truncated {truncated_run.score:.3f}, full BPTT {e5['lstm'][-1].score:.3f}")
assert np.all(cut[:40] == 0) and np.all(cut[40:] > 0)  # exactly the last window gets a gradient
assert np.allclose(cut[40:], full[40:], rtol=1e-5)  # ...the same one as full BPTT
assert truncated_run.score < 0.6 and e5["lstm"][-1].score > 0.95  # a lag longer than the window is not learned

# %% [markdown]
# **What to notice:** inside the last window the truncated gradient equals the full one;
# before it, it is exactly 0. The state still carries the first sign forward, but nothing
# teaches the network to store it, and the truncated LSTM stays at chance on the task the
# same LSTM solves with full BPTT. Truncation sets a hard limit on the lags a network can
# learn, at $k$ steps; gates and clipping act within that limit.
#
# ## 9. Explore: spectral radius and sequence length
#
# The explorer runs an RNN $h_t = f(\rho\, Q h_{t-1} + x_t)$ of 32 units, with every
# singular value of $W_{hh} = \rho Q$ equal to $\rho$, and plots $\|\partial L/\partial h_t\|$
# measured by autograd next to $\rho^{T-t}$. Try $\rho = 0.9$ and $1.1$ with the linear RNN
# (exactly on the line), then with tanh: above 1 the tanh states saturate, their slopes
# drop, and the gradient can vanish even though $\rho > 1$. Make $T$ long (200) to see how
# fast small differences in $\rho$ compound.

# %% tags=["demo"]
explorer = recurrent_explorer(radius=0.9, length=50, nonlinearity="linear")
assert math.isclose(explorer.last["ratio"], 0.9**50, rel_tol=1e-9)
assert explorer.update(radius=1.1)["kind"] == "exploding"
explorer.update(radius=0.9, nonlinearity="linear")  # open where the text starts: the linear RNN
explorer

# %% [markdown]
# ## Practice questions
#
# Answer in the cells marked `# YOUR CODE HERE` (delete the `raise NotImplementedError()`),
# then run the check below each one. The checks try your answer on one public example and
# tell you what is wrong; hidden tests with other inputs decide the grade.
#
# ### Question 1 (3 points): BPTT by hand
#
# A tanh RNN $h_t = \tanh(W_{hh} h_{t-1} + W_{ih} x_t + b)$ produced the states
# $h_1, \dots, h_T$, given as the rows of `hs` (NumPy array of shape `(T, n)`). The loss
# depends on $h_T$ only, with gradient `grad_T` $= \partial L/\partial h_T$ (shape `(n,)`).
# Write `bptt_gradients(W_hh, hs, grad_T)` returning an array of shape `(T, n)` whose row
# $t-1$ is $\partial L/\partial h_t$ (so the last row is `grad_T`). Use the Jacobians
# $J_t = \operatorname{diag}(1 - h_t^2)\,W_{hh}$ of section 1; do not modify the inputs.
# The inputs are plain NumPy arrays with no autograd graph behind them, so this is a
# backward pass written by hand. The hidden tests compare with autograd on other RNNs
# (other sizes and lengths, down to $T = 1$), relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q1_bptt_gradients", "solution": true}
def bptt_gradients(W_hh, hs, grad_T):
    """dL/dh_t for t = 1..T (rows), back-propagated from dL/dh_T through a tanh RNN."""
    ### BEGIN SOLUTION
    hs = np.asarray(hs, dtype=np.float64)
    grads = np.zeros_like(hs)
    grads[-1] = grad_T
    for t in range(len(hs) - 1, 0, -1):  # row t holds h_{t+1}: dL/dh_t = J_{t+1}^T dL/dh_{t+1}
        grads[t - 1] = W_hh.T @ ((1 - hs[t] ** 2) * grads[t])
    return grads
    ### END SOLUTION

# %% mistake="q1_bptt_gradients" label="uses the slope of the earlier state h_{t-1} instead of h_t"
def bptt_gradients(W_hh, hs, grad_T):
    hs = np.asarray(hs, dtype=np.float64)
    grads = np.zeros_like(hs)
    grads[-1] = grad_T
    for t in range(len(hs) - 1, 0, -1):
        grads[t - 1] = W_hh.T @ ((1 - hs[t - 1] ** 2) * grads[t])
    return grads

# %% mistake="q1_bptt_gradients" label="multiplies by W_hh instead of its transpose"
def bptt_gradients(W_hh, hs, grad_T):
    grads = np.zeros((len(hs), len(grad_T)))
    grads[-1] = grad_T
    for t in range(len(hs) - 1, 0, -1):
        grads[t - 1] = W_hh @ ((1 - hs[t] ** 2) * grads[t])
    return grads

# %% mistake="q1_bptt_gradients" label="reuses the last step's Jacobian for every step (passes the visible T = 2 case)"
def bptt_gradients(W_hh, hs, grad_T):
    J_T = np.diag(1 - np.asarray(hs[-1]) ** 2) @ W_hh  # as if tanh's slope never changed over time
    T = len(hs)
    return np.stack([np.linalg.matrix_power(J_T.T, T - 1 - t) @ grad_T for t in range(T)])

# %% mistake="q1_bptt_gradients" label="leaves out tanh's slope"
def bptt_gradients(W_hh, hs, grad_T):
    grads = np.zeros((len(hs), len(grad_T)))
    grads[-1] = grad_T
    for t in range(len(hs) - 1, 0, -1):
        grads[t - 1] = W_hh.T @ grads[t]
    return grads

# %% right="q1_bptt_gradients" label="explicit Jacobian matrices, collected in a list and reversed"
def bptt_gradients(W_hh, hs, grad_T):
    g = np.array(grad_T, dtype=float)
    rows = [g]
    for h in hs[:0:-1]:  # h_T, h_{T-1}, ..., h_2
        J = np.diag(1.0 - h * h) @ W_hh
        g = J.T @ g
        rows.append(g)
    print(f"back-propagated through {len(rows) - 1} steps")
    return np.array(rows[::-1])

# %% nbgrader={"grade_id": "q1_bptt_gradients_test", "grade": true, "points": 3}
# The public example: n = 3 units, T = 2 steps.
_W = np.array([[0.5, -0.9, 0.2], [0.7, 0.1, -0.4], [-0.3, 0.8, 0.6]])
_hs = np.array([[0.3, -0.6, 0.1], [-0.5, 0.2, 0.7]])
_g = np.array([1.0, -2.0, 0.5])
checks.check_function(
    "Question 1", bptt_gradients, [((_W, _hs, _g), [[-1.0455, -0.663, 1.071], [1.0, -2.0, 0.5]])], rtol=1e-6,
    mistakes=[(lambda *_: [[-0.5895, -0.551, 0.991], [1.0, -2.0, 0.5]],
               "you used the slope of h_{t-1}. The Jacobian J_t = diag(1 - h_t^2) W_hh uses the state that "
               "step t PRODUCED."),
              (lambda *_: [[2.154, 0.231, -1.608], [1.0, -2.0, 0.5]],
               "you multiplied by W_hh itself. Backprop applies the transpose of each Jacobian."),
              (lambda *_: [[-1.05, -0.7, 1.3], [1.0, -2.0, 0.5]],
               "the first row is W_hh^T grad_T: tanh's slope (1 - h^2) is missing from the Jacobian.")],
    hint="Check the last row first (it is grad_T), then one step back: which state's slope, and which "
         "way round does W_hh act on a gradient?")
### BEGIN HIDDEN TESTS
def _rnn_case(T, n, seed):
    """A random tanh RNN run for T steps, and dL/dh_t for every t by autograd (the reference)."""
    g = torch.Generator().manual_seed(seed)
    W_hh = (torch.randn(n, n, dtype=torch.float64, generator=g) * 1.2 / n**0.5).requires_grad_()
    W_ih = torch.randn(n, 2, dtype=torch.float64, generator=g)
    xs = torch.randn(T, 2, dtype=torch.float64, generator=g)
    h, hs = torch.zeros(n, dtype=torch.float64), []
    for t in range(T):
        h = torch.tanh(W_hh @ h + W_ih @ xs[t])
        hs.append(h)
    grad_T = torch.randn(n, dtype=torch.float64, generator=g)
    expected = torch.autograd.grad((hs[-1] * grad_T).sum(), hs, allow_unused=True)
    expected = [torch.zeros(n, dtype=torch.float64) if e is None else e for e in expected]
    return ((W_hh.detach().numpy(), torch.stack(hs).detach().numpy(), grad_T.numpy()), torch.stack(expected).numpy())

with checks.quiet():
    for _seed, (_T, _n) in enumerate([(1, 3), (2, 1), (11, 5), (25, 8), (7, 1), (4, 6)]):
        checks.check_function("Question 1 (hidden)", bptt_gradients, [_rnn_case(_T, _n, seed=100 + _seed)],
                              rtol=1e-6, atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 2 (2 points): predict the decay
#
# A linear RNN $h_t = W_{hh} h_{t-1} + x_t$ has $W_{hh} = s\,Q$ with $Q$ orthogonal and the
# loss depends on $h_T$ only. Write `predict_gradient_ratio(s, T, t)` returning your
# prediction of $\|\partial L/\partial h_t\| \,/\, \|\partial L/\partial h_T\|$ for
# $0 \le t \le T$. The check measures one public setting; the hidden tests measure others
# (relative tolerance 1%).

# %% nbgrader={"grade_id": "q2_gradient_ratio", "solution": true}
def predict_gradient_ratio(s, T, t):
    """||dL/dh_t|| / ||dL/dh_T|| for the linear RNN with W_hh = s Q."""
    ### BEGIN SOLUTION
    return float(s) ** (T - t)
    ### END SOLUTION

# %% mistake="q2_gradient_ratio" label="multiplies by the number of steps instead of raising to it"
def predict_gradient_ratio(s, T, t):
    return s * (T - t)

# %% mistake="q2_gradient_ratio" label="counts every step from h_0, ignoring t (passes the visible t = 0 case)"
def predict_gradient_ratio(s, T, t):
    return s**T

# %% mistake="q2_gradient_ratio" label="inverts the factor"
def predict_gradient_ratio(s, T, t):
    return (1 / s) ** (T - t)

# %% mistake="q2_gradient_ratio" label="one factor too many"
def predict_gradient_ratio(s, T, t):
    return s ** (T - t + 1)

# %% right="q2_gradient_ratio" label="a loop of one factor per step"
def predict_gradient_ratio(s, T, t):
    ratio = 1.0
    for _ in range(t, T):
        ratio *= s
    return ratio

# %% nbgrader={"grade_id": "q2_gradient_ratio_test", "grade": true, "points": 2}
# The public setting: s = 0.8, from step T = 25 back to h_0, measured as the norm of dh_T/dh_0.
_measured = np.linalg.svd(linear_rnn_jacobian(0.8, 25), compute_uv=False).max()
checks.check_function("Question 2", predict_gradient_ratio, [((0.8, 25, 0), _measured)], rtol=0.01,
                      mistakes=[(lambda *_: 20.0, "you multiplied s by the number of steps. BPTT multiplies "
                                                  "one factor per step."),
                                (lambda *_: 264.698, "the gradient shrinks going back in time when s < 1: your "
                                                     "factor grows."),
                                (lambda *_: 0.00302231, "count the Jacobians between h_t and h_T: you used one "
                                                        "too many."),
                                (lambda *_: 0.00472237, "count the Jacobians between h_t and h_T: you used one "
                                                        "too few.")],
                      hint="How many Jacobians lie between h_t and h_T, and what does each do to a norm?")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _s, _T, _t, _seed in [(0.9, 30, 12, 1), (1.1, 20, 3, 2), (0.5, 7, 6, 3), (0.97, 60, 0, 4), (1.3, 9, 9, 5)]:
        _norms = orthogonal_rnn_gradients(_s, _T, nonlinearity="linear", seed=_seed)
        checks.check_function("Question 2 (hidden)", predict_gradient_ratio, [((_s, _T, _t), _norms[_t] / _norms[_T])],
                              rtol=0.01)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 3 (3 points): gradient norm clipping
#
# Write `clip_by_global_norm(grads, max_norm)`: `grads` is a list of NumPy arrays (one per
# parameter). Compute the **total** norm $\|g\| = \sqrt{\sum_i \|g_i\|^2}$ over all of them;
# if it exceeds `max_norm`, return the arrays scaled by `max_norm / ||g||`, otherwise
# unchanged. Return a new list of arrays of the same shapes; do not modify the inputs.
# (This is what `torch.nn.utils.clip_grad_norm_` does, Pascanu et al. 2013.) The hidden
# tests use other shapes, dtypes and thresholds, and all-zero gradients; relative tolerance 1e-6.

# %% nbgrader={"grade_id": "q3_clip", "solution": true}
def clip_by_global_norm(grads, max_norm):
    """Rescale all gradients together so that their total norm is at most max_norm."""
    ### BEGIN SOLUTION
    grads = [np.asarray(g, dtype=np.float64) for g in grads]
    total = math.sqrt(sum(float(np.sum(g**2)) for g in grads))
    scale = max_norm / total if total > max_norm else 1.0
    return [g * scale for g in grads]
    ### END SOLUTION

# %% mistake="q3_clip" label="clips each array by its own norm instead of the total norm"
def clip_by_global_norm(grads, max_norm):
    out = []
    for g in grads:
        g = np.asarray(g, dtype=np.float64)
        norm = np.linalg.norm(g)
        out.append(g * (max_norm / norm) if norm > max_norm else g.copy())
    return out

# %% mistake="q3_clip" label="scales the caller's arrays in place"
def clip_by_global_norm(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(g**2)) for g in grads))
    if total > max_norm:
        for g in grads:
            g *= max_norm / total
    return grads

# %% mistake="q3_clip" label="divides by the total norm before comparing: all-zero gradients fail"
def clip_by_global_norm(grads, max_norm):
    total = math.sqrt(sum(float(np.sum(np.asarray(g, dtype=float) ** 2)) for g in grads))
    scale = min(1.0, max_norm / total)
    return [np.asarray(g, dtype=float) * scale for g in grads]

# %% mistake="q3_clip" label="uses the largest array's norm instead of the total"
def clip_by_global_norm(grads, max_norm):
    largest = max(np.linalg.norm(np.ravel(g)) for g in grads)
    scale = max_norm / largest if largest > max_norm else 1.0
    return [np.asarray(g, dtype=float) * scale for g in grads]

# %% right="q3_clip" label="one flat vector, np.linalg.norm, split back into shapes"
def clip_by_global_norm(grads, max_norm):
    arrays = [np.array(g, dtype=np.float64) for g in grads]  # copies
    flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    total = np.linalg.norm(flat)
    if total <= max_norm:
        return arrays
    flat = flat * (max_norm / total)
    out, start = [], 0
    for a in arrays:
        out.append(flat[start:start + a.size].reshape(a.shape))
        start += a.size
    return out

# %% nbgrader={"grade_id": "q3_clip_test", "grade": true, "points": 3}
_grads = [np.array([3.0, 0.0]), np.array([[0.0, 4.0]])]  # total norm 5
checks.check_function(
    "Question 3", lambda gs, c: np.concatenate([np.ravel(r) for r in clip_by_global_norm(gs, c)]),
    [((_grads, 1.0), [0.6, 0.0, 0.0, 0.8]), ((_grads, 10.0), [3.0, 0.0, 0.0, 4.0])], rtol=1e-6,
    mistakes=[(lambda *_: [1.0, 0.0, 0.0, 1.0],
               "you clipped each array (or each entry) on its own. Clipping uses the TOTAL norm over all "
               "parameters and scales them all by one factor, so the update keeps its direction."),
              (lambda *_: [0.75, 0.0, 0.0, 1.0],
               "you used the largest array's norm; the total norm counts every entry of every array."),
              (lambda gs, c: [3.0, 0.0, 0.0, 4.0] if c == 1.0 else None,
               "nothing was clipped: the total norm is 5 > 1."),
              (lambda *_: [6.0, 0.0, 0.0, 8.0],
               "you rescaled to max_norm even though the gradient was already smaller: clipping only ever shrinks.")],
    hint="Compute the one total norm over all arrays first; then decide whether to rescale.")
_shapes = [np.shape(r) for r in clip_by_global_norm(_grads, 1.0)]
if _shapes != [(2,), (1, 2)]:
    raise checks.CheckFailed(f"Question 3: not yet right.\n  return one array per input array, each of its input's "
                             f"shape: expected shapes [(2,), (1, 2)], got {_shapes}.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    def _clipped_flat(gs, c):
        return np.concatenate([np.ravel(r) for r in clip_by_global_norm(gs, c)])

    _rng = np.random.default_rng(5)
    for _trial in range(6):
        _gs = [_rng.normal(scale=_rng.uniform(0.1, 5), size=tuple(_rng.integers(1, 6, _rng.integers(1, 4))))
               for _ in range(int(_rng.integers(1, 5)))]
        _gs = [g.astype(np.float32) for g in _gs] if _trial == 2 else _gs
        _flat = np.concatenate([np.ravel(g) for g in _gs]).astype(np.float64)
        _c = 2 * float(np.linalg.norm(_flat)) if _trial == 4 else float(_rng.uniform(0.1, 3))
        _expected = _flat * min(1.0, _c / float(np.linalg.norm(_flat)))
        checks.check_function("Question 3 (hidden)", _clipped_flat, [((_gs, _c), _expected)], rtol=1e-6)
        assert [np.shape(r) for r in clip_by_global_norm(_gs, _c)] == [g.shape for g in _gs], \
            "Question 3: keep each array's shape"
    checks.check_function("Question 3 (hidden, all zero)", _clipped_flat,
                          [(([np.zeros(3), np.zeros((2, 2))], 1.0), np.zeros(7))], rtol=1e-6)
    checks.check_function("Question 3 (hidden, one huge array)", _clipped_flat,
                          [(([np.array([1e10, -1e10])], 2.0), [math.sqrt(2), -math.sqrt(2)])], rtol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 4 (3 points): choose the fix
#
# Write `choose_fix(cell, grad_norms, first_over_last)`, which recommends a fix for a
# recurrent network that does not learn, from two measurements:
#
# - `cell`: `"rnn"` (a vanilla tanh RNN) or `"lstm"`;
# - `grad_norms`: a NumPy array, the total gradient norm at each training step so far;
# - `first_over_last`: $\|\partial L/\partial h_1\| \,/\, \|\partial L/\partial h_T\|$, measured at initialization.
#
# Return `"clip"` if the gradient **explodes**: some norm is not finite (inf or NaN) or is more
# than 1000 times the median of `grad_norms`. Otherwise, if the gradient **vanishes** over
# time (`first_over_last` below $10^{-6}$), return the fix for that network: `"lstm"` for a
# vanilla RNN, `"forget_bias"` (initialize the forget-gate bias to 1 or 2) for an LSTM.
# Otherwise return `"none"`. Exploding comes first: a step that overflows ends training
# before a vanishing gradient matters. The hidden tests use other networks and histories.

# %% nbgrader={"grade_id": "q4_choose_fix", "solution": true}
def choose_fix(cell, grad_norms, first_over_last):
    """'clip', 'lstm', 'forget_bias' or 'none' for a recurrent network that does not learn."""
    ### BEGIN SOLUTION
    grad_norms = np.asarray(grad_norms, dtype=np.float64)
    if not np.isfinite(grad_norms).all() or grad_norms.max() > 1000 * np.median(grad_norms):
        return "clip"
    if first_over_last < 1e-6:
        return "lstm" if cell == "rnn" else "forget_bias"
    return "none"
    ### END SOLUTION

# %% mistake="q4_choose_fix" label="checks for vanishing before exploding (passes the visible cases)"
def choose_fix(cell, grad_norms, first_over_last):
    if first_over_last < 1e-6:
        return "lstm" if cell == "rnn" else "forget_bias"
    if not np.isfinite(grad_norms).all() or np.max(grad_norms) > 1000 * np.median(grad_norms):
        return "clip"
    return "none"

# %% mistake="q4_choose_fix" label="misses an overflowed (inf or NaN) gradient (passes the visible cases)"
def choose_fix(cell, grad_norms, first_over_last):
    if np.max(grad_norms) > 1000 * np.median(grad_norms):
        return "clip"
    if first_over_last < 1e-6:
        return "lstm" if cell == "rnn" else "forget_bias"
    return "none"

# %% mistake="q4_choose_fix" label="recommends an LSTM even for a network that is already one"
def choose_fix(cell, grad_norms, first_over_last):
    if not np.isfinite(grad_norms).all() or np.max(grad_norms) > 1000 * np.median(grad_norms):
        return "clip"
    if first_over_last < 1e-6:
        return "lstm"
    return "none"

# %% mistake="q4_choose_fix" label="compares the spike with the mean, which the spike itself inflates"
def choose_fix(cell, grad_norms, first_over_last):
    if not np.isfinite(grad_norms).all() or np.max(grad_norms) > 1000 * np.mean(grad_norms):
        return "clip"
    if first_over_last < 1e-6:
        return "lstm" if cell == "rnn" else "forget_bias"
    return "none"

# %% right="q4_choose_fix" label="plain Python: a loop over the history, statistics.median"
import statistics


def choose_fix(cell, grad_norms, first_over_last):
    history = [float(g) for g in grad_norms]
    if any(not math.isfinite(g) for g in history):
        return "clip"
    typical = statistics.median(history)
    for g in history:
        if g > 1000 * typical:
            return "clip"
    if first_over_last >= 1e-6:
        return "none"
    return {"rnn": "lstm", "lstm": "forget_bias"}[cell]

# %% nbgrader={"grade_id": "q4_choose_fix_test", "grade": true, "points": 3}
# Public cases: a spike, a vanilla RNN whose first step gets nothing, the same for an LSTM, a healthy run.
checks.check_verdicts(
    "Question 4", choose_fix,
    [(("rnn", np.array([1.0, 1.2, 0.9, 1.1, 1e7]), 0.3), "clip"),
     (("rnn", np.array([0.5, 0.4, 0.45, 0.5]), 1e-12), "lstm"),
     (("lstm", np.array([0.2, 0.25, 0.22]), 1e-30), "forget_bias"),
     (("lstm", np.array([1.0, 0.8, 0.6, 0.7]), 0.1), "none")],
    allowed=["clip", "lstm", "forget_bias", "none"],
    # Explanations keyed to the public case they are about (first_over_last tells the cases apart).
    mistakes=[(lambda c, g, r: "none" if r == 0.3 else None,
               "one norm is 1e7 while the others are near 1: the gradient explodes. Compare the largest norm with "
               "the median (a single spike inflates the mean)."),
              (lambda c, g, r: "lstm" if r == 0.3 else None,
               "an LSTM helps when gradients vanish; this one explodes, and a spike needs its step capped."),
              (lambda c, g, r: "forget_bias" if r in (0.3, 1e-12) else None, "a vanilla RNN has no forget gate."),
              (lambda c, g, r: "clip" if r in (1e-12, 1e-30, 0.1) else None,
               "no norm in this history is far above the median: nothing explodes, and clipping only ever shrinks."),
              (lambda c, g, r: "none" if r in (1e-12, 1e-30) else None,
               "first_over_last is far below 1e-6: the gradient reaching step 1 vanishes."),
              (lambda c, g, r: "lstm" if r == 1e-30 else None,
               "this network already is an LSTM; what closes its cell path is the forget gate."),
              (lambda c, g, r: ("lstm" if c == "rnn" else "forget_bias") if r == 0.1 else None,
               "first_over_last = 0.1 is far above 1e-6: nothing vanishes here.")],
    hint="Go through the rules in the order the question gives them.")
### BEGIN HIDDEN TESTS
with checks.quiet():
    _rng = np.random.default_rng(41)
    _calm = _rng.lognormal(0.0, 0.3, size=60)  # a noisy history without spikes
    _hidden = [(("rnn", np.append(_calm[:20], np.nan), 1e-9), "clip"),  # overflowed and vanishing
               (("lstm", np.array([0.3, 0.4, np.inf]), 0.5), "clip"),
               (("rnn", np.append(_calm, 5e4 * np.median(_calm)), 1e-8), "clip"),  # spike and vanishing
               (("lstm", _calm[:30], 5e-7), "forget_bias"),
               (("rnn", _calm[10:50], 2e-6), "none"),
               (("rnn", np.append(_calm[:9], 500 * np.median(_calm[:9])), 1e-3), "none"),
               (("lstm", np.array([3.0]), 1e-20), "forget_bias"),
               (("rnn", _calm, 1e-10), "lstm")]
    checks.check_verdicts("Question 4 (hidden)", choose_fix, _hidden, allowed=["clip", "lstm", "forget_bias", "none"])
### END HIDDEN TESTS

# %% [markdown]
# ### Question 5 (2 points): read the spectral radius off a curve
#
# Below is $\|\partial L/\partial h_t\|$ for $t = 0, \dots, T$ for a **linear** RNN
# $h_t = s\,Q h_{t-1} + x_t$ with $Q$ orthogonal, over $T = 40$ steps. Write
# `estimate_radius(norms)` that takes such a curve (a NumPy array of $T + 1$ norms, for any
# $T \ge 1$) and returns $s$. The check uses the curve below; the hidden tests use other
# $s$ (above and below 1) and other lengths (relative tolerance 1%).

# %%
public_norms = orthogonal_rnn_gradients(0.85, 40, nonlinearity="linear", seed=5)
fig, ax = plt.subplots(figsize=(6, 3.3), layout="constrained")
ax.semilogy(np.arange(41), public_norms, "o-", markersize=3, color=OKABE_ITO[0])
ax.set_xlabel("time step t (T = 40)")
ax.set_ylabel("||dL/dh_t||")
ax.grid(True, which="both", alpha=0.3);

# %% nbgrader={"grade_id": "q5_radius", "solution": true}
def estimate_radius(norms):
    """s from ||dL/dh_t||, t = 0..T, of a linear RNN with W_hh = s Q."""
    ### BEGIN SOLUTION
    norms = np.asarray(norms, dtype=np.float64)
    T = len(norms) - 1
    return float((norms[0] / norms[-1]) ** (1 / T))
    ### END SOLUTION

# %% mistake="q5_radius" label="reads the curve backwards (gives 1/s)"
def estimate_radius(norms):
    return float((norms[-1] / norms[0]) ** (1 / (len(norms) - 1)))

# %% mistake="q5_radius" label="takes the root of the number of points, not of steps (passes at T = 40)"
def estimate_radius(norms):
    return float((norms[0] / norms[-1]) ** (1 / len(norms)))

# %% mistake="q5_radius" label="gives the factor over all T steps, not per step"
def estimate_radius(norms):
    return float(norms[0] / norms[-1])

# %% right="q5_radius" label="least-squares slope of log norm against t"
def estimate_radius(norms):
    t = np.arange(len(norms))
    slope, _ = np.polyfit(t, np.log(norms), 1)
    return float(np.exp(-slope))

# %% nbgrader={"grade_id": "q5_radius_test", "grade": true, "points": 2}
checks.check_function("Question 5", estimate_radius, [((public_norms,), 0.85)], rtol=0.01,
                      mistakes=[(lambda *_: 1.17647, "you read the curve backwards: going back in time (to the "
                                                      "left) the gradient shrinks here, so s < 1."),
                                (lambda *_: 0.00150230, "that is the factor over all 40 steps; s is the factor "
                                                      "per step.")],
                      hint="What does one step do to the norm, and what do all T steps of the curve do?")
### BEGIN HIDDEN TESTS
with checks.quiet():
    for _s, _T, _seed in [(0.6, 5, 1), (1.1, 30, 2), (0.95, 80, 3), (0.7, 1, 4), (1.0, 12, 5), (0.3, 20, 6)]:
        checks.check_function("Question 5 (hidden)", estimate_radius,
                              [((orthogonal_rnn_gradients(_s, _T, nonlinearity="linear", seed=_seed),), _s)],
                              rtol=0.01)
### END HIDDEN TESTS

# %% [markdown]
# ### Question 6 (1 point): what the forget-gate bias does
#
# Why does initializing an LSTM's forget-gate bias to 2 help it learn long lags? Set
# `q6_answer` to `"A"`, `"B"`, `"C"` or `"D"`.
#
# - **A.** It makes the recurrent weights larger, so gradients through $W_{hh}$ grow.
# - **B.** It starts forget gates near 0.88, so the cell path shrinks gradients less.
# - **C.** It opens the input gate, so the first input is written into the cell strongly.
# - **D.** It acts as a larger learning rate for the gates, so they learn to open sooner.

# %% nbgrader={"grade_id": "q6_answer", "solution": true}
### BEGIN SOLUTION
q6_answer = "B"
### END SOLUTION

# %% mistake="q6_answer" label="confuses the forget gate with the input gate"
q6_answer = "C"

# %% mistake="q6_answer" label="thinks the bias acts through the recurrent weights"
q6_answer = "A"

# %% mistake="q6_answer" label="thinks a bias is a learning rate"
q6_answer = "D"

# %% right="q6_answer" label="lower case, with spaces"
q6_answer = " b "

# %% nbgrader={"grade_id": "q6_answer_test", "grade": true, "points": 1}
checks.check_choice(
    "Question 6", q6_answer, "ABCD", expected_digest="6a4d73e2d994e219", salt="03_q6",
    explanations={"A": "The forget-gate bias does not touch W_hh; look at what multiplies c_{t-1}.",
                  "C": "The bias in question belongs to the FORGET gate, which scales c_{t-1}, not to the input gate.",
                  "D": "The learning rate is the optimizer's; the bias changes the network's Jacobians."})
### BEGIN HIDDEN TESTS
with checks.quiet():
    checks.check_choice("Question 6 (hidden)", q6_answer, "ABCD", expected="B")
### END HIDDEN TESTS

# %% [markdown]
# ## Summary
#
# - BPTT multiplies one Jacobian $\operatorname{diag}(1 - h_t^2)\,W_{hh}$ per step. With PyTorch's
#   default init the gradient from step 50 to step 1 shrank to about $3 \times 10^{-11}$, at a rate
#   set by the spectral radius of $W_{hh}$ (0.62 here), even though its largest singular
#   value was above 1.
# - For $W = sQ$ the $T$-step Jacobian has norm exactly $s^T$: vanishing and exploding are
#   the two sides of one product.
# - Exploding gradients make cliffs in the loss; clipping the gradient norm caps each step
#   and turned a diverging run into a stable one.
# - On long lags the vanilla RNN stays at chance (sign memory, $T = 50$) or at the
#   baseline (adding problem); the LSTM solves both, because its cell path multiplies
#   forget gates, and a forget-gate bias of 2 keeps them near 1 from the start (PyTorch
#   starts them at 0.5; Keras at a bias of 1). With the gate at 1 the cell update is a
#   residual connection through time; the GRU's interpolation path works the same way.
# - Truncated BPTT cuts the gradient at each window: a lag longer than the window cannot
#   be learned at all.
#
# Next: notebook 04 replaces the saturating activation itself (ReLU and friends).
#
# ## References
#
# - S. Hochreiter (1991). *Untersuchungen zu dynamischen neuronalen Netzen.* Diploma thesis, TU Munich.
# - Y. Bengio, P. Simard, P. Frasconi (1994). Learning long-term dependencies with gradient descent is difficult. *IEEE Transactions on Neural Networks* 5(2).
# - S. Hochreiter, J. Schmidhuber (1997). Long short-term memory. *Neural Computation* 9(8).
# - R. Williams, J. Peng (1990). An efficient gradient-based algorithm for on-line training of recurrent network trajectories. *Neural Computation* 2(4).
# - F. Gers, J. Schmidhuber, F. Cummins (2000). Learning to forget: continual prediction with LSTM. *Neural Computation* 12(10).
# - R. Pascanu, T. Mikolov, Y. Bengio (2013). On the difficulty of training recurrent neural networks. *ICML.*
# - K. Cho, B. van Merriënboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk, Y. Bengio (2014). Learning phrase representations using RNN encoder-decoder for statistical machine translation. *EMNLP.*
# - R. Jozefowicz, W. Zaremba, I. Sutskever (2015). An empirical exploration of recurrent network architectures. *ICML.*
# - Q. Le, N. Jaitly, G. Hinton (2015). A simple way to initialize recurrent networks of rectified linear units. *arXiv:1504.00941.* (The adding problem in the form used here.)
# - Keras documentation, `keras.layers.LSTM`: `unit_forget_bias=True` by default (adds 1 to the forget gate's bias at initialization).
