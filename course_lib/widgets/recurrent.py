"""The notebook 03 explorer: the gradient through time of a real RNN, measured against radius^(T - t)."""

import ipywidgets as w
import numpy as np
from matplotlib.figure import Figure

from ..plotting import OKABE_ITO, integer_ticks
from ..recurrent import orthogonal_rnn_gradients
from ..seeding import one_torch_thread
from ..verdicts import gradient_verdict
from .base import Explorer
from .scales import decade_limits, format_ratio


class RecurrentExplorer(Explorer):
    """Spectral radius and sequence length -> the gradient through time of a real RNN, measured.

    The RNN is h_t = f(radius * Q h_{t-1} + x_t) with Q random orthogonal
    (width 32), so every singular value of W_hh equals `radius`; autograd
    measures ||dh_T/dh_t^T u|| for a unit vector u
    (`course_lib.recurrent.orthogonal_rnn_gradients`). For a linear RNN it is
    exactly radius^(T - t), the dashed line; tanh's slopes (<= 1) pull it lower.
    Notebook 03.
    """

    title = "Gradient through time in a recurrent network"

    def __init__(self, *, radius: float = 0.9, length: int = 50, nonlinearity: str = "linear", seed: int = 0):
        self.seed = seed
        controls = {
            "radius": w.FloatSlider(value=radius, min=0.5, max=1.5, step=0.05, description="spectral radius",
                                    continuous_update=False, style={"description_width": "initial"}),
            "length": w.IntSlider(value=length, min=5, max=200, step=5, description="length T",
                                  continuous_update=False),
            "nonlinearity": w.Dropdown(options=["linear", "tanh"], value=nonlinearity, description="RNN"),
        }
        super().__init__(controls)

    def compute(self, *, radius: float, length: int, nonlinearity: str) -> dict:
        with one_torch_thread():
            norms = orthogonal_rnn_gradients(radius, length, nonlinearity=nonlinearity, seed=self.seed)
        formula = radius ** (length - np.arange(length + 1))
        ratio, kind = gradient_verdict(norms, healthy="stable")
        return {"radius": radius, "length": length, "nonlinearity": nonlinearity, "grad_norms": norms,
                "formula": formula, "ratio": ratio, "kind": kind,
                "summary": f"step 0 gets {ratio:.1e} of the gradient at step {length}: {kind}"}

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        steps = np.arange(data["length"] + 1)
        ax.semilogy(steps, data["grad_norms"], "o-", color=OKABE_ITO[0], markersize=2.5,
                    label=f"measured ({data['nonlinearity']} RNN)")
        ax.semilogy(steps, data["formula"], "--", color=OKABE_ITO[1],
                    label=f"radius^(T - t) = {data['radius']:.2f}^(T - t)")
        ax.set_xlabel("time step t (T = last)")
        integer_ticks(ax)
        ax.set_ylabel("||dL/dh_t||  (||dL/dh_T|| = 1)")
        # whole decades, at least three: at radius 1 the linear RNN's gradient stays at 1 and its
        # rounding noise (1e-7) must not fill the axis as if it were a zigzag
        ax.set_ylim(*decade_limits(np.concatenate([data["grad_norms"], data["formula"]])))
        ax.legend(frameon=False, loc="best")
        ax.grid(True, alpha=0.3)

    def describe(self, data: dict) -> str:
        power = (f"{data['radius']:.2f}<sup>{data['length']}</sup> = "
                 f"{format_ratio(data['radius'] ** data['length'])}")
        if abs(data["ratio"] - 1) < 1e-3:  # radius 1, linear: float32 rounding is all that moves
            return (f"The gradient <b>stays at 1</b> all the way back to h<sub>0</sub> (radius 1: {power}): "
                    f"<b>{data['kind']}</b>")
        return (f"h<sub>0</sub> receives <b>{format_ratio(data['ratio'])}</b> of the gradient at step "
                f"{data['length']} (a linear RNN: {power}): <b>{data['kind']}</b>")


def recurrent_explorer(**settings) -> RecurrentExplorer:
    """The notebook 03 explorer (see `RecurrentExplorer`); display it by ending a cell with it."""
    return RecurrentExplorer(**settings)
