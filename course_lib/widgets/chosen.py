"""Two per-layer curves of one depth, one of them chosen: the residual (07) and transformer (09) explorers."""

from collections import OrderedDict

import numpy as np
from matplotlib.figure import Figure

from .layer_curves import plot_layer_curves
from .scales import decade_limits, layer_range


class ChosenCurves:
    """Two per-layer curves of one depth, the chosen one bold (residual and transformer explorers), redrawn in place.

    A subclass sets `names` (the keys of ``data["norms"]``, in colour order) and `labels` (theirs
    in the legend), `xlabel`, `ylabel`, `legend_loc` and `span` (decades the y axis shows at least)
    and implements `_measure(depth)` (name -> values for both curves; cached per depth, so
    switching the chosen curve computes nothing) and `_chosen(data)` (a name). Both lines are
    drawn by the browser; the legend (its handles show which curve is chosen) and the axes stay
    in the PNG, which changes only when the axis limits do or the other curve is chosen.
    """

    names: tuple = ()
    labels: tuple = ()
    xlabel = ylabel = legend_loc = ""
    span = 3
    kept_depths = 8

    def _both(self, depth: int) -> dict:
        if not hasattr(self, "_measured"):
            self._measured = OrderedDict()
        if depth not in self._measured:
            self._measured[depth] = self._measure(depth)
            while len(self._measured) > self.kept_depths:
                self._measured.popitem(last=False)
        self._measured.move_to_end(depth)
        return dict(self._measured[depth])

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        chosen = self.labels[self.names.index(self._chosen(data))]
        # the depth is on the slider and in the verdict, not in the legend, so a depth step keeps the PNG
        plot_layer_curves(ax, {label: [1.0] for label in self.labels}, chosen=chosen, xlabel=self.xlabel,
                          ylabel=self.ylabel, legend=False)
        ax.legend(frameon=False, loc=self.legend_loc)  # a fixed place: "best" would move with the data
        ax.minorticks_off()
        # the bold and the faint style, as plot_layer_curves draws them
        self._styles = {line.get_label() == chosen: {"marker": line.get_marker(), "alpha": line.get_alpha(),
                                                     "linewidth": line.get_linewidth()} for line in ax.lines}
        for line in ax.lines:
            line.set_animated(True)
        self._ylim = self._right = None
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        ax = figure.axes[0]
        chosen = self._chosen(data)
        values = [np.asarray(data["norms"][name], dtype=float) for name in self.names]
        for name, line, handle, y in zip(self.names, ax.lines, ax.get_legend().legend_handles, values):
            line.set_data(np.arange(1, len(y) + 1), y)
            for artist in (line, handle):
                artist.set(**self._styles[name == chosen])
        self._right = layer_range(len(values[0]), self._right)
        ax.set_xlim(0.5, self._right + 0.5)
        self._ylim = decade_limits(np.concatenate(values), span=self.span, current=self._ylim)
        ax.set_ylim(*self._ylim)
        self._shown = chosen
        return True

    def _static_key(self) -> tuple:
        # the legend's handles show which curve is bold: a PNG for each choice
        return *super()._static_key(), getattr(self, "_shown", None)
