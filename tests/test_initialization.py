"""Initialization schemes: their statistics match their formulas and torch.nn.init."""

import math

import pytest
import torch

from course_lib.initialization import (ALIASES, SCHEMES, calculate_gain, init_weight_, initialize_,
                                       orthogonal_, resolve_scheme)

FAN_OUT, FAN_IN = 300, 500


def draw(scheme, **kwargs):
    return init_weight_(torch.empty(FAN_OUT, FAN_IN), scheme, generator=torch.Generator().manual_seed(0), **kwargs)


def torch_draw(fn, *args, **kwargs):
    torch.manual_seed(1)
    return fn(torch.empty(FAN_OUT, FAN_IN), *args, **kwargs)


@pytest.mark.parametrize("scheme, expected_std, oracle", [
    ("default", 1 / math.sqrt(3 * FAN_IN),
     lambda: torch.nn.Linear(FAN_IN, FAN_OUT).weight.detach()),
    ("standard", 1 / math.sqrt(3 * FAN_IN), None),
    ("xavier", math.sqrt(2 / (FAN_IN + FAN_OUT)), lambda: torch_draw(torch.nn.init.xavier_uniform_)),
    ("xavier_normal", math.sqrt(2 / (FAN_IN + FAN_OUT)), lambda: torch_draw(torch.nn.init.xavier_normal_)),
    ("he", math.sqrt(2 / FAN_IN), lambda: torch_draw(torch.nn.init.kaiming_normal_, nonlinearity="relu")),
    ("he_uniform", math.sqrt(2 / FAN_IN), lambda: torch_draw(torch.nn.init.kaiming_uniform_, nonlinearity="relu")),
    ("lecun", math.sqrt(1 / FAN_IN), None),
    ("small_normal", 0.01, None),
])
def test_std_matches_formula_and_torch(scheme, expected_std, oracle):
    weight = draw(scheme)
    assert abs(weight.mean().item()) < 0.02 * expected_std * 10
    assert weight.std().item() == pytest.approx(expected_std, rel=0.01)
    if oracle is not None:
        assert weight.std().item() == pytest.approx(oracle().std().item(), rel=0.02)


@pytest.mark.parametrize("scheme, bound", [("default", 1 / math.sqrt(FAN_IN)), ("standard", 1 / math.sqrt(FAN_IN)),
                                           ("xavier", math.sqrt(6 / (FAN_IN + FAN_OUT))),
                                           ("he_uniform", math.sqrt(6 / FAN_IN))])
def test_uniform_schemes_respect_their_bound(scheme, bound):
    weight = draw(scheme)
    assert weight.abs().max().item() <= bound
    assert weight.abs().max().item() > 0.99 * bound


def test_gain_scales_std():
    assert draw("xavier", activation="tanh").std().item() == pytest.approx(
        5 / 3 * math.sqrt(2 / (FAN_IN + FAN_OUT)), rel=0.01)
    assert draw("he", gain=1.0).std().item() == pytest.approx(math.sqrt(1 / FAN_IN), rel=0.01)
    assert draw("normal", std=0.3).std().item() == pytest.approx(0.3, rel=0.01)


@pytest.mark.parametrize("shape", [(64, 64), (32, 100), (100, 32)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape):
    weight = orthogonal_(torch.empty(*shape, dtype=torch.float64), gain=2.0,
                         generator=torch.Generator().manual_seed(0))
    rows, cols = shape
    gram = weight @ weight.T if rows <= cols else weight.T @ weight
    assert torch.allclose(gram, 4.0 * torch.eye(min(shape), dtype=torch.float64), atol=1e-12)
    oracle = torch.nn.init.orthogonal_(torch.empty(*shape, dtype=torch.float64), gain=2.0)
    assert torch.linalg.svdvals(weight) == pytest.approx(torch.linalg.svdvals(oracle), abs=1e-10)


@pytest.mark.parametrize("name", ["linear", "sigmoid", "tanh", "relu", "leaky_relu", "selu"])
def test_gains_match_torch(name):
    assert calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))


def test_zero_and_bias_handling():
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    initialize_(net, "he", generator=torch.Generator().manual_seed(0))
    assert all((m.bias == 0).all() for m in net)
    initialize_(net, "default", generator=torch.Generator().manual_seed(0))
    assert all((m.bias != 0).any() for m in net)
    initialize_(net, "zeros")
    assert all((m.weight == 0).all() for m in net)


def test_names_and_errors():
    assert {resolve_scheme(alias) for alias in ALIASES} <= set(SCHEMES)
    with pytest.raises(ValueError, match="unknown init scheme 'heinit'.*choose one of"):
        resolve_scheme("heinit")
    with pytest.raises(ValueError, match="needs std"):
        draw("normal")
    with pytest.raises(ValueError, match="unknown activation"):
        calculate_gain("swishy")
    with pytest.raises(ValueError, match="at least 2 dims"):
        init_weight_(torch.empty(5), "he")


def test_seeded_draws_repeat():
    assert torch.equal(draw("he"), draw("he"))
