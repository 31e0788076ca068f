"""Reading a page of rows so that no single row can stop a company's poll.

A page is read in one statement. When that fails for a reason retrying cannot fix (a driver that
cannot decode one row's text, a value a driver cannot convert), the page is read again with only
its keys and change positions (integers every driver reads), and then row by row: each row that
still cannot be read becomes an `UnreadableRow`, which the poller dead-letters once and moves past.
A transient failure (the database went away) is raised as it is: the whole poll is retried.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from vb2po.errors import TerminalError
from vb2po.visma.db import VismaDatabase
from vb2po.visma.payments import PaymentRow
from vb2po.visma.queries import PaymentSelection, Position, payment_rows_by_keys

log = logging.getLogger(__name__)

PageQuery = Callable[[bool], tuple[str, list]]  # keys_only -> (sql, params)


@dataclass(frozen=True)
class UnreadableRow:
    """A row whose columns the driver could not read; only its key and change position are known."""

    jno: int
    entno: int
    ch_dt: Any  # (as the driver gave them)
    ch_time: Any
    error: str

    @property
    def key(self) -> str:
        return f"JNo={self.jno};EntNo={self.entno}"

    def position(self) -> Position | None:
        try:
            return Position(int(self.ch_dt or 0), int(self.ch_time or 0), int(self.jno), int(self.entno))
        except (TypeError, ValueError):
            return None


def read_page(db: VismaDatabase, sel: PaymentSelection, page: PageQuery, company_no: int) -> list[PaymentRow | UnreadableRow]:
    sql, params = page(False)
    try:
        return [PaymentRow.from_tuple(r) for r in db.query(sql, params)]
    except TerminalError as exc:
        log.warning("company %s: a page of CustTr could not be read (%s); reading it row by row", company_no, exc,
                    extra={"company": company_no})
    sql, params = page(True)
    out: list[PaymentRow | UnreadableRow] = []
    for jno, entno, ch_dt, ch_time in db.query(sql, params):
        one_sql, one_params = payment_rows_by_keys(db.dialect, sel, [(jno, entno)])
        try:
            rows = list(db.query(one_sql, one_params))
        except TerminalError as exc:
            out.append(UnreadableRow(int(jno), int(entno), ch_dt, ch_time, str(exc)[:500]))
            continue
        if rows:  # (gone since the key page: nothing to publish)
            out.append(PaymentRow.from_tuple(rows[0][:-1]))  # without the trailing marker column
    return out
