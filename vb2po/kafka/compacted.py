"""Reading a small compacted topic (producer state, denied projects, tokens, settings) from its
beginning, and on each `catch_up()` on to the end the topic has at that moment, so what another
process wrote before is seen. Readers are read_committed: a transaction still open is not."""
from __future__ import annotations

import time
from typing import Callable

from kafka.consumer.fetcher import ConsumerRecord

from vb2po.kafka.clients import event_consumer, partitions_of
from vb2po.settings import KafkaSettings


class CompactedTopicReader:
    def __init__(self, kafka: KafkaSettings, topic: str, apply: Callable[[ConsumerRecord], None], *,
                 metadata_timeout_s: float = 30):
        self.topic = topic
        self._apply = apply
        self._metadata_timeout_s = metadata_timeout_s
        self._consumer = event_consumer(kafka, group_id=None, consumer_timeout_ms=1000)
        self._partitions: list | None = None

    def _assign(self) -> list:
        if self._partitions is None:
            self._partitions = partitions_of(self._consumer, self.topic, self._metadata_timeout_s)
            self._consumer.assign(self._partitions)
            self._consumer.seek_to_beginning(*self._partitions)
        return self._partitions

    def catch_up(self, timeout_s: float) -> None:
        """Hand every record up to the topic's current end to `apply`; TimeoutError after `timeout_s`."""
        partitions = self._assign()
        end = self._consumer.end_offsets(partitions)
        self._read_while(lambda: any(self._consumer.position(tp) < end[tp] for tp in partitions), "to its end", timeout_s)

    def read_through(self, offset: int, timeout_s: float) -> None:
        """Hand every record up to and including `offset` of the topic's one partition to `apply`
        (cheaper than `catch_up`: no end-offsets request); TimeoutError after `timeout_s`."""
        partitions = self._assign()
        if len(partitions) != 1:
            raise ValueError(f"read_through needs a one-partition topic; {self.topic} has {len(partitions)}")
        tp = partitions[0]
        self._read_while(lambda: self._consumer.position(tp) <= offset, f"up to offset {offset}", timeout_s)

    def _read_while(self, behind: Callable[[], bool], what: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while behind():
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read the topic {self.topic} {what} in {timeout_s}s")
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    if record.key is not None:
                        self._apply(record)

    def close(self) -> None:
        self._consumer.close()
