"""Bar charts the browser can draw: bars as one line of vertical segments, so an explorer can animate them."""

import numpy as np
from matplotlib.lines import Line2D


class Bars(Line2D):
    """Bars of `width` data units from `bottom` up to each height, drawn as one Line2D.

    Each bar is a vertical segment with butt caps, as wide as the bar (NaN
    between bars; a NaN height draws no bar, as `Axes.bar` on a log axis).
    Put `bottom` below the axes (a bar of height 0 then needs a NaN): the
    axes clip the bars' feet on a whole pixel, as they clip `Axes.bar`'s.
    `Explorer._svg` draws plain lines only, not matplotlib's bar patches;
    this looks the same and moves with `set_bars`. The line width follows the
    axes' x range and size whenever the line is drawn (or `get_linewidth` is
    asked, as the SVG does). Snapping is off so Agg and the browser put the
    edges at the same fractional pixels.
    """

    def __init__(self, ax, x, heights, *, bottom: float = 0.0, width: float = 0.8, color=None, **kwargs):
        super().__init__([], [], color=color, solid_capstyle="butt", marker="None", snap=False, **kwargs)
        self.bar_width = width
        self.set_bars(x, heights, bottom=bottom)
        ax.add_line(self)

    def set_bars(self, x, heights, *, bottom: float = 0.0) -> None:
        x, heights = np.asarray(x, dtype=float), np.asarray(heights, dtype=float)
        nan = np.full(len(x), np.nan)
        bottoms = np.where(np.isnan(heights), np.nan, bottom)  # no bar: not even a point at its foot
        self.set_data(np.column_stack([x, x, nan]).ravel(), np.column_stack([bottoms, heights, nan]).ravel())

    def get_linewidth(self) -> float:
        ax = self.axes
        if ax is None:
            return super().get_linewidth()
        low, high = ax.get_xlim()
        pixels = ax.bbox.width * self.bar_width / abs(high - low)
        return pixels * 72 / ax.figure.dpi

    def draw(self, renderer) -> None:
        self._linewidth = self.get_linewidth()  # not set_linewidth: drawing must not mark the figure stale
        super().draw(renderer)
