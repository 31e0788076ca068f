from decimal import Decimal

import pytest

from vb2po.poweroffice.jsonmoney import dumps
from vb2po.poweroffice.ratelimit import RateLimiter, limiter_for, Unlimited


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.now += s


def test_requests_are_spaced_so_no_sliding_second_holds_more_than_the_budget():
    clock = FakeClock()
    limiter = RateLimiter(10, burst=1, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(100):
        limiter.acquire()
        times.append(clock.now)
    for i in range(len(times) - 10):
        assert times[i + 10] - times[i] >= 1.0 - 1e-9  # any 11 requests span at least a second


def test_each_instance_takes_its_share_with_headroom():
    limiter = limiter_for(10, instances=2)
    assert 4.5 < limiter.rate < 5.0
    assert isinstance(limiter_for(0, instances=1), Unlimited)


@pytest.mark.parametrize("amount, text", [(Decimal("1250.10"), "1250.10"), (Decimal("-0.01"), "-0.01"),
                                          (Decimal("12345678901234.99"), "12345678901234.99")])
def test_amounts_go_on_the_wire_with_their_exact_digits(amount, text):
    assert dumps({"CurrencyAmount": amount, "Lines": [amount]}) == f'{{"CurrencyAmount": {text}, "Lines": [{text}]}}'
