"""Plots for the course: pure functions (data, ax=None) -> Axes.

Colors are colorblind-safe: the Okabe-Ito palette for a few named series,
viridis for many layers. Magnitudes that span decades get a log axis; layer
axes get whole-number ticks.

Readable at JupyterLab's default width: importing this module sets the
course's matplotlib defaults (`COURSE_RC`, the only global state it
touches). Text is 11 pt, which at the inline backend's 100 dpi is 15 px,
above 9 pt (12 px) on screen even when JupyterLab scales a figure of up to
about 10.5 inches down to its ~850 px output width; a figure meant to be
read should stay that narrow (9 inches fits without scaling).

In a Jupyter kernel with the inline backend, importing it also has each
figure drawn once instead of twice (`draw_inline_figures_once`).
"""

import sys

import matplotlib
import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

OKABE_ITO = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
COURSE_RC = {"figure.dpi": 100, "font.size": 11, "legend.fontsize": "medium", "xtick.labelsize": "medium",
             "ytick.labelsize": "medium", "axes.labelsize": "medium"}
MIN_TEXT_PX = 12
"""The smallest text the course draws, in CSS pixels at 100% zoom (9 pt)."""

matplotlib.rcParams.update(COURSE_RC)


def draw_inline_figures_once() -> bool:
    """In IPython with the inline backend, show each new figure before pyplot's hook redraws it.

    After every cell IPython runs two post-execute hooks in the order they were
    registered: pyplot's (`matplotlib.pyplot.install_repl_displayhook`), which
    draws every stale figure, and then matplotlib-inline's `flush_figures`, which
    renders each figure to a PNG and closes it. Agg's `draw_idle` draws at once
    (matplotlib issues #4780 and #5800), so every inline figure is laid out and
    rasterized for nothing before being drawn again for the PNG: about a quarter
    of the drawing time of a course notebook. Re-registering pyplot's hook puts
    it after `flush_figures`, which has then closed the figures: each is drawn
    once, to the same PNG. Interactive backends keep pyplot's hook. Activates
    the inline backend as pyplot's first figure would; does nothing (and returns
    False) outside IPython, before pyplot is imported, or with another backend.
    """
    ipython, pyplot = sys.modules.get("IPython"), sys.modules.get("matplotlib.pyplot")
    shell = ipython.get_ipython() if ipython else None
    backend = matplotlib.get_backend(auto_select=False)
    if shell is None or pyplot is None or backend not in ("inline", "module://matplotlib_inline.backend_inline"):
        return False
    from matplotlib_inline import backend_inline  # registers flush_figures, if the first figure has not yet

    if backend_inline.flush_figures not in shell.events.callbacks["post_execute"]:
        return False
    pyplot.uninstall_repl_displayhook()
    pyplot.install_repl_displayhook()  # registered again: now after flush_figures
    return True


draw_inline_figures_once()


def integer_ticks(ax: Axes, axis: str = "x") -> Axes:
    """Whole-number ticks on `axis` (layers, blocks, time steps): never 2.5 layers."""
    getattr(ax, f"{axis}axis").set_major_locator(MaxNLocator(integer=True))
    return ax


def new_axes(*, figsize=(6, 3.5)) -> Axes:
    """A fresh Axes on a Figure that pyplot does not track (for widgets: nothing piles up)."""
    return Figure(figsize=figsize, layout="constrained").add_subplot()


def _axes(ax):
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt  # a pyplot figure shows inline in a notebook by itself

    return plt.subplots(figsize=(6, 3.5), layout="constrained")[1]


def _as_series(data) -> dict[str, np.ndarray]:
    if isinstance(data, dict):
        return {str(k): np.asarray(v, dtype=float) for k, v in data.items()}
    return {"": np.asarray(data, dtype=float)}


def plot_gradient_norms(norms, *, ax: Axes | None = None, ylabel: str = "gradient norm ||dL/dW||",
                        title: str | None = None, bars: bool = False) -> Axes:
    """Per-layer gradient norms on a log scale, layer 1 (next to the input) on the left.

    `norms` is one array (one value per layer) or a dict label -> array to compare networks.
    """
    ax = _axes(ax)
    series = _as_series(norms)
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        layers = np.arange(1, len(values) + 1)
        color = OKABE_ITO[i % len(OKABE_ITO)]
        if bars:
            ax.bar(layers + (i - (len(series) - 1) / 2) * width, values, width=width, color=color,
                   label=label or None)
        else:
            ax.plot(layers, values, marker="o", markersize=3, color=color, label=label or None)
    ax.set_yscale("log")
    ax.set_xlabel("layer (1 = next to the input)")
    integer_ticks(ax)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if len(series) > 1 or next(iter(series)):
        ax.legend(frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return ax


def plot_activation_histograms(activations, *, ax: Axes | None = None, bins: int = 50,
                               value_range: tuple[float, float] | None = None,
                               names: list[str] | None = None, xlabel: str = "activation value") -> Axes:
    """One outline histogram per layer (viridis, dark = first layer), densities on the y-axis."""
    ax = _axes(ax)
    arrays = [np.asarray(a, dtype=float).ravel() for a in activations]
    if value_range is None:
        finite = np.concatenate([a[np.isfinite(a)] for a in arrays]) if arrays else np.zeros(1)
        value_range = (float(finite.min()), float(finite.max()) + 1e-12)
    cmap = colormaps["viridis"]
    for i, values in enumerate(arrays):
        label = names[i] if names else f"layer {i + 1}"
        ax.hist(values, bins=bins, range=value_range, density=True, histtype="step",
                color=cmap(i / max(1, len(arrays) - 1)), label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(frameon=False, ncol=2 if len(arrays) > 5 else 1)
    return ax


def plot_training_curves(curves, *, ax: Axes | None = None, ylabel: str = "training loss",
                         log: bool = False, smooth: int = 1) -> Axes:
    """Loss (or any per-step value) against step; `curves` is an array, a History or a dict of them.

    `smooth` > 1 draws a running mean over that many steps.
    """
    ax = _axes(ax)
    if hasattr(curves, "loss"):
        curves = curves.loss
    if isinstance(curves, dict):
        curves = {k: getattr(v, "loss", v) for k, v in curves.items()}
    for i, (label, values) in enumerate(_as_series(curves).items()):
        if smooth > 1 and len(values) >= smooth:
            values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        ax.plot(np.arange(len(values)), values, color=OKABE_ITO[i % len(OKABE_ITO)], label=label or None)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    integer_ticks(ax)
    ax.set_ylabel(ylabel)
    if isinstance(curves, dict):
        ax.legend(frameon=False)
    ax.grid(True, alpha=0.3)
    return ax


def plot_layer_metric(values, *, ax: Axes | None = None, ylabel: str = "", log: bool = True,
                      guide: float | None = None, names: list[str] | None = None) -> Axes:
    """A per-layer metric over training: `values` has shape (steps, layers); one line per layer.

    `guide` draws a dashed reference line (1e-3 for the update:data ratio).
    """
    ax = _axes(ax)
    values = np.asarray(values, dtype=float)
    cmap = colormaps["viridis"]
    layers = values.shape[1]
    for j in range(layers):
        label = names[j] if names else f"layer {j + 1}"
        ax.plot(values[:, j], color=cmap(j / max(1, layers - 1)), label=label)
    if guide is not None:
        ax.axhline(guide, color="black", linestyle="--", linewidth=1)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    integer_ticks(ax)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False, ncol=2 if layers > 5 else 1)
    return ax
