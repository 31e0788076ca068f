"""Reading Kafka the way operator actions need it: topic ranges, end offsets, consumer groups.

Everything reads with read_committed (what the consumers see). Offsets count transaction
markers too, so "records between two offsets" is counted by reading, never by subtraction.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError

from vb2po.kafka.clients import admin_client, event_consumer
from vb2po.settings import KafkaSettings

ACTIVE_GROUP_STATES = {"Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling"}


@dataclass(frozen=True)
class GroupInfo:
    group: str
    state: str  # Stable, Empty, Dead, ...
    members: int

    @property
    def active(self) -> bool:
        return self.members > 0 or self.state in ACTIVE_GROUP_STATES


class KafkaView:
    """A short-lived reader for one operator action; close it (or use `with`)."""

    def __init__(self, kafka: KafkaSettings, *, timeout_s: float = 30):
        self.kafka = kafka
        self.timeout_s = timeout_s
        self._consumer = event_consumer(kafka, group_id=None, consumer_timeout_ms=1000)
        self._admin = None

    def __enter__(self) -> "KafkaView":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._consumer.close()
        if self._admin is not None:
            self._admin.close()

    @property
    def admin(self):
        if self._admin is None:
            self._admin = admin_client(self.kafka)
        return self._admin

    # -- offsets -------------------------------------------------------------------------
    def partitions(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in sorted(self._consumer.partitions_for_topic(topic) or ())]

    def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The last stable offset of each partition (read_committed)."""
        tps = list(tps)
        return dict(self._consumer.end_offsets(tps)) if tps else {}

    def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        tps = list(tps)
        return dict(self._consumer.beginning_offsets(tps)) if tps else {}

    def offsets_for_time(self, tps: Iterable[TopicPartition], epoch_ms: int) -> dict[TopicPartition, int | None]:
        """The first offset at or after the time; None where no record is that new."""
        tps = list(tps)
        found = self._consumer.offsets_for_times({tp: epoch_ms for tp in tps}) if tps else {}
        out: dict[TopicPartition, int | None] = {}
        for tp in tps:
            hit = found.get(tp)
            out[tp] = hit.offset if hit is not None else None
        return out

    # -- reading -------------------------------------------------------------------------
    def read(self, start: dict[TopicPartition, int], stop: dict[TopicPartition, int], *,
             keep: int | None = None) -> tuple[int, list[ConsumerRecord]]:
        """Records from `start` up to (not including) `stop`, per partition: (count, the first
        `keep` of them in partition order; all when keep is None)."""
        wanted = {tp: (s, stop[tp]) for tp, s in start.items() if stop.get(tp, 0) > s}
        count = 0
        kept: list[ConsumerRecord] = []
        for tp, (first, end) in sorted(wanted.items(), key=lambda item: (item[0].topic, item[0].partition)):
            self._consumer.assign([tp])
            self._consumer.seek(tp, first)
            deadline = time.monotonic() + self.timeout_s
            while self._consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {tp.topic}[{tp.partition}] up to offset {end} "
                                       f"within {self.timeout_s}s")
                for records in self._consumer.poll(timeout_ms=300).values():
                    for record in records:
                        if record.offset >= end:
                            continue
                        count += 1
                        if keep is None or len(kept) < keep:
                            kept.append(record)
        self._consumer.assign([])
        return count, kept

    def read_topic(self, topic: str, *, since: dict[int, int] | None = None) -> tuple[list[ConsumerRecord], dict[int, int]]:
        """Every committed record of `topic` (from `since`, by partition, else from the
        beginning) up to its current end; also returns the end, to continue from next time."""
        tps = self.partitions(topic)
        if not tps:
            return [], {}
        ends = self.end_offsets(tps)
        begins = self.beginning_offsets(tps)
        start = {tp: max(begins[tp], (since or {}).get(tp.partition, 0)) for tp in tps}
        _, records = self.read(start, ends)
        return records, {tp.partition: ends[tp] for tp in tps}

    # -- consumer groups -----------------------------------------------------------------
    def _retrying(self, call, *args):
        """Group calls fail with a retriable error while the broker still sets up the group
        coordinator (a young cluster, a coordinator moving): try again for a while."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return call(*args)
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def group(self, group: str) -> GroupInfo:
        described = self._retrying(self.admin.describe_groups, [group]).get(group) or {}
        return GroupInfo(group, str(described.get("group_state") or "Dead"), len(described.get("members") or ()))

    def committed(self, group: str, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int | None]:
        tps = list(tps)
        found = self._retrying(self.admin.list_group_offsets, {group: tps}).get(group, {}) if tps else {}
        out: dict[TopicPartition, int | None] = {}
        for tp in tps:
            meta = found.get(tp)
            out[tp] = meta.offset if meta is not None and meta.offset is not None and meta.offset >= 0 else None
        return out

    def set_committed(self, group: str, offsets: dict[TopicPartition, int]) -> None:
        """Commit offsets for a group without members (the broker refuses otherwise)."""
        from kafka.structs import OffsetAndMetadata

        results = self._retrying(self.admin.alter_group_offsets, group,
                                 {tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        failed = {f"{tp.topic}[{tp.partition}]": getattr(err, "__name__", str(err))
                  for tp, err in results.items() if getattr(err, "__name__", "") != "NoError"}
        if failed:
            raise RuntimeError(f"the broker refused the new offsets of group {group!r}: {failed}")

    def pending(self, group: str, topics: Iterable[str], *, cap: int = 100_000) -> dict[TopicPartition, int]:
        """Records the group has yet to process, per partition (read, capped at `cap`)."""
        tps = [tp for topic in topics for tp in self.partitions(topic)]
        ends, begins, committed = self.end_offsets(tps), self.beginning_offsets(tps), self.committed(group, tps)
        out: dict[TopicPartition, int] = {}
        for tp in tps:
            at = committed[tp]
            start = max(at if at is not None else begins[tp], begins[tp])
            if ends[tp] - start > cap:
                out[tp] = ends[tp] - start  # too many to read: the offset span (markers included)
            else:
                out[tp] = self.read({tp: start}, {tp: ends[tp]}, keep=0)[0]
        return out
