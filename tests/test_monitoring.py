"""GradientMonitor against autograd as the oracle, and its hooks' lifecycle."""

import numpy as np
import pytest
import torch

from course_lib.models import activation_derivative, build_mlp
from course_lib.monitoring import METRICS, UPDATE_SAMPLE, GradientMonitor


def batch(seed=0, n=32, features=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, features, generator=g), torch.randint(0, 3, (n,), generator=g)


def loss_of(net, X, y):
    return torch.nn.functional.cross_entropy(net(X), y)


def hook_count(net):
    count = len(net._forward_pre_hooks) + len(net._forward_hooks)
    for module in net.modules():
        count += len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)
    for p in net.parameters():
        count += len(getattr(p, "_post_accumulate_grad_hooks", None) or {})
    return count


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "gelu", "leaky_relu"])
def test_norms_equal_autograd(activation):
    net = build_mlp(4, 10, activation=activation, in_features=6, out_features=3, seed=0)
    X, y = batch()
    # Oracle: autograd gradients of each block's weight and output.
    outputs = []
    handles = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for b in net.blocks]
    loss = loss_of(net, X, y)
    for h in handles:
        h.remove()
    weights = [b.linear.weight for b in net.blocks]
    expected = torch.autograd.grad(loss, weights + outputs)
    net.zero_grad()
    with GradientMonitor(net) as monitor:
        loss_of(net, X, y).backward()
    w_grads, out_grads = expected[:4], expected[4:]
    assert np.allclose(monitor.latest("grad_norm"), [g.norm().item() for g in w_grads], rtol=1e-5)
    assert np.allclose(monitor.latest("grad_std"), [g.std().item() for g in w_grads], rtol=1e-5)
    assert np.allclose(monitor.latest("out_grad_norm"), [g.norm().item() for g in out_grads], rtol=1e-5)
    assert np.allclose(monitor.latest("act_mean"), [o.mean().item() for o in outputs], rtol=1e-5, atol=1e-7)
    assert np.allclose(monitor.latest("act_std"), [o.std().item() for o in outputs], rtol=1e-5)
    assert np.allclose(monitor.latest("grad_data"),
                       [g.std().item() / w.std().item() for g, w in zip(w_grads, weights)], rtol=1e-5)
    # dead: no example gives the unit a slope >= 1e-6 (layers are stacked by shape: 6->10, then 10->10)
    pre = [b.norm(b.linear(x)) for b, x in zip(net.blocks, [X] + outputs[:-1])]
    slopes = [activation_derivative(activation, z.detach()).abs() for z in pre]
    expected_dead = [(s.amax(dim=0) < 1e-6).float().mean().item() for s in slopes]
    assert np.allclose(monitor.latest("dead"), expected_dead)


def test_update_ratio_matches_the_optimizer_step():
    net = build_mlp(3, 10, activation="tanh", in_features=6, out_features=3, seed=0)
    X, y = batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    before = [b.linear.weight.detach().clone() for b in net.blocks]
    with GradientMonitor(net) as monitor:
        opt.zero_grad()
        loss_of(net, X, y).backward()
        opt.step()
    expected = [((b.linear.weight.detach() - w0).std() / w0.std()).item() for b, w0 in zip(net.blocks, before)]
    assert np.allclose(monitor.latest("update_data"), expected, rtol=1e-5)


def test_saturated_and_dead_fractions():
    sat = build_mlp(2, 50, activation="sigmoid", init="normal", std=20.0, in_features=6, seed=0)
    X, _ = batch()
    with GradientMonitor(sat) as monitor:
        sat(X).sum().backward()
    out = torch.sigmoid(sat.blocks[0].linear(X))
    expected = ((out < 0.03) | (out > 0.97)).float().mean().item()
    assert monitor.latest("saturated")[0] == pytest.approx(expected)
    assert monitor.latest("saturated")[0] > 0.5

    dead = build_mlp(2, 20, activation="relu", init="he", in_features=6, seed=0)
    with torch.no_grad():
        dead.blocks[0].linear.bias[:10] = -100.0  # half the units of layer 1 never fire
    with GradientMonitor(dead) as monitor:
        dead(X).sum().backward()
    assert monitor.latest("dead")[0] == pytest.approx(0.5)
    assert np.isnan(monitor.latest("saturated")).all()  # not defined for ReLU


def test_hooks_are_removed_on_exit_and_on_error():
    net = build_mlp(3, 8, in_features=6, out_features=3, seed=0)
    X, y = batch()
    assert hook_count(net) == 0
    with GradientMonitor(net):
        assert hook_count(net) > 0
        loss_of(net, X, y).backward()
    assert hook_count(net) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with GradientMonitor(net):
            raise RuntimeError("boom")
    assert hook_count(net) == 0


def test_records_training_steps_only():
    net = build_mlp(2, 8, in_features=6, out_features=3, seed=0)
    X, y = batch()
    with GradientMonitor(net, every=2) as monitor:
        for _ in range(5):
            loss_of(net, X, y).backward()
        with torch.no_grad():
            net(X)  # evaluation is not a step
    arrays = monitor.as_arrays()
    assert monitor.steps == [0, 2, 4]
    assert set(arrays) == set(METRICS) and arrays["grad_norm"].shape == (3, 2)


def test_every_k_records_the_same_numbers_with_layer_hooks_only_on_recorded_passes():
    X, y = batch()
    monitors, hooked = {}, []
    for every in (1, 3):
        net = build_mlp(3, 10, activation="tanh", in_features=6, out_features=3, seed=0)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        with GradientMonitor(net, every=every) as monitors[every]:
            for _ in range(7):
                opt.zero_grad()
                loss_of(net, X, y).backward()
                opt.step()
                if every == 3:  # the hooks of a recorded pass stay until the next pass starts
                    hooked.append(sum(len(block._forward_hooks) for block in net.blocks))
        assert hook_count(net) == 0
    assert monitors[3].steps == [0, 3, 6]
    assert [count > 0 for count in hooked] == [True, False, False] * 2 + [True]
    every_step, every_third = monitors[1].as_arrays(), monitors[3].as_arrays()
    for metric in METRICS:
        np.testing.assert_allclose(every_third[metric], every_step[metric][[0, 3, 6]], rtol=1e-6, err_msg=metric)


def test_report_names_the_problem():
    X, y = batch(features=16)
    deep_sigmoid = build_mlp(12, 32, activation="sigmoid", init="standard", in_features=16, out_features=3, seed=0)
    with GradientMonitor(deep_sigmoid) as monitor:
        loss_of(deep_sigmoid, X, y).backward()
    assert "vanishing" in monitor.report() and monitor.diagnose()[0].kind == "vanishing"
    healthy = build_mlp(6, 32, activation="relu", init="he", in_features=16, out_features=3, seed=0)
    with GradientMonitor(healthy) as monitor:
        loss_of(healthy, X, y).backward()
    assert monitor.diagnose() == [] and "healthy" in monitor.report()


def test_clear_errors():
    net = build_mlp(2, 8, seed=0)
    monitor = GradientMonitor(net)
    with pytest.raises(RuntimeError, match="nothing recorded yet"):
        monitor.latest("grad_norm")
    with pytest.raises(ValueError, match="unknown metric"):
        monitor.latest("gradnorm")
    with pytest.raises(ValueError, match="no layers to watch"):
        GradientMonitor(torch.nn.ReLU())
    with pytest.raises(ValueError, match="unknown metrics"):
        GradientMonitor(net, metrics=("grad_norm", "gradnorm"))
    with pytest.raises(ValueError, match="not a string"):
        GradientMonitor(net, metrics="grad_norm")


def test_metrics_limits_the_work_and_leaves_the_rest_nan():
    net = build_mlp(3, 10, activation="sigmoid", in_features=6, out_features=3, seed=0)
    X, y = batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    with GradientMonitor(net) as full:
        loss_of(net, X, y).backward()
    opt.zero_grad()
    with GradientMonitor(net, metrics=("grad_norm", "saturated", "act_std")) as few:
        loss_of(net, X, y).backward()
        opt.step()
    for metric in METRICS:
        if metric in ("grad_norm", "saturated", "act_std"):
            np.testing.assert_allclose(few.latest(metric), full.latest(metric), rtol=1e-6)
        else:
            assert np.isnan(few.latest(metric)).all(), metric


@pytest.mark.parametrize("flush", [True, False])
def test_tiny_gradients_are_measured_not_rounded_to_zero(flush):
    """Gradients of 1e-24 are normal float32 numbers; their squares (1e-48) are not."""
    from course_lib.seeding import flush_denormals

    net = build_mlp(3, 10, activation="tanh", in_features=6, out_features=3, seed=0)
    X, y = batch()
    with flush_denormals(flush), GradientMonitor(net) as monitor:
        (1e-24 * loss_of(net, X, y)).backward()
    w_grads = [b.linear.weight.grad for b in net.blocks]
    assert all(g.abs().max() > 1e-30 for g in w_grads)  # the oracle itself did not underflow
    np.testing.assert_allclose(monitor.latest("grad_norm"), [g.double().norm().item() for g in w_grads], rtol=1e-6)
    np.testing.assert_allclose(monitor.latest("grad_std"), [g.double().std().item() for g in w_grads], rtol=1e-5)
    assert (monitor.latest("out_grad_norm") > 0).all()


def test_flush_denormals_restores_the_threads_mode():
    from course_lib.seeding import flush_denormals, flushing_denormals

    torch.set_flush_denormal(False)
    with flush_denormals():
        assert flushing_denormals() and (torch.tensor([1e-39]) * 1).item() == 0
    assert not flushing_denormals()
    torch.set_flush_denormal(True)
    with flush_denormals(False):
        assert not flushing_denormals()
    assert flushing_denormals()


def _reference_statistics(net, X, y, lr=0.1):
    """Per-layer statistics computed the straightforward way, one layer at a time, norms in float64."""
    outputs = []
    handles = [b.register_forward_hook(lambda m, i, o: outputs.append(o)) for b in net.blocks]
    loss = loss_of(net, X, y)
    for h in handles:
        h.remove()
    for o in outputs:
        o.retain_grad()
    net.zero_grad()
    loss.backward()
    weights = [b.linear.weight for b in net.blocks]
    before = [w.detach().clone() for w in weights]

    def std(t):
        return float(t.double().std())

    stats = {
        "grad_norm": [float(w.grad.double().norm()) for w in weights],
        "grad_std": [std(w.grad) for w in weights],
        "out_grad_norm": [float(o.grad.double().norm()) for o in outputs],
        "act_mean": [float(o.detach().double().mean()) for o in outputs],
        "act_std": [std(o.detach()) for o in outputs],
        "grad_data": [std(w.grad) / std(w.detach()) for w in weights],
    }
    with torch.no_grad():
        for w in weights:
            w -= lr * w.grad
    # layers of more than 4,096 weights: the same 4,096 sampled positions as the monitor
    samples = [torch.randperm(w.numel(), generator=torch.Generator().manual_seed(k))[:UPDATE_SAMPLE]
               if w.numel() > UPDATE_SAMPLE else slice(None) for k, w in enumerate(weights)]
    stats["update_data"] = [std((w.detach() - w0).reshape(-1)[s]) / std(w0.reshape(-1)[s])
                            for w, w0, s in zip(weights, before, samples)]
    return stats


@pytest.mark.parametrize(("depth", "width", "activation"), [(5, 32, "relu"), (4, 128, "tanh"), (3, 48, "sigmoid")])
def test_batched_statistics_equal_a_per_layer_float64_reference(depth, width, activation):
    """Layers stacked into shared reductions (small ones) or reduced one by one (large ones), sums in float32
    with float64 where they could lose digits: the same numbers as float64 layer by layer, to 1e-6 (means
    to 1e-6 of the spread)."""
    X, y = batch(n=64, features=width)
    reference_net = build_mlp(depth, width, activation=activation, in_features=width, out_features=3, seed=1)
    net = build_mlp(depth, width, activation=activation, in_features=width, out_features=3, seed=1)
    expected = _reference_statistics(reference_net, X, y)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with GradientMonitor(net) as monitor:
        opt.zero_grad()
        loss_of(net, X, y).backward()
        opt.step()
    for metric, values in expected.items():
        # a mean is a float32 sum (as before): exact to 1e-6 of the values' spread, not of a mean near 0
        atol = 1e-6 * np.asarray(expected["act_std"]) if metric == "act_mean" else 0
        assert (np.abs(monitor.latest(metric) - values) <= atol + 1e-6 * np.abs(values)).all(), metric


def test_a_layer_whose_mean_dwarfs_its_spread_keeps_its_std():
    """Sigmoid activations near 0.5 with a std of ~1e-4: sum(x**2) - n * mean**2 would cancel to noise."""
    net = build_mlp(2, 64, activation="sigmoid", init="normal", std=1e-6, in_features=6, out_features=3, seed=0)
    X, y = batch()
    with GradientMonitor(net) as monitor:
        loss_of(net, X, y).backward()
    acts = torch.sigmoid(net.blocks[0].linear(X)).detach().double()
    assert monitor.latest("act_std")[0] == pytest.approx(float(acts.std()), rel=1e-5)


class _Fixed(torch.nn.Module):
    """Stands in for a block's activation: outputs fixed values (and keeps the graph)."""

    def __init__(self, values):
        super().__init__()
        self.values = values

    def forward(self, z):
        return self.values.to(z.dtype) + 0 * z[:, :1]


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_saturated_counts_the_edges_as_a_boolean_comparison_would(activation, dtype):
    """The fractions count with float comparisons written in place; values at and next to the
    thresholds count exactly as `(a < 0.03) | (a > 0.97)` and `|a| > 0.97` do."""
    edges = torch.tensor([0.03, 0.97, -0.97], dtype=dtype)
    values = torch.cat([edges, torch.nextafter(edges, torch.tensor(2.0, dtype=dtype)),
                        torch.nextafter(edges, torch.tensor(-2.0, dtype=dtype)),
                        torch.tensor([0.0, 0.5, 1.0, -1.0, float("nan")], dtype=dtype)])
    net = build_mlp(1, len(values), activation=activation, in_features=6, seed=0).to(dtype)
    net.blocks[0].act = _Fixed(values)
    X, _ = batch()
    acts = net(X.to(dtype))
    expected = ((acts < 0.03) | (acts > 0.97)) if activation == "sigmoid" else acts.abs() > 0.97
    with GradientMonitor(net, metrics=["saturated"]) as monitor:
        net(X.to(dtype)).sum().backward()
    assert monitor.latest("saturated")[0] * acts.numel() == pytest.approx(expected.sum().item(), abs=1e-3)


@pytest.mark.parametrize("metrics, hooked", [(("grad_norm", "grad_std"), 0), (("grad_norm", "act_std"), 3),
                                             (("out_grad_norm",), 3), (("dead", "out_grad_norm"), 3)])
def test_layers_get_forward_hooks_only_for_the_metrics_that_read_them(metrics, hooked):
    """||dL/dW|| alone is read after backward: no layer then takes PyTorch's slow hooked call path."""
    net = build_mlp(3, 10, activation="relu", in_features=6, out_features=3, seed=0)
    X, y = batch()
    with GradientMonitor(net) as full:
        loss_of(net, X, y).backward()
    net.zero_grad()
    with GradientMonitor(net, metrics=metrics, keep_values=False) as few:
        assert sum(bool(block._forward_hooks) or bool(block.act._forward_hooks) for block in net.blocks) == hooked
        loss_of(net, X, y).backward()
    for metric in metrics:
        np.testing.assert_allclose(few.latest(metric), full.latest(metric), rtol=1e-6, err_msg=metric)
    assert not any(block._forward_hooks or block.act._forward_hooks for block in net.blocks)
