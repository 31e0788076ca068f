"""Visma's dates and times: int `yyyymmdd`, int `hhmm` or milliseconds since midnight, local time
without a zone. The one place that turns them into Python values (and refuses impossible ones)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

UNKNOWN_CHANGE = datetime(1970, 1, 1, tzinfo=timezone.utc)  # Visma writes ChDt = 0 when it does not know


def yyyymmdd(day: date) -> int:
    return day.year * 10000 + day.month * 100 + day.day


def visma_date(value: object) -> date:
    """`20261130` -> date(2026, 11, 30); ValueError for anything that is no real date."""
    if isinstance(value, bool) or not isinstance(value, int):
        value = int(str(value).strip())  # ValueError for text that is no number
    if not 10000101 <= value <= 99991231:
        raise ValueError(f"{value} is not a date yyyymmdd")
    return date(value // 10000, value // 100 % 100, value % 100)


def visma_change_time(ch_dt: Any, ch_time: Any, time_column: str, zone: tzinfo) -> datetime:
    """Visma's zone-less local change time as an aware datetime; `ChDt = 0` means unknown.
    ValueError for a date or time that does not exist (20261032, 2460, -5 ms)."""
    if not ch_dt:
        return UNKNOWN_CHANGE.astimezone(zone)
    day = visma_date(ch_dt)
    value = int(ch_time or 0)
    if time_column == "ChTmms":
        if not 0 <= value < 86_400_000:
            raise ValueError(f"ChTmms {value} is not a time of day in milliseconds")
        return datetime.combine(day, time(0), tzinfo=zone) + timedelta(milliseconds=value)
    if not (0 <= value <= 2359 and value % 100 < 60):
        raise ValueError(f"ChTm {value} is not a time hhmm")
    return datetime.combine(day, time(value // 100, value % 100), tzinfo=zone)
