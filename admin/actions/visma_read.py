"""The few Visma reads operator actions make, over ODBC, with checked identifiers only.

Column names come from `vb2po.visma.tables` or from the marker setting checked against the
live table (`producer.company.open_company`); values are always parameters.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable

from vb2po.visma.db import VismaDatabase
from vb2po.visma.dialect import DialectName
from vb2po.visma.money import CENT, check_money
from vb2po.visma.queries import PaymentSelection, Position, pending_payments_page

CHUNK = 400  # parameters per IN list: well under every driver's limit


def _chunks(items: list, size: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def marked_keys(db: VismaDatabase, sel: PaymentSelection, keys: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Which of these (JNo, EntNo) rows carry the processed marker now."""
    wanted = set(keys)
    d = db.dialect
    found: set[tuple[int, int]] = set()
    for jnos in _chunks(sorted({j for j, _ in wanted})):
        sql = (f"SELECT {d.quote('JNo')}, {d.quote('EntNo')}, {d.quote(sel.marker_column)} FROM {d.table('CustTr')} "
               f"WHERE {d.quote('JNo')} IN ({', '.join('?' for _ in jnos)})")
        for jno, entno, marker in db.query(sql, jnos):
            key = (int(jno), int(entno))
            if key in wanted and marker is not None and str(marker) == str(sel.marked_value):
                found.add(key)
    return found


@dataclass(frozen=True)
class VismaInvoice:
    """One invoice number's rows in CustTr, summed, in the invoice's own currency: the company
    currency's `Am`, or a foreign currency's `CurAm` (the currency number on the rows)."""

    invoice_no: str
    customer_no: int
    outstanding: Decimal  # the invoice, its credit notes and payments
    paid_before_lookback: Decimal  # payments (positive) older than the lookback date: never transferred
    unmarked: Decimal  # payments (positive) on or after the lookback date without the marker yet
    rows: int
    currency_number: int = 0  # Visma's number of the invoice's currency (0: the company currency)


def _money_sum(d, expression: str) -> str:
    total = f"SUM({expression})"
    return f"CAST({total} AS TEXT)" if d.name is DialectName.SQLITE else total


def _cents(value: object) -> Decimal:
    """A SUM as cents. SQLite adds DECIMAL columns as binary floats (21683.420000000002), so a sum is
    rounded to cents here rather than held to DECIMAL(28,6)'s six decimals as a stored amount is."""
    try:
        amount = Decimal(str(value if value is not None else 0).strip())
    except ArithmeticError as exc:
        raise ValueError(f"unreadable sum {str(value)[:40]!r}") from exc
    return check_money(amount.quantize(CENT, rounding=ROUND_HALF_EVEN))


def invoice_totals(db: VismaDatabase, sel: PaymentSelection) -> list[VismaInvoice]:
    """Every invoice number in CustTr with its outstanding amount and what the payment rule
    and the lookback date make of its payments."""
    d = db.dialect
    q = d.quote
    types = ", ".join("?" for _ in sel.voucher_types)
    is_payment = f"{q('VoTp')} IN ({types}) AND {q('Am')} < 0"
    marker, vo_dt, invo_no = q(sel.marker_column), q("VoDt"), q("InvoNo")
    if sel.currency_column and sel.currency_amount_column:  # each row in its own (the invoice's) currency
        cur = q(sel.currency_column)
        amount = f"CASE WHEN {cur} IS NULL OR {cur} = 0 THEN {q('Am')} ELSE {q(sel.currency_amount_column)} END"
        currency = f"MAX(COALESCE({cur}, 0))"
    else:
        amount, currency = q("Am"), "0"
    before = f"CASE WHEN {is_payment} AND {vo_dt} < ? THEN {amount} ELSE 0 END"
    unmarked = f"CASE WHEN {is_payment} AND {vo_dt} >= ? AND ({marker} IS NULL OR {marker} <> ?) THEN {amount} ELSE 0 END"
    sql = (
        f"SELECT {invo_no}, MIN({q('CustNo')}), {_money_sum(d, amount)}, {_money_sum(d, before)}, "
        f"{_money_sum(d, unmarked)}, COUNT(*), {currency} FROM {d.table('CustTr')} "
        f"WHERE {invo_no} <> '' GROUP BY {invo_no} ORDER BY {invo_no}"
    )
    params = [*sel.voucher_types, sel.lookback_dt, *sel.voucher_types, sel.lookback_dt, sel.marked_value]
    out = []
    for number, cust_no, total, before_sum, unmarked_sum, rows, currency_number in db.query(sql, params):
        try:
            out.append(VismaInvoice(
                invoice_no=str(number).strip(), customer_no=int(cust_no or 0), outstanding=_cents(total),
                paid_before_lookback=-_cents(before_sum), unmarked=-_cents(unmarked_sum), rows=int(rows),
                currency_number=int(currency_number or 0),
            ))
        except (ValueError, TypeError, ArithmeticError):
            continue  # an invoice whose rows hold amounts no DECIMAL(28,6) can: not comparable, left out
    return out


def waiting_payments(db: VismaDatabase, sel: PaymentSelection, after: Position | None, upper: tuple[int, int],
                     limit: int) -> list[tuple]:
    """Payments the producer has not published yet (after its cursor), oldest first, at most `limit`:
    (JNo, EntNo, ChDt, time) each, integers every driver reads whatever the other columns hold."""
    sql, params = pending_payments_page(db.dialect, sel, after, upper, limit, keys_only=True)
    return list(db.query(sql, params))
