"""The client-side weight limiter, on a fake clock: waits exactly as long as the window
needs, honours a 429 cool-down, and charges the published weights."""

from __future__ import annotations

import asyncio

import pytest

from live.hyperliquid.ratelimit import WeightLimiter, info_extra_weight, info_weight


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_published_weights() -> None:
    assert [info_weight(k) for k in ("l2Book", "allMids", "orderStatus", "meta",
                                     "userFills", "userRole")] == [2, 2, 2, 20, 20, 60]
    assert info_extra_weight("userFills", 45) == 2
    assert info_extra_weight("candleSnapshot", 5000) == 83
    assert info_extra_weight("meta", 1000) == 0


def test_waits_until_the_oldest_weight_leaves_the_window() -> None:
    t = FakeTime()
    lim = WeightLimiter(100, clock=t.clock, sleep=t.sleep)

    async def go():
        await lim.acquire(60)          # t=0
        t.now = 10.0
        await lim.acquire(40)          # t=10, window full
        assert lim.spent == 100 and t.slept == []
        await lim.acquire(30)          # must wait for the 60 spent at t=0 to expire
        assert t.now == pytest.approx(60.0) and lim.spent == 70
        await lim.acquire(30)          # fits now (70 + 30)
        assert t.now == pytest.approx(60.0)
        lim.close_for(5.0)             # a 429
        await lim.acquire(1)
        assert t.now == pytest.approx(70.0)  # the 40 from t=10 expired at 70 anyway
        assert lim.spent <= 100

    asyncio.run(go())


def test_refuses_a_request_larger_than_the_budget_and_a_budget_above_the_published() -> None:
    with pytest.raises(ValueError, match=r"1\.\.1200"):
        WeightLimiter(1201)
    lim = WeightLimiter(10)
    with pytest.raises(ValueError, match="exceeds the budget"):
        asyncio.run(lim.acquire(11))
