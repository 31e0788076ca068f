"""What an operator action can refuse with, each with a hint a person can act on.

The admin API maps these to HTTP statuses in one place (`admin.api.app`); the commands
print the message and the hint.
"""
from __future__ import annotations


class OperatorError(Exception):
    status = 400
    outcome = "invalid"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class Invalid(OperatorError):
    status, outcome = 400, "invalid"


class NotFound(OperatorError):
    status, outcome = 404, "not_found"


class Conflict(OperatorError):
    """Not now: the group has members, the integration is off, the producer was fenced."""

    status, outcome = 409, "conflict"


class Unavailable(OperatorError):
    """A dependency (Visma, Kafka, PowerOffice) did not answer; worth another try."""

    status, outcome = 503, "error"
