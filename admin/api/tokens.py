"""Personal tokens: how they look, how they are hashed, and whether one is still good. Pure.

A token reads `vb2po_<id>_<secret>`: the prefix makes a leaked token easy to recognise (secret
scanners, log searches), the 12-hex-digit id names its record, and the secret is 32 random
bytes. Only the SHA-256 of the whole token is ever stored; the token itself is shown once, to
the person it is issued to.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta

TOKEN_PREFIX = "vb2po_"
_TOKEN = re.compile(r"^vb2po_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_TOKEN_ID = re.compile(r"^[0-9a-f]{12}$")


class TokenRefused(Exception):
    """Why a presented token does not authenticate anyone: missing, invalid, expired, revoked."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class TokenRecord:
    """What is kept about a token: never the token, only its hash."""

    token_id: str
    user: str
    sha256: str
    created_at: datetime
    expires_at: datetime
    created_by: str
    description: str = ""
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def encode(self) -> bytes:
        data = asdict(self)
        for name in ("created_at", "expires_at", "revoked_at"):
            data[name] = data[name].isoformat() if data[name] else None
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> "TokenRecord":
        data = json.loads(raw)
        for name in ("created_at", "expires_at", "revoked_at"):
            data[name] = datetime.fromisoformat(data[name]) if data.get(name) else None
        return cls(**data)

    def revoke(self, by: str, at: datetime) -> "TokenRecord":
        return self if self.revoked_at else replace(self, revoked_at=at, revoked_by=by)

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def public(self, now: datetime) -> dict:
        """What may be shown about a token: everything but its hash."""
        return {
            "token_id": self.token_id, "user": self.user, "state": self.state(now),
            "created_at": self.created_at.isoformat(), "expires_at": self.expires_at.isoformat(),
            "created_by": self.created_by, "description": self.description,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None, "revoked_by": self.revoked_by,
        }


@dataclass(frozen=True)
class IssuedToken:
    token: str  # shown once, never stored
    record: TokenRecord


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(user: str, *, created_by: str, now: datetime, ttl: timedelta | None = None,
          expires_at: datetime | None = None, description: str = "") -> IssuedToken:
    if ttl is not None and expires_at is None:
        expires = now + ttl
    elif expires_at is not None and ttl is None:
        expires = expires_at
    else:
        raise ValueError("give either ttl or expires_at")
    token_id = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = TokenRecord(
        token_id=token_id, user=user, sha256=hash_token(token), created_at=now,
        expires_at=expires, created_by=created_by,
        description=description,
    )
    return IssuedToken(token, record)


def token_id_of(token: str | None) -> str | None:
    """The id part of a well-formed token; None for anything else."""
    match = _TOKEN.match(token or "")
    return match.group(1) if match else None


def valid_token_id(token_id: str) -> bool:
    return bool(_TOKEN_ID.match(token_id or ""))


def check(token: str | None, record: TokenRecord | None, now: datetime) -> TokenRecord:
    """The record the token authenticates, or `TokenRefused` saying why not."""
    if not token:
        raise TokenRefused("missing", "no token: send `Authorization: Bearer vb2po_...` with your personal token")
    if token_id_of(token) is None:
        raise TokenRefused("invalid", "invalid token: not a vb2po personal token")
    if record is None or not hmac.compare_digest(record.sha256, hash_token(token)):
        raise TokenRefused("invalid", "invalid token: unknown or wrong")
    return still_good(record, now)


def still_good(record: TokenRecord, now: datetime) -> TokenRecord:
    """The record, unless it was revoked or has expired (`TokenRefused`)."""
    if record.revoked_at is not None:
        raise TokenRefused("revoked", f"token {record.token_id} was revoked at {record.revoked_at.isoformat()}; "
                                      "ask for a new one")
    if now >= record.expires_at:
        raise TokenRefused("expired", f"token {record.token_id} expired at {record.expires_at.isoformat()}; "
                                      "ask for a new one")
    return record
