"""The two kinds of failure. Every edge maps its own errors to one of these, in one place;
`as_vb2po_error` is the last word on anything an edge did not map (a bug, bad input)."""
from __future__ import annotations


class Vb2poError(Exception):
    """Base class; carries a short machine-readable reason for metrics and dead letters."""

    reason: str = "error"

    def __init__(self, message: str, *, reason: str | None = None):
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def __reduce__(self):  # (pickled from a child process: with its reason, which is not an argument of `args`)
        return type(self), self.args, self.__dict__

    @property
    def exception_class(self) -> str:
        """The class of the exception this one stands for (the original, when it was mapped)."""
        cause = self.__cause__
        return _qualified(cause) if cause is not None and not isinstance(cause, Vb2poError) else _qualified(self)


class TransientError(Vb2poError):
    """Worth retrying with backoff: timeouts, 5xx, 429, lost connections, deadlocks."""

    reason = "transient"

    def __init__(self, message: str, *, reason: str | None = None, retry_after: float | None = None):
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class TerminalError(Vb2poError):
    """Retrying cannot help: the event goes to the dead-letter topic with this reason."""

    reason = "terminal"


UNEXPECTED = "unexpected"


def _qualified(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def as_vb2po_error(exc: BaseException) -> TransientError | TerminalError:
    """What an exception no edge mapped means for the record or row being processed.

    Connection-level failures (`OSError`, `TimeoutError`, Kafka's retriable errors) may pass:
    transient. Anything else (an `OverflowError` from a driver, `decimal.InvalidOperation`, a
    `KeyError` in a bug) will fail again the same way: terminal, with the exception's class, so
    the record is dead-lettered once instead of being retried for ever.
    """
    if isinstance(exc, (TransientError, TerminalError)):
        return exc
    message = f"{_qualified(exc)}: {exc}"[:2000]
    error: TransientError | TerminalError
    if isinstance(exc, (ConnectionError, TimeoutError)) or _retriable_kafka(exc) or (
            isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, PermissionError))):
        error = TransientError(message, reason="unavailable")
    else:
        error = TerminalError(message, reason=UNEXPECTED)
    error.__cause__ = exc
    return error


def _retriable_kafka(exc: BaseException) -> bool:
    try:
        from kafka.errors import KafkaError
    except ImportError:  # pragma: no cover - kafka-python is a dependency
        return False
    return isinstance(exc, KafkaError) and bool(getattr(exc, "retriable", False))
