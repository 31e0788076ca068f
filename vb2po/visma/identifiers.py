"""Column names from settings, checked against the live table before any SQL uses them."""
from __future__ import annotations

from vb2po.visma.dialect import require_plain_identifier
from vb2po.visma.tables import CHANGE_COLUMNS, CUSTTR


class ColumnNotUsable(ValueError):
    pass


def checked_column(name: str, real_columns: list[str]) -> str:
    """The table's own spelling of `name`, or an error that says what is there."""
    require_plain_identifier(name)
    by_lower = {c.lower(): c for c in real_columns}
    real = by_lower.get(name.lower())
    if real is None:
        raise ColumnNotUsable(
            f"column {name!r} does not exist in the table; it has: {', '.join(sorted(real_columns))}"
        )
    return real


def checked_marker_column(name: str, real_columns: list[str]) -> str:
    """The processed-marker field: must exist and must not be a key or change column."""
    real = checked_column(name, real_columns)
    forbidden = set(CUSTTR.key) | set(CHANGE_COLUMNS)
    if real in forbidden:
        raise ColumnNotUsable(
            f"column {real!r} cannot hold the processed marker: it is a key or change column "
            f"({', '.join(sorted(forbidden))}); choose a free field such as Gr4 or Inf2"
        )
    return real


def change_time_column(real_columns: list[str]) -> str:
    """`ChTmms` (milliseconds) where the table has it, else the minute-precision `ChTm`."""
    return "ChTmms" if "ChTmms" in real_columns else "ChTm"
