"""Notebook 07's experiments re-run over several seeds, asserting the thresholds the notebook asserts.

E9 (the expensive one, about 5 s of CPU per seed) runs on three seeds other
than the notebook's.
"""

import math

import numpy as np
import pytest
import torch

from autograder.build import read_source, solution_cells
from course_lib.residual import (
    block_jacobians,
    input_gradients,
    jacobian_product_norms,
    lag1_autocorrelation,
    resnet_gradient_norms,
    train_resnets,
    transformer_gradient_norms,
)

SEEDS = [0, 1, 2, 3, 4]


@pytest.mark.parametrize("seed", SEEDS)
def test_residual_jacobian_is_identity_plus_branch_and_its_product_does_not_vanish(seed):
    J = block_jacobians(width=16, activation="tanh", gain=1.0, seed=seed)
    assert np.abs(J["residual"] - J["plain"] - J["identity"]).max() < 1e-12
    assert np.linalg.svd(J["plain"], compute_uv=False).min() < 0.1
    plain = jacobian_product_norms(50, residual=False, gain=0.5, seed=seed)
    residual = jacobian_product_norms(50, residual=True, gain=0.5, seed=seed)
    assert 0.45 < plain[0] ** (1 / 50) < 0.55  # about 0.5 per block: ~1e-15 over 50 blocks
    assert 8 < residual[0] < 90  # grows about 20-fold (15 to 45 on seeds 0-4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_e9_degradation_plain_56_trains_worse_than_plain_20_residual_56_does_not(seed):
    """E9 (He et al. 2016): digits, width 32, BN-ReLU blocks, He init, SGD momentum 0.9, lr 0.05, 200 steps."""
    results = train_resnets([(20, False), (56, False), (56, True)], num_steps=200, seed=seed)  # as the notebook
    error = dict(zip(["plain-20", "plain-56", "residual-56"], [result["train_error"] for result in results]))
    assert error["plain-56"] > 0.6, error  # near chance (0.9)
    assert error["plain-56"] - error["plain-20"] > 0.3, error
    assert error["residual-56"] < 0.05, error


@pytest.mark.parametrize("seed", SEEDS)
def test_e10_shattered_gradients(seed):
    """E10 (Balduzzi et al. 2017): lag-1 autocorrelation of d(output)/d(input), width 200, BN."""
    autocorrelation = {(depth, residual): lag1_autocorrelation(input_gradients(depth, residual=residual, seed=seed)[1])
                       for depth, residual in [(1, False), (24, False), (24, True)]}
    assert autocorrelation[(1, False)] > 0.85
    assert abs(autocorrelation[(24, False)]) < 0.2
    assert autocorrelation[(24, True)] > 0.6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_e10_by_depth(seed):
    depths = [1, 2, 4, 8, 12, 16, 24]
    plain = [lag1_autocorrelation(input_gradients(d, residual=False, seed=seed)[1]) for d in depths]
    residual = [lag1_autocorrelation(input_gradients(d, residual=True, seed=seed)[1]) for d in depths]
    assert plain[-1] < plain[0] - 0.7
    assert abs(plain[depths.index(16)]) < 0.2  # noise from 16 layers on
    assert min(residual) > 0.6


@pytest.mark.parametrize("seed", SEEDS)
def test_transformer_needs_residuals_and_layernorm(seed):
    ratio = {}
    for residual, norm in [(True, True), (True, False), (False, True), (False, False)]:
        grads = transformer_gradient_norms(24, residual=residual, norm=norm, seed=seed)
        ratio[(residual, norm)] = grads[0] / grads[-1]
    assert 0.1 < ratio[(True, True)] < 10 and 0.1 < ratio[(True, False)] < 10  # same order as the top block
    assert ratio[(False, True)] < 0.5  # LayerNorm only: fades (1/60 to 1/5 at 24 blocks) ...
    deep = transformer_gradient_norms(96, residual=False, norm=True, seed=seed)
    assert deep[0] / deep[-1] < 1e-4  # ... and vanishes at 96 blocks
    assert 0.04 < ratio[(False, False)] ** (1 / 23) < 0.08  # neither: about 1/18 per block, ~1e-29 over 24
    wide = transformer_gradient_norms(48, residual=True, norm=False, seed=seed)
    assert 50 < wide[0] / wide[-1] < 200  # residual only, 48 blocks: grows about 100-fold toward the input


def _official(grade_id: str) -> dict:
    """Notebook 07's official answer to one question, executed from the authored source (never copied here)."""
    namespace = {"np": np, "torch": torch, "math": math}
    exec(solution_cells(read_source("07_resnets")[0])[grade_id], namespace)  # noqa: S102 - our own solution
    return namespace


@pytest.mark.parametrize("seed", range(10))
def test_question_5_verdicts_hold_for_every_seed(seed):
    """Question 5 is graded on networks from other seeds: the official answer's verdicts hold on 10 of 10,
    far from the thresholds (plain-8 healthy, plain-56 exploding with BatchNorm, residual-56 healthy)."""
    diagnose_gradient = _official("q5_diagnose_gradient")["diagnose_gradient"]
    expected = {(8, False): "healthy", (56, False): "exploding", (56, True): "healthy"}
    for (depth, residual), verdict in expected.items():
        grads = resnet_gradient_norms(depth, residual=residual, seed=seed)
        assert diagnose_gradient(grads) == verdict, (depth, residual, grads[0] / grads[-1])
        ratio = grads[0] / grads[-1]
        assert ratio > 1e3 or ratio < 50, ratio  # far from the boundary
        if not residual and depth == 56:
            assert 1e4 < ratio < 1e5, ratio  # section 2: "about 2e4 here, 1e4 to 1e5 for other seeds"


def test_residual_explorer_verdicts():
    from course_lib.widgets import residual_explorer

    explorer = residual_explorer(depth=56, architecture="plain")
    assert explorer.last["kind"] == "exploding"
    data = explorer.update(architecture="residual")
    assert data["kind"] == "healthy" and len(data["grad_norms"]) == 27
    assert explorer.update(depth=8, architecture="plain")["kind"] == "healthy"
    assert explorer.png.startswith(b"\x89PNG") and "block 1 receives" in explorer.verdict.value
