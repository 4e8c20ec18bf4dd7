"""Which modules a GradientMonitor watches, and where each one's weight and activation are."""

from dataclasses import dataclass

from torch import nn

from ..models import Block


@dataclass
class _Layer:
    name: str
    module: nn.Module
    weight: nn.Parameter | None
    activation: str | None
    act_module: nn.Module


def _find_layers(model: nn.Module, layers) -> list[_Layer]:
    if layers is None:
        blocks = [m for m in model.modules() if isinstance(m, Block)]
        if blocks:
            layers = blocks
        else:
            layers = [m for m in model.modules()
                      if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.RNNBase))]
    if isinstance(layers, dict):
        items = list(layers.items())
    else:
        items = [(f"layer {i + 1}", m) for i, m in enumerate(layers)]
    if not items:
        raise ValueError("GradientMonitor found no layers to watch: pass layers=[...] "
                         "(modules with a weight), or use course_lib.models.build_mlp")
    found = []
    for name, module in items:
        if isinstance(module, Block):
            found.append(_Layer(name, module, module.linear.weight, module.activation, module.act))
        else:
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter):
                weight = next((p for p in module.parameters() if p.dim() >= 2), None)
            found.append(_Layer(name, module, weight, None, module))
    return found
