"""Interactive explorers: sliders that run a real network and redraw its gradients.

Every explorer is an `Explorer`: controls (ipywidgets), a `compute` step that
runs the network for the current values and returns plain data, a `draw`
step that plots that data on a matplotlib Figure kept by the explorer (never
pyplot's, so figures do not pile up), and a one-line verdict. The page
shows the figure as a PNG (``explorer.image``) with the lines that move
drawn over it by the browser as SVG (``explorer.curves``, an
``ipywidgets.HTML``: nothing to install in JupyterLab); ``explorer.png`` is
the whole figure as one PNG.

Explorers can be driven from code, which is how the tests check them::

    explorer = chain_explorer()
    data = explorer.update(depth=30, factor=0.5)   # recompute and redraw
    explorer.last, explorer.verdict.value, explorer.png

Displayed in a notebook, an explorer writes two outputs: the live widget and
a saved copy of its title, verdict and figure (`static_html`). JupyterLab
shows the copy only when the widget cannot be drawn (its model is gone after
a page reload or with a new kernel), in place of "Error displaying widget";
a front end without widgets (nbconvert, a script) shows the copy.

Text is readable at JupyterLab's default width: figures render at 80 dpi,
so the course's 11 pt text (`course_lib.plotting.COURSE_RC`) is 12 px or
more, and every figure is at most 800 px wide.

Why it feels instant (benchmarks/README.md, "Explorers", has the numbers):
- a slider change from the browser only marks the explorer stale; one
  background thread recomputes it with the newest values, so a burst of
  events never queues a backlog (changes made from code run synchronously);
- results and their figures are cached per setting (going back to a value
  costs nothing), and subclasses cache what a control does not touch
  (`GradientFlowExplorer` keeps the batch and the network);
- subclasses may implement `redraw` to move existing artists (set_data)
  instead of rebuilding the figure, and mark the moving lines animated:
  the browser draws those (a few kB of SVG path per change, in the PNG's
  pixels, from matplotlib's own transforms), and the static rest (axes,
  ticks, labels, legend) is rendered and sent as a PNG only when it
  changes; the layout is recomputed only when the y tick labels change
  width. Explorers without animated lines send an Agg PNG (80 dpi, fast
  run-length compression) per change.

One module per explorer (named after the notebook's topic), plus `base`
(the `Explorer` class: controls, cache, refresh, display), `frames` (its
figure as the page gets it: drawing, layout reuse, PNG), `svg` (the animated
lines as SVG), `refresher` (the background thread), `layer_curves`
(per-layer curves on a log axis), `scales` (ratio text, log-axis limits, layer
ranges), `bars` (bar charts as a line the browser can draw) and `chosen` (two
curves of one depth, one drawn bold: the residual and transformer explorers). A new
explorer is a module here whose factory is imported below and listed in
``__all__`` (tests/test_widgets.py drives every factory listed there).
"""

from .activation import ActivationExplorer, activation_explorer
from .base import STATIC_NOTE, Explorer
from .chain import ChainExplorer, chain_explorer
from .gradient_flow import GradientFlowExplorer, gradient_flow_explorer
from .normalization import NormalizationExplorer, normalization_explorer
from .recurrent import RecurrentExplorer, recurrent_explorer
from .residual import ResidualExplorer, residual_explorer
from .saturation import SaturationExplorer, saturation_explorer
from .scales import decade_limits, format_ratio
from .transformer import TransformerExplorer, transformer_explorer
from .variance import VarianceExplorer, variance_explorer

__all__ = [
    "STATIC_NOTE", "Explorer", "decade_limits", "format_ratio",
    "ActivationExplorer", "ChainExplorer", "GradientFlowExplorer", "NormalizationExplorer", "RecurrentExplorer",
    "ResidualExplorer", "SaturationExplorer", "TransformerExplorer", "VarianceExplorer",
    "activation_explorer", "chain_explorer", "gradient_flow_explorer", "normalization_explorer",
    "recurrent_explorer", "residual_explorer", "saturation_explorer", "transformer_explorer", "variance_explorer",
]
