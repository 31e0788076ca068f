"""Console sessions: a personal token is exchanged once for a session cookie.

The cookie holds a random session id (256 bits); the server keeps only its SHA-256, with the
user, the token it was made from, a CSRF secret and an expiry: `SESSION_HOURS`, and never past
the token's own expiry. Every request looks at the token again, so revoking the token, its
expiry, or removing its user from the settings ends the session at once. Sessions live in the
memory of the process serving the console: a restart signs everyone out.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from admin.api.tokens import TokenRecord

SESSION_HOURS = 8  # a working day
MAX_SESSIONS = 10_000


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    user: str
    token_id: str
    csrf: str
    created_at: datetime
    expires_at: datetime
    notices: list[tuple[str, str]] = field(default_factory=list)  # (kind, text) shown once on the next page

    def notice(self, kind: str, text: str) -> None:
        self.notices.append((kind, text))

    def take_notices(self) -> list[tuple[str, str]]:
        out, self.notices = self.notices, []
        return out


class SessionStore:
    def __init__(self, ttl: timedelta = timedelta(hours=SESSION_HOURS)):
        self.ttl = ttl
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def create(self, record: TokenRecord, now: datetime) -> tuple[str, Session]:
        """A new session for a genuine token: (the session id for the cookie, the session)."""
        session_id = secrets.token_urlsafe(32)
        session = Session(record.user, record.token_id, secrets.token_urlsafe(32), now,
                          min(now + self.ttl, record.expires_at))
        with self._lock:
            self._drop_expired(now)
            if len(self._sessions) >= MAX_SESSIONS:  # never grow without bound: the oldest go first
                for key in sorted(self._sessions, key=lambda k: self._sessions[k].created_at)[:MAX_SESSIONS // 10]:
                    del self._sessions[key]
            self._sessions[_hash(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None, now: datetime) -> Session | None:
        if not session_id:
            return None
        key = _hash(session_id)
        with self._lock:
            session = self._sessions.get(key)
            if session is not None and now >= session.expires_at:
                del self._sessions[key]
                return None
            return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_hash(session_id), None)

    def _drop_expired(self, now: datetime) -> None:
        for key in [k for k, s in self._sessions.items() if now >= s.expires_at]:
            del self._sessions[key]
