"""Reading what producers committed, the way a read_committed consumer sees it."""
from __future__ import annotations

import time

from kafka import KafkaConsumer, TopicPartition


def read_committed(bootstrap: str, topic: str, *, timeout: float = 30) -> list:
    """Every committed record of `topic`, partition by partition, up to the current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), isolation_level="read_committed",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=1000)
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} to its end within {timeout}s")
            for records in consumer.poll(timeout_ms=300).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def stable_end(bootstrap: str, topic: str) -> int:
    """Sum over partitions of the last stable offset: grows whenever a transaction commits
    (cheap progress signal; offsets also count transaction markers, so it is not a count)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), isolation_level="read_committed",
                             enable_auto_commit=False, group_id=None)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()
