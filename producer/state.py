"""The producer's committed progress, kept in a compacted Kafka topic.

State records are written in the same Kafka transaction as the events they vouch for, so a
restarted producer resumes exactly where the last committed transaction ended. Two kinds of
record, so no single message grows with the number of customers:

- `company:<n>`: the payments cursor, a few marks of where it stood when (`producer.recent`), when
  the last safety-net sweep ran, and the rows already dead-lettered, CustTr (`JNo=..;EntNo=..`)
  and Actor (`ActNo=..`) alike (bad rows are rare);
- `company:<n>:customer:<no>`: the last credit-block state published for one customer, with
  a sequence number that gives each block/lift its own event id;
- `company:<n>:published:<seq>`: the keys of payments published in one transaction that the
  re-scan and the sweep still need to know about (`producer.recent.PublishedBatch`); a tombstone
  once they no longer matter, so the topic holds a few minutes' worth.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from producer.recent import Mark, PublishedBatch
from vb2po.kafka.compacted import CompactedTopicReader
from vb2po.settings import KafkaSettings
from vb2po.visma.queries import Position

log = logging.getLogger(__name__)

MAX_REMEMBERED_BAD_ROWS = 10_000


@dataclass(frozen=True)
class CustomerBlock:
    blocked: bool
    seq: int  # how many state changes were published for this customer


@dataclass(frozen=True)
class CompanyState:
    company_no: int
    payments_cursor: Position | None = None
    dead_lettered: frozenset[str] = frozenset()  # row keys already sent to dead letters
    blocks: dict[int, CustomerBlock] = field(default_factory=dict)  # customer no -> last published
    cursor_marks: tuple[Mark, ...] = ()  # (unix time, cursor from then on): see producer.recent
    last_sweep_at: float | None = None  # unix time the last complete safety-net sweep started
    # seq -> batch, as loaded at start (filled in place while loading); the live set is the poller's
    published: dict[int, PublishedBatch] = field(default_factory=dict, compare=False)

    def key(self) -> bytes:
        return company_key(self.company_no)

    def encode(self) -> bytes:
        cur = self.payments_cursor
        return json.dumps({
            "company_no": self.company_no,
            "payments_cursor": None if cur is None else _position(cur),
            "dead_lettered": sorted(self.dead_lettered),
            "cursor_marks": [[t, *_position(p)] for t, p in self.cursor_marks],
            "last_sweep_at": self.last_sweep_at,
        }).encode()

    def with_dead_lettered(self, keys: AbstractSet[str], forget: AbstractSet[str] = frozenset()) -> "CompanyState":
        """Remember rows sent to dead letters (so a sweep or restart does not send them again), and
        forget rows that read well again (fixed in Visma: if they break again, that is news)."""
        merged = sorted((self.dead_lettered - forget) | keys)[-MAX_REMEMBERED_BAD_ROWS:]
        return replace(self, dead_lettered=frozenset(merged))

    @staticmethod
    def decode_into(state: "CompanyState", raw: bytes) -> "CompanyState":
        data = json.loads(raw)
        cur = data["payments_cursor"]  # (always written; without it the record is not ours)
        marks = tuple((float(m[0]), _read_position(m[1:5])) for m in data.get("cursor_marks") or ())
        if cur and not marks:
            # Written by a version without marks: the cursor is known, not when it got there. Taken as
            # long ago, so the first sweep may publish again what was in flight at the upgrade (once).
            marks = ((0.0, _read_position(cur)),)
        sweep = data.get("last_sweep_at")
        return replace(
            state,
            payments_cursor=_read_position(cur) if cur else None,
            dead_lettered=frozenset(_read_strings(data.get("dead_lettered") or [])),
            cursor_marks=marks,
            last_sweep_at=float(sweep) if sweep is not None else None,
        )


def _read_position(values: object) -> Position:
    """Four whole numbers, as `_position` writes them (anything else: ValueError)."""
    if not isinstance(values, list) or len(values) != 4 or not all(type(v) is int for v in values):
        raise ValueError(f"not a position: {str(values)[:80]}")
    return Position(*values)


def _read_strings(values: object) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"not a list of row keys: {str(values)[:80]}")
    return values


def _position(p: Position) -> list[int]:
    return [p.ch_dt, p.ch_time, p.jno, p.entno]


class StateCell:
    """One company's committed record (cursor, dead-lettered rows), shared by its payment and
    credit-block pollers, which run on the same thread: whichever publishes writes the latest."""

    def __init__(self, state: CompanyState):
        self.state = state


def company_key(company_no: int) -> bytes:
    return f"company:{company_no}".encode()


def customer_key(company_no: int, customer_no: int) -> bytes:
    return f"company:{company_no}:customer:{customer_no}".encode()


def published_key(company_no: int, seq: int) -> bytes:
    return f"company:{company_no}:published:{seq}".encode()


def encode_block(block: CustomerBlock) -> bytes:
    return json.dumps({"blocked": block.blocked, "seq": block.seq}).encode()


def encode_published(batch: PublishedBatch) -> bytes:
    data: dict = {"at": batch.at, "keys": [_position(p) for p in batch.positions]}
    if batch.sweeps:
        data["sweeps"] = batch.sweeps
    return json.dumps(data, separators=(",", ":")).encode()


def decode_published(seq: int, raw: bytes) -> PublishedBatch:
    data = json.loads(raw)
    return PublishedBatch(seq, float(data["at"]), tuple(_read_position(k) for k in data["keys"]),
                          int(data.get("sweeps", 0)))  # (records of older versions: the poll's)


def apply_record(states: dict[int, CompanyState], key: bytes, value: bytes | None) -> None:
    """Fold one state-topic record into `states` (last record per key wins). A record that does
    not read is passed over with an error in the log, not fatal: what it said falls back to the
    record before it for its key, or to nothing, which only ever makes the producer publish again
    (a cursor further back, a customer's block state unknown, a batch not known as published),
    and what it publishes again the consumer absorbs. Stopping would stall every company."""
    try:
        _apply_record(states, key, value)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:  # (UnicodeDecodeError, JSON: ValueError)
        log.error("state record %r in the producer's state topic does not read (%s: %s); passed over: the "
                  "producer may publish again what it vouched for", (key or b"")[:120], type(exc).__name__, str(exc)[:200])


def _apply_record(states: dict[int, CompanyState], key: bytes, value: bytes | None) -> None:
    parts = key.decode().split(":")
    company_no = int(parts[1])
    state = states.get(company_no) or CompanyState(company_no)
    if len(parts) == 2:
        if value is not None:
            state = CompanyState.decode_into(state, value)
    elif len(parts) == 4 and parts[2] == "customer":
        blocks = dict(state.blocks)
        if value is None:
            blocks.pop(int(parts[3]), None)
        else:
            data = json.loads(value)
            if type(data["blocked"]) is not bool or type(data["seq"]) is not int:
                raise ValueError(f"not a block state: {value[:80]!r}")
            blocks[int(parts[3])] = CustomerBlock(data["blocked"], data["seq"])
        state = replace(state, blocks=blocks)
    elif len(parts) == 4 and parts[2] == "published":
        seq = int(parts[3])
        if value is None:
            state.published.pop(seq, None)
        else:
            state.published[seq] = decode_published(seq, value)
    states[company_no] = state


def load_states(kafka: KafkaSettings, timeout_s: float = 60) -> dict[int, CompanyState]:
    """Read the state topic to its end (committed records only)."""
    states: dict[int, CompanyState] = {}
    reader = CompactedTopicReader(kafka, kafka.topics.producer_state,  # created at start: missing would be a bug
                                  lambda record: apply_record(states, record.key, record.value))
    try:
        reader.catch_up(timeout_s)
        return states
    finally:
        reader.close()
