"""SQL text for what vb2po reads and writes, built per dialect from checked identifiers.

Pure functions returning (sql, params). Column names come from `tables.py` or from a setting
that `identifiers.checked_column` has matched against the live table.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from vb2po.visma.dialect import Dialect, DialectName

PAYMENT_COLUMNS = ("JNo", "EntNo", "CustNo", "VoNo", "VoDt", "VoTp", "Txt", "Am", "InvoNo", "ChDt")
KEY_COLUMNS = ("JNo", "EntNo")
MAX_IN_LIST = 500  # parameters in one IN list (SQL Server takes at most 2,100 per statement)
MONEY_COLUMNS = ("Am",)


@dataclass(frozen=True)
class PaymentSelection:
    """Which `CustTr` rows are payments to transfer (the payment rule plus setup)."""

    marker_column: str  # checked against the live table
    marked_value: int | str
    time_column: str  # "ChTmms" where the table has it, else "ChTm"
    voucher_types: tuple[int, ...]
    lookback_dt: int  # yyyymmdd
    reversal_types: tuple[int, ...] = ()  # positive-amount rows that reverse a payment
    currency_column: str | None = None  # checked against the live table; None: the table has none
    currency_amount_column: str | None = None

    def __post_init__(self) -> None:
        for types in (self.voucher_types, self.reversal_types):
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in types):
                raise ValueError("voucher types must be integers")
        if not self.voucher_types:
            raise ValueError("payment rule needs at least one integer voucher type")


@dataclass(frozen=True)
class Position:
    """A point in change order: (ChDt, time, JNo, EntNo)."""

    ch_dt: int
    ch_time: int
    jno: int
    entno: int


def _payment_select_list(d: Dialect, sel: PaymentSelection) -> str:
    """PAYMENT_COLUMNS, the currency number and amount (NULL where the table has none), the change time:
    the order of `vb2po.visma.payments.PaymentRow`."""
    cols = [d.money_select(c) if c in MONEY_COLUMNS else d.quote(c) for c in PAYMENT_COLUMNS]
    cols.append(d.quote(sel.currency_column) if sel.currency_column else "NULL")
    cols.append(d.money_select(sel.currency_amount_column) if sel.currency_amount_column else "NULL")
    cols.append(d.quote(sel.time_column))
    return ", ".join(cols)


def _unmarked(d: Dialect, sel: PaymentSelection) -> tuple[str, list]:
    marker = d.quote(sel.marker_column)
    return f"({marker} IS NULL OR {marker} <> ?)", [sel.marked_value]


def _payment_rule(d: Dialect, sel: PaymentSelection) -> tuple[str, list]:
    sql, params = _payment_rule_cached(d, sel)
    return sql, list(params)


@lru_cache(maxsize=256)
def _payment_rule_cached(d: Dialect, sel: PaymentSelection) -> tuple[str, tuple]:
    am, votp = d.quote("Am"), d.quote("VoTp")
    kinds = [f"({am} < 0 AND {votp} IN ({', '.join('?' for _ in sel.voucher_types)}))"]
    params: list = list(sel.voucher_types)
    if sel.reversal_types:
        kinds.append(f"({am} > 0 AND {votp} IN ({', '.join('?' for _ in sel.reversal_types)}))")
        params += list(sel.reversal_types)
    unmarked, marker_params = _unmarked(d, sel)
    sql = f"({' OR '.join(kinds)}) AND {d.quote('VoDt')} >= ? AND {unmarked}"
    return sql, (*params, sel.lookback_dt, *marker_params)


def _select_list(d: Dialect, sel: PaymentSelection, keys_only: bool) -> str:
    """The payment columns, or (`keys_only`) just the key and change position: integers every
    driver reads, used to find the row that makes a whole page unreadable (text a driver
    cannot decode, say)."""
    if keys_only:
        return ", ".join(d.quote(c) for c in ("JNo", "EntNo", "ChDt", sel.time_column))
    return _payment_select_list(d, sel)


def pending_payments_page(
    d: Dialect, sel: PaymentSelection, after: Position | None, upper: tuple[int, int], limit: int,
    *, keys_only: bool = False,
) -> tuple[str, list]:
    """Unmarked payments changed after `after` (exclusive, by full position) up to `upper`.

    The date/time part is compared with `>=` and the key breaks ties, so many rows sharing one
    minute are neither skipped nor read twice. The text depends only on the settings (so a
    driver prepares it once per connection); the positions are parameters.
    """
    _, rule_params = _payment_rule(d, sel)
    params = [*rule_params, upper[0], upper[0], upper[1]]
    if after is not None:
        if d.name is not DialectName.SQLITE:
            params.append(after.ch_dt)
        params += [after.ch_dt, after.ch_dt, after.ch_time, after.ch_time, after.jno, after.jno, after.entno]
    return _pending_payments_sql(d, sel, after is not None, limit, keys_only), params


@lru_cache(maxsize=256)
def _pending_payments_sql(d: Dialect, sel: PaymentSelection, after: bool, limit: int, keys_only: bool) -> str:
    rule, _ = _payment_rule(d, sel)
    dt, tm, jno, ent = (d.quote(c) for c in ("ChDt", sel.time_column, "JNo", "EntNo"))
    where = [rule, f"({dt} < ? OR ({dt} = ? AND {tm} <= ?))"]
    if after:
        if d.name is not DialectName.SQLITE:
            # Redundant, but it lets PostgreSQL and SQL Server seek the index to the cursor
            # instead of scanning it from the start for each page (SQLite plans worse with it).
            where.append(f"{dt} >= ?")
        where.append(
            f"({dt} > ? OR ({dt} = ? AND ({tm} > ? OR ({tm} = ? AND ({jno} > ? OR ({jno} = ? AND {ent} > ?))))))"
        )
    body = (
        f"{_select_list(d, sel, keys_only)} FROM {d.table('CustTr')} WHERE {' AND '.join(where)} "
        f"ORDER BY {dt}, {tm}, {jno}, {ent}"
    )
    return d.select_top(limit, body)


def unmarked_payments_page(
    d: Dialect, sel: PaymentSelection, after_key: tuple[int, int] | None, limit: int, *, keys_only: bool = False,
) -> tuple[str, list]:
    """The safety net: every unmarked payment after the lookback date, in key order."""
    rule, params = _payment_rule(d, sel)
    jno, ent = d.quote("JNo"), d.quote("EntNo")
    where = [rule]
    if after_key is not None:
        where.append(f"({jno} > ? OR ({jno} = ? AND {ent} > ?))")
        params += [after_key[0], after_key[0], after_key[1]]
    body = f"{_select_list(d, sel, keys_only)} FROM {d.table('CustTr')} WHERE {' AND '.join(where)} ORDER BY {jno}, {ent}"
    return d.select_top(limit, body), params


def _key_match(d: Dialect, keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
    """OR-ed key pairs rather than a row-value IN list, which SQL Server does not have."""
    jno, entno = d.quote("JNo"), d.quote("EntNo")
    return " OR ".join(f"({jno} = ? AND {entno} = ?)" for _ in keys), [part for key in keys for part in key]


def payment_rows_by_keys(d: Dialect, sel: PaymentSelection, keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
    """These rows as `PaymentRow` columns plus the marker, whatever they hold now (no rule): the
    consumer's view of what Visma holds before it posts. A key without a row is simply absent."""
    where, params = _key_match(d, keys)
    sql = f"SELECT {_payment_select_list(d, sel)}, {d.quote(sel.marker_column)} FROM {d.table('CustTr')} WHERE {where}"
    return sql, params


def payment_rows_of_invoice(d: Dialect, sel: PaymentSelection, customer_no: int, invoice_no: str) -> tuple[str, list]:
    """A customer's rows on one invoice number, with the marker (to pair a reversal with its payment)."""
    sql = (f"SELECT {_payment_select_list(d, sel)}, {d.quote(sel.marker_column)} FROM {d.table('CustTr')} "
           f"WHERE {d.quote('CustNo')} = ? AND {d.quote('InvoNo')} = ? ORDER BY {d.quote('JNo')}, {d.quote('EntNo')}")
    return sql, [customer_no, invoice_no]


def mark_payment(d: Dialect, marker_column: str, marked_value: int | str, keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
    """Set the marker on these rows where they are still unmarked, in one statement (so a payment
    and the reversal that annuls it are marked together or not at all); never touches ChDt/ChTm,
    so the producer does not see its own write as a change."""
    if not keys:
        raise ValueError("no rows to mark")
    marker = d.quote(marker_column)
    where, params = _key_match(d, keys)
    sql = f"UPDATE {d.table('CustTr')} SET {marker} = ? WHERE ({where}) AND ({marker} IS NULL OR {marker} <> ?)"
    return sql, [marked_value, *params, marked_value]


def customers_page(d: Dialect, after_act_no: int | None, limit: int, *, keys_only: bool = False,
                   blocked_only: bool = False, customer_nos: Sequence[int] = ()) -> tuple[str, list]:
    """Actors that are customers (CustNo > 0) with their credit block, in ActNo order.

    `blocked_only`: those whose CrSusp is anything but 0 (blocked, or a value no block is);
    `customer_nos`: those with these customer numbers (at most MAX_IN_LIST)."""
    if len(customer_nos) > MAX_IN_LIST:
        raise ValueError(f"at most {MAX_IN_LIST} customer numbers per query")
    names = ("ActNo",) if keys_only else ("ActNo", "CustNo", "CrSusp", "CrLmt", "ChDt", "ChTm")
    cols = ", ".join(d.money_select(c) if c == "CrLmt" else d.quote(c) for c in names)
    where = [f"{d.quote('CustNo')} > 0"]
    params: list = []
    if blocked_only:
        crsusp = d.quote("CrSusp")
        where.append(f"({crsusp} <> 0 OR {crsusp} IS NULL)")
    if customer_nos:
        where.append(f"{d.quote('CustNo')} IN ({', '.join('?' for _ in customer_nos)})")
        params += list(customer_nos)
    if after_act_no is not None:
        where.append(f"{d.quote('ActNo')} > ?")
        params.append(after_act_no)
    body = f"{cols} FROM {d.table('Actor')} WHERE {' AND '.join(where)} ORDER BY {d.quote('ActNo')}"
    return d.select_top(limit, body), params


def customer_by_act_no(d: Dialect, act_no: int) -> tuple[str, list]:
    """One actor as `customers_page` selects it."""
    cols = ", ".join(d.money_select(c) if c == "CrLmt" else d.quote(c)
                     for c in ("ActNo", "CustNo", "CrSusp", "CrLmt", "ChDt", "ChTm"))
    return f"SELECT {cols} FROM {d.table('Actor')} WHERE {d.quote('ActNo')} = ?", [act_no]


def currency_register(d: Dialect) -> str:
    """The company's currency register: number -> ISO code."""
    return f"SELECT {d.quote('CurNo')}, {d.quote('ISO')} FROM {d.table('Cur')}"


def payment_poll_index(d: Dialect, sel: PaymentSelection) -> str:
    """The index that makes an idle poll cheap: seek on the change position, covering the rule.

    For SQL Server this is the documented index to create on each company's CustTr.
    """
    return d.create_index(
        "vb2po_CustTr_change",
        "CustTr",
        ["ChDt", sel.time_column, "JNo", "EntNo"],
        include=["Am", "VoTp", "VoDt", sel.marker_column],
    )
