"""Column names from settings, checked against the live table before any SQL uses them."""
from __future__ import annotations

from vb2po.visma.dialect import require_plain_identifier
from vb2po.visma.tables import FREE_FIELDS, FREE_INTEGER_FIELDS


class ColumnNotUsable(ValueError):
    pass


def checked_column(name: str, real_columns: list[str]) -> str:
    """The table's own spelling of `name`, or an error that says what is there."""
    require_plain_identifier(name)
    by_lower = {c.lower(): c for c in real_columns}
    real = by_lower.get(name.lower())
    if real is None:
        shown = sorted(real_columns)
        listed = ", ".join(shown[:60]) + (f" (and {len(shown) - 60} more)" if len(shown) > 60 else "")
        raise ColumnNotUsable(f"column {name!r} does not exist in the table; it has: {listed}")
    return real


def free_field(name: object) -> str:
    """Visma's spelling of a free field (Gr, Gr2..Gr12, Inf, Inf2..Inf8), or ColumnNotUsable.

    The processed marker may only overwrite a free field: any other column (a key, a change
    column, an amount, a due date) holds data that Visma or vb2po reads."""
    by_lower = {f.lower(): f for f in FREE_FIELDS}
    found = by_lower.get(name.lower()) if isinstance(name, str) else None
    if found is None:
        raise ColumnNotUsable(
            f"{str(name)[:40]!r} is not one of Visma's free fields, so it cannot hold the processed marker; "
            f"choose one of {', '.join(FREE_FIELDS)} (e.g. Gr4 or Inf2) that no one else uses")
    return found


def marker_value_problem(field: str, value: object) -> str | None:
    """Why a free field cannot hold this marker value; None when it can. The value must differ
    from the field's default (0 or empty), or every untouched row would read as processed."""
    if field in FREE_INTEGER_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{field} is an integer field: the marker value must be a whole number, not {str(value)[:40]!r}"
        if value == 0:
            return f"{field}'s default is 0, so 0 would mark every untouched row as processed; use e.g. 1"
        return None
    text = str(value)
    if not text.strip():
        return f"{field}'s default is empty, so an empty marker would mark every untouched row as processed"
    return None


def checked_marker_column(name: str, real_columns: list[str]) -> str:
    """The processed-marker field: a free field that exists in the live table."""
    field = free_field(name)
    return checked_column(field, real_columns)


def change_time_column(real_columns: list[str]) -> str:
    """`ChTmms` (milliseconds) where the table has it, else the minute-precision `ChTm`."""
    return "ChTmms" if "ChTmms" in real_columns else "ChTm"
