"""Change polling against real ODBC drivers (SQLite and PostgreSQL), publishing to a fake.

The same poller runs against the real broker in test_walking_skeleton.py."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from devstack.visma_seed import insert_custtr
from producer.payments import PaymentPoller
from producer.publisher import FakePublisher
from producer.state import CompanyState
from schemas.codec import decode
from schemas.headers import is_republished
from tests.builders import payment_row
from tests.clock import Clock
from vb2po.errors import TransientError
from vb2po.settings import Settings, TopicSettings
from vb2po.visma.company import open_company
from vb2po.visma.db import VismaDatabase
from vb2po.visma.queries import mark_payment

TOPICS = TopicSettings()
OSLO = ZoneInfo("Europe/Oslo")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc)


def make_poller(conn_str: str, publisher: FakePublisher, *, page_size: int = 100, lookback_dt: int = 20260101,
                state: CompanyState | None = None, clock=lambda: NOW, **options) -> PaymentPoller:
    lookback = date(lookback_dt // 10000, lookback_dt // 100 % 100, lookback_dt % 100)
    settings = Settings(lookback_date=lookback, companies=[{"company_no": 1, "odbc": conn_str}],
                        invoice_clients=[{"name": "demo", "client_key": "k"}])
    return PaymentPoller(open_company(settings, settings.company(1), polling=True), publisher, TOPICS, OSLO,
                         state or CompanyState(1), page_size=page_size, clock=clock, **options)


def published_keys(publisher: FakePublisher) -> list[tuple[int, int]]:
    keys = []
    for m in publisher.committed:
        if m.topic == TOPICS.payments:
            p = decode(m.value).payload
            keys.append((p.jno, p.entno))
    return keys


def test_many_rows_sharing_one_change_time_are_each_published_once_across_pages(company_db):
    rows = [payment_row(1 + i // 50, 1 + i % 50, ch_tmms=36_000_000) for i in range(250)]
    with VismaDatabase(company_db) as db:
        insert_custtr(db, rows)
    publisher = FakePublisher()
    poller = make_poller(company_db, publisher, page_size=100)

    outcome = poller.poll_once()

    assert outcome.published == 250
    keys = published_keys(publisher)
    assert sorted(keys) == sorted((r.jno, r.entno) for r in rows)
    cursors = [m for m in publisher.on_topic(TOPICS.producer_state) if m.key == b"company:1"]
    assert publisher.transactions == 3 == len(cursors)  # a page, a transaction (with its moved cursor)
    assert poller.poll_once().published == 0  # nothing twice


def test_amounts_are_exact_and_positive_for_money_received(company_db):
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, 1, amount="-1234567.89")])
    publisher = FakePublisher()
    make_poller(company_db, publisher).poll_once()
    event = decode(publisher.committed[0].value)
    assert str(event.payload.amount) == "1234567.89"
    assert event.occurred_at.utcoffset() is not None  # Visma local time made explicit


def test_marked_rows_rows_before_lookback_and_other_voucher_types_are_not_published(company_db):
    rows = [
        payment_row(1, 1),
        payment_row(1, 2),  # will be marked
        payment_row(1, 3, vo_dt=20251231),  # before the lookback date
        payment_row(1, 4, vo_tp=2),  # credit note, not a payment
        payment_row(1, 5, amount="250.00", vo_tp=1),  # positive, an invoice type: not money received
        payment_row(1, 6, amount="100.00"),  # positive, a payment type: the reversal of a payment
    ]
    with VismaDatabase(company_db) as db:
        insert_custtr(db, rows)
        sql, params = mark_payment(db.dialect, "Gr4", 1, [(1, 2)])
        assert db.execute(sql, params) == 1
    publisher = FakePublisher()
    make_poller(company_db, publisher).poll_once()
    assert published_keys(publisher) == [(1, 1), (1, 6)]
    kinds = [decode(m.value).payload.kind for m in publisher.on_topic(TOPICS.payments)]
    assert kinds == ["payment", "reversal"]


def ms_of(moment: datetime) -> tuple[int, int]:
    """(ChDt, ChTmms) of a moment, as Visma stamps it (local time)."""
    local = moment.astimezone(OSLO)
    return (local.year * 10000 + local.month * 100 + local.day,
            ((local.hour * 60 + local.minute) * 60 + local.second) * 1000 + local.microsecond // 1000)


def test_a_row_is_published_by_the_first_poll_after_its_commit_nothing_is_held_back(company_db):
    ch_dt, ms = ms_of(NOW - timedelta(milliseconds=100))
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, 1, ch_dt=ch_dt, ch_tmms=ms)])
    publisher = FakePublisher()
    assert make_poller(company_db, publisher).poll_once().published == 1


def test_a_quiet_company_publishes_its_next_payment_at_the_next_poll_also_one_stamped_ahead(company_db):
    """After a poll that found nothing, polls first ask for keys only, with a statement kept for a
    while: a payment committed meanwhile is still published by the next poll, also one that a
    Visma clock running 45 s fast stamped ahead of the producer's."""
    clock = Clock(NOW)
    publisher = FakePublisher()
    poller = make_poller(company_db, publisher, clock=clock)
    assert poller.poll_once().published == 0
    assert poller.poll_once().published == 0  # quiet: the keys-only statement is made now
    clock.advance(20)
    ahead_dt, ahead_ms = ms_of(clock() + timedelta(seconds=45))
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, 1, ch_dt=ahead_dt, ch_tmms=ahead_ms)])
    assert poller.poll_once().published == 1  # (not `collect_keys`: the operator's fetch-now reads in full)
    clock.advance(0.25)
    assert poller.poll_once().published == 0
    now_dt, now_ms = ms_of(clock())
    with VismaDatabase(company_db) as db:  # behind the cursor now (it stands 45 s ahead): found by the re-scan
        insert_custtr(db, [payment_row(2, 1, ch_dt=now_dt, ch_tmms=now_ms)])
    clock.advance(0.25)
    assert poller.poll_once().published == 1
    assert poller.poll_once().published == 0
    assert published_keys(publisher) == [(1, 1), (2, 1)]


def test_a_row_stamped_far_ahead_does_not_carry_the_cursor_past_later_rows_and_the_sweep_publishes_it(company_db):
    ahead_dt, ahead_ms = ms_of(NOW + timedelta(days=1))
    now_dt, now_ms = ms_of(NOW)
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(9, 1, ch_dt=ahead_dt, ch_tmms=ahead_ms)])
    publisher = FakePublisher()
    poller = make_poller(company_db, publisher)
    assert poller.poll_once().published == 0  # a wrong clock in Visma: not read by the poll ...
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(2, 1, ch_dt=now_dt, ch_tmms=now_ms)])
    assert poller.poll_once(collect_keys=True).published_keys == ((2, 1),)  # ... so rows stamped now are not left behind it
    assert poller.sweep_once().published_keys == ((9, 1),)  # the sweep publishes it meanwhile
    # Only the sweep's event is flagged: the consumer asks PowerOffice before posting it.
    flagged = [is_republished(m.headers) for m in publisher.committed if m.topic == TOPICS.payments]
    assert flagged == [False, True]


HOSTILE = [  # (what the row holds that no payment can, column updates, the reason)
    ("a voucher date that is no date", {"VoDt": 20261032}, "invalid_date"),
    ("a change time that is no time", {"ChTmms": 99_999_999}, "invalid_change_time"),
    ("no customer", {"CustNo": 0}, "missing_customer"),
    ("a currency no register or ISO 4217 knows", {"Cur": 777}, "unknown_currency"),
    ("a foreign currency without its amount", {"Cur": 978, "CurAm": 0}, "currency_amount_mismatch"),
    ("a millionth of a krone", {"Am": "-0.000001"}, "amount_precision"),
    ("a voucher dated far ahead", {"VoDt": 20991231}, "invalid_date"),
]


def _set(db: VismaDatabase, jno: int, entno: int, columns: dict) -> None:
    d = db.dialect
    assignments = ", ".join(f"{d.quote(c)} = ?" for c in columns)
    db.execute(f"UPDATE {d.table('CustTr')} SET {assignments} WHERE {d.quote('JNo')} = ? AND {d.quote('EntNo')} = ?",
               [*columns.values(), jno, entno])


def test_rows_that_cannot_become_events_are_dead_lettered_once_and_polling_goes_on(company_db):
    rows = [payment_row(1, n + 1) for n in range(len(HOSTILE))] + [payment_row(2, 1, ch_tmms=36_100_000)]
    with VismaDatabase(company_db) as db:
        insert_custtr(db, rows)
        for n, (_, columns, _) in enumerate(HOSTILE):
            _set(db, 1, n + 1, columns)
    publisher = FakePublisher()
    poller = make_poller(company_db, publisher)
    outcome = poller.poll_once()
    assert (outcome.published, outcome.bad_rows) == (1, len(HOSTILE))
    assert published_keys(publisher) == [(2, 1)]  # the good row behind the bad ones
    letters = [json.loads(m.value) for m in publisher.committed if m.topic == TOPICS.dead_letters]
    assert sorted((letter["source_key"], letter["reason"]) for letter in letters) == [
        (f"JNo=1;EntNo={n + 1}", reason) for n, (_, _, reason) in enumerate(HOSTILE)]
    assert all(letter["company_no"] == 1 and letter["stage"] == "producer" for letter in letters)
    poller.sweep_grace_s = 0
    assert poller.sweep_once().bad_rows == 0  # the sweep finds them again: no second letter
    assert len([m for m in publisher.committed if m.topic == TOPICS.dead_letters]) == len(HOSTILE)


def test_values_sqlite_stores_beyond_the_column_type_do_not_stop_the_poll(sqlite_company_db):
    """SQLite keeps whatever is written: an amount of -1e30, text in an integer column."""
    with VismaDatabase(sqlite_company_db) as db:
        insert_custtr(db, [payment_row(1, 1), payment_row(1, 2), payment_row(1, 3), payment_row(2, 1, ch_tmms=36_100_000)])
        db.execute('UPDATE "CustTr" SET "Am" = -1e30 WHERE "EntNo" = 1 AND "JNo" = 1')
        db.execute('UPDATE "CustTr" SET "VoNo" = \'abc\' WHERE "EntNo" = 2 AND "JNo" = 1')
        db.execute('UPDATE "CustTr" SET "Txt" = x\'fffe41\' WHERE "EntNo" = 3 AND "JNo" = 1')  # bytes no decoder reads
    publisher = FakePublisher()
    outcome = make_poller(sqlite_company_db, publisher).poll_once()
    assert (2, 1) in published_keys(publisher)
    letters = {json.loads(m.value)["source_key"]: json.loads(m.value)["reason"]
               for m in publisher.committed if m.topic == TOPICS.dead_letters}
    assert letters["JNo=1;EntNo=1"] == "unreadable_amount"  # the others the driver reads as 0 and "?A"
    assert outcome.published + outcome.bad_rows == 4  # each row published or dead-lettered, none left behind


def test_a_failed_publish_does_not_move_the_cursor(company_db):
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, 1)])
    publisher = FakePublisher(fail_next=1)
    poller = make_poller(company_db, publisher)
    try:
        poller.poll_once()
    except Exception:
        pass
    assert poller.state.payments_cursor is None
    assert poller.poll_once().published == 1


def test_an_idle_company_keeps_its_cursor_within_a_day_of_now(company_db):
    """First start with every row marked: the cursor moves up to the day before, so later idle
    polls seek from there instead of walking the whole table; a row of today is still found."""
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, 1, ch_dt=20260301)])
        sql, params = mark_payment(db.dialect, "Gr4", 1, [(1, 1)])
        db.execute(sql, params)
    publisher = FakePublisher()
    poller = make_poller(company_db, publisher)
    assert poller.poll_once().published == 0
    assert poller.state.payments_cursor.ch_dt == 20261126  # NOW is 2026-11-27
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(2, 1, ch_dt=20261127, ch_tmms=30_000_000)])
    assert poller.poll_once().published == 1


class _FailsOnTransaction(FakePublisher):
    """Fails its n-th transaction (counting from 1), once."""

    def __init__(self, n: int):
        super().__init__()
        self.n, self.calls = n, 0

    def publish(self, messages):
        self.calls += 1
        if self.calls == self.n:
            raise TransientError("publish failed", reason="kafka")
        super().publish(messages)


def test_a_publish_failing_while_the_next_page_is_read_ahead_leaves_the_cursor_at_the_last_commit(company_db):
    """Pages after the first are read and encoded on another thread while the one before is
    published; a failure there ends the poll with the cursor where the last commit put it, and
    the next poll publishes the rest, each row once, a bad row on a read-ahead page dead-lettered."""
    rows = [payment_row(1 + i // 50, 1 + i % 50, ch_tmms=36_000_000 + i) for i in range(250)]
    rows[150] = payment_row(4, 1, ch_tmms=36_000_150, amount="-100.005")  # more decimals than NOK has
    with VismaDatabase(company_db) as db:
        insert_custtr(db, rows)
    publisher = _FailsOnTransaction(2)
    poller = make_poller(company_db, publisher, page_size=100)
    with pytest.raises(TransientError):
        poller.poll_once()
    assert poller.state.payments_cursor.ch_time == 36_000_099  # the first page's last row
    outcome = poller.poll_once()
    assert (outcome.published, outcome.bad_rows) == (149, 1)
    keys = published_keys(publisher)
    assert len(keys) == len(set(keys)) == 249 and (4, 1) not in keys
    letters = [json.loads(m.value) for m in publisher.on_topic(TOPICS.dead_letters)]
    assert [(d["source_key"], d["reason"]) for d in letters] == [("JNo=4;EntNo=1", "amount_precision")]
    assert poller.poll_once().published == 0
