"""Failed sign-ins and bad tokens, per client address: a limit, and one audit record per burst.

Each failure (a missing, invalid, expired or revoked token on the API; a wrong token on the
console's sign-in page) takes one unit from its address's bucket: `capacity` units, one coming
back every `1 / refill_per_s` seconds. With the bucket empty, the address's next attempts are
refused (HTTP 429, `Retry-After`) before any token is looked at, until a unit has come back.
Requests that authenticate take nothing.

Failures from one address that follow each other within `quiet_s` form a burst, and a burst is
audited once, when it is over (`quiet_s` without a failure, `max_burst_s` after it began, or
at shutdown): how many attempts were refused, how many of them unexamined, their kinds, the
users the tokens named, the paths, first and last time. A log line says when a burst begins.

Behind a reverse proxy every request comes from the proxy's address: they then share one bucket.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from admin.api.audit import AuditEntry

log = logging.getLogger(__name__)

AUDIT_ACTION = "auth.failed"


@dataclass
class Burst:
    remote: str
    first_at: datetime
    last_at: datetime
    began: float  # monotonic
    last: float  # monotonic
    refused: int = 0  # examined and refused (401)
    throttled: int = 0  # refused unexamined (429)
    kinds: Counter = field(default_factory=Counter)
    actors: set = field(default_factory=set)
    paths: Counter = field(default_factory=Counter)

    @property
    def attempts(self) -> int:
        return self.refused + self.throttled

    def entry(self) -> AuditEntry:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
        return AuditEntry(
            action=AUDIT_ACTION, outcome="unauthenticated", actor=None, remote=self.remote, status=401,
            target={"attempts": self.attempts, "refused": self.refused, "throttled": self.throttled,
                    "kinds": dict(self.kinds), "users": sorted(self.actors), "paths": dict(self.paths.most_common(10)),
                    "first_at": self.first_at.isoformat(), "last_at": self.last_at.isoformat()},
            detail=(f"{self.attempts} failed sign-in(s) or bad token(s) from {self.remote} between "
                    f"{self.first_at.isoformat()} and {self.last_at.isoformat()} ({kinds}); "
                    f"{self.throttled} refused unexamined by the rate limit"),
            at=self.first_at.isoformat(),
        )


class FailedAuthLimiter:
    def __init__(self, *, capacity: float = 10, refill_per_s: float = 1 / 6, quiet_s: float = 60,
                 max_burst_s: float = 3600, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self.quiet_s = quiet_s
        self.max_burst_s = max_burst_s
        self._clock = clock
        self._wall = wall
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # remote -> (units, when)
        self._bursts: dict[str, Burst] = {}

    def _units(self, remote: str, now: float) -> float:
        units, when = self._buckets.get(remote, (self.capacity, now))
        return min(self.capacity, units + (now - when) * self.refill_per_s)

    def _burst(self, remote: str, now: float) -> Burst:
        burst = self._bursts.get(remote)
        if burst is None:
            wall = self._wall()
            burst = self._bursts[remote] = Burst(remote, wall, wall, now, now)
            log.warning("failed sign-in or bad token from %s; further failures from this address are counted "
                        "into one audit record", remote)
        burst.last, burst.last_at = now, self._wall()
        return burst

    def retry_after(self, remote: str, path: str = "") -> float | None:
        """None when `remote` may try to authenticate now; else the seconds it must wait (the
        attempt is counted into the address's burst, unexamined)."""
        now = self._clock()
        with self._lock:
            units = self._units(remote, now)
            if units >= 1:
                return None
            burst = self._burst(remote, now)
            burst.throttled += 1
            burst.paths[path] += 1
            return max(1.0, (1 - units) / self.refill_per_s)

    def failed(self, remote: str, kind: str, *, user: str | None = None, path: str = "") -> None:
        """An attempt from `remote` was refused after examination (HTTP 401)."""
        now = self._clock()
        with self._lock:
            self._buckets[remote] = (max(0.0, self._units(remote, now) - 1), now)
            burst = self._burst(remote, now)
            burst.refused += 1
            burst.kinds[kind] += 1
            burst.paths[path] += 1
            if user:
                burst.actors.add(user)

    def finished_bursts(self, *, everything: bool = False) -> list[Burst]:
        """Bursts that are over (all of them with `everything`), taken out: audit each once."""
        now = self._clock()
        with self._lock:
            done = [r for r, b in self._bursts.items()
                    if everything or now - b.last >= self.quiet_s or now - b.began >= self.max_burst_s]
            out = [self._bursts.pop(r) for r in done]
            for remote, (units, when) in list(self._buckets.items()):  # forget addresses that are whole again
                if remote not in self._bursts and units + (now - when) * self.refill_per_s >= self.capacity:
                    del self._buckets[remote]
        return out
