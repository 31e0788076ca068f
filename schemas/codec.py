"""Bytes on the topic <-> event models. Input that is not a valid event raises `UndecodableEvent`
with a reason a person understands (and a short machine-readable one for metrics)."""
from __future__ import annotations

import json

from pydantic import TypeAdapter, ValidationError

from schemas.events import READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, CreditBlockEvent, Event, PaymentEvent

_EVENT = TypeAdapter(Event)
_PAYMENT = TypeAdapter(PaymentEvent)
_PAYMENT_TAG = b'"visma.payment.received"'
MAX_EVENT_BYTES = 64 * 1024  # a real event is < 1 KB; the cap keeps a hostile message from costing memory
UNDECODABLE = "undecodable"
INVALID_EVENT = "invalid_event"
UNSUPPORTED_VERSION = "unsupported_schema_version"


class UndecodableEvent(ValueError):
    """The message is not a valid event of any known type; the message says why."""

    def __init__(self, message: str, reason: str = UNDECODABLE):
        super().__init__(message)
        self.reason = reason


def encode(event: PaymentEvent | CreditBlockEvent) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes | None) -> PaymentEvent | CreditBlockEvent:
    if raw is None:
        raise UndecodableEvent("empty message (tombstone)")
    if len(raw) > MAX_EVENT_BYTES:
        raise UndecodableEvent(f"message of {len(raw):,} bytes; an event is at most {MAX_EVENT_BYTES:,}")
    if _PAYMENT_TAG in raw:  # most events: validating the one model straight away costs a sixth less
        try:
            payment = _PAYMENT.validate_json(raw)
            if "event_type" in payment.model_fields_set:  # (else the union below refuses it, as it must)
                return payment
        except ValidationError:
            pass  # the union below says why, as for any other message
    try:
        return _EVENT.validate_json(raw)
    except ValidationError as exc:
        raise _explain(raw, exc) from None


def _explain(raw: bytes, exc: ValidationError) -> UndecodableEvent:
    errors = exc.errors(include_url=False, include_input=False)
    if any(e.get("type") == "json_invalid" for e in errors):
        return UndecodableEvent("not a JSON document")
    version = _schema_version(raw)
    if version is not None and version not in READABLE_SCHEMA_VERSIONS:
        return UndecodableEvent(f"schema_version {version!r} is not one this version of vb2po reads "
                                f"({', '.join(map(str, READABLE_SCHEMA_VERSIONS))}; it writes {SCHEMA_VERSION})",
                                UNSUPPORTED_VERSION)
    if all(e.get("type") in ("union_tag_not_found", "union_tag_invalid", "model_type") for e in errors):
        return UndecodableEvent("not an event: no known event_type")
    shown = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ())
                         if p not in ("visma.payment.received", "visma.customer.credit_block"))
        shown.append(f"{where or 'event'}: {error.get('msg')}")
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return UndecodableEvent("invalid event: " + "; ".join(shown) + more, INVALID_EVENT)


def _schema_version(raw: bytes) -> object:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data.get("schema_version") if isinstance(data, dict) else None
