"""Amounts from any ODBC driver as exact Decimals."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")


class BadAmount(ValueError):
    pass


def to_money(value: object) -> Decimal:
    """Decimal from what a driver returns: Decimal (SQL Server, PostgreSQL), text (SQLite),
    int, or float (read through its shortest repr, never through binary arithmetic).
    Whole-cent amounts are normalised to two decimals."""
    if isinstance(value, bool) or value is None:
        raise BadAmount(f"unreadable amount {value!r}")
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, (int, str)):
            amount = Decimal(str(value).strip())
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        else:
            raise BadAmount(f"unreadable amount {value!r} ({type(value).__name__})")
    except InvalidOperation as exc:
        raise BadAmount(f"unreadable amount {value!r}") from exc
    if not amount.is_finite():
        raise BadAmount(f"unreadable amount {value!r}")
    if amount == amount.quantize(CENT):
        amount = amount.quantize(CENT)
    return amount
