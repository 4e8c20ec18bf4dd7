"""A test cell's outcome and what it is worth: passed or failed (hidden inputs in play or not), the value
it ended with, its outputs (those produced once hidden inputs were in play apart), as the test cache keeps
it; the score a returned number gives; and what a failed hidden test may tell the student."""

from __future__ import annotations

import builtins
import math
from dataclasses import dataclass, field

import numpy as np

from ..isolation import wire


@dataclass
class Outcome:
    """What a test cell's run gave: passed, or the failure (and whether hidden inputs were in play); the
    value it ended with; its outputs, those produced once hidden inputs were in play apart."""

    ok: bool = True
    value: object = None
    failure: dict | None = None
    hidden_failed: bool = False
    visible: list = field(default_factory=list)
    hidden: list = field(default_factory=list)

    def fail(self, failure: dict, *, hidden: bool) -> None:
        self.ok, self.failure, self.hidden_failed = False, failure, hidden

    def to_cache(self) -> dict:
        """As the test cache keeps it (the value as wire data: NotPlainData for one that is not)."""
        value = None if self.value is None else wire.encode(self.value)
        return {"ok": self.ok, "failure": self.failure, "hidden_failed": self.hidden_failed,
                "visible": self.visible, "hidden": self.hidden, "value": value}

    def restore(self, cached: dict) -> None:
        self.ok, self.failure, self.hidden_failed = cached["ok"], cached["failure"], cached["hidden_failed"]
        self.visible, self.hidden = cached["visible"], cached["hidden"]
        self.value = wire.decode(cached["value"]) if cached["value"] is not None else None


def returned_score(value, points: float) -> float | None:
    """The number a passing test returned as its score (partial credit, clipped to its points); None when
    it returned nothing, a bool, or no finite number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        partial = float(value) if isinstance(value, (int, float, np.integer, np.floating)) else None
    except (TypeError, ValueError):
        partial = None
    if partial is None or not math.isfinite(partial):
        return None
    return min(max(partial, 0.0), float(points))


_SAFE_ERROR_NAMES = {name for name, obj in vars(builtins).items()
                     if isinstance(obj, type) and issubclass(obj, BaseException)} | {"LinAlgError", "CheckFailed"}


def failure_kind(failure: dict) -> str:
    """What a failed hidden test may tell the student: the kind of failure, never a message or output
    produced while hidden inputs were in play (an answer can put them into its exception's message)."""
    ename = str(failure.get("ename", ""))
    if ename in ("TimeoutError", "KeyboardInterrupt") or failure.get("alarm"):
        return "took too long"
    if ename in ("AssertionError", "CheckFailed"):
        return "wrong value"
    if ename == "KernelDied":
        return "the kernel stopped"
    if ename == "NotTransferable":
        return "returned something that is not plain data (numbers, arrays, strings, lists, dicts)"
    if ename == "StudentCodeError":  # "Kind: message" from the kernel: the kind only if it names a known class
        kind = str(failure.get("evalue", "")).split(":", 1)[0].strip()
        return f"{kind} raised" if kind in _SAFE_ERROR_NAMES else "an exception of a class of your own raised"
    return f"{ename} raised" if ename.isidentifier() else "an exception raised"
