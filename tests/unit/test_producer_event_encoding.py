"""The producer's encoding without the models (`RowReader.encoded`) gives what the models give.

`encoded` skips building and validating the pydantic event when `interpret` has already checked
everything the schema would; for any row, valid or not, it must give the very bytes
`encode(RowReader.event(...))` gives, or the same `BadRow`.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from producer.rows import BadRow, RowReader
from schemas.codec import decode, encode
from schemas.events import payment_event_id, payment_event_id_text
from vb2po.visma.payments import CurrencyBook, PaymentRow, PaymentRule

OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
RULE = PaymentRule((3,), (3, 4), date(2025, 1, 1))


def outcome(fn):
    try:
        return fn()
    except BadRow as exc:
        return ("bad", exc.reason, str(exc))


def both(reader: RowReader, row: PaymentRow, now: datetime):
    def fast():
        e = reader.encoded(row, now)
        return (e.value, e.customer_no, e.jno, e.entno, e.occurred_at)

    def slow():
        e = reader.event(row, now)
        return (encode(e), e.payload.customer_no, e.payload.jno, e.payload.entno, e.occurred_at)
    return outcome(fast), outcome(slow)


def row(**overrides) -> PaymentRow:
    values = dict(jno=12, entno=3, cust_no=10_001, vo_no=1203, vo_dt=20260315, vo_tp=3, txt="Innbetaling 100000",
                  am=Decimal("-1234.50"), invo_no="100000", ch_dt=20260315, cur=0, cur_am=Decimal("0"), ch_time=36_000_000)
    values.update(overrides)
    return PaymentRow(**values)


READER = RowReader(1, RULE, CurrencyBook("NOK", {1: "USD", 2: "KWD", 3: "JPY"}, None), "ChTmms", OSLO)


def test_a_plain_payment_is_the_same_bytes_and_decodes():
    fast, slow = both(READER, row(), NOW)
    assert fast == slow
    assert decode(fast[0]).payload.amount == Decimal("1234.50")


def test_edge_rows_take_the_same_way_out():
    cases = [
        row(), row(cur=1, cur_am=Decimal("-150.12")), row(cur=2, cur_am=Decimal("-150.1230000000")), row(cur=3, cur_am=-150),
        row(invo_no=None), row(invo_no="  42  "), row(invo_no="\u00a042\u3000"), row(invo_no="\x1c42"), row(invo_no="x" * 21),
        row(invo_no="é" * 20), row(txt="x" * 200), row(txt="\ud800 lone"), row(am=Decimal("-1e21")), row(am=Decimal("-1E+3")),
        row(am="-10.5"), row(am=-10.5), row(am=Decimal("-0.0000001")), row(am=Decimal("-9999999999999999999999.99")),
        row(am=Decimal("100.00"), vo_tp=4), row(ch_dt=0), row(ch_dt=21010101), row(ch_dt=99991231), row(ch_dt=20261032),
        row(vo_dt=21001231), row(vo_dt=21010101), row(jno=2**31), row(jno="12"), row(cust_no=None), row(cur=999),
        row(vo_no=None), row(vo_no=2**40), row(ch_time=86_400_000),
    ]
    for r in cases:
        fast, slow = both(READER, r, NOW)
        assert fast == slow, r


def test_a_company_or_clock_outside_the_schema_takes_the_validating_way():
    for reader in (RowReader(0, RULE, READER.currencies, "ChTmms", OSLO),
                   RowReader(10_000, RULE, READER.currencies, "ChTmms", OSLO),
                   RowReader(1, RULE, CurrencyBook("XXY", {}, None), "ChTmms", OSLO)):
        fast, slow = both(reader, row(), NOW)
        assert fast == slow
    for now in (datetime(2101, 6, 1, tzinfo=timezone.utc), datetime(2026, 11, 30, 12, 0)):
        fast, slow = both(READER, row(), now)
        assert fast == slow


money = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True, places=None),
    st.integers(0, 9).flatmap(lambda p: st.decimals(min_value=Decimal("-1e23"), max_value=Decimal("1e23"), places=p)),
    st.integers(-(10**24), 10**24), st.floats(), st.text(max_size=8), st.none(),
)
ints = st.one_of(st.integers(-(2**32), 2**32), st.sampled_from([0, 1, 3, 4, 2**31 - 1, -(2**31)]), st.text(max_size=4), st.none())


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    jno=ints, entno=ints, cust_no=ints, vo_no=ints,
    vo_dt=st.one_of(st.integers(19990101, 21020101), st.sampled_from([20260315, 20000101, 21001231, 0]), st.text(max_size=9)),
    vo_tp=st.sampled_from([3, 4, 1, "3", None]), txt=st.one_of(st.text(max_size=80), st.none(), st.integers()),
    am=money, invo_no=st.one_of(st.text(max_size=25), st.none(), st.integers(-5, 10**22)),
    ch_dt=st.one_of(st.sampled_from([0, 20260315, 21001231, 21010101, 19691231, 99991231]), st.integers(19000101, 22000101)),
    cur=st.sampled_from([0, 1, 2, 3, 578, 840, 999, None, "", "x"]), cur_am=money,
    ch_time=st.one_of(st.integers(-5, 86_400_001), st.none()),
    now=st.one_of(st.just(NOW), st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(2200, 1, 1),
                                             timezones=st.sampled_from([timezone.utc, OSLO, timezone(timedelta(hours=-5))]))),
)
def test_any_row_gives_the_same_bytes_or_the_same_bad_row(jno, entno, cust_no, vo_no, vo_dt, vo_tp, txt, am, invo_no, ch_dt,
                                                          cur, cur_am, ch_time, now):
    r = PaymentRow(jno=jno, entno=entno, cust_no=cust_no, vo_no=vo_no, vo_dt=vo_dt, vo_tp=vo_tp, txt=txt, am=am,
                   invo_no=invo_no, ch_dt=ch_dt, cur=cur, cur_am=cur_am, ch_time=ch_time)
    fast, slow = both(READER, r, now)
    assert fast == slow


@given(st.integers(1, 9999), st.integers(-(2**31), 2**31 - 1), st.integers(-(2**31), 2**31 - 1))
def test_the_event_id_text_is_the_uuid5(company_no, jno, entno):
    assert payment_event_id_text(company_no, jno, entno) == str(payment_event_id(company_no, jno, entno))


@settings(max_examples=400, deadline=None)
@given(
    am=st.integers(0, 7).flatmap(lambda p: st.decimals(min_value=Decimal("-1e22"), max_value=Decimal("-0.000001"), places=p)),
    cur=st.sampled_from([0, 1, 2, 3]),
    cur_am=st.integers(0, 7).flatmap(lambda p: st.decimals(min_value=Decimal("-1e22"), max_value=Decimal("-0.000001"), places=p)),
    txt=st.text(max_size=70), invo_no=st.one_of(st.none(), st.text(max_size=22)),
    vo_dt=st.dates(date(2024, 1, 1), date(2027, 12, 31)).map(lambda d: d.year * 10000 + d.month * 100 + d.day),
    ch_time=st.integers(0, 86_399_999),
)
def test_payments_that_read_well_give_the_same_bytes(am, cur, cur_am, txt, invo_no, vo_dt, ch_time):
    r = row(am=am, cur=cur, cur_am=cur_am, txt=txt, invo_no=invo_no, vo_dt=vo_dt, ch_dt=vo_dt, ch_time=ch_time)
    fast, slow = both(READER, r, NOW)
    assert fast == slow
