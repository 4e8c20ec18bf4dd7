"""The judge's random state: lent to each call into the kernel, moved on after it, saved and restored
around each test, never taken from the student's side."""

from __future__ import annotations

import random

import numpy as np

from ..isolation import wire


def rng_state() -> dict:
    """The judge's torch, numpy and Python random states, encoded for the kernel to adopt for one call."""
    import torch  # not at import: the grader's own process never needs it

    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {"torch": wire.encode(torch.get_rng_state().numpy()),
            "numpy": [wire.encode(np.asarray(keys)), int(pos), int(has_gauss), float(cached)],
            "python": [version, wire.encode(np.asarray(internal, dtype=np.int64)), gauss],
            "dtype": str(torch.get_default_dtype()).replace("torch.", "")}


def advance_rng() -> None:
    """Move the judge's own random streams on after each call (so two calls never see the same state),
    without ever taking a state from the student's side."""
    import torch

    torch.rand(1)
    np.random.random()
    random.random()


def save_rng():
    import torch

    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def restore_rng(state) -> None:
    import torch

    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])
    advance_rng()
