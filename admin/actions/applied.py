"""Payments registered today and this week, per invoice client, read from the applied topic
that the consumers write (`consumer.applied_log`).

"Today" and "this week" (Monday to Sunday) are days in the Visma time zone. The Kafka reader
starts at the beginning of the week and keeps only that week's records in memory; each
`totals()` reads on from where the last one stopped, so a refreshing overview reads only what
is new. Each event id counts once (the log is written at least once).
"""
from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Iterable, Protocol
from zoneinfo import ZoneInfo

from consumer.applied_log import AppliedPayment
from vb2po.kafka.clients import event_consumer, partitions_of
from vb2po.settings import KafkaSettings


@dataclass
class Tally:
    count: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)  # currency -> sum

    def add(self, payment: AppliedPayment) -> None:
        self.count += 1
        self.amounts[payment.currency] = self.amounts.get(payment.currency, Decimal("0")) + payment.amount

    def as_dict(self) -> dict:
        return {"count": self.count, "amounts": {c: str(a) for c, a in sorted(self.amounts.items())}}


def week_start(now: datetime, zone: ZoneInfo) -> datetime:
    """Monday 00:00 of `now`'s week, in `zone`."""
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=zone)


def tally(payments: Iterable[AppliedPayment], now: datetime, zone: ZoneInfo) -> dict[str, dict[str, Tally]]:
    """client -> {"today": Tally, "week": Tally}. Pure; each event id counted once."""
    today = now.astimezone(zone).date()
    monday = week_start(now, zone)
    out: dict[str, dict[str, Tally]] = defaultdict(lambda: {"today": Tally(), "week": Tally()})
    seen: set[str] = set()
    for p in payments:
        if p.event_id in seen:
            continue
        seen.add(p.event_id)
        local = p.applied_at.astimezone(zone)
        if local < monday or local.date() > today:
            continue
        out[p.client]["week"].add(p)
        if local.date() == today:
            out[p.client]["today"].add(p)
    return dict(out)


class AppliedView(Protocol):
    def totals(self, now: datetime) -> dict[str, dict[str, Tally]]: ...
    def close(self) -> None: ...


class MemoryApplied:
    """The fake: payments handed to it directly."""

    def __init__(self, zone: ZoneInfo = ZoneInfo("Europe/Oslo"), payments: Iterable[AppliedPayment] = ()):
        self.zone = zone
        self.payments = list(payments)

    def totals(self, now: datetime) -> dict[str, dict[str, Tally]]:
        return tally(self.payments, now, self.zone)

    def close(self) -> None:
        pass


class KafkaApplied:
    def __init__(self, kafka: KafkaSettings, zone: ZoneInfo, *, timeout_s: float = 10):
        self.topic = kafka.topics.applied
        self.zone = zone
        self.timeout_s = timeout_s
        self._consumer = event_consumer(kafka, group_id=None, consumer_timeout_ms=1000)
        self._lock = threading.Lock()
        self._partitions: list | None = None
        self._payments: dict[str, AppliedPayment] = {}  # event id -> record, this week's only
        self._week: datetime | None = None

    def _start(self, since: datetime) -> None:
        self._partitions = partitions_of(self._consumer, self.topic, self.timeout_s)
        self._consumer.assign(self._partitions)
        found = self._consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in self._partitions})
        ends = self._consumer.end_offsets(self._partitions)
        for tp in self._partitions:
            at = found.get(tp)
            self._consumer.seek(tp, at.offset if at is not None else ends[tp])

    def _catch_up(self) -> None:
        partitions = self._partitions
        if partitions is None:
            raise RuntimeError("the applied-payments reader catches up only after it started")
        end = self._consumer.end_offsets(partitions)
        deadline = time.monotonic() + self.timeout_s
        while any(self._consumer.position(tp) < end[tp] for tp in partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read the topic {self.topic} to its end in {self.timeout_s}s")
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    try:
                        payment = AppliedPayment.decode(record.value)
                    except (ValueError, KeyError, TypeError, ArithmeticError):
                        continue
                    self._payments.setdefault(payment.event_id, payment)

    def totals(self, now: datetime) -> dict[str, dict[str, Tally]]:
        monday = week_start(now, self.zone)
        with self._lock:
            if self._partitions is None:
                self._start(monday - timedelta(hours=1))  # record times are the producer's clock: a margin
            self._catch_up()
            if self._week != monday:  # a new week: last week's records are no longer needed
                self._payments = {k: p for k, p in self._payments.items() if p.applied_at >= monday}
                self._week = monday
            return tally(self._payments.values(), now, self.zone)

    def close(self) -> None:
        self._consumer.close()
