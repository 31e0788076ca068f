"""OAuth2 client credentials, as PowerOffice Go does it, and the bearer check on API calls.

`POST /OAuth/Token`, form `grant_type=client_credentials`, header
`Authorization: Basic base64(applicationKey:clientKey)` -> `access_token`, `token_type`,
`expires_in` (TokenResponseDto). The token identifies the client (company): every API call
made with it reads and writes that client's ledger. Unknown or expired token -> 401.
Bad application/client key -> 401 with OAuth's `invalid_client`; another grant type -> 400
`unsupported_grant_type` (RFC 6749 section 5.2), both also shaped as ProblemDetails.
The token endpoint does not require the subscription key here (the client sends it anyway).
"""
from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import Response

from sandbox.problems import Problem
from sandbox.wire import dumps


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    client_key: str
    expires_at: float


class TokenStore:
    def __init__(self, application_key: str, client_keys: set[str], lifetime_s: int,
                 clock: Callable[[], float] = time.monotonic):
        self._application_key = application_key
        self._client_keys = client_keys
        self.lifetime_s = lifetime_s
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, application_key: str, client_key: str) -> IssuedToken:
        known = secrets.compare_digest(application_key, self._application_key) and client_key in self._client_keys
        if not known:
            raise Problem("The application key or the client key is not valid.", status=401,
                          title="invalid_client", error="invalid_client")
        now = self._clock()
        token = IssuedToken(secrets.token_urlsafe(32), client_key, now + self.lifetime_s)
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v.expires_at > now}  # drop the dead
            self._tokens[token.access_token] = token
        return token

    def client_for(self, access_token: str) -> str | None:
        """The client key the token was issued for; None when unknown or expired."""
        with self._lock:
            token = self._tokens.get(access_token)
        if token is None or token.expires_at <= self._clock():
            return None
        return token.client_key

    def expire_all(self) -> int:
        with self._lock:
            count = len(self._tokens)
            self._tokens.clear()
        return count


def _basic_credentials(header: str | None) -> tuple[str, str]:
    if not header or not header.lower().startswith("basic "):
        raise Problem("Authorization: Basic base64(applicationKey:clientKey) is required.", status=401,
                      title="invalid_client", error="invalid_client")
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    application_key, sep, client_key = decoded.partition(":")
    if not sep:
        raise Problem("The Basic credentials must be base64(applicationKey:clientKey).", status=401,
                      title="invalid_client", error="invalid_client")
    return application_key, client_key


def token_router(store: TokenStore) -> APIRouter:
    router = APIRouter()

    @router.post("/OAuth/Token")
    async def issue_token(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
        grant_type = (form.get("grant_type") or [""])[0]
        if grant_type != "client_credentials":
            raise Problem(f"grant_type must be client_credentials, got {grant_type!r}.",
                          title="unsupported_grant_type", error="unsupported_grant_type")
        application_key, client_key = _basic_credentials(request.headers.get("authorization"))
        token = store.issue(application_key, client_key)
        body = {"access_token": token.access_token, "token_type": "Bearer", "expires_in": store.lifetime_s}
        return Response(dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})

    return router


def bearer_client_key(store: TokenStore, authorization: str | None) -> str:
    """The client key behind `Authorization: Bearer <token>`, or a 401 Problem."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Problem("Access token is missing.", status=401, title="Unauthorized",
                      headers={"WWW-Authenticate": "Bearer"})
    client_key = store.client_for(authorization[7:].strip())
    if client_key is None:
        raise Problem("Access token is invalid or has expired.", status=401, title="Unauthorized",
                      headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    return client_key
