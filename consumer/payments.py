"""Applying one payment event: register it in PowerOffice once, then mark the Visma row.

Order of steps, each safe to repeat after a crash at any point:
1. read the Visma row the event names (the poll reads a whole batch at once): no row -> dead
   letter "not in Visma"; marked already -> nothing to do; a row that says something else than
   the event (customer, invoice, amount, currency) -> dead letter "differs from Visma". The row,
   not the event, is what gets posted: nothing is posted that Visma does not hold;
2. check the invoice in PowerOffice (bulk look-ups, `consumer.invoices`): unknown, another
   customer's, reversed or in another currency -> dead letter, or (unknown, with
   `unmatched_payments: on_account`) post on the customer's account without an invoice;
3. post the bank journal voucher with a reference derived from the Visma key;
4. write a durable intent for the voucher's reference, post the voucher, and after any outcome
   vb2po cannot trust (a timeout, a lost response, a 5xx, a process that died before marking)
   look the reference up in PowerOffice before posting again (`consumer.intents`): exactly
   once does not rest on PowerOffice refusing a duplicate reference;
5. set the marker with a conditional UPDATE; an UPDATE that marks nothing is checked, never
   taken for done; clear the intent;
6. (the caller commits the Kafka offset).

A reversal (a counter-row that undoes a payment) is posted as its own voucher when the payment
it undoes was registered; when that payment was not (it is still unmarked), both rows are marked
in one statement and nothing is posted: the pair nets to zero in Visma and in PowerOffice.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timezone
from typing import Callable, Iterable, Mapping, cast

from consumer.applied_log import AppliedLog, AppliedPayment
from consumer.intents import PROCESS_OWNER, Intent, IntentStore, MemoryIntentStore
from consumer.invoices import InvoiceDirectory
from consumer.outcomes import ALREADY_APPLIED, ALREADY_MARKED, ANNULLED, APPLIED
from consumer.routing import Route, route_for
from consumer.visma import Key, VismaPayments, VismaRow, require_marked
from schemas.events import PaymentEvent, PaymentPayload
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError, Vb2poError
from vb2po.poweroffice.api import PowerOfficeApi
from vb2po.poweroffice.errors import DUPLICATE_REFERENCE, RATE_LIMITED, TIMEOUT
from vb2po.poweroffice.models import OutgoingInvoice, PaymentPosting, PostingResult
from vb2po.visma.payments import REVERSAL, BadRow, PaymentFacts

log = logging.getLogger(__name__)

INTENT_SETTLING = "intent_settling"  # (transient) an earlier attempt may still be on its way
INTENT_CONFLICT = "intent_conflict"  # (transient) another attempt was recorded meanwhile: read the row again

DEAD_LETTER, ON_ACCOUNT = "dead_letter", "on_account"
UNREAD = object()  # `apply` reads the row itself


def external_import_reference(company_no: int, jno: int, entno: int) -> str:
    """Deterministic per Visma row and at most 50 characters (PowerOffice's limit)."""
    return f"VB2PO-F{company_no:04d}-J{jno}-E{entno}"


def row_key_text(key: Key) -> str:
    return f"JNo={key[0]};EntNo={key[1]}"


def differences(p: PaymentPayload, facts: PaymentFacts) -> list[str]:
    """Where the event says something else than Visma's row (what would be posted); empty: they agree."""
    pairs = (("customer", p.customer_no, facts.customer_no), ("invoice", p.invoice_no, facts.invoice_no),
             ("kind", p.kind, facts.kind), ("amount", p.amount, facts.amount), ("currency", p.currency, facts.currency),
             ("company-currency amount", p.company_amount, facts.company_amount),
             ("voucher date", p.voucher_date, facts.voucher_date))
    return [f"{name} {str(said)[:40]} (Visma: {held})" for name, said, held in pairs if said != held]


def invoice_for_posting(facts: PaymentFacts, invoice: OutgoingInvoice | None, client: str, unmatched: str) -> int | None:
    """The invoice number to post against, None to post on account, or a terminal error saying why
    the payment cannot be registered. Pure: the decisions of step 2 above."""
    def on_account_or_raise(reason: str, message: str) -> None:
        if unmatched != ON_ACCOUNT:
            raise TerminalError(message + "; set unmatched_payments: on_account to post such payments on the "
                                          "customer's account", reason=reason)

    if facts.invoice_no is None:
        on_account_or_raise("missing_invoice_no", "the payment names no invoice (InvoNo is empty in Visma)")
        return None
    if not facts.invoice_no.isdigit() or len(facts.invoice_no) > 18:
        on_account_or_raise("invoice_unknown", f"invoice number {facts.invoice_no!r} is not a PowerOffice invoice "
                                               f"number (PowerOffice's are whole numbers)")
        return None
    number = int(facts.invoice_no)
    if invoice is None:
        on_account_or_raise("invoice_unknown", f"invoice {number} is unknown in PowerOffice client {client}")
        return None
    if invoice.customer_no is not None and invoice.customer_no != facts.customer_no:
        raise TerminalError(f"invoice {number} in PowerOffice client {client} belongs to customer {invoice.customer_no}, "
                            f"the payment to customer {facts.customer_no}", reason="invoice_of_another_customer")
    if invoice.is_reversed:
        raise TerminalError(f"invoice {number} is reversed in PowerOffice client {client}: no payment can be "
                            "registered against it", reason="invoice_reversed")
    if invoice.currency_code != facts.currency:
        raise TerminalError(f"invoice {number} is in {invoice.currency_code} in PowerOffice client {client}, the payment "
                            f"in {facts.currency}", reason="currency_mismatch")
    return number


class PaymentApplier:
    def __init__(
        self,
        routes: dict[int, Route],
        apis: Mapping[int, PowerOfficeApi],
        visma: Mapping[int, VismaPayments],
        *,
        unmatched: str = DEAD_LETTER,
        invoices: dict[int, InvoiceDirectory] | None = None,
        applied: AppliedLog | None = None,
        intents: IntentStore | None = None,
        owner: str = PROCESS_OWNER,
        settle_s: float = 15.0,
        now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        zone=timezone.utc,
    ):
        self.routes = routes
        self.apis = apis
        self.visma = visma
        self.unmatched = unmatched
        self.applied = applied  # where each registered payment is recorded (the console's counts), if anywhere
        self.intents = intents if intents is not None else MemoryIntentStore()
        self.owner = owner  # this process: its own intents need no settling
        self.settle_s = settle_s  # how long a request another process sent may still be on its way
        self._unsure: dict[str, float] = {}  # reference -> when a request that may still be running began
        self._refused: set[str] = set()  # references whose last POST from here was refused unhandled (429)
        self.invoices = invoices if invoices is not None else {n: InvoiceDirectory(api) for n, api in apis.items()}
        self.now = now
        self.zone = zone

    # -- the poll's batch steps ------------------------------------------------------------
    def read_rows(self, events: Iterable[PaymentEvent]) -> dict[tuple[int, int, int], VismaRow | None]:
        """(company, JNo, EntNo) -> the row now (None: no such row), one query per company and up to
        200 keys. A company whose read fails is left out: each of its events reads on its own in `apply`."""
        wanted: dict[int, set[Key]] = defaultdict(set)
        for event in events:
            p = event.payload
            if p.company_no in self.visma:  # an unknown company is dead-lettered by `apply`
                wanted[p.company_no].add((p.jno, p.entno))
        found: dict[tuple[int, int, int], VismaRow | None] = {}
        for company_no, keys in wanted.items():
            seen = self.intents.position()  # before the read: see `_post_once`
            try:
                rows = self.visma[company_no].read(keys, seen)
            except Vb2poError as exc:
                log.warning("company %s: batch read of %s rows failed (%s); each payment reads on its own",
                            company_no, len(keys), exc)
                continue
            for key in keys:
                found[(company_no, *key)] = rows.get(key)
        return found

    def want_invoices(self, events: Iterable[PaymentEvent]) -> None:
        """Register the invoices these payments will need, so they are looked up together."""
        wanted: dict[int, set[int]] = defaultdict(set)
        for event in events:
            p = event.payload
            if p.company_no in self.invoices and p.invoice_no and p.invoice_no.isdigit() and len(p.invoice_no) <= 18:
                wanted[p.company_no].add(int(p.invoice_no))
        for company_no, numbers in wanted.items():
            self.invoices[company_no].want(numbers)

    # -- one payment -----------------------------------------------------------------------
    def apply(self, event: PaymentEvent, seen: VismaRow | None | object = UNREAD, *, recheck: bool = False) -> str:
        """`recheck`: ask PowerOffice for the voucher before posting it (see consumer.handler.needs_recheck)."""
        p = event.payload
        route = route_for(self.routes, p.company_no)
        visma = self.visma[p.company_no]
        key = (p.jno, p.entno)
        if seen is UNREAD:
            position = self.intents.position()  # before the read: see `_post_once`
            current = visma.read([key], position).get(key)
        else:
            current = cast("VismaRow | None", seen)
        if current is None:
            raise TerminalError(f"Visma company {p.company_no} holds no row {row_key_text(key)}: nothing is posted for "
                                "a payment Visma does not hold", reason="not_in_visma")
        if current.marked:
            if not self.agrees(event, current):  # the row was processed, but never as this event says
                self._facts(visma, current, p)  # raises the dead letter that says where they differ
            metrics.EVENTS_SKIPPED.labels("payment", ALREADY_MARKED).inc()
            return ALREADY_MARKED
        facts = self._facts(visma, current, p)
        if facts.kind == REVERSAL:
            return self._reverse(event, facts, route, visma, current.intents_seen, recheck)
        invoice_no = self._invoice_no(facts, p.company_no, route)
        return self._post_and_mark(event, facts, route, invoice_no, [key], reversal=False, since=current.intents_seen,
                                   recheck=recheck)

    def agrees(self, event: PaymentEvent, current: VismaRow) -> bool:
        """Does the event say what the (marked) row says? A marked row whose rule no longer holds
        (the lookback date moved, say) cannot be judged: it is taken to agree, nothing is posted."""
        visma = self.visma.get(event.payload.company_no)
        if visma is None:
            return False
        try:
            return not differences(event.payload, visma.facts(current.row, self.now().astimezone(self.zone).date()))
        except BadRow:
            return current.marked

    def _facts(self, visma: VismaPayments, current: VismaRow, p: PaymentPayload) -> PaymentFacts:
        where = f"Visma company {p.company_no} row {p.key}"
        try:
            facts = visma.facts(current.row, self.now().astimezone(self.zone).date())
        except BadRow as exc:
            raise TerminalError(f"{where} is not a payment vb2po transfers now: {exc}", reason="differs_from_visma") from None
        found = differences(p, facts)
        if found:
            raise TerminalError(f"the event differs from {where}: " + "; ".join(found) + ". Nothing is posted",
                                reason="differs_from_visma")
        return facts

    def _invoice_no(self, facts: PaymentFacts, company_no: int, route: Route) -> int | None:
        invoice = None
        if facts.invoice_no is not None and facts.invoice_no.isdigit() and len(facts.invoice_no) <= 18:
            invoice = self.invoices[company_no].get(int(facts.invoice_no))
        return invoice_for_posting(facts, invoice, route.client.name, self.unmatched)

    def _reverse(self, event: PaymentEvent, facts: PaymentFacts, route: Route, visma: VismaPayments, since: int,
                 recheck: bool) -> str:
        p = event.payload
        original = self._reversed_payment(visma, facts, p.company_no)
        if original is None:
            raise TerminalError(f"Visma company {p.company_no} row {p.key} reverses a payment of {facts.amount} "
                                f"{facts.currency} on invoice {facts.invoice_no} by customer {facts.customer_no} that "
                                "Visma does not hold", reason="reversal_without_payment")
        if not original.marked:  # never registered in PowerOffice: nothing to undo there
            keys = [original.key, (p.jno, p.entno)]
            require_marked(visma, keys, visma.mark(keys))
            metrics.MARKERS_WRITTEN.labels(str(p.company_no)).inc(2)
            metrics.EVENTS_SKIPPED.labels("payment", ANNULLED).inc()
            log.info("reversal %s annuls payment %s, which was never registered: both marked, nothing posted",
                     p.key, row_key_text(original.key))
            return ANNULLED
        invoice_no = self._invoice_no(facts, p.company_no, route)
        return self._post_and_mark(event, facts, route, invoice_no, [(p.jno, p.entno)], reversal=True, since=since,
                                   recheck=recheck)

    def _reversed_payment(self, visma: VismaPayments, facts: PaymentFacts, company_no: int) -> VismaRow | None:
        """The payment this reversal undoes: same customer, invoice and amount. With several, the
        n-th reversal (in key order) pairs with the n-th payment (in key order)."""
        if facts.invoice_no is None:
            return None
        today = self.now().astimezone(self.zone).date()
        payments: list[VismaRow] = []
        reversals: list[VismaRow] = []
        for candidate in visma.invoice_rows(facts.customer_no, facts.invoice_no):
            try:
                other = visma.facts(candidate.row, today)
            except BadRow:
                continue
            if (other.amount, other.currency) == (facts.amount, facts.currency):
                (reversals if other.kind == REVERSAL else payments).append(candidate)
        position = next((i for i, r in enumerate(reversals) if r.key == (facts.jno, facts.entno)), None)
        if position is None or position >= len(payments):
            return None
        return payments[position]

    def _post_and_mark(self, event: PaymentEvent, facts: PaymentFacts, route: Route, invoice_no: int | None,
                       keys: list[Key], *, reversal: bool, since: int, recheck: bool = False) -> str:
        p = event.payload
        api = self.apis[p.company_no]
        what = "reversal" if reversal else "payment"
        try:
            posting = PaymentPosting(
                external_import_reference=external_import_reference(p.company_no, p.jno, p.entno),
                voucher_date=facts.voucher_date, posting_date=facts.voucher_date, currency_code=facts.currency,
                amount=facts.amount, company_amount=facts.company_amount, reversal=reversal,
                bank_account_id=api.account_id(route.client.bank_account), customer_no=facts.customer_no,
                invoice_no=invoice_no, description=facts.text,
            )
        except ValueError as exc:
            raise TerminalError(f"{what} cannot be posted: {exc}", reason="validation") from exc
        result = self._post_once(api, posting, facts, since, recheck)
        changed = self.visma[p.company_no].mark(keys)
        require_marked(self.visma[p.company_no], keys, changed)
        self.intents.clear(posting.external_import_reference)
        if changed:
            metrics.MARKERS_WRITTEN.labels(str(p.company_no)).inc(changed)
        if self.applied is not None:
            self.applied.record(AppliedPayment.of(event, route.client.name, self.now(), reversal=reversal))
        if result.applied:
            metrics.EVENTS_APPLIED.labels("payment").inc()
            metrics.APPLY_LATENCY.observe(max(0.0, (self.now() - event.occurred_at).total_seconds()))
            if invoice_no is None:
                log.info("%s %s posted on customer %s's account (no invoice in PowerOffice)", what, p.key, facts.customer_no)
            return APPLIED
        metrics.EVENTS_SKIPPED.labels("payment", ALREADY_APPLIED).inc()
        return ALREADY_APPLIED

    def _post_once(self, api: PowerOfficeApi, posting: PaymentPosting, facts: PaymentFacts, since: int,
                   recheck: bool = False) -> PostingResult:
        """Post the voucher once: after an attempt that may have reached PowerOffice, or when the
        event asks for it (`recheck`), ask PowerOffice first; claim the reference before posting
        (`since`: the intent log's position when the row was read)."""
        reference = posting.external_import_reference
        earlier = self.intents.get(reference)
        refused_here = earlier is not None and earlier.owner == self.owner and reference in self._refused
        if (earlier is not None and not refused_here) or recheck:
            on_its_way = self._unsure.get(reference)  # a request from here that may still be running
            if earlier is not None and earlier.owner != self.owner:
                on_its_way = max(on_its_way or 0.0, earlier.at)
            age = self.now().timestamp() - (on_its_way or 0.0)
            if on_its_way is not None and age < self.settle_s:
                raise TransientError(f"an earlier attempt to post {reference} ({age:.0f}s ago) may still be on its way: "
                                     "it is left to settle, then looked up in PowerOffice", reason=INTENT_SETTLING,
                                     retry_after=self.settle_s - age)
            found = any(entry.external_import_reference == reference
                        for entry in api.ledger_entries(facts.customer_no, posting.posting_date, posting.posting_date))
            metrics.REFERENCE_CHECKS.labels("found" if found else "absent").inc()
            if found:
                log.info("%s is in PowerOffice already (an earlier attempt got it there, its answer never came back): "
                         "not posted again", reference)
                self._unsure.pop(reference, None)
                return PostingResult(ALREADY_APPLIED, reference)
        mine = Intent(self.owner, self.now().timestamp(), facts.customer_no, posting.posting_date.isoformat())
        claim = self.intents.claim(reference, mine, since)
        if not claim.won:
            metrics.REFERENCE_CHECKS.labels("claim_lost").inc()
            if claim.overtook is not None:
                self._remember_unsure(reference, claim.overtook.at)
            raise TransientError(f"another attempt at {reference} was recorded after its Visma row was read: the row "
                                 "is read again before anything is posted", reason=INTENT_CONFLICT, retry_after=0.0)
        self._unsure.pop(reference, None)
        self._refused.discard(reference)
        try:
            return api.post_payment(posting)
        except TransientError as exc:
            if exc.reason == TIMEOUT:  # the server may still be working on it: the look-up waits
                self._remember_unsure(reference, mine.at)
            elif exc.reason == RATE_LIMITED:  # refused before it was handled: nothing to look up
                if len(self._refused) > 10_000:
                    self._refused.clear()
                self._refused.add(reference)
            raise
        except TerminalError as exc:
            if exc.reason != DUPLICATE_REFERENCE:  # refused: nothing was posted, nothing to look for
                self.intents.clear(reference)
            raise

    def _remember_unsure(self, reference: str, since: float) -> None:
        if len(self._unsure) > 10_000:  # (a forgotten one is looked up without settling: rare and bounded)
            self._unsure.clear()
        self._unsure[reference] = since
