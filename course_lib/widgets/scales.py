"""How explorers write gradient ratios and pick axis limits: log axes on whole decades, layer axes in fives."""

import math
import re

import numpy as np


def format_ratio(x: float) -> str:
    """A gradient ratio the way people say it: 3e-9, 0.45, 2e+4 (two digits between 0.01 and 100)."""
    if not np.isfinite(x):
        return str(x)
    if x == 0 or 1e-2 <= abs(x) < 1e2:
        return f"{x:.2g}"
    return re.sub(r"e([+-])0*(\d)", r"e\1\2", f"{x:.0e}")


def decade_limits(values, *, span: int = 3, current: tuple[float, float] | None = None) -> tuple[float, float]:
    """Log-axis limits on whole decades around the finite positive `values` (at least `span` decades).

    With `current` limits, keep them while they hold the data and waste at most 3 decades:
    a small step of a slider then leaves the axes (and an explorer's blitted background) as
    they were. New limits get one decade of room on each side for the next steps.

    >>> decade_limits(np.array([3e-9, 0.02]))
    (1e-09, 0.1)
    """
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return current or (1e-3, 1e1)
    # a point within 5% of a decade line gets the next decade, so it does not sit on the frame
    low, high = np.floor(np.log10(values.min()) - 0.02), np.ceil(np.log10(values.max()) + 0.02)
    if current is not None:  # the data's own decades, not the `span` padded around them, must fit
        now_low, now_high = np.log10(current)
        if now_low <= low and high <= now_high and (now_high - now_low) - max(high - low, span) <= 3:
            return current
    missing = max(0, span - (high - low))
    low, high = low - np.ceil(missing / 2), high + np.floor(missing / 2)
    if current is not None:
        low, high = low - 1, high + 1
    return float(10.0 ** max(low, -300)), float(10.0 ** min(high, 300))


def layer_range(count: int, current: int | None = None) -> int:
    """The last layer an axis shows for `count` layers: a multiple of 5, kept while the layers fit it and fill
    two thirds of it; a new one leaves a quarter of room for the next depth steps (none on a first draw).
    Most depth steps then keep the axes, and the PNG of them."""
    if current is not None and count <= current <= max(count + 5, 1.5 * count):
        return current
    return 5 * math.ceil((1 if current is None else 1.25) * count / 5)
