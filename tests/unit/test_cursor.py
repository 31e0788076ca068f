from datetime import datetime
from zoneinfo import ZoneInfo

from producer.cursor import advance, before, is_after, poll_start, upper_bound, window_stamp
from vb2po.visma.queries import Position

OSLO = ZoneInfo("Europe/Oslo")


def test_nothing_is_held_back_the_upper_bound_lies_ahead_of_now():
    now = datetime(2026, 11, 27, 10, 0, 5, 250_000, tzinfo=OSLO)
    assert upper_bound(now, 0, "ChTmms") == (20261127, (10 * 3600 + 5) * 1000 + 250)
    assert upper_bound(now, 120, "ChTmms") == (20261127, (10 * 3600 + 125) * 1000 + 250)
    # minute precision: the current minute is read at once (a row stamped 10:00 is not waited for)
    assert upper_bound(now, 0, "ChTm") == (20261127, 1000)


def test_upper_bound_crosses_midnight_to_the_next_day():
    now = datetime(2026, 11, 27, 23, 59, 30, tzinfo=OSLO)
    assert upper_bound(now, 120, "ChTm") == (20261128, 1)


def test_utc_clock_is_converted_to_the_configured_visma_zone():
    utc_now = datetime(2026, 7, 1, 8, 0, 0, tzinfo=ZoneInfo("UTC"))  # 10:00 in Oslo (summer time)
    assert upper_bound(utc_now.astimezone(OSLO), 0, "ChTmms") == (20260701, 10 * 3600 * 1000)


def test_the_rescan_window_reaches_overlap_s_behind_the_cursor_to_the_whole_minute():
    now = datetime(2026, 11, 27, 10, 5, 0, tzinfo=OSLO)
    cursor_ms = Position(20261127, (10 * 3600 + 4 * 60 + 30) * 1000, 7, 1)  # 10:04:30.000
    assert window_stamp(cursor_ms, now, 120, "ChTmms") == (20261127, (10 * 3600 + 2 * 60 + 30) * 1000)
    cursor_min = Position(20261127, 1004, 7, 1)  # stamped 10:04, i.e. 10:04:00 .. 10:04:59
    assert window_stamp(cursor_min, now, 90, "ChTm") == (20261127, 1002)  # 10:02:30 falls in minute 10:02


def test_a_cursor_in_the_future_gets_its_window_from_now():
    now = datetime(2026, 11, 27, 10, 5, 0, tzinfo=OSLO)
    ahead = Position(20261127, 1100, 1, 1)
    assert window_stamp(ahead, now, 60, "ChTm") == (20261127, 1004)


def test_the_window_crosses_midnight_backwards():
    now = datetime(2026, 11, 27, 0, 0, 30, tzinfo=OSLO)
    assert window_stamp(Position(20261127, 0, 1, 1), now, 120, "ChTm") == (20261126, 2358)


def test_without_a_cursor_or_with_an_unknown_change_time_there_is_no_window():
    now = datetime(2026, 11, 27, 10, 5, 0, tzinfo=OSLO)
    assert window_stamp(None, now, 120, "ChTm") is None and poll_start(None, now, 120, "ChTm") is None
    unknown = Position(0, 0, 5, 1)  # Visma's ChDt = 0
    assert window_stamp(unknown, now, 120, "ChTm") is None
    assert poll_start(unknown, now, 120, "ChTm") == unknown


def test_the_poll_starts_just_before_the_window_so_rows_sharing_its_first_minute_are_all_read():
    start = before((20261127, 1002))
    assert is_after(Position(20261127, 1002, 1, 1), start)  # lowest key in the window's first minute
    assert is_after(Position(20261127, 1002, 2**31 - 1, 2**31 - 1), start)
    assert not is_after(Position(20261127, 1001, 2**31 - 1, 2**31 - 2), start)  # the minute before
    # with no overlap at all, rows of the cursor's own minute with lower keys are still re-read
    now = datetime(2026, 11, 27, 10, 5, 0, tzinfo=OSLO)
    cursor = Position(20261127, 1004, 50, 1)
    assert is_after(Position(20261127, 1004, 3, 1), poll_start(cursor, now, 0, "ChTm"))


def test_cursor_never_moves_backwards():
    later = Position(20260102, 5, 1, 1)
    earlier = Position(20260101, 9, 9, 9)
    assert advance(None, earlier) == earlier
    assert advance(later, earlier) == later
    assert advance(earlier, later) == later
    # same time, key breaks the tie
    assert advance(Position(20260101, 5, 3, 1), Position(20260101, 5, 3, 2)) == Position(20260101, 5, 3, 2)
