"""The send ceiling of a backlog run: the producer's own events sent again with nothing but kafka-python.

After a backlog run, the events the producer committed are read back from its payments topic
(key, value and headers byte for byte) and put in the order it sent them (change order:
`occurred_at`, JNo, EntNo). A child process, like the producer's, then sends them into a fresh
topic with as many partitions, with a transactional `KafkaProducer` built by vb2po's own
`transactional_producer` (the same compression, batch size, linger, acks and idempotence),
`producer.page_size` events per transaction, the default partitioner (by key). It is timed like
the producer's `fetch_now()`: from the first `begin_transaction()` to the last commit, producer
creation and topic metadata before that (the producer's publishers are made by `start()`).

    python -m bench.send_ceiling SETTINGS.yaml EVENTS.pickle TOPIC

prints one JSON line: events sent, seconds (wall, and CPU of all threads). No database, no event
building, no state records: as fast as this machine sends these events from Python now, so the
producer's rate over it says how much of that the producer's other work costs.
"""
from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psutil
from kafka.admin import NewTopic

from vb2po.kafka.clients import admin_client, transactional_producer
from vb2po.settings import Settings, load

TIMEOUT_S = 600
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


@dataclass(frozen=True)
class CeilingResult:
    topic: str  # where the events went (the caller counts what it holds)
    events: int
    seconds: float
    cpu_seconds: float
    load_before: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def in_send_order(records: list[Record]) -> list[Record]:
    """The payment events as the producer sent them: in change order (what its page query sorts by)."""
    def order(record: Record) -> tuple[datetime, int, int]:
        event = json.loads(record[1])
        payload = event["payload"]
        return datetime.fromisoformat(event["occurred_at"]), payload["jno"], payload["entno"]
    return sorted(records, key=order)


def create_topic(settings: Settings, like: str) -> str:
    """A fresh topic with the partition count and replication of the event topics."""
    t = settings.kafka.topics
    name = f"{like}-ceiling-{uuid.uuid4().hex[:6]}"
    admin = admin_client(settings.kafka)
    try:
        admin.create_topics([NewTopic(name, num_partitions=t.partitions, replication_factor=t.replication_factor,
                                      topic_configs={"retention.ms": str(t.retention_ms)})], timeout_ms=30_000)
    finally:
        admin.close()
    return name


def run(settings_path: Path, settings: Settings, records: list[Record], *, workdir: Path, label: str) -> CeilingResult:
    """Send `records` (in send order) into a fresh topic from a child process; its timing."""
    topic = create_topic(settings, settings.kafka.topics.payments)
    events_path = workdir / f"ceiling-{uuid.uuid4().hex[:6]}.pickle"
    events_path.write_bytes(pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL))
    try:
        load_before = os.getloadavg()[0]
        proc = subprocess.run([sys.executable, "-m", "bench.send_ceiling", str(settings_path), str(events_path), topic],
                              stdout=subprocess.PIPE, text=True, timeout=TIMEOUT_S)
    finally:
        events_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{label}: the send-ceiling process failed with exit code {proc.returncode}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return CeilingResult(topic, out["events"], out["seconds"], out["cpu_seconds"], load_before)


def main(settings_path: str, events_path: str, topic: str) -> int:
    settings = load(settings_path)
    records: list[Record] = pickle.loads(Path(events_path).read_bytes())
    per_transaction = settings.producer.page_size
    producer = transactional_producer(settings.kafka, f"bench-ceiling-{uuid.uuid4().hex[:8]}")
    try:
        deadline = time.monotonic() + 60
        while not producer.partitions_for(topic):  # metadata now, not in the first send
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} has no partitions")
            time.sleep(0.1)
        me = psutil.Process()
        cpu_before = me.cpu_times()
        started = time.perf_counter()
        for first in range(0, len(records), per_transaction):
            producer.begin_transaction()
            for key, value, headers in records[first:first + per_transaction]:
                producer.send(topic, key=key, value=value, headers=headers)
            producer.commit_transaction()
        seconds = time.perf_counter() - started
        cpu_after = me.cpu_times()
    finally:
        producer.close(timeout=10)
    print(json.dumps({
        "events": len(records),
        "seconds": seconds,
        "cpu_seconds": (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system),
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
