"""Dead-letter records: the original message plus why it could not be processed."""
from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone


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
    original: str | None = None  # the original message value (utf-8 text, or base64: prefix)

    def encode(self) -> bytes:
        data = asdict(self)
        data["failed_at"] = data["failed_at"] or datetime.now(timezone.utc).isoformat()
        data["first_failed_at"] = data["first_failed_at"] or data["failed_at"]
        return json.dumps(data).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "DeadLetter":
        return cls(**json.loads(raw))


def original_text(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(value).decode()
