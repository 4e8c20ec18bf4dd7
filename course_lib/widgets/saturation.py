"""The notebook 02 explorer: saturation and gradient flow in a sigmoid / tanh network."""

import math

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ..plotting import OKABE_ITO, integer_ticks
from ..saturation import layer_gradients
from ..seeding import one_torch_thread
from ..verdicts import gradient_verdict
from .bars import Bars
from .base import Explorer
from .scales import decade_limits, format_ratio, layer_range


class SaturationExplorer(Explorer):
    """Depth, weight scale and activation -> per-layer gradient bars of a real network, measured.

    A fresh digits classifier (`course_lib.saturation.layer_gradients`: width
    64, W ~ N(0, scale^2 / fan_in), sigmoid or tanh) runs one cross-entropy
    backward pass on 256 digits. Left: ||dL/dW|| per layer (log scale). Right:
    the fraction of each layer's units in the flat zone (sigmoid < 0.03 or
    > 0.97, |tanh| > 0.97). Notebook 02.
    """

    title = "Saturation and gradient flow in a sigmoid / tanh network"

    def __init__(self, *, depth: int = 10, weight_scale: float = 1.0, activation: str = "sigmoid",
                 seed: int = 0):
        self.seed = seed
        controls = {
            "depth": w.IntSlider(value=depth, min=2, max=20, description="depth", continuous_update=False),
            "weight_scale": w.FloatSlider(value=weight_scale, min=0.25, max=8.0, step=0.25,
                                          description="weight scale", continuous_update=False,
                                          style={"description_width": "initial"}),
            "activation": w.Dropdown(options=["sigmoid", "tanh"], value=activation, description="activation"),
        }
        self._ylim = None  # log-axis limits, kept while the data fit (also when the figure is drawn anew)
        super().__init__(controls, figsize=(9.6, 3.4))

    def compute(self, *, depth: int, weight_scale: float, activation: str) -> dict:
        with one_torch_thread():
            result = layer_gradients(depth, activation=activation, weight_scale=weight_scale, seed=self.seed)
        grads, saturated = result["grad_norm"], result["saturated"]
        ratio, kind = gradient_verdict(grads)
        return {"depth": depth, "weight_scale": weight_scale, "activation": activation, "grad_norms": grads,
                "saturated": saturated, "ratio": ratio, "kind": kind, "saturated_mean": float(saturated.mean()),
                "summary": f"{activation}, depth {depth}, scale {weight_scale:g}: layer 1 gets {ratio:.1e} of "
                           f"the last layer's gradient ({kind}); {saturated.mean():.0%} of units saturated"}

    def draw(self, figure: Figure, data: dict) -> None:
        left, right = figure.subplots(1, 2, width_ratios=[3, 2])
        left.set_yscale("log")
        left.minorticks_off()
        left.set_xlabel("layer (1 = next to the input)")
        left.set_ylabel("gradient norm ||dL/dW||")
        left.grid(True, axis="y", alpha=0.3)
        right.set_ylim(0, 1)
        right.set_xlabel("layer")
        right.set_ylabel("saturated fraction")
        for ax in (left, right):
            integer_ticks(ax)
        # bars as lines (`Bars`): the browser draws them over a PNG of the axes, kept while the limits hold
        self._bars = (Bars(left, [], [], color=OKABE_ITO[0], animated=True),
                      Bars(right, [], [], color=OKABE_ITO[1], animated=True))
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        left, right = figure.axes
        layers = np.arange(1, data["depth"] + 1)
        grads = np.where(data["grad_norms"] > 0, data["grad_norms"], np.nan)
        # whole decades kept while the bars fit, and a depth range of whole 5s: most steps keep the axes
        self._ylim = decade_limits(grads, current=self._ylim)
        left.set_ylim(*self._ylim)
        for ax in (left, right):
            ax.set_xlim(0.5, layer_range(data["depth"]) + 0.5)
        # from below the axes, as `Axes.bar` from 0: the axes clip the bars' feet on a whole pixel
        self._bars[0].set_bars(layers, grads, bottom=self._ylim[0] / 10)
        self._bars[1].set_bars(layers, np.where(data["saturated"] > 0, data["saturated"], np.nan), bottom=-0.1)
        return True

    def describe(self, data: dict) -> str:
        ratio = "no gradient" if not math.isfinite(data["ratio"]) else f"<b>{format_ratio(data['ratio'])}</b>"
        return (f"{data['activation']}, {data['depth']} layers, weight scale {data['weight_scale']:g}: layer 1 "
                f"receives {ratio} of the last layer's gradient (<b>{data['kind']}</b>); "
                f"<b>{data['saturated_mean']:.0%}</b> of units saturated")


def saturation_explorer(**settings) -> SaturationExplorer:
    """The notebook 02 explorer (see `SaturationExplorer`); display it by ending a cell with it."""
    return SaturationExplorer(**settings)
