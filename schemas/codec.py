"""Bytes on the topic <-> event models. Undecodable input raises `UndecodableEvent`."""
from __future__ import annotations

from pydantic import TypeAdapter, ValidationError

from schemas.events import CreditBlockEvent, Event, PaymentEvent

_EVENT = TypeAdapter(Event)


class UndecodableEvent(ValueError):
    """The message is not a valid event of any known type; the reason says why."""


def encode(event: PaymentEvent | CreditBlockEvent) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes | None) -> PaymentEvent | CreditBlockEvent:
    if raw is None:
        raise UndecodableEvent("empty message (tombstone)")
    try:
        return _EVENT.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise UndecodableEvent(f"schema-invalid event: {where}: {first.get('msg')}") from exc
