"""GradientMonitor: watch every layer of a network while it trains.

Forward and backward hooks record, per layer and per training step:

============== ==================================================================
metric         meaning
============== ==================================================================
grad_norm      ||dL/dW||, the weight gradient's norm (what the optimizer uses)
grad_std       std of dL/dW
out_grad_norm  ||dL/dh||, the gradient arriving at the layer's output
act_mean       mean of the layer's activations
act_std        std of the layer's activations
saturated      fraction of sigmoid outputs < 0.03 or > 0.97, tanh |a| > 0.97
dead           fraction of units whose activation derivative is 0 (< 1e-6) on
               every example of the batch (a dead ReLU passes no gradient)
grad_data      std(dL/dW) / std(W)
update_data    std(W_after - W_before) / std(W) for the optimizer step that
               followed (Karpathy's rule of thumb: about 1e-3 is healthy),
               estimated on 4,096 sampled weights of larger layers
============== ==================================================================

A step is one forward pass of the whole model with gradients enabled (passes
under ``torch.no_grad()``, such as evaluation, are not recorded). Taught in
notebook 02, used throughout; the capstone (08) reads its ``report()``.

Modules: `monitor` (the `GradientMonitor` class: hooks, one row of statistics per
recorded step), `layers` (which modules it watches), `moments` (the batched sums
behind every statistic), `activity` (the saturated and dead fractions) and
`findings` (what `diagnose` says about a step).
"""

from .findings import Finding
from .monitor import METRICS, UPDATE_SAMPLE, GradientMonitor

__all__ = ["METRICS", "UPDATE_SAMPLE", "Finding", "GradientMonitor"]
