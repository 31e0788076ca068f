"""Sending a consumed message that cannot be processed to the dead-letter topic, durably, once.

One dead letter per bad item, not per delivery: a payment the consumer dead-letters stays
unmarked in Visma, so every sweep (and every replay) delivers it again. The consumer remembers
what it dead-lettered by a fingerprint of the content (`fingerprint`) in a compacted topic, and
a delivery of the same content is skipped until an operator redrives the letter (the redrive
forgets the fingerprint first). Content that differs (a fixed row, a hostile variant) is news.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError, MessageSizeTooLargeError

from schemas.events import CreditBlockEvent, PaymentEvent
from vb2po.errors import TransientError
from vb2po.kafka.compacted import CompactedTopicReader
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import KafkaSettings

log = logging.getLogger(__name__)


def fingerprint(value: bytes | None, event: PaymentEvent | CreditBlockEvent | None) -> str:
    """The same bad content gives the same fingerprint, however often and by whom it is delivered:
    for an event, everything in it but when it was produced (the sweep produces again); for
    anything else, the bytes. The envelope counts: a copy of a good payment with a wrong source
    or change time, dead-lettered for that, must not make the good one look dead-lettered too
    (`make fuzz` found it when the copy arrived first)."""
    if event is not None:
        basis = json.dumps(event.model_dump(mode="json", exclude={"produced_at"}), sort_keys=True).encode()
    else:
        basis = b"raw:" + (value if value is not None else b"<tombstone>")
    return hashlib.sha256(basis).hexdigest()


class DeadLetterSink(Protocol):
    def send(self, letter: DeadLetter, key: bytes | None) -> str:
        """Durable when it returns; returns the letter id (`<partition>-<offset>`)."""
        ...


class KafkaDeadLetterSink:
    """Flushes each letter before returning: the offset is only committed after that. A letter the
    broker refuses as too large is sent again without its original (its hash and size are kept)."""

    def __init__(self, producer: KafkaProducer, topic: str):
        self.producer = producer
        self.topic = topic

    def send(self, letter: DeadLetter, key: bytes | None) -> str:
        try:
            meta = self._send(letter, key)
        except MessageSizeTooLargeError:
            slim = DeadLetter(**{**letter.__dict__, "original": None, "original_truncated": True})
            meta = self._send(slim, key)
        return f"{meta.partition}-{meta.offset}"

    def _send(self, letter: DeadLetter, key: bytes | None):
        try:
            return self.producer.send(self.topic, key=key, value=letter.encode(), headers=letter.headers()).get(timeout=30)
        except MessageSizeTooLargeError:
            raise
        except KafkaError as exc:
            raise TransientError(f"the dead letter could not be written: {exc!r}", reason="kafka") from exc


class FakeDeadLetterSink:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def send(self, letter: DeadLetter, key: bytes | None) -> str:
        self.letters.append(letter)
        return f"0-{len(self.letters) - 1}"


class DeadLetterMemory(Protocol):
    def sync(self) -> None:
        """Catch up with what any instance (or a redrive) wrote before now."""
        ...

    def knows(self, fingerprint: str) -> bool: ...

    def remember(self, fingerprint: str, letter_id: str, letter: DeadLetter) -> None:
        """Durable when it returns."""
        ...

    def open_payments(self) -> int:
        """Distinct payments (company and row) with a letter not redriven: what status counts."""
        ...


class MemoryDeadLetterMemory:
    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def sync(self) -> None:
        pass

    def knows(self, fingerprint: str) -> bool:
        return fingerprint in self.entries

    def remember(self, fingerprint: str, letter_id: str, letter: DeadLetter) -> None:
        self.entries[fingerprint] = _entry(letter_id, letter)

    def forget(self, fingerprint: str) -> None:
        self.entries.pop(fingerprint, None)

    def open_payments(self) -> int:
        return _count_payments(self.entries.values())


def _entry(letter_id: str, letter: DeadLetter) -> dict:
    return {"letter": letter_id, "reason": letter.reason, "company_no": letter.company_no,
            "source_key": letter.source_key}


def _count_payments(entries) -> int:
    return len({(e.get("company_no"), e.get("source_key") or e.get("letter")) for e in entries})


class KafkaDeadLetterMemory:
    """Fingerprints in a compacted topic (key: fingerprint; a tombstone: redriven)."""

    def __init__(self, kafka: KafkaSettings, producer: KafkaProducer):
        """`producer`: the consumer process's shared one (its owner closes it)."""
        self.topic = kafka.topics.dead_lettered
        self._producer = producer
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._reader = CompactedTopicReader(kafka, self.topic, self._apply)  # tombstones too: a redrive

    def _apply(self, record) -> None:
        key = record.key.decode("utf-8", "replace")
        if record.value is None:
            self._entries.pop(key, None)
            return
        try:
            self._entries[key] = json.loads(record.value)
        except ValueError:
            log.warning("unreadable record in %s for %s: ignored", self.topic, key)

    def sync(self, timeout_s: float = 30) -> None:
        with self._lock:
            try:
                self._reader.catch_up(timeout_s)
            except TimeoutError as exc:
                raise TransientError(str(exc), reason="kafka") from exc

    def knows(self, fingerprint: str) -> bool:
        with self._lock:
            return fingerprint in self._entries

    def remember(self, fingerprint: str, letter_id: str, letter: DeadLetter) -> None:
        entry = _entry(letter_id, letter)
        try:
            self._producer.send(self.topic, key=fingerprint.encode(), value=json.dumps(entry).encode()).get(timeout=30)
        except KafkaError as exc:
            raise TransientError(f"could not remember the dead letter: {exc!r}", reason="kafka") from exc
        with self._lock:
            self._entries[fingerprint] = entry

    def open_payments(self) -> int:
        with self._lock:
            return _count_payments(self._entries.values())

    def close(self) -> None:
        self._reader.close()
