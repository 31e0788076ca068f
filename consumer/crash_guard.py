"""Recognising a record that takes the whole process down, so it is dead-lettered instead of
crash-looping the consumer.

An exception is caught by the per-record boundary (`consumer.handler`); a crash is not (out of
memory, a driver segfault, a kill by the kernel). What survives the crash is the partition's
committed offset, and the commit's metadata string. So just before a session starts processing
the record at its partition's committed offset O, it writes a mark into that metadata: "record O
started n times, m of them alone". A commit past O clears the mark (plain commits carry no
metadata), and so does a clean shutdown. A session that finds a mark at O therefore knows that
sessions before it died while O was in flight:

- a mark at O: the record is processed *alone* first (the process holds back every other
  record), so a crash then can only be this record's;
- a mark that says O died alone `give_up_alone` times: O is dead-lettered without being applied.

A session killed while it starts up (before it processes anything) leaves no mark.
Pure: the metadata format and the decision. The consumer service does the commits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

GIVE_UP_ALONE = 2  # sessions that died while the record ran alone, before it is set aside
ISOLATION_S = 15.0  # how long the suspect record runs alone before the others resume (it is not crashing)

NORMAL, ISOLATE, GIVE_UP = "normal", "isolate", "give_up"
NO_OFFSET = -1  # a partition with nothing committed yet


@dataclass(frozen=True)
class Mark:
    offset: int
    started: int  # sessions that started processing the record at `offset` and never finished it
    alone: int  # of those, the ones that ran it alone

    def metadata(self) -> str:
        return json.dumps({"vb2po_started": self.offset, "n": self.started, "alone": self.alone}, separators=(",", ":"))

    def next(self, *, alone: bool) -> "Mark":
        """The mark this session writes before it processes the record."""
        return Mark(self.offset, self.started + 1, self.alone + int(alone))


def read_mark(committed_offset: int, metadata: str | None) -> Mark:
    """What the last commit says about the record at `committed_offset` (nothing: a fresh mark)."""
    try:
        data = json.loads(metadata) if metadata else {}
        if isinstance(data, dict) and data.get("vb2po_started") == committed_offset:
            started = max(0, min(int(data.get("n", 0)), 1000))
            alone = max(0, min(int(data.get("alone", 0)), started))
            return Mark(committed_offset, started, alone)
    except (ValueError, TypeError):
        pass
    return Mark(committed_offset, 0, 0)


def verdict(mark: Mark) -> str:
    if mark.alone >= GIVE_UP_ALONE:
        return GIVE_UP
    if mark.started > 0:
        return ISOLATE
    return NORMAL
