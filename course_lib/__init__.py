"""course_lib: the helper library of "Vanishing Gradients, hands-on".

Small modules, one noun each (see ../README.md, "Author guide").

Shared by every notebook: models, initialization, monitoring, datasets,
training, plotting, widgets, checks, gradcheck, chains, seeding.
One notebook's experiments each: saturation (02), recurrent (03),
activations (04), variance (05), normalization (06), residual (07),
mysteries (08), transformer, attention, branch_scaling, optimizers and
precision (09). Notebooks import what they need explicitly, e.g.
``from course_lib.models import build_mlp``.
"""

__version__ = "0.1.0"

NOTEBOOKS = (
    "01_chain_rule",
    "02_sigmoid_saturation",
    "03_rnn_long_range",
    "04_relu_and_friends",
    "05_initialization",
    "06_normalization",
    "07_resnets",
    "08_diagnosing",
    "09_modern_training",
)
"""The course's notebooks in teaching order (tests/test_build.py checks autograder/source/ holds exactly these)."""
