"""What `GradientMonitor.diagnose` says about one recorded step: findings from its per-layer measurements."""

import math
from dataclasses import dataclass

import numpy as np

from ..verdicts import classify_ratio, gradient_ratio


@dataclass(frozen=True)
class Finding:
    """One diagnosis: `kind` in vanishing/exploding/non-finite/dead/saturated/slow-updates/large-updates."""

    kind: str
    layer: int | None
    value: float
    message: str


def non_finite_finding(names: list[str], index: int, value: float, what: str) -> Finding:
    """Layer `index` measured a NaN/inf `value` in its `what` (activations, gradients, ...)."""
    return Finding("non-finite", index + 1, value,
                   f"{names[index]} has non-finite {what} ({value}): exploding "
                   "(or a NaN loss); lower the learning rate or the init scale, or clip gradients")


def no_gradient_finding(names: list[str], weight_grads: np.ndarray, arriving: float, on_weights: bool) -> Finding:
    """The last layer gets no gradient: `arriving` is ||dL/dh|| at its output (0 when not measured),
    `on_weights` whether the judged gradients are the weight gradients `weight_grads`."""
    # Say only what both printed measures show: a gradient can reach a layer's output and
    # still give its weights none (every unit dead, or all-zero inputs).
    if arriving > 0 and on_weights:
        below = ", nor do the layers below it" if not weight_grads[:-1].any() else ""
        message = (f"{arriving:.1e} arrives at {names[-1]}'s output ||dL/dh|| and stops there: its "
                   f"weights get no gradient (||dL/dW|| = 0){below}")
    else:
        message = f"{names[-1]} receives no gradient at all: nothing can learn"
    return Finding("vanishing", len(names), 0.0, message)


def ratio_findings(names: list[str], weight_grads: np.ndarray, flow: np.ndarray) -> list[Finding]:
    """Vanishing or exploding, judged on the more extreme first/last ratio of the weight gradients and of
    the gradients arriving at the layers' outputs (`flow`); empty when neither is extreme."""
    ratios = []
    for values, what in ((weight_grads, "the weight gradient ||dL/dW|| of"),
                         (flow, "the gradient ||dL/dh|| arriving at")):
        ratio = gradient_ratio(values)  # NaN when an end is not finite or the last is 0
        if not math.isnan(ratio):
            ratios.append((ratio, what))
    if not ratios:
        return []
    ratio, what = max(ratios, key=lambda r: math.inf if r[0] == 0 else abs(math.log10(r[0])))
    kind = classify_ratio(ratio)
    if kind == "vanishing":
        return [Finding("vanishing", 1, ratio, f"{what} {names[0]} is {ratio:.1e} of {names[-1]}'s: vanishing")]
    if kind == "exploding":
        return [Finding("exploding", 1, ratio, f"{what} {names[0]} is {ratio:.1e} times {names[-1]}'s: exploding")]
    return []


def fraction_findings(names: list[str], dead: np.ndarray, saturated: np.ndarray) -> list[Finding]:
    """The layer with the most dead units, and the one with the most saturated activations, where over half."""
    findings = []
    for values, kind, text in ((dead, "dead", "of its units pass no gradient on any example (dead)"),
                               (saturated, "saturated", "of its activations in the flat, saturated zone")):
        if np.nanmax(values, initial=0.0) > 0.5:
            worst = int(np.nanargmax(values))
            findings.append(Finding(kind, worst + 1, float(values[worst]),
                                    f"{names[worst]} has {values[worst]:.0%} {text}"))
    return findings


def update_findings(names: list[str], updates: np.ndarray) -> list[Finding]:
    """Layers whose update:data ratio is far below or above about 1e-3."""
    findings = []
    if np.isfinite(updates).any() and np.nanmax(updates) > 0:
        low, high = float(np.nanmin(updates)), float(np.nanmax(updates))
        if low < 1e-5:
            worst = int(np.nanargmin(updates))
            change = "does not change at all" if low == 0 else f"changes by {low:.0e} of its size"
            findings.append(Finding("slow-updates", worst + 1, low,
                                    f"{names[worst]} {change} per step "
                                    "(about 1e-3 is healthy): it barely learns"))
        if high > 1e-1:
            worst = int(np.nanargmax(updates))
            findings.append(Finding("large-updates", worst + 1, high,
                                    f"{names[worst]} changes by {high:.0e} of its size per step "
                                    "(about 1e-3 is healthy): the learning rate is too high"))
    return findings
