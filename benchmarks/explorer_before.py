"""The gradient-flow explorer as it was before issue 16, kept only to time it against the library's in one run.

Before: a batch of 256, every seed change built a new network with `build_mlp`
(nn.Linear's default init, then the scheme's), a weight-scale change copied the
initial weights and then multiplied them, the monitor was the one before
issue 16 (benchmarks/reference_monitor.py) recording six metrics, and every
change sent the whole figure to the page as a PNG (Agg, blitted: the base
class's path with ``browser_draws = False``). Drawing and the verdict are the library's.
"""

import torch

from benchmarks.reference_monitor import GradientMonitor as ReferenceMonitor
from course_lib.models import build_mlp
from course_lib.widgets import GradientFlowExplorer


class BeforeExplorer(GradientFlowExplorer):
    """`GradientFlowExplorer` with the compute path before issue 16."""

    batch_size = 256
    monitor_class = ReferenceMonitor
    metrics = ("grad_norm", "out_grad_norm", "act_mean", "act_std", "saturated", "dead")
    browser_draws = False  # a PNG of the whole figure per change

    def _network(self, s: dict) -> torch.nn.Module:
        key = (s["depth"], s["width"], s["activation"], s["init"], s["norm"], s["residual"], s["seed"])
        if key not in self._networks:
            net = build_mlp(s["depth"], s["width"], activation=s["activation"], init=s["init"],
                            norm=None if s["norm"] == "none" else s["norm"], residual=s["residual"],
                            out_features=self.num_classes, seed=s["seed"])
            weights = [m.weight for m in net.modules() if isinstance(m, torch.nn.Linear)]
            self._networks[key] = (net, weights, [p.detach().clone() for p in weights], [1.0])
            while len(self._networks) > 3:
                self._networks.popitem(last=False)
        self._networks.move_to_end(key)
        net, weights, initial, scale = self._networks[key]
        if scale[0] != s["weight_scale"]:
            with torch.no_grad():
                for weight, start in zip(weights, initial):
                    weight.copy_(start).mul_(s["weight_scale"])
            scale[0] = s["weight_scale"]
        return net


def before_explorer(**settings) -> BeforeExplorer:
    """The gradient-flow explorer before issue 16 (see `BeforeExplorer`)."""
    return BeforeExplorer(**settings)
