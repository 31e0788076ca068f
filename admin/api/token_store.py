"""Where token records live: a compacted Kafka topic (key = token id, last record wins).

The service runs with a read-only filesystem and possibly several replicas, so the store is
Kafka: every replica reads the same records. Before answering, the reader catches up to the
topic's current end, so a token issued or revoked by another replica (or by the local
bootstrap command) counts from the very next request.
"""
from __future__ import annotations

import threading
from typing import Protocol

from admin.api.tokens import TokenRecord
from vb2po.errors import TransientError
from vb2po.kafka.clients import plain_producer
from vb2po.kafka.compacted import CompactedTopicReader
from vb2po.settings import KafkaSettings


class TokenStore(Protocol):
    def get(self, token_id: str) -> TokenRecord | None: ...
    def put(self, record: TokenRecord) -> None: ...
    def all(self) -> list[TokenRecord]: ...
    def close(self) -> None: ...


class KafkaTokenStore:
    def __init__(self, kafka: KafkaSettings, *, catch_up_timeout_s: float = 10):
        self.topic = kafka.topics.admin_tokens
        self._timeout_s = catch_up_timeout_s
        self._lock = threading.Lock()
        self._records: dict[str, TokenRecord] = {}
        self._producer = plain_producer(kafka, "vb2po-admin-tokens")
        self._reader = CompactedTopicReader(kafka, self.topic, self._apply, metadata_timeout_s=2)
        try:
            self._reader.catch_up(self._timeout_s)
        except TransientError:
            self.close()
            raise RuntimeError(f"token topic {self.topic} does not exist; the producer creates it at start "
                               "(or run `vb2po token create --local`, which creates it too)") from None

    def _apply(self, record) -> None:
        if record.value is None:
            self._records.pop(record.key.decode(), None)
        else:
            self._records[record.key.decode()] = TokenRecord.decode(record.value)

    def _catch_up(self) -> None:
        self._reader.catch_up(self._timeout_s)

    def get(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            self._catch_up()
            return self._records.get(token_id)

    def all(self) -> list[TokenRecord]:
        with self._lock:
            self._catch_up()
            return sorted(self._records.values(), key=lambda r: r.created_at)

    def put(self, record: TokenRecord) -> None:
        """Durable (acks=all) before it returns."""
        self._producer.send(self.topic, key=record.token_id.encode(), value=record.encode()).get(timeout=30)

    def close(self) -> None:
        self._producer.close(timeout=10)
        self._reader.close()


class MemoryTokenStore:
    def __init__(self) -> None:
        self.records: dict[str, TokenRecord] = {}

    def get(self, token_id: str) -> TokenRecord | None:
        return self.records.get(token_id)

    def put(self, record: TokenRecord) -> None:
        self.records[record.token_id] = record

    def all(self) -> list[TokenRecord]:
        return sorted(self.records.values(), key=lambda r: r.created_at)

    def close(self) -> None:
        pass
