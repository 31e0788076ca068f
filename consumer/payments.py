"""Applying one payment event: register it in PowerOffice once, then mark the Visma row.

Order of steps, each safe to repeat after a crash at any point:
1. the Visma row already carries the marker -> nothing to do;
2. post the bank journal voucher with a reference derived from the Visma key; PowerOffice
   refuses a second voucher with the same reference, which we read as "already applied";
3. set the marker with a conditional UPDATE on the still-unmarked row;
4. (the caller commits the Kafka offset).
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Callable, Iterable

from consumer import applied_log
from consumer.markers import MarkerStore
from consumer.routing import Route, route_for
from schemas.events import PaymentEvent
from vb2po import metrics
from vb2po.errors import TerminalError, Vb2poError
from vb2po.poweroffice.api import PowerOfficeApi
from vb2po.poweroffice.models import PaymentPosting

log = logging.getLogger(__name__)

APPLIED = "applied"
ALREADY_APPLIED = "already_applied"
ALREADY_MARKED = "already_marked"


def external_import_reference(company_no: int, jno: int, entno: int) -> str:
    """Deterministic per Visma row and at most 50 characters (PowerOffice's limit)."""
    return f"VB2PO-F{company_no:04d}-J{jno}-E{entno}"


def posting_for(event: PaymentEvent, route: Route, api: PowerOfficeApi) -> PaymentPosting:
    p = event.payload
    try:
        invoice_no = int(p.invoice_no)
    except ValueError:
        raise TerminalError(f"invoice number {p.invoice_no!r} is not a PowerOffice invoice number",
                            reason="invalid_invoice_no") from None
    try:
        return PaymentPosting(
            external_import_reference=external_import_reference(p.company_no, p.jno, p.entno),
            voucher_date=p.voucher_date, posting_date=p.voucher_date, currency_code=p.currency,
            amount=p.amount, bank_account_id=api.account_id(route.client.bank_account),
            customer_no=p.customer_no, invoice_no=invoice_no, description=p.text or f"Innbetaling {invoice_no}",
        )
    except ValueError as exc:
        raise TerminalError(f"payment cannot be posted: {exc}", reason="validation") from exc


class PaymentApplier:
    def __init__(
        self,
        routes: dict[int, Route],
        apis: dict[int, PowerOfficeApi],
        markers: dict[int, MarkerStore],
        *,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ):
        self.routes = routes
        self.apis = apis
        self.markers = markers
        self.now = now

    def already_marked(self, events: Iterable[PaymentEvent]) -> set[tuple[int, int, int]]:
        """(company, JNo, EntNo) of the events whose Visma row carries the marker already: one
        query per company for a whole batch. A company whose look-up fails is left out; each of
        its events is then checked on its own by `apply`."""
        wanted: dict[int, set[tuple[int, int]]] = defaultdict(set)
        for event in events:
            p = event.payload
            if p.company_no in self.markers:  # an unknown company is dead-lettered by `apply`
                wanted[p.company_no].add((p.jno, p.entno))
        found: set[tuple[int, int, int]] = set()
        for company_no, keys in wanted.items():
            try:
                found.update((company_no, jno, entno) for jno, entno in self.markers[company_no].marked_among(keys))
            except Vb2poError as exc:
                log.warning("company %s: batch marker look-up failed (%s); each payment is checked on its own",
                            company_no, exc)
        return found

    def apply(self, event: PaymentEvent) -> str:
        p = event.payload
        route = route_for(self.routes, p.company_no)
        api, markers = self.apis[p.company_no], self.markers[p.company_no]
        if markers.is_marked(p.jno, p.entno):
            metrics.EVENTS_SKIPPED.labels("payment", ALREADY_MARKED).inc()
            return ALREADY_MARKED
        result = api.post_payment(posting_for(event, route, api))
        if markers.mark(p.jno, p.entno):
            metrics.MARKERS_WRITTEN.labels(str(p.company_no)).inc()
        applied_log.record_applied(event, route.client.name)  # the console's "registered today" (issue 15)
        if result.applied:
            metrics.EVENTS_APPLIED.labels("payment").inc()
            metrics.APPLY_LATENCY.observe(max(0.0, (self.now() - event.occurred_at).total_seconds()))
            return APPLIED
        metrics.EVENTS_SKIPPED.labels("payment", ALREADY_APPLIED).inc()
        return ALREADY_APPLIED
