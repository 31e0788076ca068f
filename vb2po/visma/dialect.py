"""SQL dialects: the few places where SQL Server (production), PostgreSQL and SQLite differ.

Everything else is plain SQL built by `vb2po.visma.queries` with `?` parameters (ODBC style
for all three drivers). Identifiers are always quoted, so Visma's mixed case survives
PostgreSQL, and are only ever names from `tables.py` or names checked against the live table.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Sequence

from vb2po.visma.tables import ColumnType, Table

_PLAIN_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,62}$")


class DialectName(str, Enum):
    TSQL = "tsql"
    POSTGRESQL = "postgresql"
    SQLITE = "sqlite"


def require_plain_identifier(name: str) -> str:
    """Refuse anything but a plain identifier: quoting is a second guard, not the first."""
    if not isinstance(name, str) or not _PLAIN_IDENTIFIER.match(name):
        raise ValueError(f"not a plain SQL identifier: {name!r} (letters, digits and _ only)")
    return name


@dataclass(frozen=True)
class Dialect:
    name: DialectName

    def quote(self, identifier: str) -> str:
        require_plain_identifier(identifier)
        if self.name is DialectName.TSQL:
            return f"[{identifier}]"
        return f'"{identifier}"'

    def table(self, table: str) -> str:
        if self.name is DialectName.TSQL:
            return f"[dbo].{self.quote(table)}"  # Visma keeps company tables in dbo
        return self.quote(table)

    def money_select(self, column: str) -> str:
        """SQLite keeps DECIMAL as REAL; read it as text so Python builds an exact Decimal."""
        if self.name is DialectName.SQLITE:
            return f"CAST({self.quote(column)} AS TEXT)"
        return self.quote(column)

    def select_top(self, limit: int, rest: str) -> str:
        """`SELECT TOP n ...` on SQL Server, `SELECT ... LIMIT n` elsewhere; rest starts after SELECT."""
        if not isinstance(limit, int) or limit <= 0:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        if self.name is DialectName.TSQL:
            return f"SELECT TOP ({limit}) {rest}"
        return f"SELECT {rest} LIMIT {limit}"

    def column_type(self, col_type: ColumnType, length: int) -> str:
        if col_type is ColumnType.INT:
            return "INT" if self.name is DialectName.TSQL else "INTEGER"
        if col_type is ColumnType.MONEY:
            return "NUMERIC(28,6)" if self.name is DialectName.POSTGRESQL else "DECIMAL(28,6)"
        return f"NVARCHAR({length})" if self.name is DialectName.TSQL else f"VARCHAR({length})"

    def create_table(self, table: Table) -> str:
        cols = []
        for col in table.columns:
            default = f"'{col.default}'" if col.type is ColumnType.TEXT else str(col.default)
            cols.append(f"{self.quote(col.name)} {self.column_type(col.type, col.length)} NOT NULL DEFAULT {default}")
        key = ", ".join(self.quote(k) for k in table.key)
        return f"CREATE TABLE {self.table(table.name)} ({', '.join(cols)}, PRIMARY KEY ({key}))"

    def create_index(self, name: str, table: str, columns: list[str], include: Sequence[str] = ()) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        sql = f"CREATE INDEX {self.quote(name)} ON {self.table(table)} ({cols})"
        if include and self.name in (DialectName.TSQL, DialectName.POSTGRESQL):
            sql += f" INCLUDE ({', '.join(self.quote(c) for c in include)})"
        return sql


def dialect_for(name: str | DialectName) -> Dialect:
    return Dialect(DialectName(name))


def guess_dialect(connection_string: str) -> DialectName:
    """The dialect from the ODBC driver name; a setting can always say it explicitly."""
    lowered = connection_string.lower()
    if "sqlite" in lowered:
        return DialectName.SQLITE
    if "postgres" in lowered or "psqlodbc" in lowered:
        return DialectName.POSTGRESQL
    return DialectName.TSQL
