"""The notebook 09 explorer: the gradient at each block of a post-LN or pre-LN transformer stack."""

import ipywidgets as w
import numpy as np

from ..transformer import PLACEMENTS, block_gradient_norms
from .base import Explorer
from .chosen import ChosenCurves
from .scales import format_ratio


class TransformerExplorer(ChosenCurves, Explorer):
    """Depth and LayerNorm placement -> ||dL/d(block parameters)|| for every block, measured at init.

    `course_lib.transformer.block_gradient_norms` (width 64, 4 heads, Xavier init,
    one batch of the reversal task) for both placements; the chosen one is drawn
    bold, the other faintly. Xiong et al. 2020: post-LN's gradients are larger
    (about sqrt(L) times pre-LN's at the last block), pre-LN's about even. Notebook 09.
    """

    title = "Post-LN vs pre-LN: gradient at each block at initialization"
    names, labels = PLACEMENTS, tuple(f"{p}-LN" for p in PLACEMENTS)
    xlabel, ylabel, legend_loc = "block (1 = next to the input)", "||dL/d(block parameters)||", "upper left"
    span = 2  # post-LN's growth (about sqrt(L)) spans under a decade: more would flatten it

    def __init__(self, *, depth: int = 12, placement: str = "post", batch_size: int = 32, seed: int = 0):
        self.batch_size, self.seed = batch_size, seed
        controls = {
            "depth": w.IntSlider(value=depth, min=2, max=48, step=2, description="blocks",
                                 continuous_update=False),
            "placement": w.ToggleButtons(options=list(PLACEMENTS), value=placement, description="LayerNorm"),
        }
        super().__init__(controls)

    def _measure(self, depth: int) -> dict:
        return {p: block_gradient_norms(depth, placement=p, batch_size=self.batch_size, seed=self.seed)
                for p in PLACEMENTS}

    @staticmethod
    def _chosen(data: dict) -> str:
        return data["placement"]

    def compute(self, *, depth: int, placement: str) -> dict:
        norms = self._both(depth)
        chosen = norms[placement]
        top_ratio = float(norms["post"][-1] / norms["pre"][-1])
        spread = float(chosen.max() / chosen.min())
        return {"depth": depth, "placement": placement, "norms": norms, "grad_norms": chosen,
                "top_ratio": top_ratio, "spread": spread, "sqrt_depth": float(np.sqrt(depth)),
                "summary": f"{placement}-LN, {depth} blocks: largest/smallest block {spread:.2g}; "
                           f"last block post/pre {top_ratio:.2g} (sqrt(L) = {np.sqrt(depth):.2g})"}

    def describe(self, data: dict) -> str:
        return (f"{data['placement']}-LN, {data['depth']} blocks: the largest block gradient is "
                f"<b>{format_ratio(data['spread'])}</b> times the smallest; at the last block post-LN gets "
                f"<b>{format_ratio(data['top_ratio'])}</b> times pre-LN's (sqrt(L) = {data['sqrt_depth']:.2g})")


def transformer_explorer(**settings) -> TransformerExplorer:
    """The notebook 09 explorer (see `TransformerExplorer`); display it by ending a cell with it."""
    return TransformerExplorer(**settings)
