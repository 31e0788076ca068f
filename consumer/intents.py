"""Durable intents: "this payment's voucher may be on its way to PowerOffice".

PowerOffice is not documented to refuse a second voucher with the same ExternalImportReference,
so exactly once cannot rest on it. Before each POST the consumer claims the voucher's reference
in a compacted topic, and clears the claim once the Visma row is marked:

- An intent still there when the payment is applied again means an earlier attempt ended without
  an answer vb2po could trust (a timeout, a lost or cut response, a 5xx, a process that died
  between sending and marking): the consumer looks the reference up in PowerOffice first.
- An intent written by another process, or ended by a timeout, may belong to a request still on
  its way (a consumer that lost its partitions while alive; a server still working on a request
  the client gave up on): it is left to settle before the look-up.
- A claim is a compare-and-set on the topic's order: it wins only if no other record for the
  reference was written between the position the caller read the Visma row at and the claim
  itself. Two processes that race for one payment (a rebalance, a replay) cannot both win, and a
  process that finished the payment in between (posted, marked, cleared) is noticed too.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from dataclasses import asdict, dataclass
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from vb2po.errors import TransientError
from vb2po.kafka.compacted import CompactedTopicReader
from vb2po.settings import KafkaSettings

log = logging.getLogger(__name__)

CLAIM_TIMEOUT_S = 30.0
KEEP_CLEARED = 100_000  # cleared references whose last offset is remembered (claims older than that conflict)
PROCESS_OWNER = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"  # who wrote an intent
KEEP_BEFORE = 50_000  # records whose predecessor is remembered: a claim is judged moments after it is written


@dataclass(frozen=True)
class Intent:
    owner: str  # the consumer process that wrote it (its own intents need no settling)
    at: float  # unix time it was written
    customer_no: int
    posting_date: str  # ISO date: where to look for the voucher

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "Intent":
        data = json.loads(raw)
        return cls(str(data["owner"]), float(data["at"]), int(data["customer_no"]), str(data["posting_date"]))


@dataclass(frozen=True)
class Claim:
    won: bool  # nothing else was written for the reference since the caller read the row: post
    overtook: Intent | None = None  # (lost) the live intent the claim came after, whose request may be on its way


WON = Claim(True)


class IntentStore(Protocol):
    def position(self) -> int:
        """The log position everything before which is known: take it before reading the Visma row."""
        ...

    def get(self, reference: str) -> Intent | None: ...

    def claim(self, reference: str, intent: Intent, since: int) -> Claim:
        """Write the intent durably; won when no other record for `reference` lies between `since`
        and it (the caller may post); lost when something changed meanwhile (read the row again)."""
        ...

    def clear(self, reference: str) -> None:
        """Need not be durable at once: a stale intent only costs one look-up."""
        ...


class _Log:
    """The state both stores keep: the live intents and where each reference was last written."""

    def __init__(self) -> None:
        self.intents: dict[str, Intent] = {}
        self.last: dict[str, int] = {}  # reference -> offset of its last record (intent or clear)
        self.before: dict[int, tuple[int | None, Intent | None]] = {}  # offset -> what its reference was before it
        self.next = 0  # everything below this offset is applied
        self.horizon = 0  # below this, cleared references were forgotten

    def apply(self, offset: int, reference: str, intent: Intent | None) -> None:
        self.before[offset] = (self.last.get(reference), self.intents.get(reference))
        if len(self.before) > KEEP_BEFORE:
            del self.before[next(iter(self.before))]
        if intent is None:
            self.intents.pop(reference, None)
        else:
            self.intents[reference] = intent
        self.last[reference] = offset
        self.next = max(self.next, offset + 1)
        if len(self.last) > len(self.intents) + 2 * KEEP_CLEARED:
            self.horizon = self.next - KEEP_CLEARED
            self.last = {r: o for r, o in self.last.items() if o >= self.horizon or r in self.intents}

    def judge(self, offset: int, since: int) -> Claim:
        """Did the claim written at `offset` win: nothing else for its reference since `since`?"""
        if offset not in self.before or since < self.horizon:
            return Claim(False)  # cannot tell: the caller reads again
        previous, live = self.before[offset]
        if previous is None or previous < since:
            return WON
        return Claim(False, live)


class _LogReads:
    """What both stores answer from their `_log` under `_lock`."""

    _log: _Log
    _lock: threading.Lock

    def position(self) -> int:
        with self._lock:
            return self._log.next

    def get(self, reference: str) -> Intent | None:
        with self._lock:
            return self._log.intents.get(reference)


class MemoryIntentStore(_LogReads):
    """In one process (tests, the fake beside the Kafka store): `interleave` plays another
    process's write between a caller's read and its claim."""

    def __init__(self) -> None:
        self._log = _Log()
        self._lock = threading.Lock()
        self.claims = 0
        self.interleave: list[tuple[str, Intent | None]] = []

    @property
    def intents(self) -> dict[str, Intent]:
        return self._log.intents

    def claim(self, reference: str, intent: Intent, since: int) -> Claim:
        with self._lock:
            for other_reference, other in self.interleave:
                self._log.apply(self._log.next, other_reference, other)
            self.interleave = []
            offset = self._log.next
            self._log.apply(offset, reference, intent)
            self.claims += 1
            return self._log.judge(offset, since)

    def put(self, reference: str, intent: Intent) -> None:
        """Another process's intent, as the next record."""
        with self._lock:
            self._log.apply(self._log.next, reference, intent)

    def clear(self, reference: str) -> None:
        with self._lock:
            if reference in self._log.intents:
                self._log.apply(self._log.next, reference, None)


class KafkaIntentStore(_LogReads):
    """Intents in a compacted one-partition topic (key: the reference; a tombstone clears it).
    A claim is sent with acks=all and waited for, then the topic is read up to it to learn what
    came before it."""

    def __init__(self, kafka: KafkaSettings, producer: KafkaProducer):
        """`producer`: the consumer process's shared one (its owner closes it)."""
        self.topic = kafka.topics.intents
        self._producer = producer
        self._log = _Log()
        self._lock = threading.Lock()  # the log's state
        self._reading = threading.Lock()  # one reader at a time
        self._reader = CompactedTopicReader(kafka, self.topic, self._apply)

    def _apply(self, record) -> None:
        reference = record.key.decode("utf-8", "replace")
        intent = None
        if record.value is not None:
            try:
                intent = Intent.decode(record.value)
            except (ValueError, KeyError, TypeError):  # counts as written: it still moves the reference on
                log.warning("unreadable intent in %s for %s: taken as cleared", self.topic, reference)
        with self._lock:
            self._log.apply(record.offset, reference, intent)

    def claim(self, reference: str, intent: Intent, since: int) -> Claim:
        try:
            sent = self._producer.send(self.topic, key=reference.encode(), value=intent.encode())
            self._producer.flush(CLAIM_TIMEOUT_S)  # now, not after the linger (the lanes' claims, clears go along)
            offset = sent.get(timeout=CLAIM_TIMEOUT_S).offset
        except KafkaError as exc:
            raise TransientError(f"could not write the intent to post {reference}: {exc!r}", reason="kafka") from exc
        try:
            with self._reading:  # one read often serves the claims of several lanes
                if self.position() <= offset:
                    self._reader.read_through(offset, CLAIM_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            raise TransientError(f"could not read the intents back ({exc})", reason="kafka") from exc
        with self._lock:
            return self._log.judge(offset, since)

    def sync(self) -> None:
        """Read what is there (at start: claims judged against an unread log are lost and retried)."""
        try:
            with self._reading:
                self._reader.catch_up(CLAIM_TIMEOUT_S)
        except (TimeoutError, KafkaError) as exc:
            log.warning("could not read the intents (%s): claims are judged once they are read", exc)

    def clear(self, reference: str) -> None:
        try:
            self._producer.send(self.topic, key=reference.encode(), value=None)
        except KafkaError as exc:  # a stale intent costs one look-up later, nothing more
            log.warning("could not clear the intent for %s (%s)", reference, exc)

    def close(self) -> None:
        self._reader.close()
