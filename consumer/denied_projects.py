"""Which projects this service denied time tracking on, per customer, kept durably.

Only those projects get time tracking back when a block is lifted; a project denied for
another reason stays denied. The memory lives in a compacted Kafka topic, not in process
memory, so it survives restarts and moves with a customer's partition between instances.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Protocol

from kafka import TopicPartition

from vb2po.errors import TransientError
from vb2po.kafka.clients import event_consumer, partitions_of, plain_producer
from vb2po.settings import KafkaSettings


class DeniedProjectsStore(Protocol):
    def sync(self) -> None:
        """Catch up with what any instance wrote before now."""
        ...

    def get(self, company_no: int, customer_no: int) -> frozenset[int]: ...

    def put(self, company_no: int, customer_no: int, project_ids: frozenset[int]) -> None:
        """Durable when it returns."""
        ...

    def blocked_customers(self, company_no: int) -> int: ...


def _key(company_no: int, customer_no: int) -> bytes:
    return f"company:{company_no}:customer:{customer_no}".encode()


class FakeDeniedProjectsStore:
    def __init__(self) -> None:
        self.data: dict[tuple[int, int], frozenset[int]] = {}

    def sync(self) -> None:
        pass

    def get(self, company_no: int, customer_no: int) -> frozenset[int]:
        return self.data.get((company_no, customer_no), frozenset())

    def put(self, company_no: int, customer_no: int, project_ids: frozenset[int]) -> None:
        self.data[(company_no, customer_no)] = frozenset(project_ids)

    def blocked_customers(self, company_no: int) -> int:
        return sum(1 for (c, _), ids in self.data.items() if c == company_no and ids)


class KafkaDeniedProjectsStore:
    def __init__(self, kafka: KafkaSettings):
        self.topic = kafka.topics.consumer_state
        self._producer = plain_producer(kafka, "vb2po-consumer-state")
        self._consumer = event_consumer(kafka, group_id=None)
        self._data: dict[tuple[int, int], frozenset[int]] = {}
        self._lock = threading.Lock()
        self._partitions: list[TopicPartition] = []

    def _assign(self) -> None:
        if not self._partitions:
            self._partitions = partitions_of(self._consumer, self.topic)
            self._consumer.assign(self._partitions)
            self._consumer.seek_to_beginning(*self._partitions)

    def sync(self, timeout_s: float = 30) -> None:
        with self._lock:
            self._assign()
            end = self._consumer.end_offsets(self._partitions)
            deadline = time.monotonic() + timeout_s
            while any(self._consumer.position(tp) < end[tp] for tp in self._partitions):
                if time.monotonic() > deadline:
                    raise TransientError(f"could not read {self.topic} to its end", reason="kafka")
                for records in self._consumer.poll(timeout_ms=200).values():
                    for r in records:
                        _, company, _, customer = r.key.decode().split(":")
                        ids = frozenset(json.loads(r.value)["denied"]) if r.value else frozenset()
                        self._data[(int(company), int(customer))] = ids

    def get(self, company_no: int, customer_no: int) -> frozenset[int]:
        with self._lock:
            return self._data.get((company_no, customer_no), frozenset())

    def put(self, company_no: int, customer_no: int, project_ids: frozenset[int]) -> None:
        value = json.dumps({"denied": sorted(project_ids)}).encode()
        try:
            self._producer.send(self.topic, key=_key(company_no, customer_no), value=value).get(timeout=30)
        except Exception as exc:  # noqa: BLE001 - any failure to make it durable is worth a retry
            raise TransientError(f"could not record denied projects: {exc!r}", reason="kafka") from exc
        with self._lock:
            self._data[(company_no, customer_no)] = frozenset(project_ids)

    def blocked_customers(self, company_no: int) -> int:
        with self._lock:
            return sum(1 for (c, _), ids in self._data.items() if c == company_no and ids)

    def close(self) -> None:
        self._producer.close(timeout=10)
        self._consumer.close()
