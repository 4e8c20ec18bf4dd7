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
        self._ylim = None  # log-axis limits, kept while the data fit (also when the figure is drawn anew)
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
        ax.semilogy([], [], "o-", color=OKABE_ITO[0], markersize=2.5, label=self._labels(data)[0])
        ax.semilogy([], [], "--", color=OKABE_ITO[1], label=self._labels(data)[1])
        ax.minorticks_off()
        ax.set_xlabel("time step t (T = last)")
        integer_ticks(ax)
        ax.set_ylabel("||dL/dh_t||  (||dL/dh_T|| = 1)")
        # above the axes: a legend placed "best" would move with the curves, which are drawn by the browser
        ax.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0.2)
        ax.grid(True, alpha=0.3)
        for line in ax.lines:
            line.set_animated(True)  # only the two curves move; axes, ticks and labels are blitted
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        ax = figure.axes[0]
        steps = np.arange(data["length"] + 1)
        for line, values, label, text in zip(ax.lines, (data["grad_norms"], data["formula"]), self._labels(data),
                                             ax.get_legend().get_texts()):
            line.set_data(steps, values)
            line.set_label(label)
            text.set_text(label)
        # whole decades, at least three, kept while the curves fit: at radius 1 the linear RNN's
        # gradient stays at 1 and its rounding noise (1e-7) must not fill the axis as if it were a zigzag
        self._ylim = decade_limits(np.concatenate([data["grad_norms"], data["formula"]]), current=self._ylim)
        ax.set_ylim(*self._ylim)
        ax.set_xlim(*self._xlim(data["length"]))
        return True

    @staticmethod
    def _labels(data: dict) -> tuple[str, str]:
        # no number in the legend (it is on the slider and in the verdict): a radius step keeps the static PNG
        return f"measured ({data['nonlinearity']} RNN)", "formula radius^(T - t)"

    @staticmethod
    def _xlim(length: int) -> tuple[float, float]:
        """0 to T with matplotlib's 5% margins, T rounded up to a multiple of 5, 10, 25 or 50 (the longer
        the sequence, the coarser): most steps of the length slider keep the axes, and the curves fill them."""
        grain = 5 if length <= 20 else 10 if length <= 50 else 25 if length <= 100 else 50
        right = grain * -(-length // grain)
        return -0.05 * right, 1.05 * right

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
