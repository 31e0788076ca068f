"""Request counters per endpoint and status, so tests can see what a client really sent."""
from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any

_ID_SEGMENT = re.compile(r"^(\d+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$")
LOST = "lost"  # the answer never reached the client in full


def endpoint_name(method: str, path: str) -> str:
    """'GET /v2/Customers/{id}' for '/v2/Customers/7010001': one counter per route, not per id."""
    segments = ["{id}" if _ID_SEGMENT.match(s) else s for s in path.split("/")]
    return f"{method} {'/'.join(segments)}"


class RequestStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._rate_limited = 0
        self._open = 0  # API requests being handled now
        self._most_open = 0  # the most at once since the last reset: what a client's window really was

    def opened(self) -> None:
        with self._lock:
            self._open += 1
            self._most_open = max(self._most_open, self._open)

    def closed(self) -> None:
        with self._lock:
            self._open -= 1

    def record(self, method: str, path: str, status: int | str) -> None:
        with self._lock:
            self._counts[(endpoint_name(method, path), str(status))] += 1
            if status == 429:
                self._rate_limited += 1

    def count(self, endpoint: str, status: int | str | None = None) -> int:
        with self._lock:
            return sum(n for (e, s), n in self._counts.items() if e == endpoint and (status is None or s == str(status)))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._rate_limited = 0
            self._most_open = self._open

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            by_endpoint: dict[str, dict[str, int]] = {}
            for (endpoint, status), n in sorted(self._counts.items()):
                by_endpoint.setdefault(endpoint, {})[status] = n
            return {"requests": by_endpoint, "total": sum(self._counts.values()), "rate_limited": self._rate_limited,
                    "most_open": self._most_open}
