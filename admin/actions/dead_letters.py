"""Dead letters: list, show, and redrive after a fix.

A letter's id is `<partition>-<offset>` in the dead-letter topic. Redriving a consumer letter
publishes its original message again, to its original topic with its original key (the
consumer keys each letter with the key of the record it came from), so the consumer applies
it like any other event: same event id, same marker check, same ExternalImportReference.
Letters are never deleted; a redrive is recorded in the audit log (`dead_letters.redriven`),
which is how the listing knows what is still open.

A producer letter (a Visma row that could not become an event) has no event to redrive: the
fix is in Visma, and the changed row is published by the producer's next poll.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterable

from admin.actions.errors import Invalid, NotFound
from admin.actions.kafka_view import KafkaView
from admin.api.audit import AuditEntry, read_audit
from vb2po.kafka.clients import plain_producer
from vb2po.kafka.dead_letters import DeadLetter
from vb2po.settings import KafkaSettings

REDRIVEN = "dead_letters.redriven"


@dataclass(frozen=True)
class LetterEntry:
    letter_id: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int
    letter: DeadLetter
    redrives: tuple[dict, ...] = ()  # [{"at": ..., "by": ...}]

    @property
    def open(self) -> bool:
        return not self.redrives

    @property
    def redrivable(self) -> str | None:
        """None when it can be redriven, else why not."""
        if self.letter.stage != "consumer":
            return (f"a {self.letter.stage} letter holds no event: fix row {self.letter.source_key} in Visma company "
                    f"{self.letter.company_no}; the producer publishes the changed row by itself")
        if not self.letter.topic or self.letter.original is None:
            return "the letter does not carry its original topic and message"
        if self.letter.original_truncated:
            return (f"the original message was {self.letter.original_bytes} bytes and the letter keeps only part of it; "
                    "no event is that large: fix the source and publish it again")
        return None

    def summary(self) -> dict:
        letter = self.letter
        return {
            "id": self.letter_id, "stage": letter.stage, "reason": letter.reason, "company_no": letter.company_no,
            "source_key": letter.source_key, "event_id": letter.event_id, "topic": letter.topic, "failed_at": letter.failed_at,
            "attempts": letter.attempts, "open": self.open, "redrives": list(self.redrives),
            "exception_class": letter.exception_class,
        }

    def full(self) -> dict:
        letter = self.letter
        return {**self.summary(), "error": letter.error, "partition": letter.partition, "offset": letter.offset,
                "first_failed_at": letter.first_failed_at, "key": self.key.decode("utf-8", "replace") if self.key else None,
                "original": letter.original}

    def original_bytes(self) -> bytes:
        text = self.letter.original or ""
        return base64.b64decode(text[len("base64:"):]) if text.startswith("base64:") else text.encode("utf-8")


def _redrives(kafka: KafkaSettings) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for entry in read_audit(kafka):
        if entry.action == REDRIVEN and entry.outcome == "ok":
            for letter_id in entry.target or ():
                out.setdefault(str(letter_id), []).append({"at": entry.at, "by": entry.actor})
    return out


def list_letters(kafka: KafkaSettings, *, reason: str | None = None, company_no: int | None = None,
                 stage: str | None = None, only_open: bool = False) -> list[LetterEntry]:
    with KafkaView(kafka) as view:
        records, _ = view.read_topic(kafka.topics.dead_letters)
    redrives = _redrives(kafka)
    entries = []
    for r in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset)):
        try:
            letter = DeadLetter.decode(r.value)
        except (ValueError, TypeError):
            letter = DeadLetter(stage="unknown", reason="unreadable_letter", error="the dead letter itself is not readable")
        letter_id = f"{r.partition}-{r.offset}"
        entry = LetterEntry(letter_id, r.partition, r.offset, r.key, r.timestamp, letter, tuple(redrives.get(letter_id, ())))
        if reason and letter.reason != reason or company_no is not None and letter.company_no != company_no:
            continue
        if stage and letter.stage != stage or only_open and not entry.open:
            continue
        entries.append(entry)
    return entries


def open_payments(entries: Iterable[LetterEntry]) -> int:
    """Distinct items (a payment's company and row, or a letter of its own) among open letters:
    what status counts, however many letters the same payment collected."""
    return len({(e.letter.company_no, e.letter.source_key or e.letter_id) for e in entries if e.open})


def get_letter(kafka: KafkaSettings, letter_id: str) -> LetterEntry:
    for entry in list_letters(kafka):
        if entry.letter_id == letter_id:
            return entry
    raise NotFound(f"no dead letter {letter_id!r}", "`vb2po dead-letters list` shows the ids (partition-offset)")


def select_letters(kafka: KafkaSettings, ids: Iterable[str] = (), *, all_open: bool = False,
                   reason: str | None = None, company_no: int | None = None) -> list[LetterEntry]:
    """Letters by id, or (all_open) every open letter matching the filters."""
    ids = list(ids)
    if bool(ids) == all_open:
        raise Invalid("name the letters to redrive, or ask for all (open) ones, not both",
                      "e.g. `vb2po dead-letters redrive 0-12 1-40` or `vb2po dead-letters redrive --all --reason lock_date`")
    if all_open:
        return list_letters(kafka, reason=reason, company_no=company_no, only_open=True)
    by_id = {e.letter_id: e for e in list_letters(kafka)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFound(f"no dead letter(s) {', '.join(missing)}", "`vb2po dead-letters list` shows the ids")
    return [by_id[i] for i in ids]


def redrive(kafka: KafkaSettings, entries: list[LetterEntry], *, dry_run: bool = False) -> list[dict]:
    """Publish each redrivable letter's original message to its original topic and key."""
    results: list[dict] = []
    producer = None if dry_run else plain_producer(kafka, "vb2po-redrive")
    try:
        for entry in entries:
            why_not = entry.redrivable
            if why_not:
                results.append({"id": entry.letter_id, "outcome": "skipped", "why": why_not})
                continue
            if producer is not None:
                if entry.letter.fingerprint:  # the consumer would skip content it dead-lettered before: forget it first
                    producer.send(kafka.topics.dead_lettered, key=entry.letter.fingerprint.encode(), value=None).get(timeout=30)
                producer.send(entry.letter.topic, key=entry.key, value=entry.original_bytes()).get(timeout=30)
            results.append({"id": entry.letter_id, "outcome": "would_redrive" if dry_run else "redriven",
                            "topic": entry.letter.topic, "event_id": entry.letter.event_id})
    finally:
        if producer is not None:
            producer.flush(timeout=30)
            producer.close(timeout=10)
    return results


def redriven_entry(actor: str | None, token_id: str | None, results: list[dict]) -> AuditEntry | None:
    """The audit record that marks these letters as redriven (None when none was)."""
    ids = [r["id"] for r in results if r["outcome"] == "redriven"]
    if not ids:
        return None
    return AuditEntry(action=REDRIVEN, outcome="ok", actor=actor, token_id=token_id, target=ids,
                      detail=f"{len(ids)} dead letter(s) published again", at=datetime.now(timezone.utc).isoformat())
