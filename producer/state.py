"""The producer's committed progress per company, kept in a compacted Kafka topic.

The state record is written in the same Kafka transaction as the events it vouches for, so
a restarted producer resumes exactly where the last committed transaction ended.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from kafka import TopicPartition

from vb2po.kafka.clients import event_consumer
from vb2po.settings import KafkaSettings
from vb2po.visma.queries import Position


@dataclass(frozen=True)
class CompanyState:
    company_no: int
    payments_cursor: Position | None = None
    blocked: dict[int, bool] = field(default_factory=dict)  # customer no -> last published block state

    def key(self) -> bytes:
        return state_key(self.company_no)

    def encode(self) -> bytes:
        cur = self.payments_cursor
        return json.dumps({
            "company_no": self.company_no,
            "payments_cursor": None if cur is None else [cur.ch_dt, cur.ch_time, cur.jno, cur.entno],
            "blocked": {str(k): v for k, v in self.blocked.items()},
        }).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "CompanyState":
        data = json.loads(raw)
        cur = data.get("payments_cursor")
        return cls(
            company_no=int(data["company_no"]),
            payments_cursor=Position(*cur) if cur else None,
            blocked={int(k): bool(v) for k, v in (data.get("blocked") or {}).items()},
        )


def state_key(company_no: int) -> bytes:
    return f"company:{company_no}".encode()


def load_states(kafka: KafkaSettings, timeout_s: float = 30) -> dict[int, CompanyState]:
    """Read the state topic to its end (committed records only); the last record per key wins."""
    topic = kafka.topics.producer_state
    consumer = event_consumer(kafka, group_id=None, consumer_timeout_ms=1000)
    try:
        partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            return {}
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)  # read_committed: the last stable offset
        states: dict[int, CompanyState] = {}
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read producer state topic {topic} to its end in {timeout_s}s")
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.value is not None:
                        state = CompanyState.decode(record.value)
                        states[state.company_no] = state
        return states
    finally:
        consumer.close()
