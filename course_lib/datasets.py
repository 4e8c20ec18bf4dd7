"""Seeded data sets: nothing is downloaded, everything is generated or ships with a package.

Every function returns ``(X, y)`` as torch tensors (float32 inputs; int64
class labels or float32 regression targets) and takes a ``seed``, so a
notebook gives the same numbers on every run.
"""

import functools
import math

import numpy as np
import torch


def load_digits(*, scale: float = 16.0) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 digits: X (1797, 64) in [0, 1] (pixels / `scale`), y (1797,) in 0..9.

    The data ship inside scikit-learn (Alpaydin & Kaynak 1998, UCI), so this
    never touches the network. Glorot & Bengio's experiments used pixels in [0, 1] too.
    The file is read as `sklearn.datasets.load_digits` reads it, without importing
    scikit-learn (about a second of start-up in every notebook that uses the digits),
    and only once per process (parsing it takes ~10 ms; notebook 08 trains 20 networks
    on it); every call returns new tensors, so a caller may change them freely.
    """
    data = _digits_table()
    return (torch.tensor(data[:, :-1] / scale, dtype=torch.float32),
            torch.tensor(data[:, -1].astype(int), dtype=torch.int64))


@functools.cache
def _digits_table() -> np.ndarray:
    """The digits file as parsed numbers, (1797, 65): 64 pixels (0-16) and the label; read-only."""
    import gzip
    import importlib.util
    from pathlib import Path

    package = Path(importlib.util.find_spec("sklearn").submodule_search_locations[0])
    with gzip.open(package / "datasets" / "data" / "digits.csv.gz", "rt", encoding="utf-8") as file:
        data = np.loadtxt(file, delimiter=",")
    data.flags.writeable = False
    return data


def make_spirals(n: int = 600, *, classes: int = 3, noise: float = 0.2, seed: int = 0):
    """`classes` interleaved spiral arms in 2-D (CS231n's toy task), `n` points in all."""
    rng = np.random.default_rng(seed)
    per = n // classes
    X, y = [], []
    for label in range(classes):
        r = np.linspace(0.0, 1.0, per)
        theta = np.linspace(label * 4.0, (label + 1) * 4.0, per) + rng.normal(0, noise, per)
        X.append(np.c_[r * np.sin(theta), r * np.cos(theta)])
        y.append(np.full(per, label))
    return torch.tensor(np.concatenate(X), dtype=torch.float32), torch.tensor(np.concatenate(y))


def make_circles(n: int = 600, *, noise: float = 0.1, factor: float = 0.5, seed: int = 0):
    """Two concentric circles in 2-D (inner radius `factor`), labels 0 (outer) and 1 (inner)."""
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, 2 * math.pi, n)
    y = np.arange(n) % 2
    radius = np.where(y == 1, factor, 1.0)
    X = np.c_[radius * np.cos(angles), radius * np.sin(angles)] + rng.normal(0, noise, (n, 2))
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y)


def make_sign_memory(n: int, length: int, *, noise: float = 0.2, seed: int = 0):
    """Remember the first input's sign over `length` steps (Bengio et al. 1994's latching task).

    X (n, length, 1): step 0 holds +-1, every later step N(0, noise^2);
    y (n,): 1 if the first input was positive. Only a network that carries
    information across all `length` steps can beat 50% accuracy.
    """
    rng = np.random.default_rng(seed)
    sign = rng.integers(0, 2, n)
    X = rng.normal(0.0, noise, (n, length, 1))
    X[:, 0, 0] = 2.0 * sign - 1.0
    return torch.tensor(X, dtype=torch.float32), torch.tensor(sign)


def make_adding_problem(n: int, length: int, *, seed: int = 0):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015's variant).

    X (n, length, 2): channel 0 uniform in [0, 1], channel 1 marks exactly two
    positions (one in each half); y (n, 1) is the sum of the two marked values.
    Always predicting 1 gives mean squared error 1/6, the baseline to beat.
    """
    rng = np.random.default_rng(seed)
    values = rng.uniform(0.0, 1.0, (n, length))
    markers = np.zeros((n, length))
    half = length // 2
    first = rng.integers(0, half, n)
    second = rng.integers(half, length, n)
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    X = np.stack([values, markers], axis=-1)
    y = (values * markers).sum(axis=1, keepdims=True)
    return torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)


def make_gaussian_inputs(n: int, features: int, *, seed: int = 0) -> torch.Tensor:
    """`n` standard-normal inputs of `features` dims, the usual probe for a network at init."""
    return torch.randn(n, features, generator=torch.Generator().manual_seed(seed))
