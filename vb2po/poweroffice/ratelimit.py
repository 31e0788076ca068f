"""Client-side rate limit: stay inside PowerOffice's budget instead of learning it from 429s.

PowerOffice allows 10 requests/second per subscription key, shared by every client key and
every process. Each consumer process gets an equal share of 97 % of it; a reconcile in the
producer is held to `operator_requests_per_second` (0.3 by default), which fits in the
remaining 3 % (it asks for 500 invoices per call, so that is 150 invoices/s). The checks of
`config check` and of a settings change make three calls per invoice client and are not slowed.
Each share is a token bucket that all PowerOffice clients of the process share.
"""
from __future__ import annotations

import functools
import threading
import time
from typing import Callable

from vb2po import metrics
from vb2po.settings import RATE_HEADROOM as HEADROOM
from vb2po.settings import PowerOfficeSettings


class RateLimiter:
    """Token bucket: `rate` tokens per second, at most `burst` saved up. Thread-safe."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock, self._sleep = clock, sleep
        self._tokens = self.burst
        self._updated = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Take a token; returns how long the caller must wait before using it."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        wait = self.reserve()
        if wait > 0:
            metrics.RATE_LIMIT_WAIT.inc(wait)
            self._sleep(wait)
        return wait


class Unlimited:
    def acquire(self) -> float:
        return 0.0


def limiter_for(requests_per_second: float, instances: int) -> RateLimiter | Unlimited:
    """This process's share of the subscription key's budget; 0 turns the limit off.

    No burst: requests are spaced evenly, because a burst followed by the refill would put
    up to twice the budget into one sliding second."""
    if requests_per_second <= 0:
        return Unlimited()
    share = requests_per_second / max(1, instances) * HEADROOM
    return RateLimiter(share, burst=1.0)


def operator_limiter(po: PowerOfficeSettings) -> RateLimiter | Unlimited:
    """The operators' rate: one bucket per process, shared by concurrent reconciles."""
    return _operator_bucket(po.operator_requests_per_second if po.requests_per_second > 0 else 0.0)


@functools.lru_cache(maxsize=None)
def _operator_bucket(rate: float) -> RateLimiter | Unlimited:
    return RateLimiter(rate, burst=1.0) if rate > 0 else Unlimited()
