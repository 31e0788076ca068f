"""Dead-letter records: the original message plus why it could not be processed.

A letter is capped in size (the original is cut, and a SHA-256 of all of it is kept), so a
hostile 700 KB message cannot make its own dead letter too large for the broker. Each letter
also travels with Kafka-Connect-style headers (`__connect.errors.*`: original topic, partition,
offset, exception class and message; plus the reason and the stage), so tools that read
Connect's dead-letter queues can read vb2po's.
"""
from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

MAX_ORIGINAL_CHARS = 16 * 1024
MAX_ERROR_CHARS = 2000
HEADER_PREFIX = "__connect.errors."


@dataclass(frozen=True)
class DeadLetter:
    stage: str  # "producer" or "consumer"
    reason: str  # short, low-cardinality: "missing_invoice_no", "lock_date", "undecodable", ...
    error: str  # the human-readable message
    company_no: int | None = None
    source_key: str | None = None  # Visma row key, e.g. "JNo=1;EntNo=2"
    event_id: str | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    attempts: int = 1
    first_failed_at: str | None = None
    failed_at: str = ""
    original: str | None = None  # the original message value (utf-8 text, or base64: prefix), cut to the cap
    exception_class: str | None = None
    fingerprint: str | None = None  # what makes a redelivery of the same bad content the same letter
    original_sha256: str | None = None  # of the whole original value
    original_bytes: int | None = None
    original_truncated: bool = False

    def encode(self) -> bytes:
        data = asdict(self)
        data["error"] = (data["error"] or "")[:MAX_ERROR_CHARS]
        data["failed_at"] = data["failed_at"] or datetime.now(timezone.utc).isoformat()
        data["first_failed_at"] = data["first_failed_at"] or data["failed_at"]
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "DeadLetter":
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("a dead letter is a JSON object")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka-Connect-style error headers for this letter."""
        values = {"topic": self.topic, "partition": self.partition, "offset": self.offset, "stage": self.stage,
                  "exception.class.name": self.exception_class, "exception.message": (self.error or "")[:500],
                  "reason": self.reason}
        return [(HEADER_PREFIX + name, str(value).encode()) for name, value in values.items() if value is not None]


def original_fields(value: bytes | None) -> dict:
    """The letter's `original*` fields for a message value: text (or base64) cut to the cap, its hash and size."""
    if value is None:
        return {"original": None}
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        text = "base64:" + base64.b64encode(value).decode()
    truncated = len(text) > MAX_ORIGINAL_CHARS
    return {"original": text[:MAX_ORIGINAL_CHARS], "original_truncated": truncated,
            "original_sha256": hashlib.sha256(value).hexdigest(), "original_bytes": len(value)}


def original_text(value: bytes | None) -> str | None:
    return original_fields(value)["original"]
