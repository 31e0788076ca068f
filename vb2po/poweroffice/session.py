"""A requests session that reads the environment once per origin instead of before every request.

requests looks up the proxy variables, `no_proxy`, the CA-bundle variables and ~/.netrc before
each request it sends: scans of os.environ and file-system checks that cost the consumer a
measurable share of its CPU at PowerOffice's pace. A running process's environment does not
change, so it is read once per scheme and host, with requests' own rules (`no_proxy` included).
~/.netrc is not read at all: vb2po sends its own Authorization header, which a netrc entry for
the host would otherwise replace with a Basic one.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.utils import get_environ_proxies


class EnvironmentOnceSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # requests' per-request look-ups; `_environment_for` does them once
        # (two lanes that miss an origin together both read the environment: the same answer)
        self._by_origin: dict[str, tuple[dict[str, str], bool | str]] = {}

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        proxies, verify = self._environment_for(url if isinstance(url, str) else url.decode())
        if kwargs.get("proxies") is None:
            kwargs["proxies"] = proxies
        if kwargs.get("verify") in (None, True):
            kwargs["verify"] = verify
        return super().request(method, url, *args, **kwargs)

    def _environment_for(self, url: str) -> tuple[dict[str, str], bool | str]:
        """(proxies, verify) as requests would find them in the environment for this URL's origin."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._by_origin.get(origin)
        if found is None:
            proxies = dict(get_environ_proxies(url))  # empty when no_proxy covers the host
            verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
            found = self._by_origin[origin] = (proxies, verify)
        return found
