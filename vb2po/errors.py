"""The two kinds of failure. Every edge maps its own errors to one of these, in one place."""
from __future__ import annotations


class Vb2poError(Exception):
    """Base class; carries a short machine-readable reason for metrics and dead letters."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class TransientError(Vb2poError):
    """Worth retrying with backoff: timeouts, 5xx, 429, lost connections, deadlocks."""

    reason = "transient"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: float | None = None):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class TerminalError(Vb2poError):
    """Retrying cannot help: the event goes to the dead-letter topic with this reason."""

    reason = "terminal"
