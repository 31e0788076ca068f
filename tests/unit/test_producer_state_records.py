"""The producer's state topic at start: a record that does not read is passed over (what it said
falls back to the record before it for its key), so one bad record neither stops the producer nor
stalls any company, and never moves a cursor forward."""
from __future__ import annotations

import logging

from hypothesis import given, settings
from hypothesis import strategies as st

from producer.recent import PublishedBatch
from producer.state import (
    CompanyState,
    CustomerBlock,
    apply_record,
    company_key,
    customer_key,
    encode_block,
    encode_published,
    published_key,
)
from vb2po.visma.queries import Position

GOOD = CompanyState(1, payments_cursor=Position(20261130, 36000000, 7, 1), cursor_marks=((1.0e9, Position(20261130, 1, 7, 1)),))


def loaded_good_states() -> dict[int, CompanyState]:
    states: dict[int, CompanyState] = {}
    apply_record(states, company_key(1), GOOD.encode())
    apply_record(states, customer_key(1, 10001), encode_block(CustomerBlock(True, 3)))
    apply_record(states, published_key(1, 5), encode_published(PublishedBatch(5, 1.0e9, (Position(20261130, 1, 7, 1),))))
    apply_record(states, company_key(2), CompanyState(2, payments_cursor=Position(20261129, 1, 1, 1)).encode())
    return states


BAD_VALUES = [
    b"not json", b"\xff\xfe", b"[]", b"5", b"null", b'"text"', b"{}",
    b'{"payments_cursor": "2026"}', b'{"payments_cursor": [1, 2, 3]}', b'{"payments_cursor": [1, 2, 3, "4"]}',
    b'{"payments_cursor": [1, 2, 3, 4], "cursor_marks": "x"}', b'{"payments_cursor": [1, 2, 3, 4], "dead_lettered": "JNo"}',
    b'{"payments_cursor": [1, 2, 3, 4], "last_sweep_at": "soon"}',
]


def test_an_unreadable_company_record_leaves_that_company_as_the_record_before_it_said(caplog):
    for value in BAD_VALUES:
        states = loaded_good_states()
        with caplog.at_level(logging.ERROR, logger="producer.state"):
            apply_record(states, company_key(1), value)
        assert states[1].payments_cursor == GOOD.payments_cursor, value
        assert states[1].blocks == {10001: CustomerBlock(True, 3)}
        assert states[2].payments_cursor == Position(20261129, 1, 1, 1)
    assert "company:1" in caplog.text and "passed over" in caplog.text


def test_unreadable_block_and_published_records_are_passed_over():
    states = loaded_good_states()
    for value in (b'{"blocked": "false", "seq": 4}', b'{"blocked": false, "seq": "4"}', b'{"blocked": false}', b"x"):
        apply_record(states, customer_key(1, 10001), value)
    assert states[1].blocks == {10001: CustomerBlock(True, 3)}  # "false" as text is not taken as blocked
    for value in (b'{"at": 1, "keys": [[1, 2]]}', b'{"at": "x", "keys": []}', b'{"keys": []}'):
        apply_record(states, published_key(1, 6), value)
    assert set(states[1].published) == {5}


def test_keys_that_do_not_read_are_passed_over():
    states = loaded_good_states()
    for key in (None, b"", b"company", b"company:x", b"company:1:customer:y", b"\xff:1", b"company:1:published:z"):
        apply_record(states, key, b"{}")
    assert states == loaded_good_states()


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(st.binary(max_size=40), st.sampled_from([company_key(1), customer_key(1, 10001), published_key(1, 5)])),
       value=st.one_of(st.none(), st.binary(max_size=200), st.sampled_from(BAD_VALUES)))
def test_any_record_is_folded_in_or_passed_over_never_raised(key, value):
    states = loaded_good_states()
    apply_record(states, key, value)  # never raises
    for state in states.values():
        assert state.payments_cursor is None or all(type(v) is int for v in state.payments_cursor.__dict__.values())
