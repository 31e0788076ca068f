"""PowerOffice's rate limit: N requests per second per subscription key, shared by all clients.

A sliding-window log: at most `limit` admitted requests in any window of `window_s`.
Rejected requests do not count against the window. The wait it reports is how long until
the oldest admitted request leaves the window, rounded up to whole seconds (never below
one: "wait at least a second") for the `Retry-After` header.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable


class SlidingWindowRateLimiter:
    def __init__(self, limit: int | None, window_s: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._admitted: dict[str, deque[float]] = {}

    @property
    def limit(self) -> int | None:
        """Requests per window; None = no limit."""
        return self._limit

    def configure(self, limit: int | None) -> None:
        with self._lock:
            self._limit = limit
            self._admitted.clear()

    def check(self, key: str) -> float | None:
        """Admit the request (None) or return the seconds to wait before the next one fits."""
        if self._limit is None:
            return None
        now = self._clock()
        with self._lock:
            window = self._admitted.setdefault(key, deque())
            while window and window[0] <= now - self._window_s:
                window.popleft()
            if len(window) < self._limit:
                window.append(now)
                return None
            return window[0] + self._window_s - now


def retry_after_header(wait_s: float) -> str:
    return str(max(1, math.ceil(wait_s)))
