"""The notebook 07 explorer: the gradient at each block, plain against residual."""

import ipywidgets as w

from ..residual import resnet_gradient_norms
from ..verdicts import gradient_verdict
from .base import Explorer
from .chosen import ChosenCurves
from .scales import format_ratio


class ResidualExplorer(ChosenCurves, Explorer):
    """Depth and plain/residual -> the gradient arriving at each block of a BN-ReLU net, measured.

    `course_lib.residual.build_resnet` (width 32, He init, depth = 1 + 2 x blocks
    + 1) runs one cross-entropy backward pass on 256 digits at initialization;
    the plot shows ||dL/dh_k|| at the output of every block for the chosen
    architecture, and the other one faintly for comparison. Notebook 07.
    """

    title = "Plain vs residual: gradient at each block"
    names = labels = ("plain", "residual")
    xlabel, ylabel, legend_loc = "block (1 = next to the input)", "gradient norm ||dL/dh_k||", "upper right"

    def __init__(self, *, depth: int = 56, architecture: str = "plain", width: int = 32, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "depth": w.IntSlider(value=depth, min=8, max=110, step=6, description="depth",
                                 continuous_update=False),
            "architecture": w.ToggleButtons(options=["plain", "residual"], value=architecture,
                                            description="network"),
        }
        super().__init__(controls)

    def _measure(self, depth: int) -> dict:
        return {kind: resnet_gradient_norms(depth, residual=kind == "residual", width=self.width, seed=self.seed)
                for kind in self.names}

    @staticmethod
    def _chosen(data: dict) -> str:
        return data["architecture"]

    def compute(self, *, depth: int, architecture: str) -> dict:
        norms = self._both(depth)
        grads = norms[architecture]
        ratio, kind = gradient_verdict(grads)
        return {"depth": depth, "architecture": architecture, "grad_norms": grads, "norms": norms,
                "ratio": ratio, "kind": kind,
                "summary": f"{architecture}-{depth}: block 1 gets {format_ratio(ratio)} of the last block's "
                           f"gradient ({kind})"}

    def describe(self, data: dict) -> str:
        return (f"{data['architecture']}-{data['depth']}: block 1 receives <b>{format_ratio(data['ratio'])}</b> "
                f"of the last block's gradient (<b>{data['kind']}</b>)")


def residual_explorer(**settings) -> ResidualExplorer:
    """The notebook 07 explorer (see `ResidualExplorer`); display it by ending a cell with it."""
    return ResidualExplorer(**settings)
