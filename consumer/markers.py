"""The processed marker in the Visma row: read it, and set it on a still-unmarked row."""
from __future__ import annotations

from typing import Collection, Protocol

from vb2po.visma.db import VismaDatabase
from vb2po.visma.identifiers import checked_marker_column
from vb2po.visma.queries import mark_payment, marker_value, marker_values

KEYS_PER_LOOKUP = 200  # (JNo, EntNo) pairs per statement: 400 parameters, well under every driver's limit


class MarkerStore(Protocol):
    def is_marked(self, jno: int, entno: int) -> bool: ...
    def marked_among(self, keys: Collection[tuple[int, int]]) -> set[tuple[int, int]]: ...
    def mark(self, jno: int, entno: int) -> bool: ...


class VismaMarkerStore:
    """Writes the configured CustTr column with a conditional UPDATE (ChDt/ChTm untouched)."""

    def __init__(self, db: VismaDatabase, marker_field: str, marked_value: int | str):
        self.db = db
        self.column = checked_marker_column(marker_field, db.column_names("CustTr"))
        self.value = marked_value

    def is_marked(self, jno: int, entno: int) -> bool:
        sql, params = marker_value(self.db.dialect, self.column, jno, entno)
        rows = list(self.db.query(sql, params))
        return bool(rows) and str(rows[0][0]) == str(self.value)

    def marked_among(self, keys: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        """Those of `keys` whose row carries the marker, in one statement per KEYS_PER_LOOKUP keys."""
        wanted = sorted(set(keys))
        marked: set[tuple[int, int]] = set()
        for start in range(0, len(wanted), KEYS_PER_LOOKUP):
            sql, params = marker_values(self.db.dialect, self.column, wanted[start:start + KEYS_PER_LOOKUP])
            marked.update((int(jno), int(entno)) for jno, entno, value in self.db.query(sql, params)
                          if str(value) == str(self.value))
        return marked

    def mark(self, jno: int, entno: int) -> bool:
        """True when this call set the marker; False when it was set already."""
        sql, params = mark_payment(self.db.dialect, self.column, self.value, jno, entno)
        return self.db.execute(sql, params) > 0


class FakeMarkerStore:
    def __init__(self) -> None:
        self.marked: set[tuple[int, int]] = set()
        self.writes = 0

    def is_marked(self, jno: int, entno: int) -> bool:
        return (jno, entno) in self.marked

    def marked_among(self, keys: Collection[tuple[int, int]]) -> set[tuple[int, int]]:
        return set(keys) & self.marked

    def mark(self, jno: int, entno: int) -> bool:
        if (jno, entno) in self.marked:
            return False
        self.marked.add((jno, entno))
        self.writes += 1
        return True
