"""The next page of a backlog, read and encoded in a child process while this one is published.

Reading a page over ODBC and encoding its rows as events competed with kafka-python's `send()`
for the producer's one GIL (BENCHMARKS.md, "Producer"); in a process of its own it runs on the
other core. The child only answers "the page after this position, up to this change stamp, its
events produced at this moment": it keeps no cursor, so whatever the poll does with a page (a
failed transaction, an abort) the next request starts from the position the poller chooses,
which is its committed cursor.

One child per poll that has more than one page, stopped when the poll ends (so no more of them
run than companies are polled at once). It reads with its own connection from the company's
connection string and the selection `open_company` checked against the live table. It ends with
the producer: when the producer's end of the pipe closes (close(), exit, or a SIGKILL) its next
read or write fails and it exits. If it dies, `ReadAheadLost` says so and the poller reads
in-process instead.
"""
from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.forkserver
import signal
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from producer.reading import UnreadableRow, read_page
from producer.rows import BadRow, EncodedPayment, RowReader, row_position
from vb2po.errors import TransientError
from vb2po.visma.db import VismaDatabase
from vb2po.visma.queries import PaymentSelection, Position, pending_payments_page

log = logging.getLogger(__name__)
STOP_S = 5.0  # an idle child asked to stop exits at once; one that does not by then is killed

# Children are forked from a server process that has imported these already (~20 ms a child
# instead of ~0.5 s for a fresh interpreter); nothing of the producer's threads or connections
# is in that server. `prepare()` starts it ahead of the first backlog.
_CONTEXT = multiprocessing.get_context("forkserver")
_CONTEXT.set_forkserver_preload([__name__])


def prepare() -> None:
    """Start the server the read-ahead processes are forked from (else the first backlog waits for it)."""
    try:
        multiprocessing.forkserver.ensure_running()
    except OSError as exc:  # (the polls read in-process then, see `ReadAheadLost`)
        log.warning("cannot start the read-ahead fork server: %s", exc)


@dataclass(frozen=True)
class PageSource:
    """What the child needs to read and encode one company's pages (all of it picklable)."""

    connection_string: str
    dialect: str
    selection: PaymentSelection  # column names checked against the live table by `open_company`
    reader: RowReader
    page_size: int


class RowFacts(NamedTuple):
    """What the poller needs of a row read in the child besides its event: its key and customer."""

    jno: Any
    entno: Any
    cust_no: Any

    @property
    def key(self) -> str:
        return f"JNo={self.jno};EntNo={self.entno}"


Page = tuple[list, dict[int, EncodedPayment | BadRow], dict[int, Position | None]]


class ReadAheadLost(TransientError):
    """The read-ahead process died or cannot be reached."""

    reason = "read_ahead_lost"


# A row as it crosses the pipe: its facts, position and event as plain tuples (pickled at a third
# of the cost of the named tuples and dataclass they stand for), or the UnreadableRow / BadRow.
WireRow = tuple[tuple | UnreadableRow, tuple[int, int, int, int] | None, tuple | BadRow | None]


def read_encoded_page(db: VismaDatabase, source: PageSource, start: Position | None, upper: tuple[int, int],
                      now: datetime) -> list[WireRow]:
    """The page after `start`: each row's facts, position, and event (or why it has none)."""
    sel, reader = source.selection, source.reader

    def query_page(keys_only: bool) -> tuple[str, list]:
        return pending_payments_page(db.dialect, sel, start, upper, source.page_size, keys_only=keys_only)
    encode = reader.encoder(now)
    out: list[WireRow] = []
    for row in read_page(db, sel, query_page, reader.company_no):
        if isinstance(row, UnreadableRow):
            out.append((row, _plain_position(row.position()), None))
            continue
        try:
            event: tuple | BadRow = tuple(encode(row))
        except BadRow as exc:
            event = exc
        out.append(((row.jno, row.entno, row.cust_no), _plain_position(row_position(row)), event))
    return out


def _plain_position(p: Position | None) -> tuple[int, int, int, int] | None:
    return None if p is None else (p.ch_dt, p.ch_time, p.jno, p.entno)


def _serve(conn: Connection, source: PageSource) -> None:
    """The child: answer page requests until the producer's end of the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (a Ctrl-C reaches the producer, which stops this)
    db = VismaDatabase(source.connection_string, source.dialect, autocommit=True, one_connection=True)
    try:
        while True:
            try:
                start, upper, now = conn.recv()
            except (EOFError, OSError):
                return
            reply: tuple[str, Any]
            try:
                reply = ("page", read_encoded_page(db, source, start, upper, now))
            except Exception as exc:  # noqa: BLE001 - handed to the poller, which raises it as its own read would
                reply = ("error", exc)
            try:
                conn.send(reply)
            except (BrokenPipeError, ConnectionError, OSError):
                return
            except Exception as exc:  # noqa: BLE001 - an error that does not pickle: its text does
                conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    finally:
        db.close_all()


class ReadAhead:
    """A child process reading pages ahead for one poll; `request()` one page, `result()` waits for it."""

    def __init__(self, source: PageSource):
        self._conn, child_end = _CONTEXT.Pipe()
        self.process = _CONTEXT.Process(target=_serve, args=(child_end, source), name="payments-read-ahead",
                                        daemon=True)
        try:
            self.process.start()
        except (OSError, EOFError) as exc:  # (no process to be had: out of memory, the fork server gone)
            self._conn.close()
            raise ReadAheadLost(f"the read-ahead process could not start: {exc!r}") from exc
        finally:
            child_end.close()  # (only the child holds it now: its death closes the pipe)
        self._pending = False

    def request(self, start: Position | None, upper: tuple[int, int], now: datetime) -> None:
        """Read the page after `start` (up to `upper`), its events produced at `now`."""
        try:
            self._conn.send((start, upper, now))
        except (OSError, ValueError) as exc:
            raise ReadAheadLost(f"the read-ahead process is gone: {exc!r}") from exc
        self._pending = True

    def result(self) -> Page:
        """The rows, and by each row's id() its event or why it has none, and its position; raises
        the read's error, or `ReadAheadLost`."""
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise ReadAheadLost(f"the read-ahead process died (exit code {self.process.exitcode})") from exc
        finally:
            self._pending = False
        if kind == "error":
            raise payload
        rows: list[RowFacts | UnreadableRow] = []
        encoded: dict[int, EncodedPayment | BadRow] = {}
        positions: dict[int, Position | None] = {}
        facts_of, event_of = RowFacts._make, EncodedPayment._make
        for facts, position, event in payload:
            row = facts if isinstance(facts, UnreadableRow) else facts_of(facts)
            rows.append(row)
            positions[id(row)] = None if position is None else Position(*position)
            if event is not None:
                encoded[id(row)] = event if isinstance(event, BadRow) else event_of(event)
        return rows, encoded, positions

    def close(self) -> None:
        """Stop the child: at once if it is reading a page no one will take (the poll failed)."""
        if self._pending:
            self.process.kill()
        self._conn.close()
        self.process.join(STOP_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
