"""The training loop's helpers for stopping between steps and for processes that show no progress bar."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger("rsseg")


class StopRequests:
    """Turns the first SIGINT/SIGTERM into a request checked between steps (never mid-update)."""

    def __init__(self):
        self.requested = False
        self._previous: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        log.warning("stopping after this step (press Ctrl-C again to stop at once)")

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class NullBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, n: int = 1, **fields: object) -> None:
        pass
