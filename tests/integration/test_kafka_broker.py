"""The local Kafka broker (devstack.kafka) behaves like a real one: the guarantees vb2po
relies on (delivery, transactions, acks=all replication, failover) hold on it."""
from __future__ import annotations

import time
import uuid
from typing import Callable, TypeVar

import psutil
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from devstack.kafka import KafkaCluster

pytestmark = pytest.mark.integration

T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, name: str, *, partitions: int = 1, replication: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            {name: {"num_partitions": partitions, "replication_factor": replication,
                    "configs": configs or {}}},
            wait_for_metadata=True,
        )
    finally:
        admin.close()


def wait_until(probe: Callable[[], T], what: str, timeout: float = 60) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def read_values(bootstrap: str, topic: str, *, expected: int, isolation: str = "read_uncommitted",
                group_id: str | None = None, timeout: float = 60) -> list[bytes]:
    """Read `topic` from the beginning until `expected` records arrived (or the deadline):
    as a group member when `group_id` is given, else by assigning every partition."""
    common = dict(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False)
    if group_id is not None:
        consumer = KafkaConsumer(topic, group_id=group_id, auto_offset_reset="earliest", **common)
    else:
        consumer = KafkaConsumer(**common)
        parts = wait_until(lambda: consumer.partitions_for_topic(topic), f"{topic} metadata")
        consumer.assign([TopicPartition(topic, p) for p in sorted(parts)])
        consumer.seek_to_beginning()
    try:
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                values.extend(r.value for r in records)
        return values
    finally:
        consumer.close()


def log_end(bootstrap: str, topic: str, isolation: str) -> int:
    """Sum of end offsets (read_committed: last stable offsets) over the topic's partitions."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
    try:
        parts = wait_until(lambda: consumer.partitions_for_topic(topic), f"{topic} metadata")
        return sum(consumer.end_offsets([TopicPartition(topic, p) for p in parts]).values())
    finally:
        consumer.close()


def test_a_produced_message_is_consumed_back(kafka_bootstrap: str) -> None:
    topic = unique("roundtrip")
    create_topic(kafka_bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    producer.send(topic, key=b"k", value=b"hello broker").get(timeout=30)
    producer.close()

    values = read_values(kafka_bootstrap, topic, expected=1, group_id=unique("group"))

    assert values == [b"hello broker"]


def test_an_aborted_transaction_is_invisible_to_read_committed_but_a_committed_one_is_not(
    kafka_bootstrap: str,
) -> None:
    topic = unique("txn")
    create_topic(kafka_bootstrap, topic)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, transactional_id=unique("txn-id"))
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, value=b"aborted")
    producer.flush()  # written to the log first: abort drops records still unsent
    producer.abort_transaction()
    producer.begin_transaction()
    producer.send(topic, value=b"committed")
    producer.commit_transaction()
    producer.close()

    # The aborted record really is in the log (an uncommitted reader sees it) ...
    assert read_values(kafka_bootstrap, topic, expected=2) == [b"aborted", b"committed"]
    # ... but a read_committed consumer, reading past it, gets only the committed one.
    committed = read_values(kafka_bootstrap, topic, expected=1, isolation="read_committed")
    assert committed == [b"committed"]
    assert log_end(kafka_bootstrap, topic, "read_committed") == log_end(
        kafka_bootstrap, topic, "read_uncommitted")  # nothing left open


def partition_state(bootstrap: str, topic: str) -> list[dict]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
        return described["partitions"]
    finally:
        admin.close()


def produce_acks_all(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        futures = [producer.send(topic, value=v) for v in values]
        for future in futures:
            future.get(timeout=60)  # raises if a write was not acknowledged by the ISR
    finally:
        producer.close()


@pytest.mark.slow
def test_a_replicated_topic_keeps_taking_acks_all_writes_when_a_node_dies_and_it_rejoins(
    kafka_three_node_cluster: KafkaCluster,
) -> None:
    cluster = kafka_three_node_cluster
    bootstrap = cluster.bootstrap_servers
    topic = unique("replicated")
    create_topic(bootstrap, topic, partitions=3, replication=3,
                 configs={"min.insync.replicas": "2"})
    before = [f"before-{i}".encode() for i in range(30)]
    produce_acks_all(bootstrap, topic, before)

    victim = partition_state(bootstrap, topic)[0]["leader_id"]  # leads at least one partition
    cluster.kill_node(cluster.node_ids.index(victim))
    after = [f"after-{i}".encode() for i in range(30)]
    produce_acks_all(bootstrap, topic, after)

    assert sorted(read_values(bootstrap, topic, expected=60)) == sorted(before + after)

    cluster.start_node(cluster.node_ids.index(victim))
    wait_until(
        lambda: all(victim in p["isr_nodes"] for p in partition_state(bootstrap, topic)),
        f"node {victim} back in the ISR of every partition",
    )


def test_stop_leaves_no_java_process_of_the_cluster_alive(
    kafka_three_node_cluster: KafkaCluster,
) -> None:
    cluster = kafka_three_node_cluster
    processes = [psutil.Process(pid) for pid in cluster.node_pids()]
    assert len(processes) == 3 and all("java" in p.name() for p in processes)
    workdir = cluster.workdir

    cluster.stop()

    assert not [p for p in processes if p.is_running()]  # is_running also rules out pid reuse
    assert workdir is not None and not workdir.exists()
