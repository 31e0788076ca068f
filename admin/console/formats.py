"""Amounts and dates the Norwegian way, in both languages: `1 234,50 kr`, `30.11.2026`. Pure.

Groups of thousands are separated by a no-break space, so an amount never breaks over two lines.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

NBSP = "\u00a0"
MINUS = "\u2212"


def amount(value: Decimal | str | int | None, currency: str = "NOK") -> str:
    """`1 234,50 kr` (NOK), `1 234,50 EUR` (others); an empty string for no value."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value)).quantize(Decimal("0.01"))
    except InvalidOperation:
        return str(value)
    whole, _, cents = f"{abs(number):.2f}".partition(".")
    groups: list[str] = []
    while whole:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    text = f"{NBSP.join(groups)},{cents}"
    sign = MINUS if number < 0 else ""
    return f"{sign}{text}{NBSP}{'kr' if currency == 'NOK' else currency}"


def day(value: date | datetime | str | None, zone: ZoneInfo | None = None) -> str:
    """`30.11.2026`."""
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    if isinstance(value, datetime) and zone is not None:
        value = value.astimezone(zone)
    return f"{value.day:02d}.{value.month:02d}.{value.year}"


def moment(value: datetime | str | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """`30.11.2026 14:05` in `zone` (with `:07` seconds when asked)."""
    if not value:
        return ""
    when = (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(zone)
    clock = f"{when.hour:02d}:{when.minute:02d}" + (f":{when.second:02d}" if seconds else "")
    return f"{day(when)} {clock}"
