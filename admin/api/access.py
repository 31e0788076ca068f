"""Who a request is and what it may do: token -> user -> groups -> permissions. Pure.

Users and groups are declared in the settings (`admin.users`, `admin.groups`); a token whose
user is no longer declared authenticates nobody. Permissions are the seed's three:

- `integration`: see and change the integration settings, dead letters, replay, reconcile, status,
  tokens and the audit log;
- `fetch.client`: fetch payments now for one invoice client (the seed's invoice overview);
- `fetch.all`: fetch payments now for all invoice clients (the seed's File > Import).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from admin.api.tokens import TokenRecord, TokenRefused, check
from vb2po.settings import AdminSettings

INTEGRATION = "integration"
FETCH_CLIENT = "fetch.client"
FETCH_ALL = "fetch.all"


class Denied(Exception):
    """Authenticated, but without the permission the action needs (HTTP 403)."""

    def __init__(self, message: str, permission: str):
        super().__init__(message)
        self.permission = permission


@dataclass(frozen=True)
class Principal:
    user: str
    token_id: str
    groups: tuple[str, ...]
    permissions: frozenset[str]

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            held = ", ".join(sorted(self.permissions)) or "none"
            raise Denied(
                f"user {self.user!r} lacks the permission {permission!r} (has: {held}; groups: "
                f"{', '.join(self.groups) or 'none'}); a group granting it is declared under admin.groups",
                permission,
            )

    def as_dict(self) -> dict:
        return {"user": self.user, "token_id": self.token_id, "groups": list(self.groups),
                "permissions": sorted(self.permissions)}


def authenticate(admin: AdminSettings, token: str | None, record: TokenRecord | None, now: datetime) -> Principal:
    """The principal a presented token stands for, or `TokenRefused` (HTTP 401)."""
    record = check(token, record, now)
    user = admin.user(record.user)
    if user is None:
        raise TokenRefused("unknown_user", f"token {record.token_id} belongs to user {record.user!r}, "
                                           "who is no longer declared under admin.users")
    return Principal(record.user, record.token_id, tuple(user.groups), admin.permissions_of(record.user))
