"""What the chaos run watches while it runs: which inserted payments PowerOffice has registered,
and the longest stall.

**Longest stall** (the figure in the last line and in BENCHMARKS.md): every 0.25 s the sandbox's
vouchers are sampled (in process: the sandbox runs in the harness). A payment is *waiting* from
`WAITING_AFTER_S` (2 s) after its insert was committed until a voucher with its reference is
registered (the producer holds the newest second back, then polls every 0.5 s, so younger
payments cannot be registered yet). A stall is an interval during which at least one payment was
waiting and no new voucher at all was registered; it starts at the later of the last new voucher
and the moment the oldest waiting payment began to wait. Time during which the database was
deliberately down (from the hard stop until it accepts connections again) is left out of a stall:
nothing can be read or marked then. What follows the restart (reconnecting, retries) counts.
"""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Callable

WAITING_AFTER_S = 2.0
SAMPLE_S = 0.25


class Watch:
    def __init__(self, vouchers: Callable[[], list], now: Callable[[], float] = time.monotonic) -> None:
        self._vouchers = vouchers  # the sandbox ledger's vouchers, oldest first
        self._now = now
        self._lock = threading.Lock()
        self.inserted: dict[str, float] = {}  # reference -> monotonic time its insert committed
        self._queue: deque[tuple[float, str]] = deque()  # inserted, oldest first, not yet seen registered
        self.registered: Counter[str] = Counter()  # reference -> vouchers with it
        self._seen = 0
        self.last_new = now()
        self.down: list[list[float | None]] = []  # [start, end]: the database deliberately down
        self.longest = 0.0
        self.longest_where = ""
        self.current = 0.0
        self.phase = "start"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-watch", daemon=True)

    # -- feeding -------------------------------------------------------------------------
    def payments_inserted(self, references: list[str], at: float) -> None:
        with self._lock:
            for reference in references:
                self.inserted[reference] = at
                self._queue.append((at, reference))

    def database_down(self) -> None:
        with self._lock:
            self.down.append([self._now(), None])

    def database_up(self) -> None:
        with self._lock:
            if self.down and self.down[-1][1] is None:
                self.down[-1][1] = self._now()

    # -- sampling ------------------------------------------------------------------------
    def start(self) -> "Watch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            self.sample()

    def sample(self) -> None:
        vouchers = self._vouchers()
        now = self._now()
        with self._lock:
            fresh = vouchers[self._seen:]
            self._seen = len(vouchers)
            for voucher in fresh:
                self.registered[voucher.draft.external_import_reference] += 1
            if fresh:
                self.last_new = now
            while self._queue and self.registered[self._queue[0][1]]:
                self._queue.popleft()
            self.current = 0.0
            if not self._queue:
                return
            waiting_since = self._queue[0][0] + WAITING_AFTER_S
            if waiting_since >= now:
                return
            start = max(self.last_new, waiting_since)
            self.current = max(0.0, now - start - self._downtime(start, now))
            if self.current > self.longest:
                self.longest = self.current
                self.longest_where = f"{self.phase}, ending {time.strftime('%H:%M:%S')}"

    def _downtime(self, start: float, end: float) -> float:
        total = 0.0
        for down_from, down_to in self.down:
            to = end if down_to is None else down_to
            total += max(0.0, min(end, to) - max(start, down_from))
        return total

    # -- reading -------------------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(inserted, of those registered)."""
        with self._lock:
            return len(self.inserted), sum(1 for r in self.inserted if self.registered[r])

    def unregistered(self) -> list[str]:
        with self._lock:
            return [r for r in self.inserted if not self.registered[r]]
