"""The crash guard's commit metadata and decisions (consumer.crash_guard)."""
from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from consumer.crash_guard import GIVE_UP_ALONE, MAX_RANGE, InFlight, give_up, read_in_flight


def test_a_commit_with_nothing_in_flight_carries_no_metadata_and_says_nothing():
    assert InFlight(40, 39).metadata() == ""
    assert read_in_flight(40, "") is None and read_in_flight(40, None) is None


def test_what_was_in_flight_is_read_back_from_the_commit():
    said = InFlight(40, 57)
    assert read_in_flight(40, said.metadata()) == said


def test_metadata_about_another_offset_is_stale_and_says_nothing():
    assert read_in_flight(41, InFlight(40, 57).metadata()) is None


def test_a_record_is_given_up_only_after_sessions_died_with_it_alone_often_enough():
    for alone in range(GIVE_UP_ALONE):
        assert not give_up(read_in_flight(40, InFlight(40, 57, 45, alone).metadata()), 45)
    said = read_in_flight(40, InFlight(40, 57, 45, GIVE_UP_ALONE).metadata())
    assert give_up(said, 45)
    assert not give_up(said, 46) and not give_up(said, 40) and not give_up(None, 45)


def test_the_suspect_stays_within_the_range():
    said = read_in_flight(40, InFlight(40, 39, 45, 1).metadata())
    assert said is not None and said.upto >= 45


ANY_VALUE = st.one_of(st.integers(), st.floats(), st.just(float("inf")), st.text(), st.none())
OUR_KEYS = st.sampled_from(["vb2po_at", "upto", "suspect", "alone"])


ANY_VALUE = st.one_of(st.integers(), st.floats(), st.just(float("inf")), st.text(), st.none())
OUR_KEYS = st.sampled_from(["vb2po_at", "upto", "suspect", "alone"])


@given(st.integers(0, 10**6), st.one_of(st.none(), st.text(max_size=200), st.binary(max_size=50).map(repr),
                                        st.dictionaries(OUR_KEYS, ANY_VALUE).map(json.dumps)))
def test_whatever_another_tool_or_a_hostile_writer_put_in_the_metadata_is_read_safely(offset, metadata):
    said = read_in_flight(offset, metadata)
    if said is not None:
        assert said.at == offset and said.at <= said.upto <= said.at + MAX_RANGE
        assert 0 <= said.alone <= 1000
