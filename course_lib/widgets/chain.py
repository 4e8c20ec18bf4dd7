"""The notebook 01 explorer: a gradient through a chain of layers, measured against factor^depth."""

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ..chains import orthogonal_chain_gradients
from ..plotting import OKABE_ITO, integer_ticks
from ..verdicts import gradient_verdict
from .base import Explorer
from .scales import decade_limits, layer_range


class ChainExplorer(Explorer):
    """Depth and per-layer factor -> gradient magnitude through a real chain of layers.

    The chain is h_k = W_k h_{k-1} with W_k = factor * Q_k (Q_k random
    orthogonal, width 16), so each layer multiplies the backpropagated
    gradient's norm by exactly `factor`: after `depth` layers, factor^depth.
    Autograd measures it; the plot overlays the formula. Notebook 01.
    """

    title = "Gradient through a chain of layers"

    def __init__(self, *, depth: int = 10, factor: float = 0.25, width: int = 16, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "depth": w.IntSlider(value=depth, min=1, max=50, description="depth", continuous_update=False),
            "factor": w.FloatSlider(value=factor, min=0.05, max=2.0, step=0.05, description="factor / layer",
                                    continuous_update=False, style={"description_width": "initial"}),
        }
        super().__init__(controls)

    def compute(self, *, depth: int, factor: float) -> dict:
        norms = orthogonal_chain_gradients(depth, factor, width=self.width, seed=self.seed)
        formula = factor ** (depth - np.arange(depth + 1))
        ratio, kind = gradient_verdict(norms, healthy="stable")
        return {"depth": depth, "factor": factor, "grad_norms": norms, "formula": formula, "ratio": ratio,
                "kind": kind, "summary": f"input gets {ratio:.1e} of the output gradient: {kind}"}

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        layers = np.arange(len(data["grad_norms"]))
        ax.plot(layers, data["grad_norms"], "o-", color=OKABE_ITO[0], markersize=3, label="measured (autograd)")
        # the numbers are on the sliders and in the verdict: a legend that names them would change with
        # every step, and the static part of the figure (PNG) would be rendered and sent again each time
        ax.plot(layers, data["formula"], "--", color=OKABE_ITO[1], label="formula factor^(L - k)")
        ax.set_yscale("log")
        ax.set_xlabel("layer k (0 = input, L = depth = output)")
        integer_ticks(ax)
        ax.set_ylabel("gradient norm ||dL/dh||")
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0.2)
        ax.grid(True, alpha=0.3)
        ax.minorticks_off()
        for line in ax.lines:
            line.set_animated(True)  # only the two curves move; axes, ticks and labels are blitted
        self._ylim = self._right = None
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        ax = figure.axes[0]
        layers = np.arange(len(data["grad_norms"]))
        measured, formula = ax.lines[:2]
        measured.set_data(layers, data["grad_norms"])
        formula.set_data(layers, data["formula"])
        self._right = layer_range(data["depth"], self._right)
        ax.set_xlim(-0.5, self._right + 0.5)
        self._ylim = decade_limits(np.concatenate([data["grad_norms"], data["formula"]]), current=self._ylim)
        ax.set_ylim(*self._ylim)
        return True

    def describe(self, data: dict) -> str:
        return (f"The input receives <b>{data['ratio']:.1e}</b> of the output's gradient "
                f"({data['factor']:.2f}<sup>{data['depth']}</sup>): <b>{data['kind']}</b>")


def chain_explorer(**settings) -> ChainExplorer:
    """The notebook 01 explorer (see `ChainExplorer`); display it by ending a cell with it."""
    return ChainExplorer(**settings)
