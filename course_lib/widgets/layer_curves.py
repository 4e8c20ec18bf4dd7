"""Per-layer curves on a log axis, in the course's colours: the figure most explorers draw."""

import numpy as np

from ..plotting import OKABE_ITO, integer_ticks


def plot_layer_curves(ax, curves: dict, *, xlabel: str, ylabel: str, chosen: str | None = None,
                      styles: dict | None = None, legend: bool = True) -> None:
    """Per-layer curves on a log axis (x = 1, 2, ... n), in the course's colours, with whole-number ticks.

    `chosen` names the curve drawn bold with markers; the others are drawn faint behind it, for
    comparison (residual, transformer). Without it each curve takes its format from `styles`
    (label -> "o", "-", ...; default "o-").
    """
    for i, (label, values) in enumerate(curves.items()):
        if chosen is None:
            fmt, extra = (styles or {}).get(label, "o-"), {}
        else:
            bold = label == chosen
            fmt, extra = "o-" if bold else "-", {"alpha": 1.0 if bold else 0.35, "linewidth": 1.5 if bold else 1}
        ax.semilogy(np.arange(1, len(values) + 1), values, fmt, markersize=3, color=OKABE_ITO[i], label=label,
                    **extra)
    ax.set_xlabel(xlabel)
    integer_ticks(ax)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend(frameon=False)
    ax.grid(True, alpha=0.3)
