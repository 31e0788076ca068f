"""What PowerOffice knows about the invoices the consumer is about to pay, looked up in bulk.

PowerOffice's contract does not promise to refuse a payment line for an invoice it does not
know (it may book it as an unmatched line), so the consumer checks first: does the invoice exist,
is it this customer's, is it unreversed, is it in the payment's currency.

Cost: `want()` registers the invoice numbers of everything polled; the first payment that needs
an invoice not in the cache fetches it together with up to `batch` other wanted numbers, in one
`GET /OutgoingInvoices?invoiceNos=...`. Entries are kept `ttl_s`: long enough that a batch
fetched for a backlog applied at PowerOffice's rate limit is used before it expires, short
enough that an invoice created or reversed in PowerOffice is seen within minutes.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, Iterable

from vb2po.poweroffice.api import PowerOfficeApi
from vb2po.poweroffice.models import OutgoingInvoice

DEFAULT_TTL_S = 120.0
DEFAULT_BATCH = 200  # invoice numbers per look-up: one request's filter for scattered six-digit numbers
MAX_WANTED = 50_000
FETCH_WAIT_S = 60.0  # (a look-up ends, one way or the other, within PowerOffice's timeout)


class InvoiceDirectory:
    def __init__(self, api: PowerOfficeApi, *, ttl_s: float = DEFAULT_TTL_S, batch: int = DEFAULT_BATCH,
                 clock: Callable[[], float] = time.monotonic):
        self._api = api
        self._ttl_s = ttl_s
        self._batch = batch
        self._clock = clock
        self._lock = threading.Lock()
        self._known: dict[int, tuple[float, OutgoingInvoice | None]] = {}  # number -> (fetched at, invoice or None)
        self._wanted: OrderedDict[int, None] = OrderedDict()
        self._fetching: dict[int, threading.Event] = {}  # numbers a look-up is under way for
        self.lookups = 0  # requests made (for tests and the calls-per-payment figure)

    def want(self, numbers: Iterable[int]) -> None:
        """These invoices will be asked for soon: fetch them along with the next miss."""
        with self._lock:
            for number in numbers:
                if not self._fresh(number):
                    self._wanted[number] = None
            while len(self._wanted) > MAX_WANTED:
                self._wanted.popitem(last=False)

    def get(self, number: int) -> OutgoingInvoice | None:
        """The invoice, or None when PowerOffice has no invoice with that number. A number another
        lane is fetching already is waited for, not fetched again (lanes miss together at start)."""
        while True:
            with self._lock:
                if self._fresh(number):
                    return self._known[number][1]
                fetching = self._fetching.get(number)
                if fetching is None:
                    batch = [number]
                    for wanted in list(self._wanted):
                        if len(batch) >= self._batch:
                            break
                        if wanted != number and wanted not in self._fetching and not self._fresh(wanted):
                            batch.append(wanted)
                    done = threading.Event()
                    for n in batch:
                        self._fetching[n] = done
                    break
            fetching.wait(FETCH_WAIT_S)  # then look again: fetched, or that fetch failed and this lane tries
        try:
            found = {inv.invoice_no: inv for inv in self._api.get_invoices(batch)}  # (outside the lock: it waits)
            now = self._clock()
            with self._lock:
                self.lookups += 1
                for n in batch:
                    self._known[n] = (now, found.get(n))
                    self._wanted.pop(n, None)
                self._forget_stale(now)
                return self._known[number][1]
        finally:
            with self._lock:
                for n in batch:
                    self._fetching.pop(n, None)
            done.set()

    def _fresh(self, number: int) -> bool:
        entry = self._known.get(number)
        return entry is not None and self._clock() - entry[0] < self._ttl_s

    def _forget_stale(self, now: float) -> None:
        if len(self._known) > 4 * MAX_WANTED:
            self._known = {n: e for n, e in self._known.items() if now - e[0] < self._ttl_s}
