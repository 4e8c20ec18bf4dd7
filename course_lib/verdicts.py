"""Vanishing, exploding or healthy: the one verdict on a first-to-last gradient ratio.

Backpropagated through L layers, the gradient at layer 1 is a product of L
Jacobians, dL/dh_1 = J_2^T ... J_L^T dL/dh_L, so its norm shrinks or grows
geometrically with depth (Bengio, Simard and Frasconi 1994, "Learning
long-term dependencies with gradient descent is difficult"; Pascanu,
Mikolov and Bengio 2013, "On the difficulty of training recurrent neural
networks"). The course reads it as one number,

    ratio = ||g_1|| / ||g_L||      (layer 1 next to the input, L the last layer)

and calls it vanishing below 1e-2 and exploding above 1e2: two orders of
magnitude either way. The monitor (`GradientMonitor.diagnose`) and every
explorer (`course_lib.widgets`) judge with these thresholds and functions;
used from notebook 01 on.

>>> gradient_verdict([1e-4, 0.1, 1.0])
(0.0001, 'vanishing')
>>> gradient_verdict([0.5, 1.0], healthy="stable")
(0.5, 'stable')
"""

import math

import numpy as np

VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2


def gradient_ratio(norms) -> float:
    """||g_1|| / ||g_L|| of per-layer norms (first layer first); NaN if an end is not finite or ||g_L|| = 0."""
    first, last = float(norms[0]), float(norms[-1])
    if not (math.isfinite(first) and math.isfinite(last)) or last <= 0:
        return math.nan
    return first / last


def classify_ratio(ratio: float, *, healthy: str = "healthy") -> str:
    """'vanishing' below `VANISHING_RATIO`, 'exploding' above `EXPLODING_RATIO`, else `healthy`."""
    return "vanishing" if ratio < VANISHING_RATIO else "exploding" if ratio > EXPLODING_RATIO else healthy


def gradient_verdict(norms, *, healthy: str = "healthy") -> tuple[float, str]:
    """(ratio, kind) for per-layer gradient norms, first layer first.

    A NaN or infinite norm at either end is 'non-finite'; a last layer that
    gets no gradient at all (norm 0) is 'vanishing'; both with a NaN ratio.
    `healthy` names the middle case ('stable' suits a chain or an RNN).
    """
    ends = np.asarray([norms[0], norms[-1]], dtype=float)
    if not np.isfinite(ends).all():
        return math.nan, "non-finite"
    if ends[1] == 0:
        return math.nan, "vanishing"
    ratio = gradient_ratio(norms)
    return ratio, classify_ratio(ratio, healthy=healthy)
