"""course_lib.recurrent against PyTorch as the oracle: states, gradients through time, Jacobians."""

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from course_lib.recurrent import (RecurrentNet, gradient_through_time, linear_rnn_jacobian, loss_cliff,
                                  make_sequence_task, orthogonal_rnn_gradients, run_sequence_task,
                                  run_sequence_tasks, train_rnns)
from course_lib.training import train


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_unroll_matches_the_fused_module(cell):
    net = RecurrentNet(2, 8, 3, cell=cell, forget_bias=1.5, seed=0).double()
    X = torch.randn(5, 7, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    hs, cs = net.unroll(X)
    fused, final = net.core(X)
    assert torch.allclose(torch.stack(hs, dim=1), fused, atol=1e-12)
    if cell == "lstm":
        assert torch.allclose(cs[-1], final[1][0], atol=1e-12)  # the last cell state
    else:
        assert cs == []
    assert torch.allclose(net.head(hs[-1]), net(X), atol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_unroll_gives_the_same_parameter_gradients_as_the_fused_module(cell):
    net = RecurrentNet(1, 6, 2, cell=cell, forget_bias=2.0, seed=3).double()
    X, y = make_sequence_task("sign", 16, 9, seed=2)
    X = X.double()
    nn.functional.cross_entropy(net(X), y).backward()
    fused = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    hs, _ = net.unroll(X)
    nn.functional.cross_entropy(net.head(hs[-1]), y).backward()
    for a, b in zip(fused, (p.grad for p in net.parameters())):
        assert torch.allclose(a, b, atol=1e-12)


def test_gradient_through_time_matches_the_bptt_jacobian_product():
    """dL/dh_{t-1} = W_hh^T ((1 - h_t^2) * dL/dh_t), per example, from autograd's dL/dh_T."""
    net = RecurrentNet(1, 5, 2, cell="rnn", seed=0).double()
    X, y = make_sequence_task("sign", 4, 12, seed=0)
    X = X.double()
    hs, _ = net.unroll(X)
    loss = nn.functional.cross_entropy(net.head(hs[-1]), y)
    (g,) = torch.autograd.grad(loss, hs[-1])
    W = net.W_hh.detach()
    expected = [g.norm().item()]
    for t in range(len(hs) - 1, 0, -1):
        g = ((1 - hs[t].detach() ** 2) * g) @ W  # row vectors: (diag(1 - h^2) W)^T g
        expected.append(g.norm().item())
    got = gradient_through_time(net, X, y)
    assert np.allclose(got, expected[::-1], rtol=1e-10)


def test_gradient_through_time_for_lstm_cells_and_bad_requests():
    net = RecurrentNet(1, 4, 2, cell="lstm", forget_bias=2.0, seed=0)
    X, y = make_sequence_task("sign", 8, 6, seed=0)
    cells = gradient_through_time(net, X, y, wrt="cell")
    assert cells.shape == (6,) and np.all(np.isfinite(cells)) and np.all(cells > 0)
    rnn = RecurrentNet(1, 4, 2, cell="rnn", seed=0)
    with pytest.raises(ValueError):
        gradient_through_time(rnn, X, y, wrt="cell")
    with pytest.raises(ValueError):
        gradient_through_time(net, X, y, wrt="weights")


def test_initialization_options():
    lstm = RecurrentNet(1, 8, 2, cell="lstm", forget_bias=2.0, seed=0)
    forget = slice(8, 16)
    assert torch.all(lstm.core.bias_ih_l0[forget] == 2.0) and torch.all(lstm.core.bias_hh_l0[forget] == 0.0)
    rnn = RecurrentNet(1, 8, 2, cell="rnn", recurrent_gain=1.8, seed=0)
    singular = torch.linalg.svdvals(rnn.W_hh.detach().double())
    assert torch.allclose(singular, torch.full_like(singular, 1.8), rtol=1e-6)
    bound = 1 / math.sqrt(8)
    default = RecurrentNet(1, 8, 2, cell="rnn", seed=0)
    assert default.W_hh.abs().max() <= bound
    assert torch.equal(RecurrentNet(1, 8, 2, seed=5).W_hh, RecurrentNet(1, 8, 2, seed=5).W_hh)
    with pytest.raises(ValueError):
        RecurrentNet(1, 8, 2, cell="transformer")
    with pytest.raises(ValueError):
        RecurrentNet(1, 8, 2, cell="lstm", recurrent_gain=1.0)


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.3])
def test_linear_rnn_jacobian_is_the_matrix_power(scale):
    one_step = linear_rnn_jacobian(scale, 1, seed=4)  # = scale * Q (same seed, same Q)
    h0 = torch.randn(16, dtype=torch.float64)

    def run(h):
        for _ in range(9):
            h = torch.as_tensor(one_step) @ h
        return h

    by_rows = torch.autograd.functional.jacobian(run, h0).numpy()  # one backward pass per row
    assert np.allclose(linear_rnn_jacobian(scale, 9, seed=4), by_rows, rtol=1e-12, atol=1e-15)
    for T in (2, 7, 20):
        J = linear_rnn_jacobian(scale, T, seed=4)
        assert np.allclose(J, np.linalg.matrix_power(one_step, T), rtol=1e-10, atol=1e-14)
        assert np.allclose(np.linalg.svd(J, compute_uv=False), scale**T, rtol=1e-10)


@pytest.mark.parametrize("radius", [0.8, 1.0, 1.2])
def test_orthogonal_rnn_gradients(radius):
    linear = orthogonal_rnn_gradients(radius, 30, nonlinearity="linear", seed=1)
    assert np.allclose(linear, radius ** (30 - np.arange(31)), rtol=1e-10)
    tanh = orthogonal_rnn_gradients(radius, 30, nonlinearity="tanh", seed=1)
    assert np.all(tanh <= linear * (1 + 1e-10))  # tanh's slopes only shrink the product
    with pytest.raises(ValueError):
        orthogonal_rnn_gradients(radius, 5, nonlinearity="relu")


def test_loss_cliff_matches_autograd_point_by_point():
    ws, bs = np.array([1.0, 4.5, 7.0]), np.array([-3.0, -0.5])
    losses, norms = loss_cliff(ws, bs, length=20)
    assert losses.shape == norms.shape == (2, 3)
    for i, b0 in enumerate(bs):
        for j, w0 in enumerate(ws):
            w = torch.tensor(w0, dtype=torch.float64, requires_grad=True)
            b = torch.tensor(b0, dtype=torch.float64, requires_grad=True)
            x = torch.tensor(0.5, dtype=torch.float64)
            for _ in range(20):
                x = w * torch.sigmoid(x) + b
            loss = (torch.sigmoid(x) - 0.7) ** 2
            dw, db = torch.autograd.grad(loss, (w, b))
            assert math.isclose(losses[i, j], loss.item(), rel_tol=1e-12)
            assert math.isclose(norms[i, j], math.hypot(dw.item(), db.item()), rel_tol=1e-10, abs_tol=1e-300)


def test_sequence_tasks_and_runner():
    X, y = make_sequence_task("adding", 100, 10, seed=0)
    assert X.shape == (100, 10, 2) and y.shape == (100, 1)
    X, y = make_sequence_task("sign", 100, 10, seed=0)
    assert X.shape == (100, 10, 1) and set(y.tolist()) <= {0, 1}
    with pytest.raises(ValueError):
        make_sequence_task("copy", 10, 10)
    run = run_sequence_task("rnn", "sign", 5, num_steps=20, batch_size=16, seed=0)
    assert run.metric == "accuracy" and 0.0 <= run.score <= 1.0 and len(run.history.loss) == 20
    run = run_sequence_task("lstm", "adding", 5, num_steps=20, batch_size=16, seed=0)
    assert run.metric == "mse" and math.isfinite(run.score)
    again = run_sequence_task("lstm", "adding", 5, num_steps=20, batch_size=16, seed=0)
    assert again.score == run.score  # seeded: the same numbers every time


def test_gru_update_bias_sits_on_the_update_gate():
    gru = RecurrentNet(1, 8, 2, cell="gru", forget_bias=2.0, seed=0)
    update = slice(8, 16)  # PyTorch's GRU gates: reset, update, new
    assert torch.all(gru.core.bias_ih_l0[update] == 2.0) and torch.all(gru.core.bias_hh_l0[update] == 0.0)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_truncated_bptt_cuts_the_gradient_and_keeps_the_states(cell):
    """Windows of k steps: the same states and outputs, gradients only inside the last window,
    equal there to full BPTT's; training through `forward` uses the same windows."""
    net = RecurrentNet(1, 6, 2, cell=cell, forget_bias=1.0, seed=2).double()
    X, y = make_sequence_task("sign", 8, 23, seed=1)
    X = X.double()
    full = gradient_through_time(net, X, y)
    cut = gradient_through_time(net, X, y, truncate=5)  # windows 1-5, ..., 21-23
    assert np.all(cut[:20] == 0) and np.all(cut[20:] > 0)
    assert np.allclose(cut[20:], full[20:], rtol=1e-10)
    hs, _ = net.unroll(X, truncate=5)
    assert torch.allclose(torch.stack(hs, dim=1), net.core(X)[0], atol=1e-12)
    net.truncate = 5
    nn.functional.cross_entropy(net(X), y).backward()
    truncated = [p.grad.clone() for p in net.core.parameters()]
    net.zero_grad()
    hs, _ = net.unroll(X, truncate=5)
    nn.functional.cross_entropy(net.head(hs[-1]), y).backward()
    assert all(torch.allclose(a, p.grad, atol=1e-12) for a, p in zip(truncated, net.core.parameters()))
    net.truncate = None
    net.zero_grad()
    nn.functional.cross_entropy(net(X), y).backward()
    assert not torch.allclose(truncated[1], net.core.weight_hh_l0.grad)  # full BPTT differs


def test_run_sequence_tasks_gives_the_same_numbers_as_one_run_after_another():
    specs = [dict(cell="rnn", task="adding", length=12, num_steps=25, batch_size=16, seed=0),
             dict(cell="lstm", task="sign", length=8, num_steps=30, batch_size=16, seed=1, truncate=3),
             dict(cell="gru", task="sign", length=6, num_steps=15, batch_size=8, seed=2),
             dict(cell="rnn", task="adding", length=10, num_steps=20, optimizer="sgd", lr=0.05, clip=None,
                  recurrent_gain=1.8, batch_size=16, seed=3)]
    together = run_sequence_tasks(specs)
    for spec, run in zip(specs, together):
        alone = run_sequence_task(**spec)
        assert np.array_equal(alone.history.loss, run.history.loss)
        assert alone.score == run.score or (math.isnan(alone.score) and math.isnan(run.score))


def _double(data):
    return tuple(t.double() if t.is_floating_point() else t for t in data)


@pytest.mark.parametrize("task, optimizer", [("sign", "adam"), ("adding", "sgd")])
def test_train_rnns_gives_each_net_the_numbers_of_train_alone(task, optimizer):
    """Side by side, BPTT written out, in float64: each net's loss and gradient-norm curves and final
    weights equal `train` on PyTorch's nn.RNN alone, with lengths, truncation, clipping and seeds per net."""
    nets = [(12, None, 1.0, 0), (7, 3, 0.5, 1), (12, None, None, 2), (4, 2, 0.2, 3)]  # length, truncate, clip, seed
    outputs, loss = (2, "cross_entropy") if task == "sign" else (1, "mse")
    data = [_double(make_sequence_task(task, 48, length, seed=seed)) for length, _, _, seed in nets]
    models = [RecurrentNet(data[0][0].shape[-1], 6, outputs, cell="rnn", seed=seed, truncate=cut).double()
              for _, cut, _, seed in nets]
    alone = [copy.deepcopy(model) for model in models]
    lr = 0.05 if optimizer == "adam" else 0.1
    histories = train_rnns(models, data, lr=lr, num_steps=25, batch_size=16, loss=loss, optimizer=optimizer,
                           clips=[clip for _, _, clip, _ in nets], seeds=[seed for *_, seed in nets])
    assert (histories[3].grad_norm > 0.2).sum() > 5  # net 4's clipping acts
    for model, reference, (X, y), (_, _, clip, seed), history in zip(models, alone, data, nets, histories):
        expected = train(reference, X, y, lr=lr, num_steps=25, batch_size=16, loss=loss, optimizer=optimizer,
                         clip=clip, seed=seed, progress=False)
        assert not history.diverged and len(history.loss) == 25 and history.grad_norm.max() < 100
        assert np.allclose(history.loss, expected.loss, rtol=1e-10, atol=0)
        assert np.allclose(history.grad_norm, expected.grad_norm, rtol=1e-10, atol=0)
        for trained, wanted in zip(model.parameters(), reference.parameters()):
            assert torch.allclose(trained, wanted, rtol=1e-10, atol=1e-12)


def test_train_rnns_a_diverging_net_stops_there_and_the_others_go_on():
    data = [_double(make_sequence_task("sign", 64, 9, seed=seed)) for seed in (0, 1)]
    data[1][0][5, 3, 0] = math.nan  # one poisoned sequence: the loss turns NaN when its batch comes up
    models = [RecurrentNet(1, 5, 2, cell="rnn", seed=seed).double() for seed in (0, 1)]
    alone = [copy.deepcopy(model) for model in models]
    histories = train_rnns(models, data, lr=0.01, num_steps=12, batch_size=16, clips=[1.0, 1.0], seeds=[0, 0])
    expected = [train(reference, X, y, lr=0.01, num_steps=12, batch_size=16, optimizer="adam", clip=1.0,
                      progress=False) for reference, (X, y) in zip(alone, data)]
    assert not histories[0].diverged and len(histories[0].loss) == 12
    assert histories[1].diverged and expected[1].diverged and len(histories[1].loss) == len(expected[1].loss) < 12
    for model, reference, history, wanted in zip(models, alone, histories, expected):
        assert np.allclose(history.loss, wanted.loss, rtol=1e-10, atol=0, equal_nan=True)
        for trained, weights in zip(model.parameters(), reference.parameters()):  # the diverged net: before that step
            assert torch.allclose(trained, weights, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError):
        train_rnns([RecurrentNet(1, 5, 2, cell="lstm")], data[:1], lr=0.01, num_steps=1)
    with pytest.raises(ValueError):
        train_rnns([models[0], RecurrentNet(1, 6, 2, cell="rnn").double()], data, lr=0.01, num_steps=1)
    with pytest.raises(ValueError):
        train_rnns(models, [data[0], (data[1][0][:10], data[1][1][:10])], lr=0.01, num_steps=1)


def test_a_run_gives_the_same_numbers_in_any_group():
    """Vanilla RNNs with Adam train side by side; float rounding apart, each gets what it gets alone, and
    the same spec alone in its group gives exactly `run_sequence_task`'s numbers."""
    specs = [dict(cell="rnn", task="sign", length=length, num_steps=30, batch_size=16, seed=seed)
             for length, seed in [(6, 0), (11, 1), (11, 2)]]
    together = run_sequence_tasks(specs + [dict(cell="lstm", task="sign", length=6, num_steps=5, batch_size=16)])
    assert len(together) == 4 and together[3].model.cell == "lstm"
    for spec, run in zip(specs, together):
        alone = run_sequence_task(**spec)
        assert np.allclose(alone.history.loss, run.history.loss, rtol=1e-5, atol=0)
        assert np.allclose(alone.history.grad_norm, run.history.grad_norm, rtol=1e-4, atol=0)
        assert abs(alone.score - run.score) <= 0.002  # at most 2 of 1,000 test sequences
        assert np.array_equal(alone.history.loss, run_sequence_tasks([spec])[0].history.loss)
