"""The producer against the real broker and real ODBC drivers: restart, fencing, late commits,
credit blocks, failing companies and bad rows."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pyodbc
import pytest
from prometheus_client import REGISTRY

from devstack.visma_seed import custtr_insert_sql, custtr_values, insert_custtr
from producer.credit_blocks import CreditBlockPoller
from producer.payments import PaymentPoller
from producer.publisher import FakePublisher, KafkaTransactionalPublisher, Outgoing, ProducerFenced
from producer.service import ProducerService, transactional_id
from producer.state import CompanyState, load_states
from schemas.codec import decode
from schemas.events import payment_event_id
from tests.builders import payment_row
from tests.kafka_reading import read_committed
from tests.services import wait_for
from vb2po import metrics
from vb2po.kafka.topics import ensure_topics
from vb2po.live_settings import version_in
from vb2po.visma.company import open_company
from vb2po.visma.db import VismaDatabase

OSLO = ZoneInfo("Europe/Oslo")


def payments_in_topic(settings) -> list:
    return [decode(r.value) for r in read_committed(settings.kafka.bootstrap_servers, settings.kafka.topics.payments)]


def test_restarted_producer_resumes_from_committed_state_without_republishing(make_settings, company_db):
    settings = make_settings({1: company_db})
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, i, ch_tmms=36_000_000) for i in range(1, 301)])  # one minute, 300 rows
    first = ProducerService(settings).start()
    assert first.fetch_now()[1].published == 300
    first.close()

    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(2, i, ch_dt=20260316) for i in range(1, 11)])
    second = ProducerService(settings).start()
    assert second.workers[1].initial_state.payments_cursor is not None
    assert second.fetch_now()[1].published == 10
    second.close()

    events = payments_in_topic(settings)
    assert len(events) == 310 == len({e.event_id for e in events})
    assert all(e.event_id == payment_event_id(1, e.payload.jno, e.payload.entno) for e in events)


def test_a_second_producer_for_the_same_company_fences_the_first(make_settings, sqlite_company_db):
    settings = make_settings({1: sqlite_company_db})
    ensure_topics(settings.kafka)
    topic = settings.kafka.topics.payments
    older = KafkaTransactionalPublisher(settings.kafka, transactional_id(1))
    older.publish([Outgoing(topic, b"k", b"from the older instance")])
    newer = KafkaTransactionalPublisher(settings.kafka, transactional_id(1))
    with pytest.raises(ProducerFenced):
        older.publish([Outgoing(topic, b"k", b"must never become visible")])
    newer.publish([Outgoing(topic, b"k", b"from the newer instance")])
    older.close(), newer.close()
    values = [r.value for r in read_committed(settings.kafka.bootstrap_servers, topic)]
    assert values == [b"from the older instance", b"from the newer instance"]


def test_records_appended_past_send_and_through_send_arrive_alike(make_settings, sqlite_company_db):
    """The publisher puts small records into kafka-python's accumulator itself (`_TransactionAppender`)
    and leaves large ones to send(): each lands in its key's partition with its headers, in one
    transaction, and a later transaction adds its partitions again."""
    settings = make_settings({1: sqlite_company_db})
    ensure_topics(settings.kafka)
    topic = settings.kafka.topics.payments
    publisher = KafkaTransactionalPublisher(settings.kafka, transactional_id(1))
    publisher.settings_version = 7
    big = b"x" * 100_000
    first = [Outgoing(topic, f"customer-{n}".encode(), f"event {n}".encode(), (("republished", b"1"),)) for n in range(30)]
    publisher.publish(first + [Outgoing(topic, b"customer-big", big)])
    publisher.publish([Outgoing(topic, f"customer-{n}".encode(), f"again {n}".encode()) for n in range(30)])
    publisher.close()
    records = read_committed(settings.kafka.bootstrap_servers, topic)
    assert sorted(r.value for r in records) == sorted([f"event {n}".encode() for n in range(30)] + [big] +
                                                      [f"again {n}".encode() for n in range(30)])
    partitions: dict[bytes, set[int]] = {}
    for r in records:
        partitions.setdefault(r.key, set()).add(r.partition)
        assert (dict(r.headers).get("republished") == b"1") == r.value.startswith(b"event ")
        assert version_in(r.headers) == 7
    assert all(len(p) == 1 for p in partitions.values()) and len({min(p) for p in partitions.values()}) > 1


def test_late_commits_are_published_by_the_next_poll_or_beyond_the_overlap_by_the_safety_net(make_settings, postgres_company_db):
    settings = make_settings({1: postgres_company_db}, producer={"sweep_grace_s": 0, "overlap_s": 60})
    ensure_topics(settings.kafka)
    now = datetime.now(OSLO)

    def stamped(jno: int, moment: datetime):
        return payment_row(jno, 1, ch_dt=moment.year * 10000 + moment.month * 100 + moment.day,
                           ch_tmms=((moment.hour * 60 + moment.minute) * 60 + moment.second) * 1000)

    insert = custtr_insert_sql(VismaDatabase(postgres_company_db))
    # A Visma client's slow transactions: one open 20 s, one open 5 minutes.
    soon = pyodbc.connect(postgres_company_db, autocommit=False)
    soon.cursor().execute(insert, custtr_values(stamped(1, now - timedelta(seconds=20))))
    slow = pyodbc.connect(postgres_company_db, autocommit=False)
    slow.cursor().execute(insert, custtr_values(stamped(3, now - timedelta(minutes=5))))
    with VismaDatabase(postgres_company_db) as db:  # a later change, committed first
        insert_custtr(db, [stamped(2, now)])

    source = open_company(settings, settings.company(1))
    publisher = KafkaTransactionalPublisher(settings.kafka, transactional_id(1))
    poller = PaymentPoller(source, publisher, settings.kafka.topics, OSLO, CompanyState(1), overlap_s=60, sweep_grace_s=0)
    assert poller.poll_once().published == 1  # only the committed row; the cursor passes the open ones
    soon.commit(), slow.commit()
    soon.close(), slow.close()
    # 20 s behind the cursor: inside the re-scan window, published by the very next poll; a plain
    # high-water mark would have lost it here. 5 minutes behind: outside it, left to the sweep.
    assert poller.poll_once().published == 1
    assert poller.poll_once().published == 0
    # The safety net publishes every unmarked payment published more than the grace period (0 s
    # here) ago or never: the slow row for the first time, the others (not consumed, so still
    # unmarked) again under their own ids.
    assert poller.sweep_once().published == 3
    publisher.close()
    events = payments_in_topic(settings)
    assert sorted({(e.payload.jno, e.payload.entno) for e in events}) == [(1, 1), (2, 1), (3, 1)]
    assert len({e.event_id for e in events}) == 3 and len(events) == 5
    assert load_states(settings.kafka)[1].last_sweep_at is not None  # kept for the next start


def _set_block(conn_str: str, act_no: int, blocked: bool) -> None:
    with VismaDatabase(conn_str) as db:
        db.execute('UPDATE "Actor" SET "CrSusp" = ? WHERE "ActNo" = ?', [int(blocked), act_no])


def test_block_lift_block_within_seconds_gives_three_events_in_order(make_settings, company_db):
    settings = make_settings({1: company_db})
    ensure_topics(settings.kafka)
    with VismaDatabase(company_db) as db:
        db.execute('INSERT INTO "Actor" ("ActNo", "CustNo", "Nm", "CrSusp", "CrLmt") VALUES (?, ?, ?, ?, ?)',
                   [1, 10000, "Kunde AS", 0, 5000])
        db.execute('INSERT INTO "Actor" ("ActNo", "CustNo", "Nm", "CrSusp", "CrLmt") VALUES (?, ?, ?, ?, ?)',
                   [2, 0, "Leverandør AS", 1, 0])  # not a customer: never an event
    source = open_company(settings, settings.company(1))
    publisher = KafkaTransactionalPublisher(settings.kafka, transactional_id(1))
    poller = CreditBlockPoller(source, publisher, settings.kafka.topics, OSLO, {})
    assert poller.poll_once().published == 1  # first start: a snapshot of the current state
    for blocked in (True, False, True):
        _set_block(company_db, 1, blocked)
        assert poller.poll_once().published == 1
    assert poller.poll_once().published == 0  # no change, no event
    assert poller.poll_once(reassert=True).published == 1  # a standing block is restated
    publisher.close()

    events = [decode(r.value) for r in read_committed(settings.kafka.bootstrap_servers, settings.kafka.topics.credit_blocks)]
    states = [(e.payload.blocked, e.payload.sequence, e.payload.reasserted) for e in events]
    assert states == [(False, 1, False), (True, 2, False), (False, 3, False), (True, 4, False), (True, 4, True)]
    assert events[-1].event_id == events[-2].event_id  # a restatement is the same fact
    assert load_states(settings.kafka)[1].blocks[10000].blocked is True  # survives a restart


def test_between_full_comparisons_only_blocked_and_lifted_customers_are_read(make_settings, company_db):
    """Hundreds of companies per producer: an idle credit-block poll reads the blocked customers,
    not all of them; a lift is still seen at once, a new unblocked customer at the next full one."""
    settings = make_settings({1: company_db})
    with VismaDatabase(company_db) as db:
        for act_no in range(1, 51):
            db.execute('INSERT INTO "Actor" ("ActNo", "CustNo", "Nm", "CrSusp", "CrLmt") VALUES (?, ?, ?, ?, ?)',
                       [act_no, 10000 + act_no, f"Kunde {act_no}", int(act_no <= 3), 0])
    publisher = FakePublisher()
    source = open_company(settings, settings.company(1), polling=True)
    poller = CreditBlockPoller(source, publisher, settings.kafka.topics, OSLO, {})
    first = poller.poll_once()
    assert (first.rows_read, first.published) == (50, 50)  # the first poll compares everyone: a snapshot
    idle = poller.poll_once()
    assert (idle.rows_read, idle.published) == (3, 0)  # then only the three blocked ones are read
    _set_block(company_db, 2, False)  # lifted
    _set_block(company_db, 40, True)  # blocked
    with VismaDatabase(company_db) as db:
        db.execute('INSERT INTO "Actor" ("ActNo", "CustNo", "Nm", "CrSusp", "CrLmt") VALUES (?, ?, ?, ?, ?)',
                   [51, 10051, "Ny kunde", 0, 0])
    changed = poller.poll_once()
    assert changed.published == 2
    assert poller.blocks[10002].blocked is False and poller.blocks[10040].blocked is True
    assert 10051 not in poller.blocks  # unblocked and new: no event until the next full comparison
    poller.poll_once(reassert=True)
    assert poller.blocks[10051].blocked is False


def test_a_failing_company_does_not_stop_another(make_settings, sqlite_company_db, tmp_path):
    broken = f"Driver=SQLite3;Database={tmp_path}/no-such-dir/F0417.db"
    settings = make_settings({1: sqlite_company_db, 417: broken})  # (a number no other test's producer polls)
    with VismaDatabase(sqlite_company_db) as db:
        insert_custtr(db, [payment_row(1, 1, ch_dt=20260401)])
    errors_before = metrics.PRODUCER_ERRORS.labels("417", "db_unavailable")._value.get()
    service = ProducerService(settings).start()
    import threading
    runner = threading.Thread(target=service.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: len(payments_in_topic(settings)) == 1, timeout=60, what="company 1's payment")
        wait_for(lambda: metrics.PRODUCER_ERRORS.labels("417", "db_unavailable")._value.get() > errors_before,
                 timeout=30, what="company 417's failure to be counted")
        last_success = "vb2po_producer_last_success_timestamp_seconds"
        wait_for(lambda: (REGISTRY.get_sample_value(last_success, {"company": "1"}) or 0) > 0, timeout=30,
                 what="company 1's last successful poll in the metrics")
        # never polled successfully: no series at all, not a 0 (VB2POPollNeverSucceeded asks for its absence)
        assert REGISTRY.get_sample_value(last_success, {"company": "417"}) is None
    finally:
        service.close()
        runner.join(timeout=30)


def test_bad_rows_reach_the_dead_letter_topic_with_company_key_and_reason(make_settings, company_db):
    settings = make_settings({1: company_db})
    with VismaDatabase(company_db) as db:
        insert_custtr(db, [payment_row(1, 1), payment_row(1, 2)])
        db.execute('UPDATE "CustTr" SET "VoDt" = 20261032 WHERE "JNo" = 1 AND "EntNo" = 1')
    counted_before = metrics.BAD_ROWS.labels("1", "invalid_date")._value.get()
    service = ProducerService(settings).start()
    outcome = service.fetch_now()[1]
    service.workers[1].payments.sweep_grace_s = 0
    service.workers[1].payments.sweep_once()  # the sweep finds the bad row again: no second letter
    service.close()
    assert (outcome.published, outcome.bad_rows) == (1, 1)
    letters = [json.loads(r.value) for r in read_committed(settings.kafka.bootstrap_servers, settings.kafka.topics.dead_letters)]
    assert [(letter["company_no"], letter["source_key"], letter["reason"]) for letter in letters] == [
        (1, "JNo=1;EntNo=1", "invalid_date")]
    assert metrics.BAD_ROWS.labels("1", "invalid_date")._value.get() == counted_before + 1
