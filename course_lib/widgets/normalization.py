"""The notebook 06 explorer: per-layer gradients with and without BatchNorm."""


import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ..normalization import layer_statistics_at_init
from ..plotting import OKABE_ITO, integer_ticks
from ..verdicts import gradient_verdict
from .base import Explorer
from .scales import decade_limits, format_ratio, layer_range


class NormalizationExplorer(Explorer):
    """Weight scale, depth and activation -> per-layer gradients with and without BatchNorm, measured.

    Two digits classifiers with the same weights' distribution, W ~ N(0, scale^2),
    width 64, one without normalization and one with BatchNorm after every
    linear layer (`course_lib.normalization.layer_statistics_at_init`), each
    run one cross-entropy backward pass on 256 digits. Left: the gradient at each
    layer's output, ||dL/dh||; right: the std of each layer's activations. Notebook 06.
    """

    title = "Weight scale with and without BatchNorm"

    def __init__(self, *, weight_scale: float = 0.1, depth: int = 10, activation: str = "sigmoid",
                 width: int = 64, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "weight_scale": w.FloatLogSlider(value=weight_scale, base=10, min=-3, max=1, step=0.25,
                                             description="weight std", continuous_update=False,
                                             readout_format=".3g", style={"description_width": "initial"}),
            "depth": w.IntSlider(value=depth, min=2, max=30, description="depth", continuous_update=False),
            "activation": w.Dropdown(options=["sigmoid", "tanh", "relu"], value=activation,
                                     description="activation"),
        }
        self._ylims = [None, None]  # log-axis limits, kept while the data fit (also when drawn anew)
        super().__init__(controls, figsize=(9.6, 3.4))

    def compute(self, *, weight_scale: float, depth: int, activation: str) -> dict:
        data = {"weight_scale": weight_scale, "depth": depth, "activation": activation}
        for key, norm in (("plain", None), ("batch", "batch")):
            stats = layer_statistics_at_init(depth, self.width, activation=activation, norm=norm,
                                             std=weight_scale, seed=self.seed)
            grads = stats["out_grad_norm"]
            ratio, kind = gradient_verdict(grads)
            data.update({f"grad_norms_{key}": grads, f"act_std_{key}": stats["act_std"],
                         f"ratio_{key}": ratio, f"kind_{key}": kind})
        data["summary"] = (f"{activation}, depth {depth}, weight std {weight_scale:.3g}: layer 1 gets "
                           f"{format_ratio(data['ratio_plain'])} of the last layer's gradient without "
                           f"BatchNorm ({data['kind_plain']}), {format_ratio(data['ratio_batch'])} with it "
                           f"({data['kind_batch']})")
        return data

    def draw(self, figure: Figure, data: dict) -> None:
        left, right = figure.subplots(1, 2)
        for i, label in enumerate(("no normalization", "BatchNorm")):
            for ax in (left, right):
                ax.semilogy([], [], "o-", color=OKABE_ITO[i], markersize=3, label=label)
        left.set_xlabel("layer (1 = next to the input)")
        left.set_ylabel("gradient norm ||dL/dh||")
        # above the axes: a legend placed "best" would move with the curves, which are drawn by the browser
        left.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0.2)
        right.set_xlabel("layer")
        right.set_ylabel("std of the layer's activations")
        for ax in (left, right):
            integer_ticks(ax)
            ax.minorticks_off()
            ax.grid(True, alpha=0.3)
            for line in ax.lines:
                line.set_animated(True)  # only the curves move; axes, ticks and labels are blitted
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        left, right = figure.axes
        layers = np.arange(1, data["depth"] + 1)
        for i, key in enumerate(("plain", "batch")):
            grads = data[f"grad_norms_{key}"]
            left.lines[i].set_data(layers, np.where(grads > 0, grads, np.nan))
            right.lines[i].set_data(layers, np.maximum(data[f"act_std_{key}"], 1e-30))
        # whole decades kept while the curves fit, and a depth range of whole 5s: most steps keep the axes
        for k, ax in enumerate((left, right)):
            self._ylims[k] = decade_limits(np.concatenate([line.get_ydata() for line in ax.lines]),
                                           current=self._ylims[k])
            ax.set_ylim(*self._ylims[k])
            ax.set_xlim(0.5, layer_range(data["depth"]) + 0.5)
        return True

    def describe(self, data: dict) -> str:
        return (f"Layer 1 receives <b>{format_ratio(data['ratio_plain'])}</b> of the last layer's gradient "
                f"without BatchNorm (<b>{data['kind_plain']}</b>) and <b>{format_ratio(data['ratio_batch'])}"
                f"</b> with it (<b>{data['kind_batch']}</b>).")


def normalization_explorer(**settings) -> NormalizationExplorer:
    """The notebook 06 explorer (see `NormalizationExplorer`); display it by ending a cell with it."""
    return NormalizationExplorer(**settings)
