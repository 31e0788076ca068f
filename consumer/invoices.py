"""What PowerOffice knows about the invoices the consumer is about to pay, looked up in bulk.

PowerOffice's contract does not promise to refuse a payment line for an invoice it does not
know (it may book it as an unmatched line), so the consumer checks first: does the invoice exist,
is it this customer's, is it unreversed, is it in the payment's currency.

Cost: `want()` registers the invoice numbers of everything polled; the first payment that needs
an invoice not in the cache fetches it together with up to `batch` other wanted numbers, in one
`GET /OutgoingInvoices?invoiceNos=...`. Each look-up then starts the next one in the background
(one batch ahead, no more: the same requests, made before a lane has to wait for them), and so
does a lane that finds its invoice cached when less than a batch of fetched invoices is left
unused and a full batch is wanted (a backlog's lanes never wait; a trickle's few wanted numbers
still ride along with the next miss, so it costs no extra requests). Entries
are kept `ttl_s`: long enough that a batch fetched for a backlog applied at PowerOffice's rate
limit is used before it expires, short enough that an invoice created or reversed in PowerOffice
is seen within minutes.
"""
from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)


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
        self._ahead: threading.Thread | None = None  # the look-up started ahead of the lanes, if one runs
        self._unused: set[int] = set()  # fetched for `want()`, not asked for yet: how far ahead the look-ups are
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
                    self._unused.discard(number)
                    if len(self._unused) < self._batch and len(self._wanted) - len(self._fetching) >= self._batch:
                        self._start_ahead()
                    return self._known[number][1]
                fetching = self._fetching.get(number)
                if fetching is None:
                    batch, done = self._claim_batch([number])
                    break
            fetching.wait(FETCH_WAIT_S)  # then look again: fetched, or that fetch failed and this lane tries
        self._fetch(batch, done)
        with self._lock:
            self._unused.discard(number)
            self._start_ahead()
            return self._known[number][1]

    def _claim_batch(self, batch: list[int]) -> tuple[list[int], threading.Event]:
        """(under the lock) `batch` filled up with wanted numbers no one is fetching, marked as fetched now."""
        given = set(batch)
        for wanted in self._wanted:
            if len(batch) >= self._batch:
                break
            if wanted not in given and wanted not in self._fetching and not self._fresh(wanted):
                batch.append(wanted)
        done = threading.Event()
        for n in batch:
            self._fetching[n] = done
        return batch, done

    def _fetch(self, batch: list[int], done: threading.Event) -> None:
        try:
            found = {inv.invoice_no: inv for inv in self._api.get_invoices(batch)}  # (outside the lock: it waits)
            now = self._clock()
            with self._lock:
                self.lookups += 1
                for n in batch:
                    self._known[n] = (now, found.get(n))
                    self._wanted.pop(n, None)
                if len(self._unused) > MAX_WANTED:
                    self._unused.clear()
                self._unused.update(batch)
                self._forget_stale(now)
        finally:
            with self._lock:
                for n in batch:
                    self._fetching.pop(n, None)
            done.set()

    def _start_ahead(self) -> None:
        """(under the lock) Fetch the next wanted batch in the background, unless one is under way already."""
        if self._ahead is not None and self._ahead.is_alive():
            return
        batch, done = self._claim_batch([])
        if not batch:
            return
        self._ahead = threading.Thread(target=self._fetch_ahead, args=(batch, done), name="invoices-ahead", daemon=True)
        self._ahead.start()

    def _fetch_ahead(self, batch: list[int], done: threading.Event) -> None:
        try:
            self._fetch(batch, done)
        except Exception as exc:  # noqa: BLE001 - only a head start: a lane that needs one of them fetches it itself
            log.info("looking up %s invoices ahead failed (%s); they are looked up when needed", len(batch), exc)

    def _fresh(self, number: int) -> bool:
        entry = self._known.get(number)
        return entry is not None and self._clock() - entry[0] < self._ttl_s

    def _forget_stale(self, now: float) -> None:
        if len(self._known) > 4 * MAX_WANTED:
            self._known = {n: e for n, e in self._known.items() if now - e[0] < self._ttl_s}
