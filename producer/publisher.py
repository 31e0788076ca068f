"""Publishing a poll's events together with the producer state, atomically.

`KafkaTransactionalPublisher` writes events, dead letters and the new state in one Kafka
transaction: either all become visible to read_committed readers or none do.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from kafka.errors import KafkaError, ProducerFencedError

from vb2po.errors import TerminalError, TransientError
from vb2po.kafka.clients import transactional_producer
from vb2po.live_settings import version_header
from vb2po.settings import KafkaSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()  # besides the settings version every record carries


class ProducerFenced(TerminalError):
    """Another instance took over this company: this one must stop publishing for it."""

    reason = "fenced"


class Publisher(Protocol):
    def publish(self, messages: list[Outgoing]) -> None:
        """All messages (events, dead letters, state records) in one transaction."""
        ...

    def close(self) -> None: ...


class KafkaTransactionalPublisher:
    def __init__(self, kafka: KafkaSettings, transactional_id: str):
        self._kafka = kafka
        self._transactional_id = transactional_id
        self._producer = transactional_producer(kafka, transactional_id)
        self.settings_version = 0  # stamped on every record (see vb2po.live_settings.VERSION_HEADER)

    def publish(self, messages: list[Outgoing]) -> None:
        producer = self._producer
        try:
            producer.begin_transaction()
            headers = version_header(self.settings_version)
            for m in messages:
                producer.send(m.topic, key=m.key, value=m.value, headers=headers + list(m.headers))
            producer.commit_transaction()
        except ProducerFencedError as exc:
            raise ProducerFenced(f"producer {self._transactional_id} was fenced by a newer instance") from exc
        except KafkaError as exc:
            self._abort_quietly()
            raise TransientError(f"publishing failed: {exc!r}", reason="kafka") from exc

    def _abort_quietly(self) -> None:
        try:
            self._producer.abort_transaction()
        except Exception:  # noqa: BLE001 - a broken producer is replaced below
            log.warning("abort failed; recreating producer %s", self._transactional_id)
            self._recreate()

    def _recreate(self) -> None:
        try:
            self._producer.close(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        self._producer = transactional_producer(self._kafka, self._transactional_id)

    def close(self) -> None:
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
