"""Who a request is and what it may do: token -> user -> groups -> permissions. Pure.

Users and groups are declared in the settings (`admin.users`, `admin.groups`); a token whose
user is no longer declared authenticates nobody. Permissions are the seed's three:

- `integration`: see and change the integration settings, dead letters, replay, reconcile, status,
  tokens and the audit log;
- `fetch.client`: fetch payments now for one invoice client (the seed's invoice overview);
- `fetch.all`: fetch payments now for all invoice clients (the seed's File > Import).

A user may also be limited to some invoice clients (`admin.users[].clients`): they fetch for,
and see, only those. The settings refuse such a limit beside `integration` or `fetch.all`,
which act on every client.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from admin.api.tokens import TokenRecord, TokenRefused, check, still_good
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
    clients: frozenset[str] | None = None  # the invoice clients this user is limited to; None: all

    def require(self, permission: str) -> None:
        if permission not in self.permissions:
            held = ", ".join(sorted(self.permissions)) or "none"
            raise Denied(
                f"user {self.user!r} lacks the permission {permission!r} (has: {held}; groups: "
                f"{', '.join(self.groups) or 'none'}); a group granting it is declared under admin.groups",
                permission,
            )

    @property
    def any_permission(self) -> bool:
        return bool(self.permissions)

    def sees_client(self, client: str) -> bool:
        """Whether this user may see an invoice client's overview (and fetch for it, with fetch.client)."""
        return self.clients is None or client in self.clients

    def require_fetch(self, client: str | None) -> None:
        """May fetch now for `client` (None: for all clients); `Denied` otherwise. Decided on
        the names alone, before anything is looked up."""
        if client is None:
            self.require(FETCH_ALL)
            return
        self.require(FETCH_CLIENT)
        if not self.sees_client(client):
            raise Denied(f"user {self.user!r} may fetch only for the invoice client(s) {', '.join(sorted(self.clients or ()))}; "
                         "more are granted under admin.users[].clients", FETCH_CLIENT)

    def may_follow_fetch(self, scope: str) -> bool:
        """Whether this user may see the progress of a fetch with this scope ("all", "client:<name>")."""
        if scope == "all":
            return FETCH_ALL in self.permissions
        return FETCH_CLIENT in self.permissions and self.sees_client(scope.removeprefix("client:"))

    def as_dict(self) -> dict:
        return {"user": self.user, "token_id": self.token_id, "groups": list(self.groups),
                "permissions": sorted(self.permissions),
                "clients": None if self.clients is None else sorted(self.clients)}


def principal_of(admin: AdminSettings, record: TokenRecord, now: datetime) -> Principal:
    """The principal of a token already shown to be genuine (by its hash, or by the session it
    was exchanged for): still valid, and its user still declared; `TokenRefused` otherwise."""
    still_good(record, now)
    user = admin.user(record.user)
    if user is None:
        raise TokenRefused("unknown_user", f"token {record.token_id} belongs to user {record.user!r}, "
                                           "who is no longer declared under admin.users")
    return Principal(record.user, record.token_id, tuple(user.groups), admin.permissions_of(record.user),
                     admin.clients_of(record.user))


def authenticate(admin: AdminSettings, token: str | None, record: TokenRecord | None, now: datetime) -> Principal:
    """The principal a presented token stands for, or `TokenRefused` (HTTP 401)."""
    return principal_of(admin, check(token, record, now), now)
