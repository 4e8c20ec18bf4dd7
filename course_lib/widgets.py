"""Interactive explorers: sliders that run a real network and redraw its gradients.

Every explorer is an `Explorer`: controls (ipywidgets), a `compute` step that
runs the network for the current values and returns plain data, a `draw`
step that plots that data on a matplotlib Figure kept by the explorer (never
pyplot's, so figures do not pile up), and a one-line verdict. The figure is
shown as a PNG in an ``ipywidgets.Image`` that is updated in place.

Explorers can be driven from code, which is how the tests check them::

    explorer = chain_explorer()
    data = explorer.update(depth=30, factor=0.5)   # recompute and redraw
    explorer.last, explorer.verdict.value, explorer.png

Outside a widget-capable front end (a script, nbconvert) the explorer still
displays: its output carries a static PNG of the current settings.
"""

import base64
import io

import ipywidgets as w
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .chains import orthogonal_chain_gradients
from .plotting import OKABE_ITO


class Explorer:
    """Base class: subclasses set ``controls`` and implement `compute`, `draw` and `describe`."""

    title = ""

    def __init__(self, controls: dict[str, w.ValueWidget], *, figsize=(6.4, 3.4)):
        self.controls = controls
        self.figure = Figure(figsize=figsize, dpi=90, layout="constrained")
        FigureCanvasAgg(self.figure)
        self.image = w.Image(format="png", layout=w.Layout(width=f"{int(figsize[0] * 90)}px"))
        self.verdict = w.HTML()
        self.last: dict = {}
        self.png = b""
        for control in controls.values():
            control.observe(self._on_change, names="value")
        header = [w.HTML(f"<b>{self.title}</b>")] if self.title else []
        self.widget = w.VBox(header + [w.HBox(list(controls.values()), layout=w.Layout(flex_flow="row wrap")),
                                       self.verdict, self.image])
        self.refresh()

    # subclasses implement these three
    def compute(self, **values) -> dict:
        raise NotImplementedError

    def draw(self, figure: Figure, data: dict) -> None:
        raise NotImplementedError

    def describe(self, data: dict) -> str:
        raise NotImplementedError

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def update(self, **values) -> dict:
        """Set control values (as a student would), recompute once, redraw; returns the new data."""
        unknown = set(values) - set(self.controls)
        if unknown:
            raise ValueError(f"unknown controls {sorted(unknown)}; this explorer has {sorted(self.controls)}")
        with self._held():
            for name, value in values.items():
                self.controls[name].value = value
        return self.refresh()

    def refresh(self) -> dict:
        """Run the network for the current control values and redraw the figure in place."""
        data = self.compute(**self.values)
        self.figure.clear()
        self.draw(self.figure, data)
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png")
        self.png = buffer.getvalue()
        self.image.value = self.png
        self.verdict.value = self.describe(data)
        self.last = data
        return data

    # -- plumbing --------------------------------------------------------------
    _holding = False

    def _held(self):
        explorer = self

        class Hold:
            def __enter__(self):
                explorer._holding = True

            def __exit__(self, *exc):
                explorer._holding = False
        return Hold()

    def _on_change(self, change) -> None:
        if not self._holding:
            self.refresh()

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        bundle["image/png"] = base64.b64encode(self.png).decode("ascii")
        bundle["text/plain"] = f"{type(self).__name__}({self.values}): {self.last.get('summary', '')}"
        return bundle


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
        ratio = norms[0] / norms[-1]
        kind = "vanishing" if ratio < 1e-2 else "exploding" if ratio > 1e2 else "stable"
        return {"depth": depth, "factor": factor, "grad_norms": norms, "formula": formula, "ratio": ratio,
                "kind": kind, "summary": f"input gets {ratio:.1e} of the output gradient: {kind}"}

    def draw(self, figure: Figure, data: dict) -> None:
        ax = figure.add_subplot()
        layers = np.arange(len(data["grad_norms"]))
        ax.plot(layers, data["grad_norms"], "o-", color=OKABE_ITO[0], markersize=3, label="measured (autograd)")
        ax.plot(layers, data["formula"], "--", color=OKABE_ITO[1], label=f"formula: {data['factor']:.2f}^k")
        ax.set_yscale("log")
        ax.set_xlabel("layer (0 = input, right = output)")
        ax.set_ylabel("gradient norm ||dL/dh||")
        ax.legend(frameon=False, loc="best")
        ax.grid(True, alpha=0.3)

    def describe(self, data: dict) -> str:
        return (f"The input receives <b>{data['ratio']:.1e}</b> of the output's gradient "
                f"({data['factor']:.2f}<sup>{data['depth']}</sup>): <b>{data['kind']}</b>")


def chain_explorer(**settings) -> ChainExplorer:
    """The notebook 01 explorer (see `ChainExplorer`); display it by ending a cell with it."""
    return ChainExplorer(**settings)
