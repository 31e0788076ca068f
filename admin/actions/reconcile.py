"""Reconcile: what Visma has outstanding per invoice against PowerOffice's `Balance`.

Visma's outstanding amount of an invoice is the sum over its invoice number (the invoice, its
credit notes, its payments) of `CustTr.Am`, or for an invoice in a foreign currency of the
currency amount. PowerOffice's is read only from documented fields: `OutgoingInvoices`
`InvoiceNo`, `CustomerNo`, `Balance` (in the client's currency, so a foreign invoice's is divided
by its `CurrencyExchangeRate`) and `CurrencyCode`; open items' `Balance`, `InvoiceNo` and
`ExternalImportReference`. Each invoice where they differ is one difference, of one kind:

- `payments_missing_in_poweroffice`: PowerOffice shows more outstanding (a Visma payment it lacks);
- `payments_missing_in_visma`: PowerOffice shows less outstanding (a payment Visma lacks);
- `invoice_unknown_in_poweroffice`: Visma has the invoice (with money outstanding or moving
  on or after the lookback date), PowerOffice does not;
- `invoice_unknown_in_visma`: PowerOffice has the invoice open, Visma has no such number;
- `excluded_by_lookback` (not open): the difference is exactly the payments older than the
  lookback date, which vb2po never transfers by design.

Invoices PowerOffice has paid in full and Visma does not know are not found: PowerOffice is
asked for Visma's invoice numbers and for its open items, not for every invoice it ever had.
Payments vb2po posted on a customer's account (`unmatched_payments: on_account`) are listed
apart: open items with a vb2po reference and no invoice number.
"""
from __future__ import annotations

import csv
import io
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Callable, Iterable

from admin.actions.errors import NotFound
from admin.actions.jobs import new_id
from admin.actions.visma_read import VismaInvoice, invoice_totals
from vb2po import metrics
from vb2po.errors import TerminalError, TransientError
from vb2po.poweroffice.client import PowerOfficeClient
from vb2po.poweroffice.models import OutgoingInvoice
from vb2po.poweroffice.ratelimit import operator_limiter
from vb2po.settings import InvoiceClientSettings, Settings
from vb2po.visma.company import open_company
from vb2po.visma.payments import BadRow

log = logging.getLogger(__name__)

MISSING_IN_POWEROFFICE = "payments_missing_in_poweroffice"
MISSING_IN_VISMA = "payments_missing_in_visma"
UNKNOWN_IN_POWEROFFICE = "invoice_unknown_in_poweroffice"
UNKNOWN_IN_VISMA = "invoice_unknown_in_visma"
EXCLUDED_BY_LOOKBACK = "excluded_by_lookback"
OPEN_KINDS = (MISSING_IN_POWEROFFICE, MISSING_IN_VISMA, UNKNOWN_IN_POWEROFFICE, UNKNOWN_IN_VISMA)
ZERO = Decimal("0.00")
PO_CHUNK = 500  # invoice numbers per PowerOffice request (one progress step)


@dataclass(frozen=True)
class PowerOfficeInvoice:
    invoice_no: int
    customer_no: int | None
    balance: Decimal  # in the invoice's own currency
    currency: str = ""


@dataclass(frozen=True)
class Difference:
    client: str
    invoice_no: str
    customer_no: int | None
    kind: str
    visma_outstanding: Decimal | None
    poweroffice_balance: Decimal | None
    difference: Decimal  # PowerOffice minus Visma
    unmarked_in_visma: Decimal = ZERO  # payments on or after the lookback date not marked yet (in flight?)
    paid_before_lookback: Decimal = ZERO
    currency: str = ""  # of the amounts

    @property
    def open(self) -> bool:
        return self.kind in OPEN_KINDS

    def as_dict(self) -> dict:
        money = lambda v: None if v is None else str(v)  # noqa: E731 - money travels as text
        return {"client": self.client, "invoice_no": self.invoice_no, "customer_no": self.customer_no,
                "kind": self.kind, "visma_outstanding": money(self.visma_outstanding),
                "poweroffice_balance": money(self.poweroffice_balance), "difference": money(self.difference),
                "unmarked_in_visma": money(self.unmarked_in_visma),
                "paid_before_lookback": money(self.paid_before_lookback), "currency": self.currency, "open": self.open}


def _cents(amount: Decimal) -> Decimal:
    return amount.quantize(ZERO)


def numeric(invoice_no: str) -> int | None:
    return int(invoice_no) if invoice_no.isdigit() else None


def compare(client: str, visma: Iterable[VismaInvoice], poweroffice: dict[int, PowerOfficeInvoice],
            poweroffice_open: Iterable[PowerOfficeInvoice] = (),
            currency_of: Callable[[int], str] = lambda number: "") -> tuple[int, list[Difference]]:
    """(invoices compared, differences) for one invoice client. Pure. `currency_of` names Visma's
    currency number of an invoice (0: the company currency)."""
    differences: list[Difference] = []
    compared = 0
    seen: set[int] = set()
    for v in visma:
        number = numeric(v.invoice_no)
        po = poweroffice.get(number) if number is not None else None
        currency = currency_of(v.currency_number)
        if number is not None:
            seen.add(number)
        if po is None:
            if v.outstanding != ZERO or v.unmarked != ZERO:
                differences.append(Difference(client, v.invoice_no, v.customer_no, UNKNOWN_IN_POWEROFFICE,
                                              v.outstanding, None, -v.outstanding, v.unmarked, v.paid_before_lookback,
                                              currency))
            continue
        compared += 1
        diff = po.balance - v.outstanding
        if diff == ZERO:
            continue
        if diff == v.paid_before_lookback:
            kind = EXCLUDED_BY_LOOKBACK
        else:
            kind = MISSING_IN_POWEROFFICE if diff > ZERO else MISSING_IN_VISMA
        differences.append(Difference(client, v.invoice_no, v.customer_no, kind, v.outstanding, po.balance, diff,
                                      v.unmarked, v.paid_before_lookback, po.currency or currency))
    for po in poweroffice_open:
        if po.invoice_no not in seen and po.balance != ZERO:
            seen.add(po.invoice_no)
            differences.append(Difference(client, str(po.invoice_no), po.customer_no, UNKNOWN_IN_VISMA, None,
                                          po.balance, po.balance, currency=po.currency))
    differences.sort(key=lambda d: (d.kind, numeric(d.invoice_no) or 0, d.invoice_no))
    return compared, differences


def poweroffice_client(settings: Settings, client: InvoiceClientSettings, *, bulk: bool = False) -> PowerOfficeClient:
    """A client for operator actions. `bulk` (reconcile: many calls) keeps to the operators'
    rate; a check makes three calls, so it is not slowed down."""
    po = settings.poweroffice
    return PowerOfficeClient(api_url=po.api_url, token_url=po.token_url, application_key=po.application_key,
                             client_key=client.client_key, subscription_key=po.subscription_key, timeout=po.timeout_s,
                             rate_limiter=operator_limiter(po) if bulk else None)


Progress = Callable[[str, int, int], None]  # (what, done, total)


def in_own_currency(invoice: OutgoingInvoice, client_currency: str) -> Decimal:
    """PowerOffice's `Balance` is in the client's currency (documented); for an invoice in another
    currency it is converted back with the invoice's documented `CurrencyExchangeRate`."""
    if invoice.currency_code == client_currency or not invoice.exchange_rate:
        return _cents(invoice.balance)
    return _cents(invoice.balance / invoice.exchange_rate)


def reconcile_client(settings: Settings, client: InvoiceClientSettings, progress: Progress,
                     today: date | None = None) -> dict:
    company = settings.company(settings.company_of(client))
    progress(f"{client.name}: reading Visma company {company.company_no}", 0, 0)
    source = open_company(settings, company)
    try:
        visma = invoice_totals(source.db, source.selection)
    finally:
        source.db.close()
    numbers = sorted({n for n in (numeric(v.invoice_no) for v in visma) if n is not None})
    found: dict[int, PowerOfficeInvoice] = {}
    with poweroffice_client(settings, client, bulk=True) as api:
        for i in range(0, len(numbers), PO_CHUNK):
            progress(f"{client.name}: asking PowerOffice for invoices", i, len(numbers))
            for inv in api.get_invoices(numbers[i:i + PO_CHUNK]):
                found[inv.invoice_no] = PowerOfficeInvoice(inv.invoice_no, inv.customer_no,
                                                           in_own_currency(inv, company.currency), inv.currency_code)
        progress(f"{client.name}: asking PowerOffice for invoices", len(numbers), len(numbers))
        open_items = api.open_items(today or date.today())
    po_open = [PowerOfficeInvoice(int(o.invoice_no), o.customer_no, _cents(o.balance), o.currency_code or "")
               for o in open_items if o.invoice_no and str(o.invoice_no).isdigit() and len(str(o.invoice_no)) < 19]
    on_account = [{"reference": o.external_import_reference, "customer_no": o.customer_no,
                   "balance": str(_cents(o.balance)), "currency": o.currency_code or company.currency}
                  for o in open_items if not o.invoice_no and (o.external_import_reference or "").startswith("VB2PO-")]

    def currency_of(number: int) -> str:
        try:
            return source.currencies.code_of(number)
        except BadRow:
            return f"currency number {number}"

    compared, differences = compare(client.name, visma, found, po_open, currency_of)
    by_kind = {kind: sum(1 for d in differences if d.kind == kind) for kind in (*OPEN_KINDS, EXCLUDED_BY_LOOKBACK)}
    for kind in OPEN_KINDS:
        metrics.RECONCILE_OPEN_DIFFERENCES.labels(client.name, kind).set(by_kind[kind])
    metrics.RECONCILE_LAST_RUN.labels(client.name).set(datetime.now(timezone.utc).timestamp())
    return {"client": client.name, "company_no": company.company_no, "visma_invoices": len(visma),
            "compared": compared,
            "matching": compared - sum(1 for d in differences if None not in (d.visma_outstanding, d.poweroffice_balance)),
            "open_differences": sum(by_kind[k] for k in OPEN_KINDS), "by_kind": by_kind,
            "differences": [d.as_dict() for d in differences], "on_account": on_account}


@dataclass
class ReconcileJob:
    reconcile_id: str
    clients: list[str]
    requested_by: str
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    finished_at: str | None = None
    step: str = "starting"
    done: int = 0
    total: int = 0
    results: list[dict] = field(default_factory=list)
    error: str | None = None
    history: list[str] = field(default_factory=list)  # every progress line, so a fast run still shows its steps
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def progress(self, step: str, done: int, total: int) -> None:
        with self._lock:
            self.step, self.done, self.total = step, done, total
            self.history.append(f"{step} {done}/{total}" if total else step)
            del self.history[:-1000]

    def as_dict(self) -> dict:
        with self._lock:
            return {"reconcile_id": self.reconcile_id, "clients": self.clients, "requested_by": self.requested_by,
                    "started_at": self.started_at, "finished_at": self.finished_at,
                    "finished": self.finished_at is not None, "error": self.error,
                    "progress": {"step": self.step, "done": self.done, "total": self.total,
                                 "history": list(self.history)},
                    "results": list(self.results) if self.finished_at else []}

    def run(self, settings: Settings) -> None:
        try:
            for name in self.clients:
                result = reconcile_client(settings, settings.client(name), self.progress)
                with self._lock:
                    self.results.append(result)
            self.progress("finished", len(self.clients), len(self.clients))
        except (TransientError, TerminalError) as exc:
            self.error = f"{exc.reason}: {exc}"
            log.warning("reconcile %s failed: %s", self.reconcile_id, self.error)
        except Exception as exc:  # noqa: BLE001 - reported to the operator, the process carries on
            self.error = f"unexpected: {type(exc).__name__}: {exc}"
            log.exception("reconcile %s failed", self.reconcile_id)
        finally:
            with self._lock:
                self.finished_at = datetime.now(timezone.utc).isoformat()


def start_reconcile(settings: Settings, client: str | None, requested_by: str) -> ReconcileJob:
    """A reconcile run in a thread of its own; follow it with `as_dict()`."""
    try:
        names = [settings.client(client).name] if client else [c.name for c in settings.invoice_clients]
    except KeyError as exc:
        raise NotFound(str(exc).strip('"'), "`vb2po status` lists the configured invoice clients") from None
    job = ReconcileJob(new_id("reconcile"), names, requested_by)
    threading.Thread(target=job.run, args=(settings,), name=job.reconcile_id, daemon=True).start()
    return job


# -- the report as CSV (the `reconcile --format csv` command and the console's download) ------------
RECONCILE_COLUMNS = ("client", "invoice_no", "customer_no", "kind", "visma_outstanding", "poweroffice_balance",
                     "difference", "currency", "unmarked_in_visma", "paid_before_lookback", "open")


def reconcile_rows(job: dict) -> list[dict]:
    return [d for result in job.get("results", []) for d in result["differences"]]


def reconcile_csv(job: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=RECONCILE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in reconcile_rows(job):
        writer.writerow({k: row.get(k) for k in RECONCILE_COLUMNS})
    return out.getvalue()
