"""Recurrent networks and backpropagation through time (BPTT), taught in notebook 03.

A vanilla RNN repeats h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). BPTT
multiplies one Jacobian dh_t/dh_{t-1} = diag(1 - h_t^2) W_hh per step, so the
gradient that reaches step t from step T is a product of T - t of them:
it vanishes when W_hh's largest singular value is below 1 and can explode when
it is above (Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013).
The LSTM (Hochreiter & Schmidhuber 1997) adds a cell c_t = f_t * c_{t-1} + i_t * g_t
whose Jacobian along the cell path is diag(f_t): no weight matrix, no squashing,
and close to 1 when the forget gate's bias is large (Gers et al. 2000).

Small recurrent nets are dominated by per-step overhead, so the runners here
use one CPU thread (more threads only add contention on a 2-core machine).
"""

import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .bptt import train_rnns
from .datasets import make_adding_problem, make_sign_memory
from .initialization import orthogonal_
from .seeding import one_torch_thread
from .training import History, accuracy, train

CELLS = ("rnn", "gru", "lstm")
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # blocks of hidden_size rows in PyTorch's stacked weights
TASKS = ("sign", "adding")


class RecurrentNet(nn.Module):
    """A one-layer tanh RNN, GRU or LSTM over inputs (batch, T, features), a linear head on h_T.

    Args:
        input_size, hidden_size, output_size: feature sizes.
        cell: ``"rnn"`` (tanh), ``"gru"`` or ``"lstm"``.
        forget_bias: the bias at init of the gate that keeps the old state: the
            LSTM's forget gate f, or the GRU's update gate z (PyTorch's GRU keeps
            h_{t-1} with weight z: h_t = (1 - z) * n + z * h_{t-1}). sigmoid(2) = 0.88,
            so a bias of 2 keeps that path open from the start (Gers et al. 2000;
            Jozefowicz et al. 2015). The other weights follow PyTorch's default
            U(-1/sqrt(hidden), 1/sqrt(hidden)), whose biases are 0 on average.
        recurrent_gain: when given, W_hh = gain * Q with Q random orthogonal, so
            every singular value of W_hh (and its spectral radius) equals `gain`.
        seed: draw the weights from this seed.
        truncate: train with truncated BPTT, cutting the gradient every this
            many steps (Williams & Peng 1990); None: full BPTT.

    Training runs PyTorch's fused ``nn.RNN``/``nn.LSTM``; `unroll` recomputes the
    same states one step at a time so that each h_t can be inspected.

    >>> net = RecurrentNet(1, 8, 2, cell="lstm", forget_bias=2.0, seed=0)
    >>> net(torch.zeros(3, 5, 1)).shape
    torch.Size([3, 2])
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, *, cell: str = "rnn",
                 forget_bias: float = 0.0, recurrent_gain: float | None = None, seed: int | None = None,
                 truncate: int | None = None):
        super().__init__()
        self.truncate = truncate
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose one of {list(CELLS)}")
        self.cell = cell
        self.hidden_size = hidden_size
        core = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell]
        self.core = core(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, output_size)
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        bound = 1.0 / math.sqrt(hidden_size)
        with torch.no_grad():
            for param in self.core.parameters():
                param.uniform_(-bound, bound, generator=generator)
            head_bound = 1.0 / math.sqrt(hidden_size)
            self.head.weight.uniform_(-head_bound, head_bound, generator=generator)
            self.head.bias.zero_()
            if recurrent_gain is not None:
                if cell != "rnn":
                    raise ValueError("recurrent_gain applies to cell='rnn' only")
                orthogonal_(self.core.weight_hh_l0, recurrent_gain, generator=generator)
            if cell != "rnn":  # PyTorch's gate order: LSTM input, forget, cell, output; GRU reset, update, new
                keep = slice(hidden_size, 2 * hidden_size)
                self.core.bias_ih_l0[keep] = forget_bias
                self.core.bias_hh_l0[keep] = 0.0

    @property
    def W_hh(self) -> torch.Tensor:
        """The recurrent weight matrix (for an LSTM: the four gates' blocks stacked)."""
        return self.core.weight_hh_l0

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        if not self.truncate:
            _, state = self.core(X)
        else:
            state = None  # truncated BPTT: windows of `truncate` steps, the state carried over but detached
            for start in range(0, X.shape[1], self.truncate):
                if state is not None:
                    state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
                _, state = self.core(X[:, start:start + self.truncate], state)
        # h_T is the final state h_n (an LSTM's is (h_n, c_n)): the same numbers as the outputs' last step,
        # without a backward pass through a zero gradient for every other step (5-10% faster)
        return self.head((state[0] if isinstance(state, tuple) else state)[-1])

    def unroll(self, X: torch.Tensor, *, truncate: int | None = None) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The hidden states [h_1, ..., h_T] (and LSTM cells [c_1, ..., c_T]; [] otherwise), step by step.

        Same numbers as the fused forward pass; every h_t is a node of the
        autograd graph, so ``torch.autograd.grad(loss, hs)`` gives dL/dh_t.
        ``truncate=k`` cuts the graph every k steps (truncated BPTT, Williams &
        Peng 1990): the same states, but no gradient reaches an earlier window.
        """
        core = self.core
        W_ih, W_hh = core.weight_ih_l0, core.weight_hh_l0
        bias = core.bias_ih_l0 + core.bias_hh_l0
        h = X.new_zeros(X.shape[0], self.hidden_size)
        c = X.new_zeros(X.shape[0], self.hidden_size)
        hs, cs = [], []
        if self.cell == "gru":  # the new gate's recurrent term, bias included, is scaled by the reset gate
            inputs = X @ W_ih.T + core.bias_ih_l0
            for t in range(X.shape[1]):
                if truncate and t and t % truncate == 0:
                    h = h.detach()
                x_r, x_z, x_n = inputs[:, t].chunk(3, dim=1)
                h_r, h_z, h_n = (h @ W_hh.T + core.bias_hh_l0).chunk(3, dim=1)
                r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
                h = (1 - z) * torch.tanh(x_n + r * h_n) + z * h
                hs.append(h)
            return hs, cs
        inputs = X @ W_ih.T + bias  # all steps at once: (batch, T, gates * hidden)
        for t in range(X.shape[1]):
            if truncate and t and t % truncate == 0:  # truncated BPTT: no gradient into earlier windows
                h, c = h.detach(), c.detach()
            pre = inputs[:, t] + h @ W_hh.T
            if self.cell == "rnn":
                h = torch.tanh(pre)
            else:
                i, f, g, o = pre.chunk(4, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                cs.append(c)
            hs.append(h)
        return hs, cs


def gradient_through_time(model: RecurrentNet, X: torch.Tensor, y: torch.Tensor, *,
                          loss: str = "cross_entropy", wrt: str = "hidden",
                          truncate: int | None = None) -> np.ndarray:
    """||dL/dh_t|| for t = 1..T (``wrt="cell"``: ||dL/dc_t|| of an LSTM), measured by autograd.

    The loss reads only h_T, so dL/dh_t is everything BPTT carries back to
    step t: the product of the Jacobians of steps t+1..T applied to dL/dh_T.
    ``truncate=k``: truncated BPTT (windows of k steps), 0 before the last window.
    """
    loss_fn = {"cross_entropy": nn.functional.cross_entropy, "mse": nn.functional.mse_loss}[loss]
    if wrt not in ("hidden", "cell") or (wrt == "cell" and model.cell != "lstm"):
        raise ValueError(f"wrt must be 'hidden' or, for an LSTM, 'cell'; got {wrt!r} for a {model.cell}")
    with one_torch_thread():
        hs, cs = model.unroll(X, truncate=truncate)
        value = loss_fn(model.head(hs[-1]), y)
        grads = torch.autograd.grad(value, cs if wrt == "cell" else hs, allow_unused=True)
    # summed in float64: the squares of float32 gradients below 1e-19 underflow
    return np.array([0.0 if g is None else torch.linalg.vector_norm(g, dtype=torch.float64).item() for g in grads])


def orthogonal_rnn_gradients(radius: float, length: int, *, width: int = 32, nonlinearity: str = "tanh",
                             input_scale: float = 0.5, seed: int = 0) -> np.ndarray:
    """||dh_T/dh_t^T u|| for t = 0..T through h_t = f(radius * Q h_{t-1} + x_t), ||u|| = 1, float64.

    Q is random orthogonal, so every singular value of W_hh = radius * Q is
    `radius`. With f linear (``nonlinearity="linear"``) the result is exactly
    radius^(T - t); tanh multiplies in its slopes (<= 1). Inputs x_t ~ N(0, input_scale^2).
    """
    if nonlinearity not in ("tanh", "linear"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'linear', got {nonlinearity!r}")
    generator = torch.Generator().manual_seed(seed)
    W = radius * orthogonal_(torch.empty(width, width, dtype=torch.float64), generator=generator)
    X = input_scale * torch.randn(length, width, dtype=torch.float64, generator=generator)
    u = torch.randn(width, dtype=torch.float64, generator=generator)
    h0 = (0.5 * torch.randn(width, dtype=torch.float64, generator=generator)).requires_grad_()
    states = [h0]
    with one_torch_thread():
        for t in range(length):
            pre = W @ states[-1] + X[t]
            states.append(torch.tanh(pre) if nonlinearity == "tanh" else pre)
        grads = torch.autograd.grad((states[-1] * u / u.norm()).sum(), states)
    return np.array([g.norm().item() for g in grads])


def linear_rnn_jacobian(scale: float, length: int, *, width: int = 16, seed: int = 0) -> np.ndarray:
    """The T-step Jacobian dh_T/dh_0 of the linear RNN h_t = scale * Q h_{t-1}, by autograd (float64).

    Pascanu, Mikolov & Bengio 2013: the T-step Jacobian is (scale * Q)^T, so
    its norm (largest singular value) is scale^T; every singular value is.
    """
    generator = torch.Generator().manual_seed(seed)
    W = scale * orthogonal_(torch.empty(width, width, dtype=torch.float64), generator=generator)
    h0 = torch.randn(width, dtype=torch.float64, generator=generator)
    # One backward pass for all rows (autograd.functional.jacobian takes one per row): row i of the batch is
    # a copy of h_0 that reaches only row i of h_T, so d(sum_i h_T[i, i]) / d(copy i) is row i of dh_T/dh_0.
    copies = h0.expand(width, width).clone().requires_grad_()
    with one_torch_thread():
        h = copies
        for _ in range(length):
            h = h @ W.T  # each row: h <- W h
        (rows,) = torch.autograd.grad(h.diagonal().sum(), copies)
    return rows.numpy()


def loss_cliff(ws, bs, *, length: int = 50, x0: float = 0.5, target: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Loss and gradient norm of a one-unit RNN over a (w, b) grid: Pascanu et al. 2013, Fig. 6.

    The model is x_t = w * sigmoid(x_{t-1}) + b from x_0 for `length` steps,
    with loss (sigmoid(x_T) - target)^2. Returns two arrays of shape
    (len(bs), len(ws)): the loss and ||(dL/dw, dL/db)||, in float64. Where the
    map's fixed points bifurcate, the loss jumps and the gradient explodes: a cliff.
    """
    b, w = torch.meshgrid(torch.as_tensor(np.asarray(bs, dtype=np.float64)),
                          torch.as_tensor(np.asarray(ws, dtype=np.float64)), indexing="ij")
    w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
    x = torch.full_like(w, x0)
    with one_torch_thread():
        for _ in range(length):
            x = w * torch.sigmoid(x) + b
        losses = (torch.sigmoid(x) - target) ** 2
        dw, db = torch.autograd.grad(losses.sum(), (w, b))  # each grid point depends only on its own (w, b)
    return losses.detach().numpy(), torch.sqrt(dw**2 + db**2).numpy()


def make_sequence_task(task: str, n: int, length: int, *, noise: float = 0.2, seed: int = 0):
    """(X, y) for ``"sign"`` (remember the first sign; 2 classes) or ``"adding"`` (regression, baseline 1/6)."""
    if task == "sign":
        return make_sign_memory(n, length, noise=noise, seed=seed)
    if task == "adding":
        return make_adding_problem(n, length, seed=seed)
    raise ValueError(f"unknown task {task!r}; choose one of {list(TASKS)}")


@dataclass
class SequenceRun:
    """A trained recurrent net: its History, and its score on fresh sequences (accuracy or MSE)."""

    model: RecurrentNet
    history: History
    score: float
    metric: str


def run_sequence_task(cell: str, task: str, length: int, *, num_steps: int, hidden_size: int = 32,
                      lr: float = 3e-3, optimizer: str = "adam", clip: float | None = 1.0,
                      forget_bias: float = 2.0, recurrent_gain: float | None = None, batch_size: int = 64,
                      train_size: int | None = None, test_size: int = 1000, noise: float = 0.2,
                      truncate: int | None = None, seed: int = 0) -> SequenceRun:
    """Train a `RecurrentNet` on a long-lag task and score it on fresh sequences.

    ``task="sign"``: remember the first input's sign over `length` steps
    (Bengio et al. 1994); score = test accuracy, chance 0.5. ``task="adding"``:
    add the two marked numbers (Le et al. 2015's variant of Hochreiter &
    Schmidhuber 1997's problem); score = test MSE, 1/6 for always answering 1.
    Defaults are COURSE.md's E5/E6 (hidden 32, Adam 3e-3, clip 1, forget bias 2);
    E7 uses SGD with ``recurrent_gain=1.8``. ``truncate=k`` trains with truncated
    BPTT (windows of k steps). By default every training sequence is fresh
    (``train_size = num_steps * batch_size``), so a net cannot pass by memorizing noise.
    A run whose loss or gradient stops being finite scores NaN. A vanilla RNN
    with Adam trains with `train_rnns` (BPTT written out), anything else with
    `train` (PyTorch's fused kernels).
    """
    return run_sequence_tasks([dict(cell=cell, task=task, length=length, num_steps=num_steps,
                                    hidden_size=hidden_size, lr=lr, optimizer=optimizer, clip=clip,
                                    forget_bias=forget_bias, recurrent_gain=recurrent_gain, batch_size=batch_size,
                                    train_size=train_size, test_size=test_size, noise=noise, truncate=truncate,
                                    seed=seed)], workers=1)[0]


def _sequence_setup(spec: dict) -> dict:
    """A spec with every argument of `run_sequence_task` (`_sequence_data` adds the model and the data)."""
    full = inspect.signature(run_sequence_task).bind(**spec)
    full.apply_defaults()
    a = dict(full.arguments)
    a["train_size"] = a["num_steps"] * a["batch_size"] if a["train_size"] is None else a["train_size"]
    a["loss"] = "cross_entropy" if a["task"] == "sign" else "mse"
    # E7's SGD runs stay on the fused kernel: their exploding gradients make them chaotic (two float64
    # implementations part after ~12 steps), so their outcome depends on rounding, calibrated there
    a["side_by_side"] = a["cell"] == "rnn" and a["optimizer"] == "adam"
    return a


def _sequence_data(a: dict) -> dict:
    """`a` with its training and test data and its model (built in the worker: two at a time)."""
    data = make_sequence_task(a["task"], a["train_size"], a["length"], noise=a["noise"], seed=a["seed"])
    test = make_sequence_task(a["task"], a["test_size"], a["length"], noise=a["noise"], seed=a["seed"] + 10_000)
    model = RecurrentNet(data[0].shape[-1], a["hidden_size"], 2 if a["task"] == "sign" else 1, cell=a["cell"],
                         forget_bias=a["forget_bias"], recurrent_gain=a["recurrent_gain"], seed=a["seed"],
                         truncate=a["truncate"])
    return {**a, "data": data, "test": test, "model": model}


def _sequence_runs(setups: list[dict]) -> list[SequenceRun]:
    """Train one group (vanilla RNNs side by side in `train_rnns`, anything else alone in `train`), then score."""
    with one_torch_thread():  # in the worker thread: the thread count is per thread for OpenMP
        return _train_and_score([_sequence_data(a) for a in setups])


def _train_and_score(setups: list[dict]) -> list[SequenceRun]:
    first = setups[0]
    if first["side_by_side"]:
        histories = train_rnns([a["model"] for a in setups], [a["data"] for a in setups], lr=first["lr"],
                               num_steps=first["num_steps"], batch_size=first["batch_size"], loss=first["loss"],
                               optimizer=first["optimizer"], clips=[a["clip"] for a in setups],
                               seeds=[a["seed"] for a in setups])
    else:
        (a,) = setups
        histories = [train(a["model"], *a["data"], lr=a["lr"], num_steps=a["num_steps"], batch_size=a["batch_size"],
                           loss=a["loss"], optimizer=a["optimizer"], clip=a["clip"], seed=a["seed"], progress=False)]
    runs = []
    for a, history in zip(setups, histories):
        model, (X_test, y_test) = a["model"], a["test"]
        if history.diverged:
            score = math.nan
        elif a["task"] == "sign":
            score = accuracy(model, X_test, y_test)
        else:
            with torch.no_grad():
                score = nn.functional.mse_loss(model(X_test), y_test).item()
        runs.append(SequenceRun(model, history, score, "accuracy" if a["task"] == "sign" else "mse"))
    return runs


def run_sequence_tasks(specs: list[dict], *, workers: int = 2) -> list[SequenceRun]:
    """`run_sequence_task` for each spec (a dict of its arguments), `workers` at a time; results in spec order.

    Vanilla RNNs trained with Adam (E5, E6) on the same task with the same
    learning rate, number of steps and batch and training-set sizes train side
    by side in one `train_rnns`; every other run trains alone with `train`. Each
    run draws from its own seeded generators, so a run gives the same numbers
    whatever it is grouped with, up to float rounding, and exactly the same as
    `run_sequence_task` when it is alone in its group (tests/test_recurrent.py
    checks both). Torch's kernels release Python's
    lock, so on two idle cores two groups take little longer than one. The
    longest groups start first.
    """
    from concurrent.futures import ThreadPoolExecutor

    setups = [_sequence_setup(spec) for spec in specs]
    groups: dict[tuple, list[int]] = {}
    for i, a in enumerate(setups):
        key = (("rnn", a["task"], a["lr"], a["num_steps"], a["batch_size"], a["train_size"], a["hidden_size"])
               if a["side_by_side"] else (i,))
        groups.setdefault(key, []).append(i)

    def cost(members: list[int]) -> float:  # ~ CPU time, measured: a fused LSTM step costs ~ T + 13 time
        a = setups[members[0]]  # steps' worth, K vanilla RNNs side by side 0.3 + 0.17 K of that
        per_step = max(setups[i]["length"] for i in members) + 13
        return a["num_steps"] * per_step * (0.3 + 0.17 * len(members) if a["side_by_side"] else 1.0)

    order = sorted(groups.values(), key=cost, reverse=True)
    results: list[SequenceRun | None] = [None] * len(specs)

    def run_group(members: list[int]) -> None:
        for i, run in zip(members, _sequence_runs([setups[i] for i in members])):
            results[i] = run

    with one_torch_thread(), ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(run_group, members) for members in order]:
            future.result()
    return results
