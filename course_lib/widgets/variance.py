"""The notebook 05 explorer: variance propagation at initialization, measured and mean-field."""

import math

import ipywidgets as w
import numpy as np
import torch
from matplotlib.figure import Figure

from ..plotting import OKABE_ITO
from ..seeding import one_torch_thread
from ..variance import chi_1, critical_sigma_w2, gradient_curve, layer_statistics, random_network, variance_curve
from .base import Explorer
from .layer_curves import plot_layer_curves
from .scales import decade_limits, layer_range


class VarianceExplorer(Explorer):
    """sigma_w^2 and depth -> pre-activation std and gradient std per layer, measured and predicted.

    A random net (width 128, W ~ N(0, sigma_w^2 / fan_in), b ~ N(0, sigma_b^2))
    gets 256 Gaussian inputs; one forward and backward pass measures the std
    of z_l and of dL/dh_l per layer, next to the mean-field prediction
    (`course_lib.variance.variance_curve` / `gradient_curve`). The third panel
    shows chi_1 against sigma_w^2 with the critical value (chi_1 = 1, the edge
    of chaos, Schoenholz et al. 2017) marked. Notebook 05.
    """

    title = "Variance propagation at initialization"
    styles = {"measured": "o", "mean field": "-"}

    def __init__(self, *, activation: str = "tanh", sigma_w2: float = 1.0, depth: int = 30,
                 sigma_b2: float = 0.05, width: int = 128, num_examples: int = 256, seed: int = 0):
        self.sigma_b2, self.width, self.seed = sigma_b2, width, seed
        self.X = torch.randn(num_examples, width, generator=torch.Generator().manual_seed(seed + 1))
        self._chi_curves: dict[str, tuple[np.ndarray, np.ndarray, float]] = {}
        controls = {
            "activation": w.Dropdown(options=["tanh", "relu"], value=activation, description="activation"),
            "sigma_w2": w.FloatSlider(value=sigma_w2, min=0.25, max=4.0, step=0.05, description="sigma_w^2",
                                      continuous_update=False, readout_format=".2f"),
            "depth": w.IntSlider(value=depth, min=2, max=60, description="depth", continuous_update=False),
        }
        super().__init__(controls, figsize=(10.0, 3.4))

    @one_torch_thread()
    def chi_curve(self, activation: str) -> tuple[np.ndarray, np.ndarray, float]:
        """(sigma_w^2 grid, chi_1 on it, critical sigma_w^2) for `activation`, computed once."""
        if activation not in self._chi_curves:
            grid = np.linspace(0.25, 4.0, 46)
            chis = np.array([chi_1(activation, sigma_w2=s, sigma_b2=self.sigma_b2) for s in grid])
            self._chi_curves[activation] = (grid, chis, critical_sigma_w2(activation, sigma_b2=self.sigma_b2))
        return self._chi_curves[activation]

    @one_torch_thread()
    def compute(self, *, activation: str, sigma_w2: float, depth: int) -> dict:
        net = random_network(activation, depth=depth, width=self.width, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2,
                             seed=self.seed)
        stats = layer_statistics(net, self.X, seed=self.seed)
        predicted_q = variance_curve(activation, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2, depth=depth)
        predicted_g = gradient_curve(activation, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2, depth=depth)
        grid, chis, critical = self.chi_curve(activation)
        chi = chi_1(activation, sigma_w2=sigma_w2, sigma_b2=self.sigma_b2)
        phase = "ordered" if chi < 0.98 else "chaotic" if chi > 1.02 else "critical (edge of chaos)"
        ratio = stats["grad_std"][0] / stats["grad_std"][-1]
        return {"activation": activation, "sigma_w2": sigma_w2, "depth": depth, "pre_std": stats["pre_std"],
                "grad_std": stats["grad_std"], "predicted_pre_std": np.sqrt(predicted_q),
                "predicted_grad_std": np.sqrt(predicted_g), "chi_1": chi, "critical": critical, "phase": phase,
                "grid": grid, "chis": chis, "ratio": ratio, "predicted_ratio": math.sqrt(predicted_g[0]),
                "summary": f"{activation}, sigma_w^2 = {sigma_w2:.2f}: chi_1 = {chi:.2f} ({phase}); layer 1 "
                           f"gets {ratio:.1e} of the last layer's gradient std"}

    def draw(self, figure: Figure, data: dict) -> None:
        forward, backward, phase = figure.subplots(1, 3)
        for ax, label in ((forward, "std of z_l"), (backward, "std of dL/dh_l")):
            plot_layer_curves(ax, {"measured": [1.0], "mean field": [1.0]}, styles=self.styles, xlabel="layer",
                              ylabel=label, legend=False)
            ax.minorticks_off()
            for line in ax.lines:
                line.set_animated(True)  # the browser draws the curves; axes and labels stay in the PNG
        # above the axes, where no curve can run under it (its place never depends on the data)
        forward.legend(frameon=False, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0.2,
                       handlelength=1.5, columnspacing=1.0)
        # the third panel changes with the activation only, and then its legend (the critical value) too
        phase.plot(data["grid"], data["chis"], color=OKABE_ITO[2])
        phase.axhline(1.0, color="black", linewidth=0.8)
        phase.axvline(data["critical"], color=OKABE_ITO[3], linestyle="--", label="critical")
        point = phase.plot([data["sigma_w2"]], [data["chi_1"]], "o", color=OKABE_ITO[1], label="this net")[0]
        point.set_animated(True)
        phase.set_xlabel("sigma_w^2")
        phase.set_ylabel("chi_1 (gradient factor per layer)")
        phase.legend(frameon=False, loc="lower right")
        phase.grid(True, alpha=0.3)
        self._axes = (forward, backward, phase)
        self._ylims: list = [None, None]
        self._right = None
        self.redraw(figure, data)

    def redraw(self, figure: Figure, data: dict) -> bool:
        forward, backward, phase = self._axes
        layers = np.arange(1, data["depth"] + 1)
        self._right = right = layer_range(data["depth"], self._right)
        for i, (ax, measured, predicted) in enumerate(((forward, data["pre_std"], data["predicted_pre_std"]),
                                                       (backward, data["grad_std"], data["predicted_grad_std"]))):
            ax.lines[0].set_data(layers, measured)
            ax.lines[1].set_data(layers, predicted)
            ax.set_xlim(0.5, right + 0.5)
            self._ylims[i] = decade_limits(np.concatenate([measured, predicted]), span=2, current=self._ylims[i])
            ax.set_ylim(*self._ylims[i])
        grid, chis, critical = data["grid"], data["chis"], data["critical"]
        phase.lines[0].set_data(grid, chis)
        for limits, values in ((phase.set_xlim, grid), (phase.set_ylim, chis)):  # as autoscaling had them
            margin = 0.05 * (values.max() - values.min())
            limits(values.min() - margin, values.max() + margin)
        phase.lines[2].set_xdata([critical, critical])
        label = f"critical {critical:.2f}"
        phase.lines[2].set_label(label)
        phase.get_legend().get_texts()[0].set_text(label)
        phase.lines[3].set_data([data["sigma_w2"]], [data["chi_1"]])
        return True

    def describe(self, data: dict) -> str:
        return (f"chi_1 = <b>{data['chi_1']:.2f}</b>: <b>{data['phase']}</b> (critical sigma_w^2 = "
                f"{data['critical']:.2f}). Layer 1 gets <b>{data['ratio']:.1e}</b> of the last layer's gradient "
                f"std; mean field predicts {data['predicted_ratio']:.1e}.")


def variance_explorer(**settings) -> VarianceExplorer:
    """The notebook 05 explorer (see `VarianceExplorer`); display it by ending a cell with it."""
    return VarianceExplorer(**settings)
