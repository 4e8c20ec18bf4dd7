"""The notebook 07 explorer: the gradient at each block, plain against residual."""


import ipywidgets as w
from matplotlib.figure import Figure

from ..residual import resnet_gradient_norms
from ..verdicts import gradient_verdict
from .base import Explorer, plot_layer_curves
from .scales import format_ratio


class ResidualExplorer(Explorer):
    """Depth and plain/residual -> the gradient arriving at each block of a BN-ReLU net, measured.

    `course_lib.residual.build_resnet` (width 32, He init, depth = 1 + 2 x blocks
    + 1) runs one cross-entropy backward pass on 256 digits at initialization;
    the plot shows ||dL/dh_k|| at the output of every block for the chosen
    architecture, and the other one faintly for comparison. Notebook 07.
    """

    title = "Plain vs residual: gradient at each block"

    def __init__(self, *, depth: int = 56, architecture: str = "plain", width: int = 32, seed: int = 0):
        self.width, self.seed = width, seed
        controls = {
            "depth": w.IntSlider(value=depth, min=8, max=110, step=6, description="depth",
                                 continuous_update=False),
            "architecture": w.ToggleButtons(options=["plain", "residual"], value=architecture,
                                            description="network"),
        }
        super().__init__(controls)

    def compute(self, *, depth: int, architecture: str) -> dict:
        norms = {kind: resnet_gradient_norms(depth, residual=kind == "residual", width=self.width, seed=self.seed)
                 for kind in ("plain", "residual")}
        grads = norms[architecture]
        ratio, kind = gradient_verdict(grads)
        return {"depth": depth, "architecture": architecture, "grad_norms": grads, "norms": norms,
                "ratio": ratio, "kind": kind,
                "summary": f"{architecture}-{depth}: block 1 gets {format_ratio(ratio)} of the last block's "
                           f"gradient ({kind})"}

    def draw(self, figure: Figure, data: dict) -> None:
        depth = data["depth"]
        plot_layer_curves(figure.add_subplot(),
                          {f"{kind}-{depth}": data["norms"][kind] for kind in ("plain", "residual")},
                          chosen=f"{data['architecture']}-{depth}", xlabel="block (1 = next to the input)",
                          ylabel="gradient norm ||dL/dh_k||")

    def describe(self, data: dict) -> str:
        return (f"{data['architecture']}-{data['depth']}: block 1 receives <b>{format_ratio(data['ratio'])}</b> "
                f"of the last block's gradient (<b>{data['kind']}</b>)")


def residual_explorer(**settings) -> ResidualExplorer:
    """The notebook 07 explorer (see `ResidualExplorer`); display it by ending a cell with it."""
    return ResidualExplorer(**settings)
