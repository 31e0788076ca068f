"""Cursor arithmetic for change polling. Pure functions over plain values.

The cursor is the last published position (ChDt, time, JNo, EntNo). Each poll reads rows after
it up to an upper bound held back by the settle window, so a transaction that is still open
when we poll is not overtaken by later rows we already passed. The cursor only ever moves to a
row that was published in the same Kafka transaction.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from vb2po.visma.clock import yyyymmdd
from vb2po.visma.queries import Position


def visma_clock(now: datetime, settle_s: float, time_column: str) -> tuple[int, int]:
    """Upper bound (ChDt, time) for a poll: Visma-local `now` minus the settle window."""
    bound = now - timedelta(seconds=settle_s)
    if time_column != "ChTmms":
        # Minute precision: a row stamped hh:mm may still be written until hh:mm:59, so only
        # minutes that lie wholly before the settled moment are safe to read past.
        bound -= timedelta(minutes=1)
    ch_dt = yyyymmdd(bound)
    if time_column == "ChTmms":
        ms = ((bound.hour * 60 + bound.minute) * 60 + bound.second) * 1000 + bound.microsecond // 1000
        return ch_dt, ms
    return ch_dt, bound.hour * 100 + bound.minute


def advance(cursor: Position | None, published: Position) -> Position:
    """The later of two positions: the cursor never moves backwards."""
    if cursor is None or is_after(published, cursor):
        return published
    return cursor


def _tuple(p: Position) -> tuple[int, int, int, int]:
    return (p.ch_dt, p.ch_time, p.jno, p.entno)


def is_after(position: Position, cursor: Position) -> bool:
    return _tuple(position) > _tuple(cursor)
