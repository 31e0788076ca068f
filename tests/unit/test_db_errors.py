"""One place decides what a database failure means: retry (transient) or dead letter (terminal)."""
import pyodbc
import pytest

from vb2po.errors import TerminalError, TransientError
from vb2po.visma.db import classify_db_error


@pytest.mark.parametrize("exc", [
    pyodbc.OperationalError("08S01", "[08S01] communication link failure"),
    pyodbc.Error("08001", "[08001] could not connect to server"),
    pyodbc.Error("40001", "[40001] Transaction was deadlocked on lock resources (SQL Server 1205)"),
    pyodbc.Error("40P01", "[40P01] ERROR: deadlock detected"),
    pyodbc.Error("57P01", "[57P01] FATAL: terminating connection due to administrator command"),
    pyodbc.Error("HYT00", "[HYT00] Query timeout expired"),
    pyodbc.Error("HY000", "[HY000] [SQLite]database is locked (5)"),
    pyodbc.Error("HY000", "[HY000] server closed the connection unexpectedly"),
])
def test_lost_connections_deadlocks_and_timeouts_are_transient(exc):
    assert isinstance(classify_db_error(exc), TransientError)


@pytest.mark.parametrize("exc", [
    pyodbc.ProgrammingError("42S22", "[42S22] Invalid column name 'Gr9'"),
    pyodbc.ProgrammingError("42703", '[42703] ERROR: column "Gr9" does not exist'),
    pyodbc.DataError("22003", "[22003] numeric value out of range"),
    pyodbc.IntegrityError("23000", "[23000] duplicate key"),
])
def test_schema_and_data_errors_are_terminal(exc):
    assert isinstance(classify_db_error(exc), TerminalError)
