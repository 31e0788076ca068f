"""Credit blocks end to end (Visma Actor.CrSusp -> PowerOffice projects' DenyTimeTracking),
and poison messages on the topics."""
from __future__ import annotations

import json
import time

from kafka import KafkaProducer

from devstack.dataset import DatasetSpec, customers, projects
from tests.fixtures.world import CLIENT_KEY
from tests.kafka_reading import read_committed, stable_end
from tests.services import running, wait_for
from vb2po import metrics
from vb2po.kafka.topics import ensure_topics
from vb2po.visma.db import VismaDatabase

SPEC = DatasetSpec(size=200, seed=21)


def a_customer_with_an_open_and_a_denied_project(spec: DatasetSpec) -> int:
    unblocked = {c.cust_no for c in customers(spec) if not c.credit_blocked}
    by_customer: dict[int, list] = {}
    for p in projects(spec):
        by_customer.setdefault(p.cust_no, []).append(p)
    for cust, ps in by_customer.items():
        if cust in unblocked and any(p.deny_time_tracking for p in ps) and any(not p.deny_time_tracking for p in ps):
            return cust
    raise AssertionError("dataset has no customer with both an open and a denied project")


def denial(world, customer_no: int) -> dict[int, bool]:
    with world.client() as client:
        return {p.id: p.deny_time_tracking for p in client.list_projects([customer_no])}


def set_credit_block(world, customer_no: int, blocked: bool) -> None:
    with VismaDatabase(world.connection_string) as db:
        db.execute('UPDATE "Actor" SET "CrSusp" = ? WHERE "CustNo" = ?', [int(blocked), customer_no])


def test_block_denies_every_project_and_lift_restores_only_what_this_service_denied(make_world):
    world = make_world(SPEC, producer={"credit_block_interval_s": 0.2, "reassert_interval_s": 2})
    customer = a_customer_with_an_open_and_a_denied_project(SPEC)
    before = denial(world, customer)
    denied_elsewhere = {pid for pid, denied in before.items() if denied}

    with running(world.settings):
        set_credit_block(world, customer, True)
        wait_for(lambda: all(denial(world, customer).values()), timeout=120, what="every project denied")
        # a project created while the block stands is blocked by the next re-assertion
        new_project = world.sandbox.control.add_project(CLIENT_KEY, customer, "Prosjekt under sperre")["Id"]
        wait_for(lambda: denial(world, customer).get(new_project) is True, timeout=60,
                 what="the new project denied by the re-assertion")
        set_credit_block(world, customer, False)
        wait_for(lambda: not denial(world, customer)[new_project], timeout=60, what="the block lifted")
        after = denial(world, customer)

    assert {pid for pid, denied in after.items() if denied} == denied_elsewhere  # denied for another reason: stays
    assert all(not after[pid] for pid in before if pid not in denied_elsewhere)


def test_with_credit_block_sync_off_nothing_is_published_and_events_published_before_are_ignored(make_world):
    world = make_world(SPEC, producer={"credit_block_interval_s": 0.2})
    on = world.settings
    bootstrap, topic = on.kafka.bootstrap_servers, on.kafka.topics.credit_blocks
    blocked = [c.cust_no for c in customers(SPEC) if c.credit_blocked]
    before = {c: denial(world, c) for c in blocked}
    with running(on, consumer=False):  # sync on: the producer publishes every customer's state
        wait_for(lambda: len(read_committed(bootstrap, topic, timeout=5)) >= len(customers(SPEC)), timeout=60,
                 what="the credit-block snapshot published")
    published = stable_end(bootstrap, topic)

    off = world.settings.model_copy(update={"credit_block_sync": False})
    ignored = lambda: metrics.EVENTS_SKIPPED.labels("credit_block", "sync_off")._value.get()  # noqa: E731
    start = ignored()
    newly_blocked = next(c.cust_no for c in customers(SPEC) if not c.credit_blocked)
    set_credit_block(world, newly_blocked, True)  # with sync on, this change would be published
    unchanged = denial(world, newly_blocked)
    with running(off) as services:
        wait_for(lambda: ignored() - start >= len(customers(SPEC)), timeout=60, what="the snapshot consumed and ignored")
        since = time.time()
        worker = services["producer"].workers[1]
        wait_for(lambda: (worker.last_success_at or 0) > since + 1.0, timeout=30,
                 what="producer rounds for a second with sync off (credit blocks due every 0.2 s)")
    assert stable_end(bootstrap, topic) == published  # nothing more published
    assert {c: denial(world, c) for c in blocked} == before
    assert denial(world, newly_blocked) == unchanged


def test_poison_messages_go_to_dead_letters_and_the_next_payment_is_still_applied(make_world):
    world = make_world(SPEC)
    settings = world.settings
    ensure_topics(settings.kafka)
    topics = settings.kafka.topics
    producer = KafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers.split(","))
    poison = {
        b"\xff\xfe not json at all": "undecodable",
        json.dumps({"event_type": "visma.payment.received", "payload": {}}).encode(): "invalid_event",
        json.dumps({"event_type": "something.else"}).encode(): "undecodable",
    }
    for value in poison:
        producer.send(topics.payments, key=b"1:10000", value=value)
    producer.flush()
    producer.close()

    with running(settings):
        wait_for(lambda: world.markers() >= world.expected_payments, timeout=120, what="the payments after the poison")
        wait_for(lambda: len(read_committed(settings.kafka.bootstrap_servers, topics.dead_letters)) >= 3,
                 timeout=30, what="three dead letters")
    letters = [json.loads(r.value) for r in read_committed(settings.kafka.bootstrap_servers, topics.dead_letters)]
    assert sorted(letter["reason"] for letter in letters) == ["invalid_event", "undecodable", "undecodable"]
    assert all(letter["topic"] == topics.payments and letter["offset"] is not None and letter["original"] for letter in letters)
    assert len(world.vouchers()) == world.expected_payments
