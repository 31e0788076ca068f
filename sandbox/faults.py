"""Switchable faults for API routes (/v2 only; never the token or control routes).

Per request, in this order:
- `latency_ms`: added delay before the request is handled (asyncio sleep, no lock held).
- `error_share` of requests answered `error_status` (default 503) without being handled.
- `timeout_share` of requests held `hold_seconds`, then answered 504 without being handled:
  a client with a shorter read timeout sees a timeout, and nothing was written.
- `lost_response_share` of writes (POST/PATCH) handled and committed, then the answer is
  lost. `lost_response_mode` "drop": the status line and headers go out, then the
  connection is closed before the body (requests raises ChunkedEncodingError/
  ConnectionError); "hold": the answer is held `hold_seconds` (the client times out).
Shares are drawn from a RNG seeded with `seed`, so a run is repeatable. `path_contains`
narrows every fault to paths containing that text (e.g. "Vouchers").
"""
from __future__ import annotations

import random
import threading
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    latency_ms: int = Field(0, ge=0, le=600_000)
    error_share: float = Field(0.0, ge=0.0, le=1.0)
    error_status: int = Field(503, ge=500, le=599)
    timeout_share: float = Field(0.0, ge=0.0, le=1.0)
    hold_seconds: float = Field(30.0, ge=0.0, le=3600.0)
    lost_response_share: float = Field(0.0, ge=0.0, le=1.0)
    lost_response_mode: Literal["drop", "hold"] = "drop"
    path_contains: str | None = None
    seed: int = 0

    @property
    def active(self) -> bool:
        return bool(self.latency_ms or self.error_share or self.timeout_share or self.lost_response_share)


@dataclass(frozen=True)
class FaultPlan:
    """What happens to one request."""

    latency_s: float = 0.0
    error_status: int | None = None
    hold_then_timeout_s: float | None = None
    lose_response: Literal["drop", "hold"] | None = None
    lost_hold_s: float = 0.0


NO_FAULT = FaultPlan()


class ResponseLost(Exception):
    """Raised after the headers went out, so the server closes the connection mid-response."""


class FaultInjector:
    def __init__(self, settings: FaultSettings | None = None):
        self._lock = threading.Lock()
        self._settings = settings or FaultSettings()
        self._rng = random.Random(self._settings.seed)

    @property
    def settings(self) -> FaultSettings:
        return self._settings

    def configure(self, settings: FaultSettings) -> None:
        """Replace all faults at once; the RNG restarts from the new seed."""
        with self._lock:
            self._settings = settings
            self._rng = random.Random(settings.seed)

    def plan(self, method: str, path: str) -> FaultPlan:
        s = self._settings
        if not s.active or (s.path_contains and s.path_contains.lower() not in path.lower()):
            return NO_FAULT
        with self._lock:
            rolls = [self._rng.random() for _ in range(3)]  # always three draws: repeatable sequences
        latency = s.latency_ms / 1000.0
        if rolls[0] < s.error_share:
            return FaultPlan(latency_s=latency, error_status=s.error_status)
        if rolls[1] < s.timeout_share:
            return FaultPlan(latency_s=latency, hold_then_timeout_s=s.hold_seconds)
        if method in WRITE_METHODS and rolls[2] < s.lost_response_share:
            return FaultPlan(latency_s=latency, lose_response=s.lost_response_mode, lost_hold_s=s.hold_seconds)
        return FaultPlan(latency_s=latency)
