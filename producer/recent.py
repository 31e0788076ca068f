"""What the producer published lately, and when: pure bookkeeping for the re-scan and the sweep.

Two questions need an answer on every poll and sweep, without asking Kafka:

- *Was this key published already?* Each poll re-reads the unmarked payments changed in the
  last `overlap_s` behind the cursor, to find rows whose transaction committed after the cursor
  passed their change time. A row found there is published only if its key is not in
  `RecentlyPublished`: the keys published lately whose change time is still inside that window
  (or whose publication is younger than the sweep's grace period), each with the time it was
  published.
- *Was this payment published long enough ago to sweep it again?* Payments published by the
  cursor are not remembered one by one (a backlog of a million would have to be): the cursor's
  own history answers instead. `cursor_marks` are (time, cursor) pairs; everything at or behind
  the cursor as it stood `grace` seconds ago was published at least `grace` ago, or never.
  A payment the sweep published is remembered with how often the sweep has published it, and
  waits twice as long each time (`sweep_hold`, up to a day): one that stays unmarked (the
  consumer dead-lettered it) is not published again every sweep for ever.

Both are kept in the producer's compacted state topic (`producer.state`), so a restart rebuilds
them: the key set as one record per published batch (tombstoned once it no longer matters), the
marks inside the company record.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from vb2po.visma.queries import Position

Key = tuple[int, int]  # (JNo, EntNo)
Mark = tuple[float, Position]  # (unix time, the cursor from then on)

KEYS_PER_BATCH = 1000  # one state record: ~35 kB of JSON, far below Kafka's 1 MB message limit
MAX_KEYS = 200_000  # beyond this the oldest batches are forgotten (a republish, never a loss)
MARKS_PER_GRACE = 8  # cursor marks kept per grace period: a mark is at most grace/8 younger than it could be
MAX_SWEEP_HOLD_S = 86_400.0  # a payment the sweep keeps finding unmarked is published again at least daily


def sweep_hold(sweeps: int, grace_s: float) -> float:
    """How long after its last publication a payment the sweep published `sweeps` times (0: only
    the poll did) waits before the sweep publishes it again: the grace period, doubled each time."""
    return grace_s if sweeps <= 0 else min(grace_s * 2.0 ** min(sweeps, 32), max(grace_s, MAX_SWEEP_HOLD_S))


@dataclass(frozen=True)
class PublishedBatch:
    """Keys published in one Kafka transaction (or part of one), as one state record."""

    seq: int
    at: float  # unix time of publication
    positions: tuple[Position, ...]
    sweeps: int = 0  # how often the sweep has published these keys (0: the poll published them)

    @property
    def newest(self) -> tuple[int, int]:
        """The latest change time (ChDt, time) among its rows."""
        return max((p.ch_dt, p.ch_time) for p in self.positions) if self.positions else (0, 0)


class RecentlyPublished:
    """The keys published lately: key -> when, and in which batch (for forgetting it again)."""

    def __init__(self, batches: Iterable[PublishedBatch] = ()):
        self._batches: dict[int, PublishedBatch] = {}
        self._by_key: dict[Key, tuple[int, float, int]] = {}  # key -> (batch, published at, sweeps)
        self.next_seq = 1
        for batch in sorted(batches, key=lambda b: b.seq):
            self.add(batch)

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: Key) -> bool:
        return key in self._by_key

    def published_at(self, key: Key) -> float | None:
        found = self._by_key.get(key)
        return None if found is None else found[1]

    def sweeps(self, key: Key) -> int:
        """How often the sweep has published the key as far as remembered (0: not by the sweep)."""
        found = self._by_key.get(key)
        return 0 if found is None else found[2]

    def batches(self) -> list[PublishedBatch]:
        return [self._batches[s] for s in sorted(self._batches)]

    def new_batches(self, positions: Sequence[Position], at: float, *, swept: bool = False) -> list[PublishedBatch]:
        """`positions` as batches with the next sequence numbers (not added yet: that waits for the
        commit; a transaction that fails leaves a gap in the numbers, nothing else). `swept`: the
        sweep published them, each once more than it had before."""
        groups: dict[int, list[Position]] = {}
        for p in positions:
            groups.setdefault(self.sweeps((p.jno, p.entno)) + 1 if swept else 0, []).append(p)
        out = []
        for sweeps, group in sorted(groups.items()):
            for first in range(0, len(group), KEYS_PER_BATCH):
                out.append(PublishedBatch(self.next_seq, at, tuple(group[first:first + KEYS_PER_BATCH]), sweeps))
                self.next_seq += 1
        return out

    def add(self, batch: PublishedBatch) -> None:
        self._batches[batch.seq] = batch
        self.next_seq = max(self.next_seq, batch.seq + 1)
        for p in batch.positions:
            self._by_key[(p.jno, p.entno)] = (batch.seq, batch.at, batch.sweeps)

    def remove(self, seqs: Iterable[int]) -> None:
        for seq in seqs:
            batch = self._batches.pop(seq, None)
            if batch is None:
                continue
            for p in batch.positions:
                key = (p.jno, p.entno)
                if self._by_key.get(key, (None,))[0] == seq:  # a later batch may hold it again
                    del self._by_key[key]

    def expired(self, window_start: tuple[int, int] | None, now: float, grace_s: float,
                sweep_interval_s: float = 0.0) -> list[int]:
        """Batches that matter no more: every row changed before the re-scan window, and published
        longer than the grace period ago; one the sweep published, also a sweep interval after its
        hold ended (so the next sweep still knows how often it published them). Plus the oldest,
        while more than MAX_KEYS are held."""
        def kept_s(b: PublishedBatch) -> float:
            return grace_s if b.sweeps == 0 else sweep_hold(b.sweeps, grace_s) + sweep_interval_s + grace_s

        old = [b.seq for b in self._batches.values()
               if b.at <= now - kept_s(b) and (window_start is None or b.newest < window_start)]
        held = len(self._by_key) - sum(len(self._batches[s].positions) for s in old)
        for seq in sorted(self._batches):
            if held <= MAX_KEYS:
                break
            if seq not in old:
                old.append(seq)
                held -= len(self._batches[seq].positions)
        return old


def mark_cursor(marks: tuple[Mark, ...], at: float, cursor: Position, grace_s: float) -> tuple[Mark, ...]:
    """The cursor history after the cursor moved to `cursor` at `at`.

    Marks closer together than grace/MARKS_PER_GRACE are merged into the later one, and marks
    older than the newest one that is already a grace period old are dropped, so a handful remain.
    Merging into the later mark only ever makes the sweep wait longer, never sweep too soon.
    """
    if marks and marks[-1][1] == cursor:
        return marks
    spacing = grace_s / MARKS_PER_GRACE
    if len(marks) >= 2 and at - marks[-2][0] < spacing:
        marks = marks[:-1]
    marks = (*marks, (at, cursor))
    return prune_marks(marks, at, grace_s)


def prune_marks(marks: tuple[Mark, ...], now: float, grace_s: float) -> tuple[Mark, ...]:
    old = [i for i, (t, _) in enumerate(marks) if t <= now - grace_s]
    return marks[old[-1]:] if old else marks


def horizon(marks: tuple[Mark, ...], now: float, grace_s: float) -> Position | None:
    """Where the cursor stood `grace_s` ago: at or behind it, a payment was published at least
    that long ago (or never). None: nothing is known to be that old."""
    found = None
    for t, position in marks:
        if t <= now - grace_s:
            found = position
        else:
            break
    return found
