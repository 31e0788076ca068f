"""Publishing a poll's events together with the producer state, atomically.

`KafkaTransactionalPublisher` writes events, dead letters and the new state in one Kafka
transaction: either all become visible to read_committed readers or none do.
"""
from __future__ import annotations

import logging
from typing import Callable, NamedTuple, Protocol

from kafka import KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError
from kafka.partitioner.default import murmur2

from vb2po.errors import TerminalError, TransientError
from vb2po.kafka.clients import transactional_producer
from vb2po.live_settings import version_header
from vb2po.settings import KafkaSettings

log = logging.getLogger(__name__)

MAX_REMEMBERED_KEYS = 200_000  # keys whose partition a publisher remembers per topic (~20 MB at most)
SMALL_RECORD = 64 * 1024  # bytes of key and value up to which a record skips send()'s checks (_TransactionAppender)
COMMIT_TIMEOUT_S = 15.0  # a commit not acknowledged by then is given up (the coordinator's broker died mid-commit)


class Outgoing(NamedTuple):  # (a named tuple: one is made per event, and a frozen dataclass costs 4x as much)
    topic: str
    key: bytes
    value: bytes | None  # None: a tombstone (compacted topics)
    headers: tuple[tuple[str, bytes], ...] = ()  # besides the settings version every record carries


def _end_transaction(producer, result, what: str) -> None:
    """commit_transaction()/abort_transaction() with a deadline: kafka-python's wait without one, and
    a producer whose transaction coordinator died mid-commit waited two minutes in `make chaos`."""
    producer._sender.wakeup()
    if not result.wait(COMMIT_TIMEOUT_S * 1000):
        raise KafkaTimeoutError(f"{what} not acknowledged in {COMMIT_TIMEOUT_S:.0f} s")


class ProducerFenced(TerminalError):
    """Another instance took over this company: this one must stop publishing for it."""

    reason = "fenced"


def _UNPLACED(key: bytes | None) -> int | None:
    """No partition: kafka-python chooses (and fetches the topic's metadata first)."""
    return None


class _TransactionAppender:
    """Records of one transaction put into kafka-python's accumulator the way `KafkaProducer.send()`
    puts them there, without what send() does again for every record (~a third of it, py-spy,
    BENCHMARKS.md "Producer"): each partition is added to the transaction once, not per record;
    headers, key and value are this publisher's own bytes; the partition is known. A record
    larger than `SMALL_RECORD` is left to send() and its size checks (returns False).

    Uses kafka-python internals (the accumulator, the transaction manager, the sender), which
    tests/unit/test_publisher_partitions.py pins: it fails when they change."""

    def __init__(self, producer: KafkaProducer):
        self._accumulator = producer._accumulator
        self._transaction = producer._transaction_manager
        self._wake_sender = producer._sender.wakeup
        self._added: dict[tuple[str, int], TopicPartition] = {}

    def __call__(self, topic: str, partition: int, key: bytes, value: bytes | None,
                 headers: list[tuple[str, bytes]]) -> bool:
        if len(key) + (len(value) if value else 0) > SMALL_RECORD:
            return False
        tp = self._added.get((topic, partition))
        if tp is None:
            tp = TopicPartition(topic, partition)
            self._transaction.maybe_add_partition_to_transaction(tp)  # (also raises if the producer failed)
            self._added[(topic, partition)] = tp
        _, batch_is_full, new_batch, _ = self._accumulator.append(tp, None, key, value, headers)
        if batch_is_full or new_batch:
            self._wake_sender()
        return True


class Publisher(Protocol):
    def publish(self, messages: list[Outgoing]) -> None:
        """All messages (events, dead letters, state records) in one transaction."""
        ...

    def close(self) -> None: ...


class KafkaTransactionalPublisher:
    def __init__(self, kafka: KafkaSettings, transactional_id: str):
        self._kafka = kafka
        self._transactional_id = transactional_id
        self._producer: KafkaProducer | None = transactional_producer(kafka, transactional_id)
        self.settings_version = 0  # stamped on every record (see vb2po.live_settings.VERSION_HEADER)
        # topic -> (its partitions, key -> partition): see `_partitioner`
        self._partitions: dict[str, tuple[list[int], dict[bytes, int]]] = {}

    def publish(self, messages: list[Outgoing]) -> None:
        try:
            if self._producer is None:  # (replaced after a failure; its init may fail while the broker is away)
                self._producer = transactional_producer(self._kafka, self._transactional_id)
            producer = self._producer
            producer.begin_transaction()
            headers = version_header(self.settings_version)
            partitioners: dict[str, Callable[[bytes | None], int | None]] = {}
            append = _TransactionAppender(producer)
            for m in messages:
                partition_of = partitioners.get(m.topic)
                if partition_of is None:
                    partition_of = self._partitioner(producer, m.topic)
                    if partition_of is not _UNPLACED:  # (else asked again once send() has the topic's metadata)
                        partitioners[m.topic] = partition_of
                record_headers = headers + list(m.headers) if m.headers else headers
                partition = partition_of(m.key)
                if partition is None or not append(m.topic, partition, m.key, m.value, record_headers):
                    producer.send(m.topic, key=m.key, value=m.value, headers=record_headers, partition=partition)
            self._commit(producer)
        except ProducerFencedError as exc:
            raise ProducerFenced(f"producer {self._transactional_id} was fenced by a newer instance") from exc
        except KafkaTimeoutError as exc:
            # Neither committed nor aborted for sure, and an abort could wait as long: a new producer
            # with the same transactional id finishes or aborts it (init_transactions), and the poll
            # publishes again; a commit that did land only repeats events the consumers skip.
            log.warning("the Kafka transaction of %s was not acknowledged in %.0f s; starting a new producer",
                        self._transactional_id, COMMIT_TIMEOUT_S)
            self._recreate()
            raise TransientError(f"publishing timed out: {exc!r}", reason="kafka") from exc
        except KafkaError as exc:
            self._abort_quietly()
            raise TransientError(f"publishing failed: {exc!r}", reason="kafka") from exc

    def _partitioner(self, producer: KafkaProducer, topic: str) -> Callable[[bytes | None], int | None]:
        """key -> the partition kafka-python's DefaultPartitioner gives it (murmur2 of the key over the
        topic's sorted partitions), remembered per key: a customer's events land where they always
        did, and the producer passes the partition with each send instead of kafka-python hashing
        every key again in Python (a customer's key comes back on every page). None: let
        kafka-python choose (no key, or the topic's metadata not known yet)."""
        parts = producer._metadata.partitions_for_topic(topic)
        if not parts:
            return _UNPLACED
        ordered = sorted(parts)
        known = self._partitions.get(topic)
        if known is None or known[0] != ordered:  # (partitions added: every key is placed again)
            known = self._partitions[topic] = (ordered, {})
        cache = known[1]
        if len(cache) > MAX_REMEMBERED_KEYS:
            cache.clear()

        def partition_of(key: bytes | None) -> int | None:
            if key is None:
                return None
            partition = cache.get(key)
            if partition is None:
                partition = cache[key] = ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]
            return partition
        return partition_of

    @staticmethod
    def _commit(producer) -> None:
        _end_transaction(producer, producer._transaction_manager.begin_commit(), "commit")

    def _abort_quietly(self) -> None:
        if self._producer is None:
            return
        try:
            _end_transaction(self._producer, self._producer._transaction_manager.begin_abort(), "abort")
        except Exception:  # noqa: BLE001 - a broken producer is replaced below
            log.warning("abort failed; recreating producer %s", self._transactional_id)
            self._recreate()

    def _recreate(self) -> None:
        """Drop the producer; the next publish starts a new one with the same transactional id,
        which fences this one and finishes or aborts its open transaction."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            producer.close(timeout=5)
        except Exception:  # noqa: BLE001 - it is being dropped
            pass

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=10)


class FakePublisher:
    """In-memory stand-in: records what a committed transaction would have made visible."""

    def __init__(self, fail_next: int = 0):
        self.committed: list[Outgoing] = []
        self.transactions = 0
        self.fail_next = fail_next

    def publish(self, messages: list[Outgoing]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError("fake publish failure", reason="kafka")
        self.committed.extend(messages)
        self.transactions += 1

    def on_topic(self, topic: str) -> list[Outgoing]:
        return [m for m in self.committed if m.topic == topic]

    def close(self) -> None:
        pass
