"""SQL text for what vb2po reads and writes, built per dialect from checked identifiers.

Pure functions returning (sql, params). Column names come from `tables.py` or from a setting
that `identifiers.checked_column` has matched against the live table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from vb2po.visma.dialect import Dialect, DialectName

PAYMENT_COLUMNS = ("JNo", "EntNo", "CustNo", "VoNo", "VoDt", "VoTp", "Txt", "Am", "InvoNo", "ChDt")


@dataclass(frozen=True)
class PaymentSelection:
    """Which `CustTr` rows are payments to transfer (the payment rule plus setup)."""

    marker_column: str  # checked against the live table
    marked_value: int | str
    time_column: str  # "ChTmms" where the table has it, else "ChTm"
    voucher_types: tuple[int, ...]
    lookback_dt: int  # yyyymmdd

    def __post_init__(self) -> None:
        if not self.voucher_types or not all(isinstance(v, int) for v in self.voucher_types):
            raise ValueError("payment rule needs at least one integer voucher type")


@dataclass(frozen=True)
class Position:
    """A point in change order: (ChDt, time, JNo, EntNo)."""

    ch_dt: int
    ch_time: int
    jno: int
    entno: int


def _payment_select_list(d: Dialect, sel: PaymentSelection) -> str:
    cols = [d.money_select(c) if c == "Am" else d.quote(c) for c in PAYMENT_COLUMNS]
    cols.append(d.quote(sel.time_column))
    return ", ".join(cols)


def _payment_rule(d: Dialect, sel: PaymentSelection) -> tuple[str, list]:
    types = ", ".join("?" for _ in sel.voucher_types)
    marker = d.quote(sel.marker_column)
    sql = (
        f"{d.quote('Am')} < 0 AND {d.quote('VoTp')} IN ({types}) AND {d.quote('VoDt')} >= ? "
        f"AND ({marker} IS NULL OR {marker} <> ?)"
    )
    return sql, [*sel.voucher_types, sel.lookback_dt, sel.marked_value]


def pending_payments_page(
    d: Dialect, sel: PaymentSelection, after: Position | None, upper: tuple[int, int], limit: int
) -> tuple[str, list]:
    """Unmarked payments changed after `after` (exclusive, by full position) up to `upper`.

    The date/time part is compared with `>=` and the key breaks ties, so many rows sharing one
    minute are neither skipped nor read twice.
    """
    rule, params = _payment_rule(d, sel)
    dt, tm, jno, ent = (d.quote(c) for c in ("ChDt", sel.time_column, "JNo", "EntNo"))
    where = [rule, f"({dt} < ? OR ({dt} = ? AND {tm} <= ?))"]
    params += [upper[0], upper[0], upper[1]]
    if after is not None:
        if d.name is not DialectName.SQLITE:
            # Redundant, but it lets PostgreSQL and SQL Server seek the index to the cursor
            # instead of scanning it from the start for each page (SQLite plans worse with it).
            where.append(f"{dt} >= ?")
            params.append(after.ch_dt)
        where.append(
            f"({dt} > ? OR ({dt} = ? AND ({tm} > ? OR ({tm} = ? AND ({jno} > ? OR ({jno} = ? AND {ent} > ?))))))"
        )
        params += [after.ch_dt, after.ch_dt, after.ch_time, after.ch_time, after.jno, after.jno, after.entno]
    body = (
        f"{_payment_select_list(d, sel)} FROM {d.table('CustTr')} WHERE {' AND '.join(where)} "
        f"ORDER BY {dt}, {tm}, {jno}, {ent}"
    )
    return d.select_top(limit, body), params


def unmarked_payments_page(
    d: Dialect, sel: PaymentSelection, after_key: tuple[int, int] | None, limit: int
) -> tuple[str, list]:
    """The safety net: every unmarked payment after the lookback date, in key order."""
    rule, params = _payment_rule(d, sel)
    jno, ent = d.quote("JNo"), d.quote("EntNo")
    where = [rule]
    if after_key is not None:
        where.append(f"({jno} > ? OR ({jno} = ? AND {ent} > ?))")
        params += [after_key[0], after_key[0], after_key[1]]
    body = f"{_payment_select_list(d, sel)} FROM {d.table('CustTr')} WHERE {' AND '.join(where)} ORDER BY {jno}, {ent}"
    return d.select_top(limit, body), params


def marker_value(d: Dialect, marker_column: str, jno: int, entno: int) -> tuple[str, list]:
    sql = (
        f"SELECT {d.quote(marker_column)} FROM {d.table('CustTr')} "
        f"WHERE {d.quote('JNo')} = ? AND {d.quote('EntNo')} = ?"
    )
    return sql, [jno, entno]


def marker_values(d: Dialect, marker_column: str, keys: Sequence[tuple[int, int]]) -> tuple[str, list]:
    """The marker of many rows in one statement; a key without a row is simply absent.
    OR-ed key pairs rather than a row-value IN list, which SQL Server does not have."""
    jno, entno = d.quote("JNo"), d.quote("EntNo")
    where = " OR ".join(f"({jno} = ? AND {entno} = ?)" for _ in keys)
    sql = f"SELECT {jno}, {entno}, {d.quote(marker_column)} FROM {d.table('CustTr')} WHERE {where}"
    return sql, [part for key in keys for part in key]


def mark_payment(d: Dialect, marker_column: str, marked_value: int | str, jno: int, entno: int) -> tuple[str, list]:
    """Set the marker on a still-unmarked row only; never touches ChDt/ChTm, so the producer
    does not see its own write as a change."""
    marker = d.quote(marker_column)
    sql = (
        f"UPDATE {d.table('CustTr')} SET {marker} = ? "
        f"WHERE {d.quote('JNo')} = ? AND {d.quote('EntNo')} = ? AND ({marker} IS NULL OR {marker} <> ?)"
    )
    return sql, [marked_value, jno, entno, marked_value]


def customers_page(d: Dialect, after_act_no: int | None, limit: int) -> tuple[str, list]:
    """Actors that are customers (CustNo > 0) with their credit block, in ActNo order."""
    cols = ", ".join([d.quote("ActNo"), d.quote("CustNo"), d.quote("CrSusp"), d.money_select("CrLmt"), d.quote("ChDt"), d.quote("ChTm")])
    where = [f"{d.quote('CustNo')} > 0"]
    params: list = []
    if after_act_no is not None:
        where.append(f"{d.quote('ActNo')} > ?")
        params.append(after_act_no)
    body = f"{cols} FROM {d.table('Actor')} WHERE {' AND '.join(where)} ORDER BY {d.quote('ActNo')}"
    return d.select_top(limit, body), params


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
