"""Intent claims on a real broker: a claim is a compare-and-set on the intents topic's order,
judged by what was written between the caller's read and the claim, whichever process wrote it
and however many lanes claim at once (the unit tests play this with the in-memory store)."""
from __future__ import annotations

import threading
import time

import pytest

from consumer.intents import Intent, KafkaIntentStore
from vb2po.errors import TransientError
from vb2po.kafka.clients import plain_producer
from vb2po.kafka.topics import ensure_topics


def intent(owner: str) -> Intent:
    return Intent(owner, time.time(), 10001, "2026-03-02")


@pytest.fixture
def stores(make_settings):
    settings = make_settings({1: "DSN=unused"})
    ensure_topics(settings.kafka)
    made: list[KafkaIntentStore] = []
    producers = []

    def make() -> KafkaIntentStore:  # a store of its own process: a producer of its own
        producers.append(plain_producer(settings.kafka, f"intents-test-{len(producers)}"))
        store = KafkaIntentStore(settings.kafka, producers[-1])
        store.sync()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
    for producer in producers:
        producer.close(timeout=10)


def test_a_claim_wins_when_nothing_came_between_and_loses_to_another_process_that_claimed_meanwhile(stores):
    here, there = stores(), stores()
    assert here.claim("VB2PO-F0001-J1-E1", intent("here"), here.position()).won

    since = here.position()  # "here" reads the row ...
    theirs = intent("there")
    assert there.claim("VB2PO-F0001-J2-E1", theirs, there.position()).won  # ... "there" claims meanwhile ...
    lost = here.claim("VB2PO-F0001-J2-E1", intent("here"), since)  # ... so "here" must not post
    assert not lost.won
    assert lost.overtook == theirs  # the request that may be on its way: looked up after it settles

    again = here.claim("VB2PO-F0001-J2-E1", intent("here"), here.position())  # read again: now it is known
    assert again.won


def test_two_processes_racing_with_sixteen_lanes_each_win_each_reference_once(stores):
    a, b = stores(), stores()
    references = [f"VB2PO-F0001-J{n}-E1" for n in range(1, 161)]
    since = {store: store.position() for store in (a, b)}  # both read every row before either claims
    wins: dict[str, list[str]] = {r: [] for r in references}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def lane(store: KafkaIntentStore, name: str, mine: list[str]) -> None:
        try:
            for reference in mine:
                if store.claim(reference, intent(name), since[store]).won:
                    with lock:
                        wins[reference].append(name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=lane, args=(store, name, references[i::16]))
               for store, name in ((a, "a"), (b, "b")) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    # the first claim written for a reference wins it, the other comes after it and loses
    assert {r: w for r, w in wins.items() if len(w) != 1} == {}


def test_a_claim_that_cannot_be_written_is_a_transient_error_not_a_hang(stores):
    store = stores()
    store._producer.close(timeout=5)  # as if the broker could not be reached for this send
    started = time.monotonic()
    with pytest.raises(TransientError):
        store.claim("VB2PO-F0001-J3-E1", intent("here"), store.position())
    assert time.monotonic() - started < 10
