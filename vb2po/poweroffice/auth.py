"""Client-credentials tokens for one PowerOffice client key, cached until shortly before expiry.

PowerOffice tokens live 10-20 minutes (sources disagree), so the answer's `expires_in`
decides. A token is renewed once its remaining life drops under a margin (a tenth of
its lifetime, at most a minute), and dropped when an API call answers 401 so the next
call fetches a fresh one. Thread-safe: concurrent callers share one fetch.
"""
from __future__ import annotations

import base64
import threading
import time
from dataclasses import dataclass
from typing import Callable

import requests
from pydantic import SecretStr

from vb2po.errors import TerminalError
from vb2po.poweroffice.errors import classify

SUBSCRIPTION_HEADER = "Ocp-Apim-Subscription-Key"
MAX_RENEW_MARGIN_S = 60.0


def reveal(secret: SecretStr | str) -> str:
    return secret.get_secret_value() if isinstance(secret, SecretStr) else secret


@dataclass(frozen=True)
class _Token:
    value: str
    renew_at: float


class TokenProvider:
    def __init__(self, session: requests.Session, token_url: str, application_key: SecretStr | str,
                 client_key: SecretStr | str, subscription_key: SecretStr | str,
                 timeout: float | tuple[float, float], clock: Callable[[], float] = time.monotonic):
        self._session = session
        self._token_url = token_url
        credentials = f"{reveal(application_key)}:{reveal(client_key)}".encode("utf-8")
        self._basic = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._subscription_key = subscription_key
        self._timeout = timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        self.fetches = 0  # how many tokens were fetched: the cache's effect, visible to tests and metrics

    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._token.renew_at:
                self._token = self._fetch()
            return self._token.value

    def invalidate(self, token: str) -> None:
        """Forget `token` after a 401, unless another caller already replaced it."""
        with self._lock:
            if self._token is not None and self._token.value == token:
                self._token = None

    def _fetch(self) -> _Token:
        headers = {"Authorization": self._basic, SUBSCRIPTION_HEADER: reveal(self._subscription_key),
                   "Accept": "application/json"}
        started = self._clock()
        try:
            response = self._session.post(self._token_url, data={"grant_type": "client_credentials"},
                                          headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            raise classify(exc) from exc
        if response.status_code != 200:
            raise classify(response)
        try:
            body = response.json()
            value, lifetime = str(body["access_token"]), float(body.get("expires_in") or 600)
        except (ValueError, KeyError, TypeError) as exc:
            raise TerminalError(f"PowerOffice token answer is not usable: {response.text[:200]}",
                                reason="unauthorized") from exc
        self.fetches += 1
        margin = min(MAX_RENEW_MARGIN_S, lifetime / 10)
        return _Token(value, started + lifetime - margin)
