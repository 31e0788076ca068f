"""The publisher passes each record's partition itself: the one kafka-python's default partitioner gives its key."""
from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st
from kafka.cluster import ClusterMetadata
from kafka.partitioner import DefaultPartitioner

from producer.publisher import KafkaTransactionalPublisher
from schemas.events import customer_key


class _Metadata(ClusterMetadata):
    def __init__(self, partitions: dict[str, list[int]]):
        super().__init__()
        self._parts = partitions

    def topics(self, exclude_internal_topics=True):
        return set(self._parts)

    def partitions_for_topic(self, topic):
        return set(self._parts[topic]) if topic in self._parts else None

    def available_partitions_for_topic(self, topic):
        return self.partitions_for_topic(topic)


def _publisher() -> KafkaTransactionalPublisher:
    publisher = KafkaTransactionalPublisher.__new__(KafkaTransactionalPublisher)
    publisher._partitions = {}
    return publisher


@given(st.lists(st.one_of(st.binary(max_size=40), st.builds(customer_key, st.integers(1, 9999), st.integers(1, 2**31 - 1))),
                max_size=50), st.integers(1, 24))
def test_every_key_goes_where_the_default_partitioner_puts_it(keys, partitions):
    metadata = _Metadata({"payments": list(range(partitions))})
    partition_of = _publisher()._partitioner(SimpleNamespace(_metadata=metadata), "payments")
    for key in keys + keys:  # (the second time from what the publisher remembers)
        assert partition_of(key) == DefaultPartitioner().partition("payments", key, key, b"", b"", metadata)


def test_added_partitions_place_every_key_again_and_unknown_topics_are_left_to_kafka_python():
    publisher = _publisher()
    key = customer_key(1, 10_007)
    for count in (6, 12, 6):
        metadata = _Metadata({"payments": list(range(count))})
        partition = publisher._partitioner(SimpleNamespace(_metadata=metadata), "payments")(key)
        assert partition == DefaultPartitioner().partition("payments", key, key, b"", b"", metadata)
    assert publisher._partitioner(SimpleNamespace(_metadata=metadata), "unknown")(key) is None
    assert publisher._partitioner(SimpleNamespace(_metadata=metadata), "payments")(None) is None


def test_the_kafka_python_internals_the_publisher_appends_through_are_still_there():
    """`_TransactionAppender` does what `KafkaProducer.send()` does with a record, less its per-record
    checks, through kafka-python internals. If this fails, kafka-python changed them: read its
    send() again before adjusting the appender (or let the publisher call send() for every record)."""
    import inspect

    from kafka import KafkaProducer
    from kafka.producer.record_accumulator import RecordAccumulator
    from kafka.producer.transaction_manager import TransactionManager

    send = inspect.getsource(KafkaProducer.send)
    for step in ("self._transaction_manager.maybe_add_partition_to_transaction(tp)",
                 "self._accumulator.append(tp, timestamp_ms, key_bytes, value_bytes, headers,",
                 "future, batch_is_full, new_batch_created, abort_for_new_batch = result",
                 "if batch_is_full or new_batch_created:",
                 "self._sender.wakeup()"):
        assert step in send, f"KafkaProducer.send() no longer does {step!r}"
    assert list(inspect.signature(RecordAccumulator.append).parameters)[:6] == \
        ["self", "tp", "timestamp_ms", "key", "value", "headers"]
    assert list(inspect.signature(TransactionManager.maybe_add_partition_to_transaction).parameters) == \
        ["self", "topic_partition"]
