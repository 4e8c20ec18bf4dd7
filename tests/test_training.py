"""The training loop, datasets, gradient checking and chains."""

import math

import numpy as np
import pytest
import torch

from course_lib import datasets
from course_lib.chains import orthogonal_chain_gradients, random_product_norms, sigmoid_chain_gradient
from course_lib.gradcheck import numerical_gradient, relative_error, relative_errors, sigmoid_layer_backward
from course_lib.models import build_mlp
from course_lib.training import SGD, Adam, AdamW, accuracy, train


def test_train_learns_circles_and_is_seeded(capsys):
    X, y = datasets.make_circles(400, seed=0)
    runs = []
    for _ in range(2):
        net = build_mlp(2, 32, activation="tanh", init="xavier", in_features=2, out_features=2, seed=0)
        runs.append(train(net, X, y, lr=0.1, num_steps=300, batch_size=64, momentum=0.9, progress=False))
    assert np.array_equal(runs[0].loss, runs[1].loss)
    assert runs[0].final_loss < 0.5 * runs[0].loss[0]
    assert accuracy(net, X, y) > 0.9
    assert capsys.readouterr().err == ""  # progress=False prints nothing


OPTIMIZERS = [  # (ours, PyTorch's, options): each ours must give PyTorch's numbers, bit for bit
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=5e-4)),
    (Adam, torch.optim.Adam, dict(lr=3e-3)),
    (Adam, torch.optim.Adam, dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=1e-3)),
    (AdamW, torch.optim.AdamW, dict()),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.1)),
]


@pytest.mark.parametrize("ours, theirs, options", OPTIMIZERS)
def test_optimizers_match_torch_optim_bit_for_bit(ours, theirs, options):
    X, y = datasets.load_digits()
    nets = [build_mlp(3, 32, activation="tanh", init="xavier", in_features=64, out_features=10, seed=0)
            for _ in range(2)]
    for net in nets:  # a frozen layer (no gradient) and a second group with its own learning rate
        net.blocks[0].requires_grad_(False)
    groups = [[{"params": list(net.blocks[1:].parameters())},
               {"params": list(net.head.parameters()), "lr": 0.5 * options.get("lr", 1e-3)}] for net in nets]
    optimizers = [ours(groups[0], **options), theirs(groups[1], **options)]
    for step in range(6):
        for net, optimizer in zip(nets, optimizers):
            optimizer.zero_grad(set_to_none=step % 2 == 0)
            batch = slice(step * 64, (step + 1) * 64)
            torch.nn.functional.cross_entropy(net(X[batch]), y[batch]).backward()
            optimizer.step()
    moved = 0
    for mine, reference, start in zip(nets[0].parameters(), nets[1].parameters(),
                                      build_mlp(3, 32, activation="tanh", init="xavier", in_features=64,
                                                out_features=10, seed=0).parameters()):
        assert torch.equal(mine, reference)
        moved += not torch.equal(mine, start)
    assert moved == 6  # every trainable weight and bias moved (the frozen layer's two did not)


@pytest.mark.parametrize("clip", [None, 1.0])
def test_train_with_our_optimizers_equals_torch_optim(clip):
    X, y = datasets.make_spirals(300, seed=0)
    losses = []
    for optimizer in ("sgd", torch.optim.SGD, "adam", torch.optim.Adam):
        net = build_mlp(3, 16, activation="relu", init="he", in_features=2, out_features=3, seed=0)
        if not isinstance(optimizer, str):
            optimizer = optimizer(net.parameters(), lr=0.05, **({"momentum": 0.9} if optimizer is torch.optim.SGD
                                                                else {}))
        losses.append(train(net, X, y, lr=0.05, momentum=0.9, num_steps=30, batch_size=64, optimizer=optimizer,
                            clip=clip, progress=False).loss)
    assert np.array_equal(losses[0], losses[1]) and np.array_equal(losses[2], losses[3])
    assert not np.array_equal(losses[0], losses[2])


def test_clipping_limits_the_applied_step():
    X, y = datasets.make_spirals(300, seed=0)
    net = build_mlp(3, 16, activation="relu", init="he", in_features=2, out_features=3, seed=0)
    before = [p.detach().clone() for p in net.parameters()]
    history = train(net, X, y, lr=1.0, num_steps=1, batch_size=300, clip=0.01, progress=False)
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(net.parameters(), before)]).norm().item()
    assert history.grad_norm[0] > 0.01  # the raw gradient was larger...
    assert step == pytest.approx(0.01, rel=1e-4)  # ...and SGD moved by lr * clip


def test_divergence_stops_and_is_reported():
    X, y = datasets.make_spirals(300, seed=0)
    net = build_mlp(4, 32, activation="relu", init="he", in_features=2, out_features=3, seed=0, weight_scale=3.0)
    history = train(net, X, y, lr=50.0, num_steps=200, progress=False)
    assert history.diverged and len(history.loss) < 200 and math.isnan(history.final_loss)


def test_monitor_inside_training():
    X, y = datasets.load_digits()
    net = build_mlp(3, 32, activation="sigmoid", init="standard", in_features=64, out_features=10, seed=0)
    history = train(net, X, y, lr=0.1, num_steps=20, monitor=5, progress=False)
    assert history.layers["grad_norm"].shape == (4, 3)
    assert np.isfinite(history.layers["update_data"]).all()


def test_bad_arguments():
    X, y = datasets.make_circles(50)
    net = build_mlp(2, 8, in_features=2, out_features=2, seed=0)
    with pytest.raises(ValueError, match="different numbers of examples"):
        train(net, X, y[:10], lr=0.1, num_steps=1, progress=False)
    with pytest.raises(ValueError, match="optimizer must be"):
        train(net, X, y, lr=0.1, num_steps=1, optimizer="rmsprop", progress=False)


def test_datasets_are_seeded_and_shaped():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,) and 0 <= X.min() and X.max() <= 1
    for make in (datasets.make_spirals, datasets.make_circles):
        a, b = make(300, seed=3), make(300, seed=3)
        assert torch.equal(a[0], b[0]) and not torch.equal(a[0], make(300, seed=4)[0])
    X, y = datasets.make_sign_memory(500, 20, seed=0)
    assert X.shape == (500, 20, 1) and torch.equal((X[:, 0, 0] > 0).long(), y)
    X, y = datasets.make_adding_problem(20000, 30, seed=0)
    assert (X[:, :, 1].sum(dim=1) == 2).all()
    assert ((y - 1.0) ** 2).mean().item() == pytest.approx(1 / 6, rel=0.03)  # the baseline


def test_numerical_gradient_matches_autograd():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(4, 6, dtype=torch.float64, generator=g)
    x0 = torch.randn(6, dtype=torch.float64, generator=g)
    x = x0.clone().requires_grad_()
    torch.sigmoid(W @ x).prod().backward()
    numeric = numerical_gradient(lambda v: torch.sigmoid(W @ torch.as_tensor(v)).prod().item(), x0.numpy().copy())
    assert relative_error(numeric, x.grad.numpy()) < 1e-7
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    assert relative_error([1.0], [1.1]) == pytest.approx(0.1 / 2.1)
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(np.zeros(2), np.zeros(3))


def test_relative_error_is_per_tensor():
    """A list or dict of tensors gets one normaliser per tensor: a small tensor's error is not hidden."""
    big, small = np.array([1.0, -2.0]), np.array([1e-9, 2e-9])
    wrong_small = 2 * small
    assert relative_errors([big, small], [big, wrong_small]) == pytest.approx([0.0, 1 / 3])
    assert relative_error([big, small], [big, wrong_small]) == pytest.approx(1 / 3)
    assert relative_error({"W1": small, "W2": big}, {"W2": big, "W1": wrong_small}) == pytest.approx(1 / 3)
    flat = relative_error(np.concatenate([big, small]), np.concatenate([big, wrong_small]))
    assert flat < 1e-9  # what one shared normaliser would have reported
    assert relative_error([torch.ones(2), torch.zeros(3)], [torch.ones(2), torch.zeros(3)]) == 0.0
    with pytest.raises(ValueError, match="numbers of tensors differ"):
        relative_errors([big], [big, small])
    with pytest.raises(ValueError, match="names differ"):
        relative_errors({"a": big}, {"b": big})


def test_sigmoid_layer_backward_matches_autograd_and_its_bug_does_not():
    g = torch.Generator().manual_seed(3)
    W = torch.randn(4, 5, dtype=torch.float64, generator=g, requires_grad=True)
    x, r = torch.randn(5, dtype=torch.float64, generator=g), torch.randn(4, dtype=torch.float64, generator=g)
    (r * torch.sigmoid(W @ x)).sum().backward()
    assert relative_error(sigmoid_layer_backward(W.detach(), x, r), W.grad) < 1e-12
    assert relative_error(sigmoid_layer_backward(W.detach(), x, r, forget_slope=True), W.grad) > 0.3


def test_chains_match_their_formulas():
    assert sigmoid_chain_gradient(10) == pytest.approx(0.25**10, rel=1e-12)
    norms = orthogonal_chain_gradients(30, 1.2, seed=3)
    assert norms == pytest.approx(1.2 ** (30 - np.arange(31)), rel=1e-9)
    log_slope = np.log(random_product_norms(40, 0.7, trials=50, seed=1)[:, -1]).mean() / 40
    assert log_slope == pytest.approx(math.log(0.7) - 1 / 128, abs=0.02)
