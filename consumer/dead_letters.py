"""Sending a consumed message that cannot be processed to the dead-letter topic, durably."""
from __future__ import annotations

from typing import Protocol

from kafka import KafkaProducer

from vb2po.kafka.dead_letters import DeadLetter


class DeadLetterSink(Protocol):
    def send(self, letter: DeadLetter, key: bytes | None) -> None: ...


class KafkaDeadLetterSink:
    """Flushes each letter before returning: the offset is only committed after that."""

    def __init__(self, producer: KafkaProducer, topic: str):
        self.producer = producer
        self.topic = topic

    def send(self, letter: DeadLetter, key: bytes | None) -> None:
        self.producer.send(self.topic, key=key, value=letter.encode()).get(timeout=30)


class FakeDeadLetterSink:
    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []

    def send(self, letter: DeadLetter, key: bytes | None) -> None:
        self.letters.append(letter)
