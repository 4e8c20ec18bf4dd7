"""Time a test had: a limit measured in wall time minus the time the test's tasks waited for a CPU (Linux
schedstat), so a busy machine does not shorten anyone's limit; a wall-clock backstop still applies."""

from __future__ import annotations

import time

BACKSTOP = 10  # a time limit lasts at most this many times its length in wall-clock time


def _waited(path: str) -> float | None:
    """Seconds the task spent runnable but waiting for a CPU (the second field of its schedstat)."""
    try:
        with open(path) as file:
            return int(file.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


class Deadline:
    """`seconds` of the time a test had: wall time minus the time its tasks (the judge's thread, the
    kernel's main thread) spent waiting for a CPU. CPU burners beside it, in other sandboxes or
    elsewhere on the machine, slow it down but do not use up its limit. Never more than
    `BACKSTOP` x `seconds` of wall time."""

    def __init__(self, seconds: float, tasks):
        self.seconds, self._tasks = seconds, tasks  # tasks(): the schedstat files to count
        self._wall = time.monotonic()
        self._base: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._elapsed = 0.0
        self._sample()

    def _sample(self) -> float:
        waited = 0.0
        for path in self._tasks():
            value = _waited(path)
            if value is None:
                value = self._last.get(path)  # the task ended: its waiting stays counted
            if value is None:
                continue
            self._last[path] = value
            waited += value - self._base.setdefault(path, value)
        return waited

    def elapsed(self) -> float:
        wall = time.monotonic() - self._wall
        self._elapsed = max(self._elapsed, min(wall, wall - self._sample()))
        return self._elapsed

    def remaining(self) -> float:
        """Seconds left (<= 0: the limit is reached); re-check after at most this many wall seconds."""
        return min(self.seconds - self.elapsed(), BACKSTOP * self.seconds - (time.monotonic() - self._wall))
