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


def test_try_acquire_takes_only_what_acquire_would_take_without_waiting() -> None:
    t = FakeTime()
    lim = WeightLimiter(100, clock=t.clock, sleep=t.sleep)
    assert lim.try_acquire(60) and lim.spent == 60
    t.now = 10.0
    assert not lim.try_acquire(41) and lim.spent == 60  # would not fit: nothing taken
    assert lim.try_acquire(40) and lim.spent == 100
    t.now = 60.0  # the first 60 left the window
    lim.close_for(5.0)
    assert not lim.try_acquire(1)  # a 429 cool-down is on
    t.now = 65.0
    assert lim.try_acquire(1) and lim.spent == 41
    assert not lim.try_acquire(101)

    async def queued() -> None:  # someone waits in ``acquire``: no jumping the queue
        waiter = asyncio.ensure_future(lim.acquire(100))
        await asyncio.sleep(0)
        assert not lim.try_acquire(1)
        await waiter
        assert not lim.try_acquire(1) and lim.spent == 100  # only the waiter's weight...
        t.now = 200.0
        assert lim.try_acquire(1)  # ...and once nobody waits, room is taken again

    asyncio.run(queued())
