"""kafka-python clients built from settings, so every process connects the same way."""
from __future__ import annotations

import time
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from vb2po.errors import TransientError
from vb2po.settings import KafkaSettings


def _common(kafka: KafkaSettings) -> dict[str, Any]:
    common: dict[str, Any] = {"bootstrap_servers": kafka.bootstrap_servers.split(","),
                              "security_protocol": kafka.security_protocol}
    # SASL and TLS only when set, so a PLAINTEXT cluster gets exactly the settings above.
    if kafka.sasl_mechanism:
        common["sasl_mechanism"] = kafka.sasl_mechanism
        common["sasl_plain_username"] = kafka.sasl_username
        common["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        if getattr(kafka, name):
            common[name] = getattr(kafka, name)
    return common


def admin_client(kafka: KafkaSettings) -> KafkaAdminClient:
    return KafkaAdminClient(client_id="vb2po-admin", **_common(kafka))


def transactional_producer(kafka: KafkaSettings, transactional_id: str) -> KafkaProducer:
    """Idempotent, acks=all, transactional: events and cursor state commit together."""
    producer = KafkaProducer(
        client_id=transactional_id,
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        # A producer that dies mid-transaction holds back read_committed readers of those
        # partitions until this timeout (or until its successor starts); a page commits in ~1 s.
        transaction_timeout_ms=15_000,
        # kafka-python checksums each batch (CRC-32C) in pure Python unless the optional `crc32c`
        # package is installed; gzip first shrinks what it checksums ~6x (JSON events): producer
        # CPU per event 130-145 -> 85-100 us, and ~6x fewer bytes on the wire and on disk
        # (BENCHMARKS.md, "Producer").
        compression_type="gzip",
        **_common(kafka),
    )
    producer.init_transactions()  # fences any older producer with the same id
    return producer


def plain_producer(kafka: KafkaSettings, client_id: str, *, linger_ms: int = 5) -> KafkaProducer:
    """Idempotent, acks=all. `linger_ms`: how long a record may wait for others to share its
    request (a writer that waits for its record can `flush()` instead of waiting that long)."""
    return KafkaProducer(client_id=client_id, enable_idempotence=True, acks="all", linger_ms=linger_ms,
                         **_common(kafka))


def event_consumer(kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """Manual commits, read_committed: the consumer only sees what producers committed."""
    config: dict[str, Any] = dict(
        group_id=group_id,
        client_id=f"vb2po-{group_id or 'reader'}",
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=500,
        metadata_max_age_ms=30_000,  # notice new partitions (and recovered leaders) within 30 s
        **_common(kafka),
    )
    config.update(overrides)
    return KafkaConsumer(*topics, **config)


def partitions_of(consumer: KafkaConsumer, topic: str, timeout_s: float = 30) -> list[TopicPartition]:
    """The topic's partitions; right after a topic is created its metadata can lag a moment,
    so ask again until the deadline instead of taking "none" for an answer."""
    deadline = time.monotonic() + timeout_s
    while True:
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if time.monotonic() > deadline:
            raise TransientError(f"Kafka topic {topic} has no partitions in the metadata (missing?)", reason="kafka")
        time.sleep(0.2)


def poll(consumer: KafkaConsumer, timeout_ms: int) -> dict:
    """`consumer.poll`, with kafka-python 3.0's pause/resume bug worked around.

    kafka-python parks fetched records of a partition paused before they were returned, and puts
    them back once it is resumed, but only while its `_next_partition_records` slot is None; the
    slot keeps the last, fully read records (empty, not None) for ever, so a partition paused with
    records in flight is never fetched again after its resume (found by the consumer's crash test:
    one partition stopped for good after back-pressure or isolation had paused it). Emptying the
    slot when it holds nothing lets the parked records come back. Remove when kafka-python fixes it.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is not None and getattr(fetcher, "_next_partition_records", None) is not None \
            and not fetcher._next_partition_records:
        fetcher._next_partition_records = None
    return consumer.poll(timeout_ms=timeout_ms)
