from datetime import datetime
from zoneinfo import ZoneInfo

from producer.cursor import advance, visma_clock
from vb2po.visma.queries import Position

OSLO = ZoneInfo("Europe/Oslo")


def test_millisecond_bound_is_now_minus_settle_window_in_visma_local_time():
    now = datetime(2026, 11, 27, 10, 0, 5, 250_000, tzinfo=OSLO)
    assert visma_clock(now, 2.0, "ChTmms") == (20261127, (10 * 3600 + 3) * 1000 + 250)


def test_minute_precision_bound_only_covers_minutes_that_are_over():
    # 10:00:30 minus 2 s settle: rows stamped 10:00 may still be written, so stop at 09:59.
    now = datetime(2026, 11, 27, 10, 0, 30, tzinfo=OSLO)
    assert visma_clock(now, 2.0, "ChTm") == (20261127, 959)


def test_minute_bound_crosses_midnight_to_the_previous_day():
    now = datetime(2026, 11, 27, 0, 0, 10, tzinfo=OSLO)
    assert visma_clock(now, 2.0, "ChTm") == (20261126, 2359)


def test_utc_clock_is_converted_to_the_configured_visma_zone():
    utc_now = datetime(2026, 7, 1, 8, 0, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Oslo (summer time)
    assert visma_clock(utc_now.astimezone(OSLO), 0, "ChTmms") == (20260701, 10 * 3600 * 1000)


def test_cursor_never_moves_backwards():
    later = Position(20260102, 5, 1, 1)
    earlier = Position(20260101, 9, 9, 9)
    assert advance(None, earlier) == earlier
    assert advance(later, earlier) == later
    assert advance(earlier, later) == later
    # same time, key breaks the tie
    assert advance(Position(20260101, 5, 3, 1), Position(20260101, 5, 3, 2)) == Position(20260101, 5, 3, 2)
