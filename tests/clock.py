"""A clock a test sets and moves by hand."""
from __future__ import annotations

from datetime import datetime, timedelta


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)
