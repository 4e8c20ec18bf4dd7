"""The notebook 04 explorer: per-layer gradients and dead units, by activation."""

import math

import ipywidgets as w
import numpy as np
import torch
from matplotlib.figure import Figure

from ..activations import build_digits_net, gradient_norms, unit_activity
from ..datasets import load_digits
from ..plotting import OKABE_ITO, integer_ticks
from ..seeding import one_torch_thread
from ..verdicts import gradient_verdict
from .bars import Bars
from .base import Explorer
from .scales import decade_limits, layer_range

ACTIVATION_CHOICES = ("sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "silu")


class ActivationExplorer(Explorer):
    """Activation, depth and initial bias -> per-layer gradient norms and dead units, measured.

    Builds a digits classifier (`course_lib.activations.build_digits_net`:
    width 64, the activation's usual init, every hidden bias set to `bias`),
    runs one cross-entropy backward pass on 512 digits, and plots ||dL/dW||
    per layer next to the fraction of dead units (derivative < 1e-6 on every
    example). Notebook 04.
    """

    title = "Gradient flow and dead units, by activation"

    def __init__(self, *, activation: str = "relu", depth: int = 10, bias: float = 0.0, width: int = 64,
                 num_examples: int = 512, seed: int = 0):
        self.width, self.seed = width, seed
        X, y = load_digits()
        index = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:num_examples]
        self.X, self.y = X[index], y[index]
        controls = {
            "activation": w.Dropdown(options=list(ACTIVATION_CHOICES), value=activation, description="activation"),
            "depth": w.IntSlider(value=depth, min=2, max=30, description="depth", continuous_update=False),
            "bias": w.FloatSlider(value=bias, min=-2.0, max=1.0, step=0.1, description="initial bias",
                                  continuous_update=False, style={"description_width": "initial"}),
        }
        self._ylim = None  # log-axis limits, kept while the data fit (also when the figure is drawn anew)
        super().__init__(controls, figsize=(9.6, 3.4))

    @one_torch_thread()
    def compute(self, *, activation: str, depth: int, bias: float) -> dict:
        net = build_digits_net(activation, depth=depth, width=self.width, bias=bias, seed=self.seed)
        grads = gradient_norms(net, self.X, self.y)
        dead = unit_activity(net, self.X)["dead"]
        ratio, kind = gradient_verdict(grads)
        return {"activation": activation, "depth": depth, "bias": bias, "grad_norms": grads, "dead": dead,
                "ratio": ratio, "kind": kind, "dead_mean": float(dead.mean()),
                "summary": f"{activation}, depth {depth}: layer 1 gets {ratio:.1e} of the last layer's "
                           f"gradient ({kind}); {dead.mean():.0%} of units dead"}

    def draw(self, figure: Figure, data: dict) -> None:
        left, right = figure.subplots(1, 2, width_ratios=[3, 2])
        left.semilogy([], [], "o-", color=OKABE_ITO[0], markersize=3)
        left.plot([], [], "x", color=OKABE_ITO[1], label="exactly 0")
        self._zeros = not (data["grad_norms"] > 0).all()
        if self._zeros:  # the legend only names the crosses, so it is there only when they are
            left.legend(frameon=False)
        left.minorticks_off()
        left.set_xlabel("layer (1 = next to the input)")
        left.set_ylabel("gradient norm ||dL/dW||")
        left.grid(True, alpha=0.3)
        Bars(right, [], [], color=OKABE_ITO[1])
        right.set_ylim(0, 1)
        right.set_xlabel("layer")
        right.set_ylabel("dead fraction")
        for ax in (left, right):
            integer_ticks(ax)
            for line in ax.lines:
                line.set_animated(True)  # the browser draws the curve and the bars (`Bars`) over the axes
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        grads = data["grad_norms"]
        shown = grads > 0
        if self._zeros != (not shown.all()):
            return False  # the "exactly 0" legend comes or goes: draw the figure anew
        left, right = figure.axes
        layers = np.arange(1, data["depth"] + 1)
        curve, zeros = left.lines
        curve.set_data(layers[shown], grads[shown])
        zeros.set_data(layers[~shown], np.full((~shown).sum(), grads[shown].min() if shown.any() else 1e-30))
        # whole decades kept while the curve fits, and a depth range of whole 5s: most steps keep the axes
        self._ylim = decade_limits(np.concatenate([curve.get_ydata(), zeros.get_ydata()]), current=self._ylim)
        left.set_ylim(*self._ylim)
        for ax in (left, right):
            ax.set_xlim(0.5, layer_range(data["depth"]) + 0.5)
        # from below the axes, as `Axes.bar` from 0: the axes clip the bars' feet on a whole pixel
        right.lines[0].set_bars(layers, np.where(data["dead"] > 0, data["dead"], np.nan), bottom=-0.1)
        return True

    def describe(self, data: dict) -> str:
        if math.isfinite(data["ratio"]):
            flow = f"layer 1 receives <b>{data['ratio']:.1e}</b> of the last layer's gradient"
        else:  # no ratio: the last layer's gradient is 0 (every unit feeding it dead) or not finite
            flow = "the last layer receives no usable gradient"
        return (f"{data['activation']}, {data['depth']} layers, bias {data['bias']:+.1f}: {flow} "
                f"(<b>{data['kind']}</b>); "
                f"<b>{data['dead_mean']:.0%}</b> of hidden units are dead")


def activation_explorer(**settings) -> ActivationExplorer:
    """The notebook 04 explorer (see `ActivationExplorer`); display it by ending a cell with it."""
    return ActivationExplorer(**settings)
