"""Caches of PowerOffice account ids, so posting a payment costs one request, not three.

A payment's voucher needs the customer's sub-ledger account id and the bank account's
id. Both change (practically) never, so they are looked up in bulk up front
(`prefetch`), and a miss costs one lookup. A number PowerOffice does not know is a
terminal error: retrying cannot make the customer or account appear.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from vb2po.errors import TerminalError

CUSTOMER_NOT_FOUND = "customer_not_found"
ACCOUNT_NOT_FOUND = "account_not_found"


class IdCache:
    """number -> id, filled by a bulk `lookup(numbers) -> {number: id}`."""

    def __init__(self, lookup: Callable[[list[int]], dict[int, int]], what: str, missing_reason: str):
        self._lookup = lookup
        self._what = what
        self._missing_reason = missing_reason
        self._lock = threading.Lock()
        self._ids: dict[int, int] = {}
        self.lookups = 0  # requests made on behalf of the cache (bulk or single)

    def prefetch(self, numbers: Iterable[int]) -> None:
        with self._lock:
            wanted = sorted({int(n) for n in numbers} - self._ids.keys())
        if wanted:
            self.remember(self._lookup(wanted))
            self.lookups += 1

    def remember(self, ids: dict[int, int]) -> None:
        with self._lock:
            self._ids.update(ids)

    def get(self, number: int) -> int:
        with self._lock:
            found = self._ids.get(number)
        if found is not None:
            return found
        self.prefetch([number])
        with self._lock:
            found = self._ids.get(number)
        if found is None:
            raise TerminalError(f"PowerOffice has no {self._what} with number {number}", reason=self._missing_reason)
        return found
