"""One Visma company database over pyodbc, and the one place that classifies database errors."""
from __future__ import annotations

import logging
import threading
from typing import Any, Iterator, Sequence

import pyodbc

from vb2po.errors import TerminalError, TransientError
from vb2po.visma.dialect import Dialect, DialectName, dialect_for, guess_dialect

log = logging.getLogger(__name__)

# SQLSTATE classes/codes worth a retry: connection trouble, deadlock/serialization, timeouts,
# server shutting down. Everything else is a bug or a schema problem that retrying cannot fix.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "HYT", "57P", "53")
_TRANSIENT_SQLSTATES = {"HY000"}  # drivers report lost sockets this way (psqlODBC "could not send")


def classify_db_error(exc: BaseException) -> TransientError | TerminalError:
    sqlstate = str(exc.args[0]) if getattr(exc, "args", None) else ""
    text = " ".join(str(a) for a in getattr(exc, "args", ()))
    if isinstance(exc, pyodbc.OperationalError) or sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return TransientError(f"database unavailable ({sqlstate}): {text}", reason="db_unavailable")
    if sqlstate in _TRANSIENT_SQLSTATES and any(
        hint in text.lower() for hint in ("connection", "server closed", "could not send", "terminat", "deadlock", "locked")
    ):
        return TransientError(f"database unavailable ({sqlstate}): {text}", reason="db_unavailable")
    return TerminalError(f"database error ({sqlstate}): {text}", reason="db_error")


def _unreadable(exc: Exception) -> TerminalError:
    """A value the driver could not convert, either way: text it cannot decode (UnicodeDecodeError),
    a number a parameter or column cannot hold (OverflowError), a decimal it cannot build. Retrying
    reads the same value again, so it is terminal for the row or event concerned."""
    return TerminalError(f"the database driver could not convert a value ({type(exc).__name__}: {str(exc)[:300]})",
                         reason="unconvertible_value")


MAX_KEPT_STATEMENTS = 8  # prepared statements kept per connection in `autocommit` mode


class _OneConnection:
    """Where `VismaDatabase(one_connection=True)` keeps its connection: like threading.local, shared."""


class VismaDatabase:
    """Lazily (re)connected pyodbc connections to one Visma company database, one per thread
    (a pyodbc connection must not be used by two threads at once).

    After a transient failure the thread's connection is dropped, so its next call reconnects.

    `autocommit`: for a reader that asks the same few questions again and again (the producer's
    polls): each SELECT is its own transaction, with no BEGIN and COMMIT round trips around it,
    and each statement's cursor is kept, so the driver prepares it once, not on every call. A
    quiet company's poll statement through psqlODBC costs the client ~60 us of CPU so instead of
    ~200 us with a new cursor and a COMMIT (BENCHMARKS.md, "Latency").
    """

    def __init__(self, connection_string: str, dialect: str | DialectName | None = None, *, login_timeout: int = 10,
                 autocommit: bool = False, one_connection: bool = False):
        """`one_connection`: one connection whichever thread calls, for a caller that never calls
        from two threads at once (the producer: a company's rounds run on any thread of its pool,
        one at a time), so a company costs the server one connection, not one per thread."""
        self.connection_string = connection_string
        self.dialect: Dialect = dialect_for(dialect or guess_dialect(connection_string))
        self._login_timeout = login_timeout
        self.autocommit = autocommit
        self._one_connection = one_connection
        self._local = self._holder()
        self._all: set[pyodbc.Connection] = set()
        self._all_lock = threading.Lock()

    @property
    def one_connection(self) -> bool:
        """One connection whichever thread calls (see `__init__`)."""
        return self._one_connection

    @property
    def _conn(self) -> pyodbc.Connection | None:
        return getattr(self._local, "conn", None)

    @_conn.setter
    def _conn(self, conn: pyodbc.Connection | None) -> None:
        old = getattr(self._local, "conn", None)
        with self._all_lock:
            if old is not None:
                self._all.discard(old)
            if conn is not None:
                self._all.add(conn)
        self._local.conn = conn
        self._local.statements = {}  # sql -> its kept cursor (autocommit mode)

    def _connection(self) -> pyodbc.Connection:
        if self._conn is None:
            try:
                self._conn = pyodbc.connect(self.connection_string, autocommit=self.autocommit, timeout=self._login_timeout)
            except pyodbc.Error as exc:
                # Failing to connect is worth retrying (server down, network); the message says
                # which database, never the connection string itself (it may hold a password).
                raise TransientError(f"cannot connect to the Visma database: {exc.args[-1] if exc.args else exc}",
                                     reason="db_unavailable") from exc
        return self._conn

    def _failed(self, exc: Exception) -> TransientError | TerminalError:
        error = classify_db_error(exc) if isinstance(exc, pyodbc.Error) else _unreadable(exc)
        if isinstance(error, TransientError):
            self.close()
        else:
            self._rollback_quietly()
        return error

    def _rollback_quietly(self) -> None:
        try:
            if self._conn is not None:
                self._conn.rollback()
        except pyodbc.Error:
            self.close()

    def query(self, sql: str, params: Sequence[Any] = (), *, batch_size: int = 1000) -> Iterator[tuple]:
        """Rows as tuples, fetched in batches so memory stays flat; ends the read transaction."""
        conn = self._connection()
        finished = False
        try:
            cursor = self._kept_cursor(conn, sql) if self.autocommit else conn.cursor()
            cursor.execute(sql, list(params))
            while True:
                rows = cursor.fetchmany(batch_size)
                if not rows:
                    break
                for row in rows:
                    yield tuple(row)
            if not self.autocommit:
                cursor.close()
                conn.commit()
            finished = True
        except (pyodbc.Error, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            raise self._failed(exc) from exc
        finally:
            if not finished and self.autocommit:  # a caller that stopped reading early: drop the kept cursor
                self._drop_kept_cursor(sql)  # with its unread rows (there is no transaction to end)
            elif not finished:  # ... or end the read transaction here (an open one keeps SQLite from letting
                self._rollback_quietly()  # this connection write later)

    def _kept_cursor(self, conn: pyodbc.Connection, sql: str) -> pyodbc.Cursor:
        """The cursor this thread last ran `sql` on: pyodbc prepares a statement again only when
        its text changes."""
        kept: dict = self._local.statements
        cursor = kept.pop(sql, None) or conn.cursor()
        kept[sql] = cursor  # (most recently used last)
        while len(kept) > MAX_KEPT_STATEMENTS:
            oldest = next(iter(kept))
            self._drop_kept_cursor(oldest)
        return cursor

    def _drop_kept_cursor(self, sql: str) -> None:
        cursor = getattr(self._local, "statements", {}).pop(sql, None)
        if cursor is not None:
            try:
                cursor.close()
            except pyodbc.Error:
                pass

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; returns the affected row count."""
        conn = self._connection()
        try:
            cursor = conn.cursor()
            cursor.execute(sql, list(params))
            count = cursor.rowcount
            cursor.close()
            conn.commit()
            return count
        except (pyodbc.Error, ValueError, TypeError, OverflowError, ArithmeticError) as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn = self._connection()
        try:
            cursor = conn.cursor()
            cursor.fast_executemany = self.dialect.name is DialectName.TSQL
            cursor.executemany(sql, rows)
            cursor.close()
            conn.commit()
        except pyodbc.Error as exc:
            raise self._failed(exc) from exc

    def column_names(self, table: str) -> list[str]:
        """The table's real column names from the ODBC catalog."""
        conn = self._connection()
        try:
            cursor = conn.cursor()
            schema = "dbo" if self.dialect.name is DialectName.TSQL else None
            names = [row.column_name for row in cursor.columns(table=table, schema=schema)]
            cursor.close()
            conn.commit()
            return names
        except pyodbc.Error as exc:
            raise self._failed(exc) from exc

    def close(self) -> None:
        """Close the calling thread's connection (after a failure) ..."""
        if self._conn is not None:
            try:
                self._conn.close()
            except pyodbc.Error:
                pass
            self._conn = None

    def close_all(self) -> None:
        """... or every thread's (at shutdown)."""
        with self._all_lock:
            conns, self._all = list(self._all), set()
        for conn in conns:
            try:
                conn.close()
            except pyodbc.Error:
                pass
        self._local = self._holder()

    def _holder(self):
        return _OneConnection() if self._one_connection else threading.local()

    def __enter__(self) -> "VismaDatabase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()
