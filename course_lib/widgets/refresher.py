"""The background thread that refreshes stale explorers (front-end changes), each once with its newest values."""

import sys
import threading
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Explorer


class _Refresher:
    """One background thread that refreshes stale explorers, each with its newest values.

    A dragged slider sends a burst of changes. Each one only marks its
    explorer stale here; the thread then recomputes each stale explorer once,
    with whatever its controls hold at that moment. A burst costs at most one
    computation in flight plus one with the latest values, never a backlog,
    and the kernel stays free to receive events while the thread works.
    """

    def __init__(self):
        self._stale: dict[int, "Explorer"] = {}
        self._running: "Explorer | None" = None
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, explorer: "Explorer") -> None:
        with self._condition:
            self._stale[id(explorer)] = explorer
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="explorer-refresh", daemon=True)
                self._thread.start()
            self._condition.notify_all()

    def wait(self, explorer: "Explorer", timeout: float | None = None) -> bool:
        """Block until `explorer` has no refresh pending or running; False on timeout."""
        with self._condition:
            return self._condition.wait_for(
                lambda: id(explorer) not in self._stale and self._running is not explorer, timeout)

    pause = 0.25  # seconds with nothing stale (the page paints the new figure) before working ahead

    def _run(self) -> None:
        ahead: "Explorer | None" = None  # the explorer refreshed last, which may work ahead while idle
        while True:
            with self._condition:
                stale = self._condition.wait_for(lambda: bool(self._stale), None if ahead is None else self.pause)
                if stale:
                    self._running = self._stale.pop(next(iter(self._stale)))
            if not stale:
                self._work_ahead(ahead)
                ahead = None
                continue
            try:
                self._running._refresh_reporting_errors()
            finally:
                ahead = self._running
                with self._condition:
                    self._running = None
                    self._condition.notify_all()

    def _work_ahead(self, explorer: "Explorer") -> None:
        """`explorer.work_ahead()` piece by piece until it is done or an explorer turns stale."""
        try:
            while explorer.work_ahead():
                with self._condition:
                    if self._stale:
                        return
        except Exception:  # work ahead is optional: the next change computes what it needs
            traceback.print_exc(file=sys.__stderr__)


_refresher = _Refresher()
