"""Number filters for PowerOffice list calls, kept short enough for a URL.

PowerOffice filters like `invoiceNos`/`customerNos` take "1-5, 7, 9-" (numbers and
inclusive ranges). Runs of consecutive numbers are written as ranges, and long lists are
split into several filters so no query string outgrows what gateways accept.
"""
from __future__ import annotations

from typing import Iterable

MAX_FILTER_CHARS = 1500


def _runs(numbers: Iterable[int]) -> list[str]:
    ordered = sorted(set(numbers))
    runs: list[str] = []
    start: int | None = None  # the run being built; prev is its last number once start is set
    prev = 0
    for n in ordered:
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            runs.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = n
    if start is not None:
        runs.append(str(start) if start == prev else f"{start}-{prev}")
    return runs


def number_filters(numbers: Iterable[int], max_chars: int = MAX_FILTER_CHARS) -> list[str]:
    """Filter strings that together select exactly `numbers` (an empty list for no numbers)."""
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for run in _runs(numbers):
        if current and length + 1 + len(run) > max_chars:
            chunks.append(",".join(current))
            current, length = [], 0
        current.append(run)
        length += len(run) + (1 if length else 0)
    if current:
        chunks.append(",".join(current))
    return chunks
