"""The PowerOffice session reads the environment once per origin, with requests' own rules:
proxies and no_proxy are honoured as before, and a ~/.netrc entry no longer replaces vb2po's
Bearer token."""
from __future__ import annotations

import http.server
import threading
from typing import Iterator

import pytest

from vb2po.poweroffice.session import EnvironmentOnceSession


class Recorder(http.server.BaseHTTPRequestHandler):
    """Answers 200 to anything and records the request line and Authorization header."""
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.server.seen.append((self.requestline, self.headers.get("Authorization")))  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[http.server.ThreadingHTTPServer]]:
    made: list[http.server.ThreadingHTTPServer] = []

    def make() -> http.server.ThreadingHTTPServer:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        made.append(server)
        return server

    yield make  # type: ignore[misc]
    for server in made:
        server.shutdown()
        server.server_close()


def url_of(server: http.server.ThreadingHTTPServer, path: str = "/v2/Customers") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy",
                 "NO_PROXY", "no_proxy", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def test_a_netrc_entry_for_the_host_does_not_replace_the_bearer_token(servers, tmp_path, monkeypatch):
    api = servers()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    session = EnvironmentOnceSession()
    session.get(url_of(api), headers={"Authorization": "Bearer the-token"}, timeout=5).raise_for_status()
    assert api.seen[0][1] == "Bearer the-token"


def test_the_proxy_in_the_environment_carries_the_requests(servers, monkeypatch):
    proxy = servers()
    monkeypatch.setenv("HTTP_PROXY", url_of(proxy, ""))
    session = EnvironmentOnceSession()
    for _ in range(3):
        session.get("http://poweroffice.invalid/v2/Customers", timeout=5).raise_for_status()
    assert [line for line, _ in proxy.seen] == ["GET http://poweroffice.invalid/v2/Customers HTTP/1.1"] * 3


def test_no_proxy_still_sends_its_hosts_past_the_proxy(servers, monkeypatch):
    proxy, api = servers(), servers()
    monkeypatch.setenv("HTTP_PROXY", url_of(proxy, ""))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    session = EnvironmentOnceSession()
    session.get(url_of(api), timeout=5).raise_for_status()
    assert proxy.seen == [] and len(api.seen) == 1
