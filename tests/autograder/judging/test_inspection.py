"""Static inspection flags tampering and leaves honest code alone."""

import pytest

from autograder.judging import inspection

@pytest.mark.parametrize("code, reason", [
    ("import builtins\nbuiltins.abs = lambda x: 0", "builtins"),
    ("import numpy as np\nnp.allclose = lambda *a, **k: True", "inside the module"),
    ("get_ipython().input_transformers_post.append(f)", "IPython"),
    ("import sys\nsys.modules['x'] = None", "sys.modules"),
    ("import inspect\nf = inspect.currentframe().f_back", "frame"),
    ("class A(float):\n    def __eq__(self, o):\n        return True", "__eq__"),
    ("open('numpy.py', 'w').write('')", "Python could import"),
    ("!pip install x", "shell"),
    ("import os\nos._exit(0)", "os._exit"),
    ("exec('x = 1')", "exec"),
    ("setattr(checks, 'check_close', None)", "setattr"),
    ("x = (1).__class__.__subclasses__()", "internals"),
])
def test_inspection_flags_tampering(code, reason):
    findings = inspection.inspect_cells([(0, code)])
    assert any(reason.lower() in f.reason.lower() for f in findings), [f.reason for f in findings]


@pytest.mark.parametrize("code", [
    "import math\nimport numpy as np\nimport torch\nfrom functools import reduce",
    "def f(x):\n    h, grad = float(x), 1.0\n    for g in [math.sin]:\n        grad *= g(h)\n    return h, grad",
    "import sys, warnings\nprint('x', file=sys.stderr)\nwarnings.warn('w')",
    "class Block(torch.nn.Module):\n    def __init__(self):\n        super().__init__()\n    def forward(self, x):\n"
    "        return x",
    "layer.weight.data = torch.zeros(3)\nq = {'A': 'healthy'}\nresult = getattr(torch, 'tanh')(x)",
    "%matplotlib inline\nplt.plot([1, 2])",
])
def test_inspection_leaves_honest_code_alone(code):
    assert inspection.inspect_cells([(0, code)]) == []
