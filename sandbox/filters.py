"""PowerOffice's list filters and paging, as plain functions.

Number filters use PowerOffice's documented syntax: comma separated numbers and ranges,
open-ended upwards, e.g. "10000-10999, 12500, 13000-" (customerNos, invoiceNos,
externalNos, accountNos all take it). Paging is 1-based `PageNumber` with `PageSize`
default 5000 and at most 20000.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, TypeVar

from sandbox.problems import Problem

DEFAULT_PAGE_SIZE = 5000
MAX_PAGE_SIZE = 20000

T = TypeVar("T")


@dataclass(frozen=True)
class NumberFilter:
    """A parsed number filter: single values plus inclusive ranges (upper bound None = open)."""

    values: frozenset[int]
    ranges: tuple[tuple[int, int | None], ...]

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int):
            return False
        if number in self.values:
            return True
        return any(low <= number and (high is None or number <= high) for low, high in self.ranges)

    @property
    def only_values(self) -> bool:
        """True when the filter is a plain list, so lookups can go by key instead of a scan."""
        return not self.ranges


def parse_number_filter(text: str | None, name: str) -> NumberFilter | None:
    """None when the filter is absent or blank (PowerOffice then does not filter)."""
    if text is None or not text.strip():
        return None
    values: set[int] = set()
    ranges: list[tuple[int, int | None]] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        try:
            if "-" in part:
                low_text, high_text = (p.strip() for p in part.split("-", 1))
                high = int(high_text) if high_text else None
                low = int(low_text)
                if high is not None and high < low:
                    raise ValueError("empty range")
                ranges.append((low, high))
            else:
                values.add(int(part))
        except ValueError:
            raise Problem(
                f"Filter {name} is not formatted correctly: {part!r}. Use numbers and ranges, e.g. '1-5, 7, 9-'.",
                title="Invalid filter",
            ) from None
    return NumberFilter(frozenset(values), tuple(ranges))


def page(items: Sequence[T], page_number: int, page_size: int) -> list[T]:
    """The requested page; an empty list when the page is past the end."""
    start = (page_number - 1) * page_size
    return list(items[start : start + page_size])
