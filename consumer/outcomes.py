"""What applying one event came to: one name each, for logs, metrics labels and tests."""
from __future__ import annotations

from vb2po.poweroffice.models import ALREADY_APPLIED, APPLIED  # (PowerOffice's answer to a posting: the same words)

__all__ = ["APPLIED", "ALREADY_APPLIED", "ALREADY_MARKED", "ANNULLED", "IGNORED", "SUPERSEDED", "DEAD_LETTERED",
           "ALREADY_DEAD_LETTERED"]

ALREADY_MARKED = "already_marked"  # the Visma row carries the marker: done before
ANNULLED = "annulled"  # a reversal of a payment never registered: both marked, nothing posted
IGNORED = "ignored"  # credit-block sync is off
SUPERSEDED = "superseded"  # Visma's state changed since the event: the event of the change applies it
DEAD_LETTERED = "dead_lettered"
ALREADY_DEAD_LETTERED = "already_dead_lettered"  # this content was dead-lettered before
