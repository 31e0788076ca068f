"""Logging for every vb2po process: one JSON object per line (the default of the producer and
the consumer, for log collectors), or plain text for people (`--log-format text`, or
VB2PO_LOG_FORMAT=text).

Lines about an event carry `event_id`, `company` and `customer` as fields of their own. They
come from two places, merged (the second wins):
- the event context: `event_context(...)` binds fields for everything logged inside the block
  in this thread (the consumer binds them around the handling of one record), `bind_event(...)`
  adds to the innermost block;
- the `extra=` of one call: `log.warning("...", extra={"company": 1, "customer": 10001})`.

Never pass secrets as fields: keys that look like one (password, token, key, odbc, ...) are
masked anyway, as a last line of defence.
"""
from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator, TextIO

FORMATS = ("json", "text")
FORMAT_ENV = "VB2PO_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EVENT_FIELDS = ("event_id", "company", "customer")  # first in a line, in this order

# (never mutated: each change sets a new dict)
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("vb2po_log_context", default={})  # noqa: B039

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_SECRET_KEY = re.compile(r"password|passwd|secret|token|(application|subscription|client|api|private)_key|"
                         r"authorization|odbc|connection_string|^dsn$", re.IGNORECASE)
MASK = "**********"


@contextmanager
def event_context(**fields: Any) -> Iterator[None]:
    """Bind `fields` (None values are left out) to every line logged in this block, in this thread."""
    token = _context.set({**_context.get(), **_present(fields)})
    try:
        yield
    finally:
        _context.reset(token)


def bind_event(**fields: Any) -> None:
    """Add `fields` to the current context; undone when the enclosing `event_context` ends."""
    _context.set({**_context.get(), **_present(fields)})


def current_context() -> dict[str, Any]:
    return dict(_context.get())


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


class ContextFilter(logging.Filter):
    """Stamps the event context on each record when it is logged (a handler that formats later,
    in another thread, still sees the context of the thread that logged)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "_vb2po_context"):
            record._vb2po_context = _context.get()
        return True


class ClosingClientNoise(logging.Filter):
    """kafka-python logs "Metadata refresh: failed Cancelled" at ERROR whenever a client closes
    while a metadata request is out (every short-lived reader does): not an error an operator
    should be woken by, so it is left out. Any other metadata failure still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        from kafka.errors import Cancelled

        return not (record.msg == "Metadata refresh: failed %s" and isinstance(record.args, tuple) and record.args
                    and isinstance(record.args[0], Cancelled))


class KafkaClientNoise(logging.Filter):
    """kafka-python's own lines: never above WARNING (its ERROR "Connection failed" and
    "Connection lost" repeat for as long as a broker is away, and what vb2po cannot do about
    it, vb2po says itself, once per try, at ERROR), and one line of a kind per logger a minute:
    the next one says how many were left out (`repeats_left_out`)."""

    def __init__(self, every_s: float = 60.0, clock=None) -> None:
        super().__init__()
        import time

        self.every_s = every_s
        self.clock = clock or time.monotonic
        self._last: dict[tuple[str, Any], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not (record.name == "kafka" or record.name.startswith("kafka.")):
            return True
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        key, now = (record.name, record.msg), self.clock()
        with self._lock:
            shown_at, left_out = self._last.get(key, (None, 0))
            if shown_at is not None and now - shown_at < self.every_s:
                self._last[key] = (shown_at, left_out + 1)
                return False
            self._last[key] = (now, 0)
        if left_out:
            record.repeats_left_out = left_out
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The event context and the `extra=` fields of `record`, event fields first, secrets masked."""
    context = getattr(record, "_vb2po_context", None)
    fields = {**(_context.get() if context is None else context),
              **{k: v for k, v in record.__dict__.items() if k not in _RECORD_ATTRIBUTES and not k.startswith("_")}}
    ordered = {k: fields.pop(k) for k in EVENT_FIELDS if k in fields}
    ordered.update(fields)
    return {k: (MASK if _SECRET_KEY.search(k) else _plain(v)) for k, v in ordered.items()}


def _plain(value: Any) -> Any:
    """A JSON-ready value: numbers, strings, booleans, None as they are; anything else as str()
    (a pydantic SecretStr prints masked)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class JsonFormatter(logging.Formatter):
    """{"time": ..., "level": ..., "logger": ..., "message": ..., "event_id": ..., ...} per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record_fields(record).items():
            line.setdefault(key, value)  # a field never overwrites the four above
        if record.threadName and record.threadName != "MainThread":
            line["thread"] = record.threadName
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic line, with the event fields appended: `... message [event_id=... company=1 customer=10001]`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = record_fields(record)
        if not fields:
            return text
        first, _, rest = text.partition("\n")  # a traceback stays below the line
        line = first + " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]"
        return line + ("\n" + rest if rest else "")


def resolve_format(requested: str | None, default: str = "json") -> str:
    """`requested` (the command line) wins over VB2PO_LOG_FORMAT, which wins over `default`."""
    chosen = (requested or os.environ.get(FORMAT_ENV) or default).strip().lower()
    if chosen not in FORMATS:
        raise ValueError(f"unknown log format {chosen!r}; use one of {', '.join(FORMATS)}")
    return chosen


def configure_logging(log_format: str | None = None, *, default: str = "json", verbose: bool = False,
                      stream: TextIO | None = None, force: bool = False) -> str:
    """Configure the root logger of this process; returns the format chosen.

    Like `logging.basicConfig`, it leaves a root logger alone that already has handlers of
    someone else (e.g. pytest's, when a command runs in-process) unless `force`. When it
    installs its handler, it also routes uvicorn's loggers (the ops, admin and sandbox servers)
    through it, so every line of a process has one format, and logs uncaught exceptions.
    """
    chosen = resolve_format(log_format, default)
    root = logging.getLogger()
    logging.getLogger("kafka").setLevel(logging.WARNING)  # and KafkaClientNoise keeps it there
    cluster = logging.getLogger("kafka.cluster")
    if not any(isinstance(f, ClosingClientNoise) for f in cluster.filters):
        cluster.addFilter(ClosingClientNoise())
    ours = [h for h in root.handlers if getattr(h, "_vb2po", False)]
    if len(ours) < len(root.handlers) and not force:
        return chosen
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._vb2po = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    handler.addFilter(KafkaClientNoise())
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root.addHandler(handler)
    _route_uvicorn_to_root()
    _log_uncaught_exceptions()
    return chosen


def _route_uvicorn_to_root() -> None:
    """uvicorn applies its own logging config (own handlers and plain-text formatters) whenever a
    server starts; make that default config leave the handlers to the root logger instead."""
    try:
        from uvicorn.config import LOGGING_CONFIG
    except ImportError:  # pragma: no cover - uvicorn is a dependency
        return
    for logger in LOGGING_CONFIG.get("loggers", {}).values():
        logger["handlers"] = []
        logger["propagate"] = True


def _log_uncaught_exceptions() -> None:
    log = logging.getLogger("vb2po")

    def excepthook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        log.critical("uncaught exception", exc_info=(exc_type, exc, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        # ignore: typeshed wants an exception in the tuple; ExceptHookArgs.exc_value may be None, which logging formats too
        log.critical("uncaught exception in thread %s", getattr(args.thread, "name", "?"),
                     exc_info=(args.exc_type, args.exc_value, args.exc_traceback))  # type: ignore[arg-type]

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
