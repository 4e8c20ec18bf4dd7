"""The one vanishing/exploding verdict (course_lib.verdicts), and that the monitor and the explorers use it."""

import doctest
import math

import pytest

from course_lib import verdicts
from course_lib.verdicts import EXPLODING_RATIO, VANISHING_RATIO, classify_ratio, gradient_ratio, gradient_verdict


def test_docstring_examples():
    assert doctest.testmod(verdicts, raise_on_error=True).attempted >= 2


@pytest.mark.parametrize("ratio,kind", [(0.0, "vanishing"), (0.009, "vanishing"), (VANISHING_RATIO, "healthy"),
                                        (1.0, "healthy"), (EXPLODING_RATIO, "healthy"), (101.0, "exploding"),
                                        (math.inf, "exploding")])
def test_thresholds_are_strict_two_decades(ratio, kind):
    assert classify_ratio(ratio) == kind


def test_ends_that_give_no_ratio():
    assert math.isnan(gradient_ratio([1.0, 0.0])) and gradient_verdict([1.0, 0.0])[1] == "vanishing"
    for bad in (math.nan, math.inf):
        assert math.isnan(gradient_ratio([bad, 1.0])) and math.isnan(gradient_ratio([1.0, bad]))
        assert gradient_verdict([1.0, 2.0, bad])[1] == "non-finite"
    assert gradient_verdict([0.0, 1.0]) == (0.0, "vanishing")  # layer 1 got nothing: vanishing, ratio 0
    assert gradient_verdict([3.0, 1.0], healthy="stable") == (3.0, "stable")


def test_the_monitor_and_the_explorers_judge_with_it(monkeypatch):
    """Moving the thresholds moves every verdict: nothing keeps a copy."""
    import torch

    from course_lib.models import build_mlp
    from course_lib.monitoring import GradientMonitor
    from course_lib.widgets import chain

    net = build_mlp(6, 16, activation="tanh", out_features=3, seed=0)
    with GradientMonitor(net) as monitor:
        torch.nn.functional.cross_entropy(net(torch.randn(32, 16)), torch.randint(0, 3, (32,))).backward()
    explorer = chain.chain_explorer(depth=10, factor=0.9)
    try:
        assert explorer.last["kind"] == "stable" and not [f for f in monitor.diagnose() if f.kind == "vanishing"]
        monkeypatch.setattr(verdicts, "VANISHING_RATIO", 10.0)  # now every ratio below 10 is vanishing
        assert [f for f in monitor.diagnose() if f.kind == "vanishing"]
        explorer.clear_cache()
        assert explorer.update(depth=11)["kind"] == "vanishing"
    finally:
        explorer.close()
