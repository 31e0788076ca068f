"""Kafka headers the producer sets on events, part of the contract with the consumer."""
from __future__ import annotations

from typing import Iterable

# An event published again for a row published before (by the sweep, or by a fetch-now): its
# payment may be registered in PowerOffice already while its Visma row is unmarked (a marker
# field or value changed since, a database restored from a backup). The consumer asks
# PowerOffice for the voucher's reference before posting such a payment.
REPUBLISHED_HEADER = "vb2po-republished"


def republished_header() -> tuple[str, bytes]:
    return (REPUBLISHED_HEADER, b"1")


def is_republished(headers: Iterable[tuple[str, bytes]] | None) -> bool:
    return any(name == REPUBLISHED_HEADER for name, _ in headers or ())
