"""Amounts from any ODBC driver as exact Decimals, within what Visma's DECIMAL(28,6) can hold."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_INTEGER_DIGITS = 22  # DECIMAL(28,6): 22 digits before the point, 6 after
MAX_DECIMALS = 6
SMALLEST = Decimal(1).scaleb(-MAX_DECIMALS)
MONEY_LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS  # every amount is strictly inside (-limit, limit)


class BadAmount(ValueError):
    pass


def to_money(value: object) -> Decimal:
    """Decimal from what a driver returns: Decimal (SQL Server, PostgreSQL), text (SQLite),
    int, or float (read through its shortest repr, never through binary arithmetic).
    Refuses what DECIMAL(28,6) cannot hold (SQLite stores anything in any column).
    Whole-cent amounts are normalised to two decimals."""
    if isinstance(value, bool) or value is None:
        raise BadAmount(f"unreadable amount {value!r}")
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, (int, str)):
            text = str(value).strip()
            if len(text) > 64:  # no DECIMAL(28,6) needs more; keeps Decimal() off megabyte strings
                raise BadAmount(f"unreadable amount ({len(text)} characters)")
            amount = Decimal(text)
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        else:
            raise BadAmount(f"unreadable amount {value!r} ({type(value).__name__})")
    except (InvalidOperation, ValueError) as exc:
        raise BadAmount(f"unreadable amount {str(value)[:40]!r}") from exc
    check_money(amount)
    cents = amount.quantize(CENT)
    return cents if amount == cents else amount


def check_money(amount: Decimal) -> Decimal:
    """The amount, or BadAmount when it is not finite or does not fit DECIMAL(28,6)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise BadAmount(f"not a finite amount: {amount!r}")
    if abs(amount) >= MONEY_LIMIT:
        raise BadAmount(f"amount {amount:.6E} is outside what DECIMAL(28,6) holds")
    # (no as_tuple(): quantizing is exact for an amount with no more decimals, and cheaper per row)
    if amount != amount.quantize(SMALLEST):
        raise BadAmount(f"amount {amount} has more than {MAX_DECIMALS} decimals")
    return amount
