"""Which offset of a partition may be committed while records finish out of order.

Records of different customers in one partition are processed concurrently, so they finish in
any order. The committed offset must never pass a record that is not fully processed: it is
one past the longest run of finished records from the oldest one still tracked.
"""
from __future__ import annotations

import threading
from collections import deque


class PartitionOffsets:
    def __init__(self) -> None:
        self._in_order: deque[int] = deque()
        self._finished: set[int] = set()
        self._committable: int | None = None
        self.committed: int | None = None  # what the consumer last committed for this partition
        self._lock = threading.Lock()

    def started(self, offset: int) -> bool:
        """Track `offset`; False when it is tracked or done already (fetched again after a
        rebalance that kept the partition here), so the caller does not process it twice."""
        with self._lock:
            last = self._in_order[-1] if self._in_order else (self._committable - 1 if self._committable is not None else None)
            if last is not None and offset <= last:
                return False
            self._in_order.append(offset)
            return True

    def finished(self, offset: int) -> None:
        with self._lock:
            self._finished.add(offset)
            while self._in_order and self._in_order[0] in self._finished:
                done = self._in_order.popleft()
                self._finished.discard(done)
                self._committable = done + 1

    def committable(self) -> int | None:
        """The offset to commit (next one to read), or None when nothing finished yet."""
        with self._lock:
            return self._committable

    def first_in_flight(self) -> int | None:
        with self._lock:
            return self._in_order[0] if self._in_order else None

    def last_started(self) -> int | None:
        with self._lock:
            return self._in_order[-1] if self._in_order else None

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_order)
