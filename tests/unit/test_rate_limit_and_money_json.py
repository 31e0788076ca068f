from decimal import Decimal

import pytest

from vb2po.poweroffice.jsonmoney import dumps
from vb2po.poweroffice.ratelimit import RateLimiter, Unlimited, limiter_for, operator_limiter
from vb2po.settings import PowerOfficeSettings


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


def test_operator_actions_fit_in_the_headroom_the_consumers_leave():
    po = PowerOfficeSettings(requests_per_second=10)
    consumers, operators = limiter_for(po.requests_per_second, instances=2), operator_limiter(po)
    assert consumers.rate == pytest.approx(10 / 2 * 0.97) and operators.rate == pytest.approx(0.3)
    assert 2 * consumers.rate + operators.rate <= 10 + 1e-9  # together within PowerOffice's budget
    assert operator_limiter(po) is operators  # one bucket per process for every operator action
    unlimited = PowerOfficeSettings(requests_per_second=0)
    assert isinstance(limiter_for(unlimited.requests_per_second, 1), Unlimited)
    assert isinstance(operator_limiter(unlimited), Unlimited)


def test_an_operator_rate_beyond_the_headroom_is_refused():
    with pytest.raises(ValueError, match="operator_requests_per_second"):
        PowerOfficeSettings(requests_per_second=10, operator_requests_per_second=1)
