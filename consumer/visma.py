"""What the consumer reads and writes in one Visma company: the payment rows as they are now, and
the processed marker.

Before it posts anything the consumer reads the row the event names (one statement for a whole
poll) and asks `vb2po.visma.payments.interpret` what it means, so nothing is posted that Visma
does not hold. The marker is written with a conditional UPDATE (ChDt/ChTm untouched), and an
UPDATE that touches no row is never taken for "marked".
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Collection, Protocol

from vb2po.errors import TerminalError
from vb2po.settings import Settings
from vb2po.visma.company import CompanySource, open_company
from vb2po.visma.payments import PaymentFacts, PaymentRow, interpret
from vb2po.visma.queries import customer_by_act_no, mark_payment, payment_rows_by_keys, payment_rows_of_invoice

KEYS_PER_LOOKUP = 200  # (JNo, EntNo) pairs per statement: 400 parameters, well under every driver's limit
Key = tuple[int, int]


@dataclass(slots=True)  # (not frozen: a frozen dataclass costs ~4x to build, and one is built per record of every poll)
class VismaRow:
    """A CustTr row as read now, with its processed marker."""

    row: PaymentRow
    marked: bool
    intents_seen: int = 0  # the intent log's position before the row was read (consumer.intents); 0: unknown

    @property
    def key(self) -> Key:
        row: Any = self.row  # (its columns hold what the driver gave; a key read is a whole number)
        return int(row.jno), int(row.entno)


class VismaPayments(Protocol):
    def read(self, keys: Collection[Key], intents_seen: int = 0) -> dict[Key, VismaRow]:
        """The rows that exist among `keys` (absent: no such row), each carrying `intents_seen`."""
        ...

    def invoice_rows(self, customer_no: int, invoice_no: str) -> list[VismaRow]: ...

    def facts(self, row: PaymentRow, today: date) -> PaymentFacts:
        """What the row means (BadRow when it is no payment vb2po transfers)."""
        ...

    def mark(self, keys: Collection[Key]) -> int:
        """Set the marker on these still-unmarked rows in one statement; returns the rows changed."""
        ...

    def close(self) -> None: ...

    def actor(self, act_no: int) -> tuple[int, bool | None] | None:
        """(customer number, credit-blocked) of an Actor row, blocked None when CrSusp is no 0/1;
        None when there is no such row."""
        ...


class VismaCompanyPayments:
    """One company's CustTr over ODBC, opened on first use (a company that is down at start is
    retried, not fatal) with its columns checked against the live table."""

    def __init__(self, settings: Settings, company_no: int, *, opener: Callable[..., CompanySource] = open_company):
        self._settings = settings
        self._company = settings.company(company_no)
        self._opener = opener
        self._source: CompanySource | None = None
        self._lock = threading.Lock()

    @property
    def source(self) -> CompanySource:
        with self._lock:
            if self._source is None:
                self._source = self._opener(self._settings, self._company)
            return self._source

    def _rows(self, sql: str, params: list, intents_seen: int = 0) -> list[VismaRow]:
        source = self.source
        marker = str(source.selection.marked_value)
        out = []
        for record in source.db.query(sql, params):
            value = record[-1]
            out.append(VismaRow(PaymentRow(*record[:-1]), value is not None and str(value) == marker, intents_seen))
        return out

    def read(self, keys: Collection[Key], intents_seen: int = 0) -> dict[Key, VismaRow]:
        wanted = sorted(set(keys))
        found: dict[Key, VismaRow] = {}
        source = self.source
        for start in range(0, len(wanted), KEYS_PER_LOOKUP):
            sql, params = payment_rows_by_keys(source.db.dialect, source.selection, wanted[start:start + KEYS_PER_LOOKUP])
            for visma_row in self._rows(sql, params, intents_seen):
                found[visma_row.key] = visma_row
        return found

    def invoice_rows(self, customer_no: int, invoice_no: str) -> list[VismaRow]:
        source = self.source
        sql, params = payment_rows_of_invoice(source.db.dialect, source.selection, customer_no, invoice_no)
        return self._rows(sql, params)

    def facts(self, row: PaymentRow, today: date) -> PaymentFacts:
        source = self.source
        return interpret(row, source.rule, source.currencies, today)

    def mark(self, keys: Collection[Key]) -> int:
        source = self.source
        sql, params = mark_payment(source.db.dialect, source.selection.marker_column, source.selection.marked_value,
                                   sorted(set(keys)))
        return source.db.execute(sql, params)

    def actor(self, act_no: int) -> tuple[int, bool | None] | None:
        source = self.source
        sql, params = customer_by_act_no(source.db.dialect, act_no)
        for _, cust_no, cr_susp, *_ in list(source.db.query(sql, params)):
            return read_actor(cust_no, cr_susp)
        return None

    def close(self) -> None:
        with self._lock:
            if self._source is not None:
                self._source.db.close_all()
                self._source = None


def read_actor(cust_no: Any, cr_susp: Any) -> tuple[int, bool | None]:
    """(whatever the driver gave for the two columns: anything their types allow)"""
    try:
        customer = int(cust_no)
    except (TypeError, ValueError):
        customer = 0
    try:
        state = int(cr_susp)
    except (TypeError, ValueError):
        state = -1
    return customer, (state == 1) if state in (0, 1) else None


class FakeVismaPayments:
    """In-memory CustTr for unit tests: rows by key, a marker flag each, the same `interpret`."""

    def __init__(self, rows: list[PaymentRow], rule, currencies, actors: dict[int, tuple[int, int]] | None = None) -> None:
        self.rows = {VismaRow(r, False).key: r for r in rows}
        self.actors = dict(actors or {})  # ActNo -> (CustNo, CrSusp)
        self.marked: set[Key] = set()
        self.rule, self.currencies = rule, currencies
        self.writes = 0
        self.reads = 0

    def read(self, keys: Collection[Key], intents_seen: int = 0) -> dict[Key, VismaRow]:
        self.reads += 1
        return {k: VismaRow(self.rows[k], k in self.marked, intents_seen) for k in keys if k in self.rows}

    def invoice_rows(self, customer_no: int, invoice_no: str) -> list[VismaRow]:
        return [VismaRow(r, k in self.marked) for k, r in sorted(self.rows.items())
                if r.cust_no == customer_no and str(r.invo_no).strip() == invoice_no]

    def facts(self, row: PaymentRow, today: date) -> PaymentFacts:
        return interpret(row, self.rule, self.currencies, today)

    def actor(self, act_no: int) -> tuple[int, bool | None] | None:
        found = self.actors.get(act_no)
        return None if found is None else read_actor(*found)

    def mark(self, keys: Collection[Key]) -> int:
        fresh = {k for k in keys if k in self.rows and k not in self.marked}
        self.marked |= fresh
        self.writes += len(fresh)
        return len(fresh)


def require_marked(visma: VismaPayments, keys: Collection[Key], changed: int) -> None:
    """After a marker UPDATE that changed fewer rows than asked: each row must carry the marker now
    (set by another consumer meanwhile); a row that is gone is an error, never "marked"."""
    if changed >= len(set(keys)):
        return
    now = visma.read(keys)
    missing = [k for k in keys if k not in now]
    unmarked = [k for k in keys if k in now and not now[k].marked]
    if missing or unmarked:
        shown = ", ".join(f"JNo={j};EntNo={e}" for j, e in missing + unmarked)
        raise TerminalError(f"the processed marker could not be written: row(s) {shown} "
                            + ("no longer exist in Visma" if missing else "did not take it"), reason="marker_not_written")
