"""The `vb2po` commands' side of the admin API: HTTP with the operator's personal token."""
from __future__ import annotations

from typing import Any

import requests


class AdminApiError(Exception):
    def __init__(self, status: int, message: str, hint: str = ""):
        super().__init__(message)
        self.status = status
        self.hint = hint


class AdminClient:
    def __init__(self, url: str, token: str | None, *, timeout_s: float = 600):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._session = requests.Session()
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "AdminClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: dict | None = None) -> Any:
        return self._call("POST", path, json=body or {})

    def patch(self, path: str, body: dict) -> Any:
        return self._call("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self._call("DELETE", path)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise AdminApiError(0, f"cannot reach the admin API at {self.url} ({type(exc).__name__})",
                                "is the producer running with admin.enabled: true? Pass --admin-url or set "
                                "VB2PO_ADMIN_URL (admin.url in the settings) to where it listens") from None
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = {"error": response.text[:300]}
        if response.status_code >= 400:
            body = body if isinstance(body, dict) else {}
            raise AdminApiError(response.status_code, body.get("error") or f"HTTP {response.status_code}",
                                body.get("hint") or "")
        return body
