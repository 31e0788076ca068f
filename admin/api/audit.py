"""The audit log: who did what, when, and with what outcome; one entry per request and per
operator action (also the local bootstrap commands).

Each entry is written twice: as a log line on the `vb2po.audit` logger with each part as a field
(what the log pipeline keeps), and to the audit topic in Kafka (what `GET /v1/audit` and the dead-letter
listing read). Entries name users and token ids, never tokens.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from vb2po import metrics
from vb2po.kafka.clients import plain_producer
from vb2po.settings import KafkaSettings

log = logging.getLogger("vb2po.audit")


@dataclass(frozen=True)
class AuditEntry:
    action: str  # "fetch.client", "dead_letters.redrive", "token.create", "GET /v1/status", ...
    outcome: str  # ok | denied | unauthenticated | invalid | not_found | conflict | error
    actor: str | None = None  # user name; "local:<os user>" for local commands; None when unknown
    token_id: str | None = None
    target: Any = None  # what the action was about: a client, a group, letter ids ...
    status: int | None = None  # HTTP status, for API requests
    detail: str = ""
    method: str | None = None
    path: str | None = None
    remote: str | None = None
    at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def encode(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, default=str).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "AuditEntry":
        data = json.loads(raw)
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def log_entry(entry: AuditEntry) -> None:
    """The audit line: readable text, and each part as a field of its own (`audit_*`) for the
    JSON log format. The token id goes as `audit_credential` (it names a token, it is not one)."""
    fields = {f"audit_{k}": v for k, v in asdict(entry).items() if k != "token_id"}
    fields["audit_credential"] = entry.token_id
    log.info("audit: %s %s %s -> %s", entry.actor or "-", entry.action,
             "" if entry.target is None else entry.target, entry.outcome, extra=fields)


class AuditLog(Protocol):
    def write(self, entry: AuditEntry) -> None: ...
    def close(self) -> None: ...


class KafkaAuditLog:
    def __init__(self, kafka: KafkaSettings):
        self.topic = kafka.topics.audit
        self._producer = plain_producer(kafka, "vb2po-audit")

    def write(self, entry: AuditEntry) -> None:
        log_entry(entry)
        try:
            self._producer.send(self.topic, key=(entry.actor or "-").encode(), value=entry.encode()).get(timeout=15)
        except Exception as exc:  # noqa: BLE001 - the log line above is the fallback record
            metrics.AUDIT_WRITE_FAILURES.inc()
            log.error("audit entry could not be written to %s (%s); the log line above is the record",
                      self.topic, type(exc).__name__)

    def close(self) -> None:
        self._producer.close(timeout=10)


class MemoryAuditLog:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def write(self, entry: AuditEntry) -> None:
        log_entry(entry)
        self.entries.append(entry)

    def close(self) -> None:
        pass


def read_audit(kafka: KafkaSettings) -> list[AuditEntry]:
    """Every entry still in the audit topic, oldest first."""
    from admin.actions.kafka_view import KafkaView

    with KafkaView(kafka) as view:
        records, _ = view.read_topic(kafka.topics.audit)
    entries = []
    for record in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset)):
        try:
            entries.append(AuditEntry.decode(record.value))
        except (ValueError, TypeError):
            continue
    return entries
