"""course_lib.normalization against PyTorch as the oracle: values, gradients, running statistics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.gradcheck import numerical_gradient, relative_error
from course_lib.normalization import (BatchNorm, batch_norm_backward, batch_norm_forward, layer_norm_backward,
                                      layer_norm_forward, layer_statistics_at_init, train_digits,
                                      weight_scale_sweep)


def _random(shape, generator, scale=1.0, shift=0.0):
    return torch.randn(*shape, dtype=torch.float64, generator=generator) * scale + shift


@pytest.mark.parametrize("shape", [(2, 1), (8, 5), (64, 3), (3, 17)])
def test_batch_norm_matches_torch_values_and_gradients(shape):
    g = torch.Generator().manual_seed(sum(shape))
    X, G = _random(shape, g, 3.0, 1.0), _random(shape, g)
    gamma, beta = _random(shape[1:], g), _random(shape[1:], g)
    Y, cache = batch_norm_forward(X, gamma, beta, eps=1e-3)
    dX, dgamma, dbeta = batch_norm_backward(G, cache)
    leaves = [t.clone().requires_grad_() for t in (X, gamma, beta)]
    Y_torch = F.batch_norm(leaves[0], None, None, leaves[1], leaves[2], training=True, eps=1e-3)
    (Y_torch * G).sum().backward()
    assert torch.allclose(Y, Y_torch, rtol=0, atol=1e-12)
    for ours, leaf in zip((dX, dgamma, dbeta), leaves):
        assert ours.shape == leaf.shape
        assert torch.allclose(ours, leaf.grad, rtol=0, atol=1e-11)


@pytest.mark.parametrize("shape", [(1, 4), (5, 1), (2, 3, 6), (4, 2, 3, 8)])
def test_layer_norm_matches_torch_values_and_gradients(shape):
    g = torch.Generator().manual_seed(len(shape) * 10 + shape[-1])
    X, G = _random(shape, g, 2.0, -1.0), _random(shape, g)
    gamma, beta = _random(shape[-1:], g), _random(shape[-1:], g)
    Y, cache = layer_norm_forward(X, gamma, beta)
    dX, dgamma, dbeta = layer_norm_backward(G, cache)
    leaves = [t.clone().requires_grad_() for t in (X, gamma, beta)]
    Y_torch = F.layer_norm(leaves[0], shape[-1:], leaves[1], leaves[2], eps=1e-5)
    (Y_torch * G).sum().backward()
    assert torch.allclose(Y, Y_torch, rtol=0, atol=1e-12)
    for ours, leaf in zip((dX, dgamma, dbeta), leaves):
        assert ours.shape == leaf.shape
        assert torch.allclose(ours, leaf.grad, rtol=0, atol=1e-11)


def test_float32_inputs_match_torch_in_float32():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(16, 4, generator=g)
    gamma, beta = torch.rand(4, generator=g) + 0.5, torch.randn(4, generator=g)
    assert batch_norm_forward(X, gamma, beta)[0].dtype == torch.float32
    assert torch.allclose(batch_norm_forward(X, gamma, beta)[0], F.batch_norm(X, None, None, gamma, beta, True),
                          atol=1e-5)
    assert torch.allclose(layer_norm_forward(X, gamma, beta)[0], F.layer_norm(X, (4,), gamma, beta), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gradient_check_e12(seed):
    """E12: both backward passes against central differences, float64, relative error < 1e-7."""
    g = torch.Generator().manual_seed(seed)
    for forward, backward, shape in [(batch_norm_forward, batch_norm_backward, (10, 4)),
                                     (layer_norm_forward, layer_norm_backward, (3, 5, 6))]:
        X, G = _random(shape, g, 4.0, 2.0), _random(shape, g)
        gamma, beta = _random(shape[-1:], g), _random(shape[-1:], g)
        dX, dgamma, dbeta = backward(G, forward(X, gamma, beta)[1])
        loss_X = lambda x: (forward(torch.as_tensor(x), gamma, beta)[0] * G).sum().item()  # noqa: E731
        loss_gamma = lambda v: (forward(X, torch.as_tensor(v), beta)[0] * G).sum().item()  # noqa: E731
        loss_beta = lambda v: (forward(X, gamma, torch.as_tensor(v))[0] * G).sum().item()  # noqa: E731
        assert relative_error(numerical_gradient(loss_X, X.numpy().copy()), dX.numpy()) < 1e-7
        assert relative_error(numerical_gradient(loss_gamma, gamma.numpy().copy()), dgamma.numpy()) < 1e-7
        assert relative_error(numerical_gradient(loss_beta, beta.numpy().copy()), dbeta.numpy()) < 1e-7
        # the classic bug (statistics treated as constants) fails the same check
        naive = G * gamma / forward(X, gamma, beta)[1][1]
        assert relative_error(numerical_gradient(loss_X, X.numpy().copy()), naive.numpy()) > 1e-2


def test_inputs_are_not_modified():
    g = torch.Generator().manual_seed(4)
    X, G, gamma, beta = _random((6, 3), g), _random((6, 3), g), _random((3,), g), _random((3,), g)
    copies = [t.clone() for t in (X, G, gamma, beta)]
    for forward, backward in [(batch_norm_forward, batch_norm_backward), (layer_norm_forward, layer_norm_backward)]:
        backward(G, forward(X, gamma, beta)[1])
    assert all(torch.equal(a, b) for a, b in zip((X, G, gamma, beta), copies))


def test_batch_norm_forward_rejects_other_shapes():
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        batch_norm_forward(torch.zeros(2, 3, 4), torch.ones(4), torch.zeros(4))


def test_scale_invariance_of_batch_norm():
    """BN(aWx) = BN(Wx) up to eps, and d/dW shrinks by 1/a: the reason BN tolerates any weight scale."""
    g = torch.Generator().manual_seed(5)
    X, W, R = _random((32, 6), g), _random((4, 6), g), _random((32, 4), g)
    one, _ = batch_norm_forward(X @ W.T, torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    ten, _ = batch_norm_forward(X @ (10 * W).T, torch.ones(4, dtype=torch.float64), torch.zeros(4, dtype=torch.float64))
    assert torch.allclose(one, ten, atol=1e-4)

    def weight_grad(W):
        W = W.clone().requires_grad_()
        (F.batch_norm(X @ W.T, None, None, training=True) * R).sum().backward()
        return W.grad.norm().item()

    assert weight_grad(10 * W) / weight_grad(W) == pytest.approx(0.1, rel=1e-3)


def test_batch_norm_class_matches_nn_batchnorm1d_in_train_and_eval_mode():
    g = torch.Generator().manual_seed(6)
    ours, theirs = BatchNorm(3, momentum=0.2, eps=1e-4), nn.BatchNorm1d(3, momentum=0.2, eps=1e-4, dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        theirs.bias.copy_(torch.tensor([0.0, -1.0, 3.0]))
    ours.gamma, ours.beta = theirs.weight.detach().clone(), theirs.bias.detach().clone()
    for _ in range(20):
        X = _random((int(torch.randint(2, 20, (1,), generator=g)), 3), g, 2.0, 5.0)
        with torch.no_grad():
            assert torch.allclose(ours(X), theirs(X), atol=1e-12)
    assert torch.allclose(ours.running_mean, theirs.running_mean, atol=1e-12)
    assert torch.allclose(ours.running_var, theirs.running_var, atol=1e-12)
    ours.eval()
    theirs.eval()
    X = _random((1, 3), g)
    leaf = X.clone().requires_grad_()
    out = theirs(leaf)
    G = _random((1, 3), g)
    (out * G).sum().backward()
    assert torch.allclose(ours(X), out.detach(), atol=1e-12)
    dX, dgamma, dbeta = ours.backward(G)
    assert torch.allclose(dX, leaf.grad, atol=1e-12)
    assert torch.allclose(dgamma, theirs.weight.grad, atol=1e-12)
    assert torch.allclose(dbeta, theirs.bias.grad, atol=1e-12)


def test_batch_norm_class_backward_in_train_mode_and_errors():
    bn = BatchNorm(2)
    with pytest.raises(RuntimeError, match="before backward"):
        bn.backward(torch.ones(3, 2))
    with pytest.raises(ValueError, match="at least 2 examples"):
        bn(torch.ones(1, 2, dtype=torch.float64))
    g = torch.Generator().manual_seed(7)
    X, G = _random((5, 2), g), _random((5, 2), g)
    bn(X)
    expected = batch_norm_backward(G, batch_norm_forward(X, bn.gamma, bn.beta)[1])
    assert all(torch.allclose(a, b) for a, b in zip(bn.backward(G), expected))


def test_layer_statistics_at_init_reports_every_layer():
    stats = layer_statistics_at_init(4, 16, activation="tanh", norm="batch", std=0.5, batch_size=32, seed=0)
    assert set(stats) == {"grad_norm", "out_grad_norm", "act_std"}
    assert all(v.shape == (4,) and np.isfinite(v).all() for v in stats.values())
    again = layer_statistics_at_init(4, 16, activation="tanh", norm="batch", std=0.5, batch_size=32, seed=0)
    assert all(np.array_equal(stats[k], again[k]) for k in stats)  # seeded


def test_train_digits_and_sweep_return_plain_numbers_and_leave_threads_alone():
    threads = torch.get_num_threads()
    result = train_digits(2, 16, norm="batch", std=0.1, num_steps=5, seed=0)
    assert 0.0 <= result["accuracy"] <= 1.0 and len(result["loss"]) == 5
    accs = weight_scale_sweep([0.1, 1.0], norm=None, depth=2, width=8, num_steps=3)
    assert accs.shape == (2,)
    assert torch.get_num_threads() == threads


def test_normalization_explorer_compares_with_and_without_batchnorm():
    from course_lib.widgets import normalization_explorer

    explorer = normalization_explorer(weight_scale=0.1, depth=8, activation="sigmoid")
    assert explorer.last["kind_plain"] == "vanishing" and explorer.last["kind_batch"] == "healthy"
    data = explorer.update(weight_scale=1.0, activation="tanh")
    assert data["kind_plain"] == "exploding" and data["kind_batch"] == "healthy"
    assert len(data["grad_norms_batch"]) == 8 and explorer.png.startswith(b"\x89PNG")
    assert "BatchNorm" in explorer.verdict.value
