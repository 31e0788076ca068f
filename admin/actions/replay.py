"""Replay: move a consumer group back to an offset or a point in time, per topic and partition.

A dry run shows, per partition, where the group is, where it would go, and the events it
would process again. The real thing refuses while the group has members (the broker would
refuse the new offsets anyway, and a running consumer would overwrite them); either stop the
consumers, or replay through a separate group (`through_group`): that group's offsets are set
and `vb2po consumer --group NAME --until-caught-up` processes the range, while the regular
consumers carry on. Moving a group *forward* skips events and needs `allow_skip`.

Replaying is safe because applying is idempotent: an event whose Visma row is marked is
skipped, and PowerOffice refuses a second voucher with the same ExternalImportReference.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kafka import TopicPartition

from admin.actions.errors import Conflict, Invalid
from admin.actions.kafka_view import KafkaView
from schemas.codec import UndecodableEvent, decode
from schemas.events import PaymentEvent
from vb2po.settings import Settings

TOPICS = ("payments", "credit-blocks")


@dataclass(frozen=True)
class ReplaySpec:
    to_offset: int | None = None
    to_time: datetime | None = None
    to_beginning: bool = False
    topics: tuple[str, ...] = TOPICS  # logical names
    partitions: tuple[int, ...] | None = None
    group: str | None = None  # default: settings.kafka.consumer_group
    through_group: str | None = None
    dry_run: bool = True
    allow_skip: bool = False
    list_limit: int = 50

    def __post_init__(self) -> None:
        chosen = [self.to_offset is not None, self.to_time is not None, self.to_beginning]
        if sum(chosen) != 1:
            raise Invalid("say where to replay from: exactly one of an offset, a point in time, or the beginning",
                          "e.g. --to-time 2026-03-15T08:00:00+01:00, --to-offset 1200 --partition 2, or --to-beginning")
        unknown = [t for t in self.topics if t not in TOPICS]
        if unknown or not self.topics:
            raise Invalid(f"unknown topic(s) {unknown}: replay knows {', '.join(TOPICS)}")
        if self.to_time is not None and self.to_time.tzinfo is None:
            raise Invalid("the point in time needs a zone", "e.g. 2026-03-15T08:00:00+01:00 or ...Z")
        if self.to_offset is not None and self.to_offset < 0:
            raise Invalid("an offset is 0 or more")


@dataclass(frozen=True)
class PartitionPlan:
    topic: str
    partition: int
    beginning: int
    end: int
    current: int | None  # the group's committed offset; None: nothing committed yet
    target: int
    again: int = 0  # records that will be processed again (or, through a separate group, processed there)
    skipped: int = 0  # records the group would never process (moving forward)

    def as_dict(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "beginning": self.beginning, "end": self.end,
                "current": self.current, "target": self.target, "again": self.again, "skipped": self.skipped}


def target_offset(spec: ReplaySpec, beginning: int, end: int, at_time: int | None) -> int:
    """Where one partition goes, clamped to what the topic still holds."""
    if spec.to_beginning:
        return beginning
    if spec.to_time is not None:
        return end if at_time is None else max(beginning, min(at_time, end))
    if spec.to_offset is None:  # ReplaySpec checks that it names exactly one target
        raise Invalid("say where to replay from: an offset, a point in time, or the beginning")
    return max(beginning, min(int(spec.to_offset), end))


def describe_event(record) -> dict:
    base = {"partition": record.partition, "offset": record.offset}
    try:
        event = decode(record.value)
    except UndecodableEvent as exc:
        return {**base, "event_type": "undecodable", "detail": str(exc)}
    out = {**base, "event_type": event.event_type, "event_id": str(event.event_id),
           "company_no": event.source.company_no, "source_key": event.source.key}
    if isinstance(event, PaymentEvent):
        payment = event.payload
        out.update(customer_no=payment.customer_no, invoice_no=payment.invoice_no, amount=str(payment.amount))
    else:
        block = event.payload
        out.update(customer_no=block.customer_no, blocked=block.blocked)
    return out


def replay(settings: Settings, spec: ReplaySpec) -> dict:
    """Plan (dry run) or carry out a replay; returns the plan, with the events listed."""
    kafka = settings.kafka
    names = {"payments": kafka.topics.payments, "credit-blocks": kafka.topics.credit_blocks}
    group = spec.through_group or spec.group or kafka.consumer_group
    with KafkaView(kafka) as view:
        tps = [tp for t in spec.topics for tp in view.partitions(names[t])
               if spec.partitions is None or tp.partition in spec.partitions]
        if not tps:
            raise Invalid(f"no such partition(s) {list(spec.partitions or [])} in {', '.join(spec.topics)}")
        begins, ends = view.beginning_offsets(tps), view.end_offsets(tps)
        at_time = view.offsets_for_time(tps, int(spec.to_time.timestamp() * 1000)) if spec.to_time else {}
        committed = view.committed(group, tps)
        info = view.group(group)
        plans: list[PartitionPlan] = []
        sample: list[dict] = []
        for tp in tps:
            target = target_offset(spec, begins[tp], ends[tp], at_time.get(tp))
            current = committed[tp]
            again_range: tuple[int, int] | None
            skip_range: tuple[int, int] | None
            if spec.through_group and current is None:
                again_range, skip_range = (target, ends[tp]), None
            else:
                position = current if current is not None else begins[tp]
                again_range = (target, position) if target < position else None
                skip_range = (position, target) if target > position and current is not None else None
            again = skipped = 0
            if again_range:
                room = max(0, spec.list_limit - len(sample))
                again, records = view.read({tp: again_range[0]}, {tp: again_range[1]}, keep=room)
                sample.extend(describe_event(r) for r in records)
            if skip_range:
                skipped = view.read({tp: skip_range[0]}, {tp: skip_range[1]}, keep=0)[0]
            plans.append(PartitionPlan(tp.topic, tp.partition, begins[tp], ends[tp], current, target, again, skipped))
        result = {
            "group": group, "through_group": bool(spec.through_group), "dry_run": spec.dry_run,
            "group_state": info.state, "group_members": info.members,
            "again": sum(p.again for p in plans), "skipped": sum(p.skipped for p in plans),
            "partitions": [p.as_dict() for p in plans], "events": sample,
        }
        if spec.dry_run:
            return result
        if info.active:
            raise Conflict(
                f"consumer group {group!r} has {info.members} active member(s) ({info.state}); its offsets cannot "
                "be moved while consumers run",
                "stop the consumers (kubectl scale deployment <release>-vb2po-consumer --replicas=0) and replay "
                "again, or replay through a separate group: --through-group NAME",
            )
        if result["skipped"] and not spec.allow_skip:
            raise Conflict(f"this moves group {group!r} forward past {result['skipped']} event(s) it has not "
                           "processed; they would never be applied",
                           "check with --dry-run; pass --allow-skip if skipping them is what you want")
        offsets = {TopicPartition(p.topic, p.partition): p.target for p in plans}
        if spec.through_group:
            # A new group would start every other partition at the beginning: start them at the end.
            others = [tp for name in names.values() for tp in view.partitions(name) if tp not in offsets]
            other_ends, other_committed = view.end_offsets(others), view.committed(group, others)
            offsets.update({tp: other_ends[tp] for tp in others if other_committed[tp] is None})
        try:
            view.set_committed(group, offsets)
        except RuntimeError as exc:
            raise Conflict(str(exc), "a consumer joined the group meanwhile: stop it and replay again") from exc
        return result
