"""Invoice look-ups in bulk: what a poll wants is fetched in few requests, lanes that miss together
share one request, and an invoice is asked for again once its entry is stale."""
from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from consumer.invoices import InvoiceDirectory
from vb2po.errors import TransientError
from vb2po.poweroffice.models import OutgoingInvoice


class InvoicesApi:
    """PowerOffice's GET /OutgoingInvoices for invoices 1..999 (each customer 10 + number % 7)."""

    def __init__(self, delay_s: float = 0.0):
        self.delay_s = delay_s
        self.requests: list[list[int]] = []
        self.callers: list[str] = []  # the thread that made each request
        self.fail_next = 0
        self._lock = threading.Lock()

    def get_invoices(self, numbers):
        numbers = list(numbers)
        with self._lock:
            self.requests.append(numbers)
            self.callers.append(threading.current_thread().name)
            if self.fail_next:
                self.fail_next -= 1
                raise TransientError("PowerOffice answered 503", reason="http_503")
        time.sleep(self.delay_s)
        return [OutgoingInvoice(n, 10 + n % 7, Decimal("100.00"), "NOK") for n in numbers if 0 < n < 1000]


def test_a_polls_worth_of_invoices_costs_a_request_per_200():
    api = InvoicesApi()
    directory = InvoiceDirectory(api)
    directory.want(range(1, 501))
    assert [directory.get(n).customer_no for n in range(1, 501)] == [10 + n % 7 for n in range(1, 501)]
    assert [len(r) for r in api.requests] == [200, 200, 100]


def test_an_unknown_invoice_is_remembered_as_unknown():
    api = InvoicesApi()
    directory = InvoiceDirectory(api)
    assert directory.get(5000) is None
    assert directory.get(5000) is None
    assert len(api.requests) == 1


def test_lanes_that_miss_together_share_one_request():
    api = InvoicesApi(delay_s=0.2)
    directory = InvoiceDirectory(api)
    directory.want(range(1, 151))
    start = threading.Barrier(16)
    found: dict[int, OutgoingInvoice | None] = {}

    def lane(number: int) -> None:
        start.wait()
        found[number] = directory.get(number)

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(1, 17)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(found) == list(range(1, 17)) and all(found[n].invoice_no == n for n in found)
    assert len(api.requests) == 1  # not one per lane


def test_when_the_shared_request_fails_the_waiting_lanes_ask_themselves():
    api = InvoicesApi(delay_s=0.1)
    api.fail_next = 1
    directory = InvoiceDirectory(api)
    directory.want([1, 2])
    errors, found = [], {}

    def lane(number: int) -> None:
        try:
            found[number] = directory.get(number)
        except TransientError as exc:
            errors.append(exc)

    first = threading.Thread(target=lane, args=(1,))
    first.start()
    time.sleep(0.03)  # the second lane finds invoice 2 being fetched by the first
    second = threading.Thread(target=lane, args=(2,))
    second.start()
    first.join(5)
    second.join(5)
    assert len(errors) == 1 and found == {2: found[2]} and found[2].invoice_no == 2
    assert len(api.requests) == 2


def test_a_stale_entry_is_fetched_again():
    now = [0.0]
    api = InvoicesApi()
    directory = InvoiceDirectory(api, ttl_s=120, clock=lambda: now[0])
    directory.get(7)
    now[0] = 119.0
    directory.get(7)
    assert len(api.requests) == 1
    now[0] = 121.0
    directory.get(7)
    assert len(api.requests) == 2


@pytest.mark.parametrize("batch", [1, 3])
def test_the_batch_size_bounds_each_request(batch):
    api = InvoicesApi()
    directory = InvoiceDirectory(api, batch=batch)
    directory.want(range(1, 8))
    for n in range(1, 8):
        directory.get(n)
    assert max(len(r) for r in api.requests) == batch


def test_each_look_up_starts_the_next_one_ahead_so_the_lanes_do_not_wait_for_it():
    api = InvoicesApi(delay_s=0.05)
    directory = InvoiceDirectory(api)
    directory.want(range(1, 401))
    directory.get(1)  # a miss: the first 200, then 201..400 start in the background
    deadline = time.monotonic() + 5
    while len(api.requests) < 2 or directory._fetching:
        assert time.monotonic() < deadline, f"no look-up ahead: {[len(r) for r in api.requests]}"
        time.sleep(0.01)
    started = time.monotonic()
    assert directory.get(300).customer_no == 10 + 300 % 7
    assert time.monotonic() - started < 0.04  # cached, not one more request's wait
    assert [len(r) for r in api.requests] == [200, 200]  # the same requests, only sooner


def test_a_backlogs_lanes_find_every_invoice_fetched_ahead_after_the_first():
    api = InvoicesApi(delay_s=0.02)
    directory = InvoiceDirectory(api)
    directory.want(range(1, 801))

    def settled() -> None:
        deadline = time.monotonic() + 5
        while directory._fetching:
            assert time.monotonic() < deadline, "a look-up ahead never ended"
            time.sleep(0.005)

    for n in range(1, 801):  # one lane paying the backlog in order, each look-up done before it goes on
        assert directory.get(n).customer_no == 10 + n % 7
        settled()
    assert [len(r) for r in api.requests] == [200] * 4  # the same requests as one miss per batch
    me = threading.current_thread().name
    assert api.callers == [me] + ["invoices-ahead"] * 3  # but only the first one made a lane wait


def test_a_trickle_of_payments_costs_no_look_up_ahead():
    api = InvoicesApi()
    directory = InvoiceDirectory(api)
    for first in range(1, 60, 3):  # polls of 3 payments each, paid before the next poll
        directory.want(range(first, first + 3))
        for n in range(first, first + 3):
            directory.get(n)
    assert len(api.requests) == 20


def test_a_failed_look_up_ahead_leaves_each_lane_to_fetch_its_invoice():
    class SecondFails(InvoicesApi):
        def get_invoices(self, numbers):
            if len(self.requests) == 1:  # the look-up ahead
                self.requests.append(list(numbers))
                raise TransientError("PowerOffice answered 503", reason="http_503")
            return super().get_invoices(numbers)

    api = SecondFails()
    directory = InvoiceDirectory(api)
    directory.want(range(1, 401))
    directory.get(1)
    deadline = time.monotonic() + 5
    while len(api.requests) < 2 or directory._fetching:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert directory.get(300).customer_no == 10 + 300 % 7  # fetched by the lane itself
    assert len(api.requests) == 3
