"""Operator actions that outlive one HTTP request (fetch progress, reconcile runs), by id."""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from admin.actions.errors import NotFound

J = TypeVar("J")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(5)}"


class JobRegistry(Generic[J]):
    """The most recent `keep` jobs of one kind, in memory (the admin API runs in one process)."""

    def __init__(self, kind: str, keep: int = 50):
        self.kind = kind
        self.keep = keep
        self._jobs: OrderedDict[str, J] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, job_id: str, job: J) -> J:
        with self._lock:
            self._jobs[job_id] = job
            while len(self._jobs) > self.keep:
                self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> J:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no {self.kind} {job_id!r} (only the last {self.keep} are kept, and none across a restart)")
        return job

    def recent(self) -> list[J]:
        """The jobs kept, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))
