"""Which projects this service denied time tracking on, per customer, kept durably.

Only those projects get time tracking back when a block is lifted; a project denied for
another reason stays denied. The memory lives in a compacted Kafka topic, not in process
memory, so it survives restarts and moves with a customer's partition between instances.
"""
from __future__ import annotations

import json
import threading
from typing import Protocol

from kafka import KafkaProducer

from vb2po.errors import TransientError
from vb2po.kafka.compacted import CompactedTopicReader
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
    def __init__(self, kafka: KafkaSettings, producer: KafkaProducer):
        """`producer`: the consumer process's shared one (its owner closes it)."""
        self.topic = kafka.topics.consumer_state
        self._producer = producer
        self._reader = CompactedTopicReader(kafka, self.topic, self._apply)
        self._data: dict[tuple[int, int], frozenset[int]] = {}
        self._lock = threading.Lock()

    def _apply(self, record) -> None:
        _, company, _, customer = record.key.decode().split(":")
        ids = frozenset(json.loads(record.value)["denied"]) if record.value else frozenset()
        self._data[(int(company), int(customer))] = ids

    def sync(self, timeout_s: float = 30) -> None:
        with self._lock:
            try:
                self._reader.catch_up(timeout_s)
            except TimeoutError as exc:
                raise TransientError(str(exc), reason="kafka") from exc

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
        self._reader.close()
