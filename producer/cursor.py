"""Cursor arithmetic for change polling. Pure functions over plain values.

The cursor is the last published position (ChDt, time, JNo, EntNo). Each poll reads what changed
after it, with nothing held back, and also re-reads the window of `overlap_s` behind it: a row of
a transaction that committed after the cursor passed its change time (a late commit, or a key
lower than the cursor's within one minute) is there, and is published if its key was not already
(`producer.recent`). The cursor only ever moves to a row that was published in the same Kafka
transaction.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from vb2po.visma.clock import visma_change_time, yyyymmdd
from vb2po.visma.queries import Position

INT_MAX = 2**31 - 1


def _stamp(moment: datetime, time_column: str) -> tuple[int, int]:
    """(ChDt, ChTmms or ChTm) of a Visma-local moment; ChTm is the minute it falls in."""
    ch_dt = yyyymmdd(moment)
    if time_column == "ChTmms":
        return ch_dt, ((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1000 + moment.microsecond // 1000
    return ch_dt, moment.hour * 100 + moment.minute


def upper_bound(now: datetime, ahead_s: float, time_column: str) -> tuple[int, int]:
    """The latest change stamp a poll reads: Visma-local `now` plus `ahead_s`. Nothing is held back;
    the bound only keeps a row stamped far in the future (a wrong clock, a typing error) from
    carrying the cursor past everything written after it. Such a row is the sweep's."""
    return _stamp(now + timedelta(seconds=ahead_s), time_column)


def window_stamp(cursor: Position | None, now: datetime, overlap_s: float, time_column: str) -> tuple[int, int] | None:
    """The first change stamp of the re-scan window: `overlap_s` before the cursor's change time
    (before `now` if the cursor stands in the future). None when there is no window: no cursor
    yet, or a cursor whose change stamp is no time (ChDt 0)."""
    if cursor is None or not cursor.ch_dt:
        return None
    assert now.tzinfo is not None  # (Visma-local time, always aware)
    try:
        at = visma_change_time(cursor.ch_dt, cursor.ch_time, time_column, now.tzinfo)
    except (TypeError, ValueError):
        return None
    return _stamp(min(at, now) - timedelta(seconds=overlap_s), time_column)


def poll_start(cursor: Position | None, now: datetime, overlap_s: float, time_column: str) -> Position | None:
    """Where a poll starts reading (exclusive): just before the re-scan window, else at the
    cursor, else (None) from the beginning."""
    stamp = window_stamp(cursor, now, overlap_s, time_column)
    return cursor if stamp is None else before(stamp)


def stamp_of(position: Position) -> tuple[int, int]:
    return position.ch_dt, position.ch_time


def before(stamp: tuple[int, int]) -> Position:
    """A position just before every row stamped `stamp` (and after every earlier one): reading
    "after" it includes the whole of that millisecond or minute."""
    return Position(stamp[0], stamp[1] - 1, INT_MAX, INT_MAX)


def advance(cursor: Position | None, published: Position) -> Position:
    """The later of two positions: the cursor never moves backwards."""
    if cursor is None or is_after(published, cursor):
        return published
    return cursor


def is_after(position: Position, cursor: Position) -> bool:
    # (the tuples spelled out: called several times per row published)
    return (position.ch_dt, position.ch_time, position.jno, position.entno) > \
        (cursor.ch_dt, cursor.ch_time, cursor.jno, cursor.entno)
