"""The clients of one consumer process share a window of open PowerOffice requests: however many
lanes call at once, no more than the window's size are on their way, a token fetch included."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from vb2po.poweroffice import PowerOfficeClient

WINDOW = 3


class CountingSession:
    """Stands in for the HTTP session: each call stays open a moment; the most at once is kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = 0
        self.most_open = 0
        self.calls = 0

    def _call(self, answer: SimpleNamespace) -> SimpleNamespace:
        with self._lock:
            self.open += 1
            self.calls += 1
            self.most_open = max(self.most_open, self.open)
        time.sleep(0.01)
        with self._lock:
            self.open -= 1
        return answer

    def post(self, url, **_kwargs):  # the token
        return self._call(SimpleNamespace(status_code=200, json=lambda: {"access_token": "t", "expires_in": 600}))

    def request(self, method, url, **_kwargs):
        return self._call(SimpleNamespace(status_code=200, content=b"[]"))

    def close(self) -> None:
        pass


def client(session: CountingSession, window: threading.Semaphore | None) -> PowerOfficeClient:
    return PowerOfficeClient("http://po.invalid/v2", "http://po.invalid/token", "app", "client", "sub",
                             session=session, in_flight=window)  # type: ignore[arg-type]


def run_lanes(clients: list[PowerOfficeClient], lanes: int = 12, calls: int = 5) -> None:
    def lane(i: int) -> None:
        for _ in range(calls):
            clients[i % len(clients)].get_invoices([1000 + i])

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_no_more_requests_are_open_than_the_window_across_all_clients_of_the_process():
    session = CountingSession()
    window = threading.BoundedSemaphore(WINDOW)
    run_lanes([client(session, window), client(session, window)])  # two companies, one window
    assert session.calls == 12 * 5 + 2  # every call made, and one token per client
    assert session.most_open == WINDOW


def test_without_a_window_every_lane_has_its_request_open():
    session = CountingSession()
    run_lanes([client(session, None)])
    assert session.most_open > WINDOW  # what the window above holds back
