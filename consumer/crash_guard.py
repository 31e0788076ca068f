"""Recognising a record that takes the whole process down, so it is dead-lettered instead of
crash-looping the consumer.

An exception is caught by the per-record boundary (`consumer.handler`); a crash is not (out of
memory, a driver segfault, a kill by the kernel). What survives a crash is each partition's
committed offset and the commit's metadata string. So every commit says what was in flight on
its partition: "records `at` to `upto` had started" (the commit is written before new records
start). A plain commit with nothing in flight carries no metadata.

A session that takes a partition whose commit says records were in flight knows that the session
before it stopped without finishing them: a crash, a kill, or a rebalance. It cannot tell which,
so it runs those records one by one, each *alone* (every other record of every partition waits),
and writes into the commit which record runs alone and how many sessions died with it running
alone. Then:

- once a record's first attempt returns (applied, failed, waiting for a retry), it did not take
  the process down: the next one runs alone; after `upto`, everything goes on as normal;
- a record that sessions died with it running alone `GIVE_UP_ALONE` times is dead-lettered
  without being applied, and the others go on.

A record merely slow (settling, backing off) is never set aside by restarts it had nothing to
do with, and a crasher costs `GIVE_UP_ALONE` + 1 restarts at most. Pure: the metadata format and
the decisions. The consumer service does the commits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

GIVE_UP_ALONE = 3  # sessions that died while the record ran alone (its first attempt never returned): set aside
ISOLATION_S = 15.0  # how long a suspect record runs alone at most before the next (it is not crashing, only slow)
# A death counts against the record running alone only this soon after it started: a record that
# crashes the process does so at once, while a slow one (a claim waiting on a lost broker) could
# otherwise be set aside by kills that had nothing to do with it (`make chaos` saw one).
CRASH_WINDOW_S = 5.0
WAIT_FOR_RECORD_S = 30.0  # a suspect range whose records never arrive (retention deleted them) is dropped
MAX_RANGE = 1_000_000  # (a hostile or corrupt commit cannot make a session run millions of records alone)


@dataclass(frozen=True)
class InFlight:
    """What a commit says about its partition."""

    at: int  # the committed offset (the next record to read)
    upto: int  # the last record started; upto < at: nothing in flight
    suspect: int | None = None  # the record running alone, if any
    alone: int = 0  # sessions (this one included) that ran `suspect` alone

    def metadata(self) -> str:
        if self.upto < self.at and self.suspect is None:
            return ""
        data: dict = {"vb2po_at": self.at, "upto": self.upto}
        if self.suspect is not None:
            data.update(suspect=self.suspect, alone=self.alone)
        return json.dumps(data, separators=(",", ":"))

    def alone_before(self, offset: int) -> int:
        """Sessions that died while `offset` ran alone."""
        return self.alone if self.suspect == offset else 0


def read_in_flight(committed_offset: int, metadata: str | None) -> InFlight | None:
    """What the last commit says was in flight; None: nothing (a clean commit, or metadata that is
    not ours or not about this offset)."""
    try:
        data = json.loads(metadata) if metadata else None
        if not isinstance(data, dict) or data.get("vb2po_at") != committed_offset:
            return None
        upto = min(int(data["upto"]), committed_offset + MAX_RANGE)
        suspect = data.get("suspect")
        if suspect is not None:
            suspect = int(suspect)
            if not committed_offset <= suspect <= committed_offset + MAX_RANGE:
                suspect = None
        alone = max(0, min(int(data.get("alone", 0)), 1000)) if suspect is not None else 0
        if upto < committed_offset and suspect is None:
            return None
        return InFlight(committed_offset, max(upto, suspect if suspect is not None else upto), suspect, alone)
    except (ValueError, TypeError, KeyError, OverflowError):  # (json gives Infinity as a float)
        return None


def give_up(in_flight: InFlight | None, offset: int) -> bool:
    """Is `offset` the record that sessions died with, alone, often enough to set it aside?"""
    return in_flight is not None and in_flight.alone_before(offset) >= GIVE_UP_ALONE
