"""Late commits on PostgreSQL through psqlODBC, with real open transactions (MVCC hides a row
until its transaction commits, as SQL Server's snapshot readers do): a row whose transaction
commits after the cursor passed its change time is published by the next poll, on a table that
stamps changes to the minute only (`ChTm`, no `ChTmms`) as well; and the safety-net sweep
publishes again only what stayed unmarked a grace period after it was published."""
from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pyodbc
import pytest

from devstack.visma_seed import create_tables, custtr_insert_sql, custtr_values, insert_custtr
from producer.payments import PaymentPoller
from producer.publisher import FakePublisher
from producer.state import CompanyState, apply_record
from schemas.codec import decode
from tests.builders import payment_row
from tests.clock import Clock
from vb2po.settings import Settings, TopicSettings
from vb2po.visma.company import open_company
from vb2po.visma.db import VismaDatabase
from vb2po.visma.queries import mark_payment

TOPICS = TopicSettings()
OSLO = ZoneInfo("Europe/Oslo")
START = datetime(2026, 11, 27, 9, 0, 10, tzinfo=timezone.utc)  # 10:00:10 in Oslo
_numbers = itertools.count(1)


@pytest.fixture
def minute_company_db(postgres_server):
    """A company whose CustTr has no ChTmms: changes are stamped to the minute (ChTm hhmm)."""
    conn_str = postgres_server.create_database(f"minute{next(_numbers):04d}")
    with VismaDatabase(conn_str) as db:
        create_tables(db, minute_precision=True)
    return conn_str


def row_at(jno: int, entno: int, local: datetime):
    """A payment stamped at a Visma-local moment (ChTm is its minute; ChTmms, where kept, its millisecond)."""
    local = local.astimezone(OSLO)
    ms = ((local.hour * 60 + local.minute) * 60 + local.second) * 1000 + local.microsecond // 1000
    return payment_row(jno, entno, ch_dt=local.year * 10000 + local.month * 100 + local.day, ch_tmms=ms)


def poller_for(conn_str: str, publisher: FakePublisher, clock: Clock, state: CompanyState | None = None,
               **options) -> PaymentPoller:
    settings = Settings(lookback_date=date(2026, 1, 1), companies=[{"company_no": 1, "odbc": conn_str}],
                        invoice_clients=[{"name": "demo", "client_key": "k"}])
    return PaymentPoller(open_company(settings, settings.company(1), polling=True), publisher, TOPICS, OSLO,
                         state or CompanyState(1), clock=clock, **options)


def open_transaction(conn_str: str, row, *, minute_precision: bool) -> pyodbc.Connection:
    """A Visma client's transaction that wrote `row` and has not committed yet."""
    conn = pyodbc.connect(conn_str, autocommit=False)
    db = VismaDatabase(conn_str)
    conn.cursor().execute(custtr_insert_sql(db, minute_precision=minute_precision),
                          custtr_values(row, minute_precision=minute_precision))
    return conn


def payment_keys(publisher: FakePublisher) -> list[tuple[int, int]]:
    return [(decode(m.value).payload.jno, decode(m.value).payload.entno) for m in publisher.on_topic(TOPICS.payments)]


def test_a_transaction_held_open_30_s_on_a_minute_precision_table_is_published_by_the_next_poll(minute_company_db):
    clock = Clock(START)
    publisher = FakePublisher()
    poller = poller_for(minute_company_db, publisher, clock)
    assert poller.source.selection.time_column == "ChTm"
    # 10:00:10 a Visma client writes payment 1/1 (stamped 10:00) and keeps its transaction open.
    late = open_transaction(minute_company_db, row_at(1, 1, clock()), minute_precision=True)
    # 10:00:40 another payment is written and committed at once (stamped 10:00 too, a higher key) ...
    clock.advance(30)
    with VismaDatabase(minute_company_db) as db:
        insert_custtr(db, [row_at(2, 1, clock())], minute_precision=True)
    # ... and 10:01:05 one more, stamped 10:01: the cursor moves past the open transaction's minute.
    clock.advance(25)
    with VismaDatabase(minute_company_db) as db:
        insert_custtr(db, [row_at(3, 1, clock())], minute_precision=True)
    assert poller.poll_once(collect_keys=True).published_keys == ((2, 1), (3, 1))
    assert poller.state.payments_cursor.ch_time == 1001
    assert poller.poll_once().published == 0  # quiet: the next poll asks for keys only first

    clock.advance(5)  # 10:01:10, a minute and a second after the late row's stamp: it commits
    late.commit()
    late.close()
    clock.advance(0.25)  # the next poll
    outcome = poller.poll_once(collect_keys=True)
    assert outcome.published_keys == ((1, 1),) and outcome.behind == 1
    assert poller.poll_once().published == 0  # known now: not published twice
    assert payment_keys(publisher) == [(2, 1), (3, 1), (1, 1)]


def test_a_lower_key_in_the_cursors_own_minute_is_published_once(minute_company_db):
    """Keys are not monotonic in time: a row with a lower JNo can be stamped the same minute later."""
    clock = Clock(START)
    publisher = FakePublisher()
    poller = poller_for(minute_company_db, publisher, clock, overlap_s=0)
    with VismaDatabase(minute_company_db) as db:
        insert_custtr(db, [row_at(50, 1, clock())], minute_precision=True)
    assert poller.poll_once(collect_keys=True).published_keys == ((50, 1),)
    clock.advance(20)
    with VismaDatabase(minute_company_db) as db:
        insert_custtr(db, [row_at(3, 1, clock()), row_at(60, 1, clock())], minute_precision=True)
    assert sorted(poller.poll_once(collect_keys=True).published_keys) == [(3, 1), (60, 1)]
    assert poller.poll_once().published == 0
    assert sorted(payment_keys(publisher)) == [(3, 1), (50, 1), (60, 1)]


def test_a_late_commit_with_millisecond_stamps_is_published_by_the_next_poll(postgres_company_db):
    clock = Clock(START)
    publisher = FakePublisher()
    poller = poller_for(postgres_company_db, publisher, clock)
    late = open_transaction(postgres_company_db, row_at(1, 1, clock()), minute_precision=False)
    clock.advance(30)
    with VismaDatabase(postgres_company_db) as db:
        insert_custtr(db, [row_at(2, 1, clock())])
    assert poller.poll_once(collect_keys=True).published_keys == ((2, 1),)
    late.commit()
    late.close()
    clock.advance(0.25)
    assert poller.poll_once(collect_keys=True).published_keys == ((1, 1),)


def test_the_rescan_remembers_across_a_restart_what_it_published(postgres_company_db):
    """The keys published lately are rebuilt from the state records: a restarted producer does
    not publish again the unmarked payments of its re-scan window."""
    clock = Clock(START)
    publisher = FakePublisher()
    first = poller_for(postgres_company_db, publisher, clock)
    with VismaDatabase(postgres_company_db) as db:
        insert_custtr(db, [row_at(n, 1, clock() - timedelta(seconds=n)) for n in range(1, 6)])
    assert first.poll_once().published == 5
    states: dict[int, CompanyState] = {}
    for m in publisher.on_topic(TOPICS.producer_state):  # what a restarted producer reads back
        apply_record(states, m.key, m.value)
    clock.advance(3)
    again = poller_for(postgres_company_db, FakePublisher(), clock, state=states[1])
    assert again.poll_once().published == 0
    assert again.sweep_once().published == 0  # published 3 s ago: on their way, not swept


def test_the_sweep_publishes_again_only_what_stayed_unmarked_a_grace_period_after_it_was_published(postgres_company_db):
    clock = Clock(START)
    publisher = FakePublisher()
    poller = poller_for(postgres_company_db, publisher, clock, sweep_grace_s=120)
    with VismaDatabase(postgres_company_db) as db:
        insert_custtr(db, [row_at(n, 1, clock() - timedelta(seconds=n)) for n in range(1, 5)])
    assert poller.poll_once().published == 4
    with VismaDatabase(postgres_company_db) as db:  # the consumer applied 1 and 2
        db.execute(*mark_payment(db.dialect, "Gr4", 1, [(1, 1), (2, 1)]))
    clock.advance(60)
    assert poller.sweep_once().published == 0  # 3 and 4 are still on their way
    assert poller.state.last_sweep_at == clock().timestamp()
    clock.advance(61)
    assert sorted(poller.sweep_once().published_keys) == [(3, 1), (4, 1)]  # 121 s after publication
    assert poller.sweep_once().published == 0  # and again only a grace period later
    assert poller.poll_once().published == 0  # the re-scan does not take them for new either


def test_a_payment_that_stays_unmarked_is_swept_again_twice_as_late_each_time_even_across_restarts(
        postgres_company_db):
    """One the consumer dead-lettered (say, its invoice is unknown in PowerOffice) stays unmarked:
    sweeping it every five minutes for ever would only cost reads and Kafka writes."""
    clock = Clock(START)
    publisher = FakePublisher()
    options = {"sweep_grace_s": 100, "sweep_interval_s": 300}
    poller = poller_for(postgres_company_db, publisher, clock, **options)
    with VismaDatabase(postgres_company_db) as db:
        insert_custtr(db, [row_at(1, 1, clock())])
    assert poller.poll_once().published == 1
    swept_at = []
    for _ in range(12):  # an hour of sweeps, every five minutes
        clock.advance(300)
        if poller.sweep_once().published:
            swept_at.append((clock() - START).total_seconds())
    assert swept_at == [300, 600, 1200, 2100]  # held 100 s, then 200, 400, 800 s (now 1,600 s)

    states: dict = {}
    for m in publisher.on_topic(TOPICS.producer_state):  # a restarted producer reads its state back
        apply_record(states, m.key, m.value)
    restarted = poller_for(postgres_company_db, FakePublisher(), clock, state=states[1], **options)
    clock.advance(60)  # 3,660 s: 1,560 s since the last sweep published it
    assert restarted.sweep_once().published == 0
    clock.advance(60)
    assert restarted.sweep_once().published_keys == ((1, 1),)  # 1,620 s: held 3,200 s from now
    daily = []
    for _ in range(24 * 12):  # the next day, a sweep every five minutes
        clock.advance(300)
        if restarted.sweep_once().published:
            daily.append((clock() - START).total_seconds())
    assert daily == [7020, 13620, 26520, 52320]  # not 288 times; held up to a day
    clock.advance(86_400)
    assert restarted.sweep_once().published_keys == ((1, 1),)  # and never longer than a day


def test_the_sweep_publishes_a_row_committed_behind_the_cursor_and_beyond_the_rescan(postgres_company_db):
    """A transaction open longer than overlap_s: behind the re-scan window, so the sweep's."""
    clock = Clock(START)
    publisher = FakePublisher()
    poller = poller_for(postgres_company_db, publisher, clock, overlap_s=60, sweep_grace_s=30)
    late = open_transaction(postgres_company_db, row_at(1, 1, clock()), minute_precision=False)
    clock.advance(200)
    with VismaDatabase(postgres_company_db) as db:
        insert_custtr(db, [row_at(2, 1, clock())])
    assert poller.poll_once(collect_keys=True).published_keys == ((2, 1),)
    late.commit()
    late.close()
    assert poller.poll_once().published == 0  # 200 s behind the cursor: outside the 60 s window
    with VismaDatabase(postgres_company_db) as db:  # the consumer applied 2/1
        db.execute(*mark_payment(db.dialect, "Gr4", 1, [(2, 1)]))
    clock.advance(31)  # the cursor passed it more than the grace period ago
    assert poller.sweep_once().published_keys == ((1, 1),)  # never published: swept
