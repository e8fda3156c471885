"""Paper bars from Ostium's price feed (``live.ostium.feed``), on the fake's price service
and a clock the test moves: a bar holds the mids sampled in its interval and nothing
after its close, a closed market is not sampled, a service that stops answering ends the
feed only after ``give_up_s``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from live.ostium.feed import OstiumPriceFeed
from live.ostium.venue import OstiumVenue
from live.ostium.wire import OstiumWireError
from sim.messages import Bar
from tests.fakes.clock import ManualClock
from tests.fakes.ostium import FakeOstium

from .conftest import run

S = 1_000_000_000
T0 = 1_800_000_000 * S  # a minute boundary


async def until(test: Callable[[], bool]) -> None:
    while not test():
        await asyncio.sleep(0.005)


async def polled(feed: OstiumPriceFeed, n: int) -> None:
    await until(lambda: feed.polls == n)


def test_bars_hold_the_samples_of_their_interval_only(fake: FakeOstium) -> None:
    fake.set_price("EUR", 1.1, market_open=False)

    async def check(venue: OstiumVenue) -> None:
        clock = ManualClock(T0)
        feed = OstiumPriceFeed(venue.prices, {"ETH-PERP": "ETH", "EURUSD": "EUR"}, 60 * S,
                               clock, poll_s=10)
        bars: Any = feed.__aiter__()  # an async generator (aclose)
        first: asyncio.Task[Bar] = asyncio.ensure_future(anext(bars))
        for n, mid in enumerate([2000.0, 2050.0, 1990.0, 2020.0, 2020.0, 2015.0]):
            fake.set_price("ETH", mid)
            clock.set(T0 + n * 10 * S)
            await polled(feed, n + 1)
        assert not first.done()  # the interval has not closed
        fake.set_price("ETH", 3000.0)  # after the close: belongs to the next bar
        clock.set(T0 + 60 * S)
        bar = await first
        assert bar == Bar("ETH-PERP", T0, 2000.0, 2050.0, 1990.0, 2015.0, 6.0)
        second = asyncio.ensure_future(anext(bars))  # the generator polls on
        await until(lambda: feed.polls == 7)
        clock.set(T0 + 120 * S)
        assert await second == Bar("ETH-PERP", T0 + 60 * S, 3000.0, 3000.0, 3000.0,
                                        3000.0, 1.0)  # no EURUSD: its market is closed
        await bars.aclose()

    run(fake, check)


def test_a_silent_service_skips_samples_then_ends_the_feed(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        clock = ManualClock(T0)
        feed = OstiumPriceFeed(venue.prices, {"ETH-PERP": "ETH"}, 60 * S, clock, poll_s=10,
                               give_up_s=90)
        bars = feed.__aiter__()
        nxt: asyncio.Future[Any] = asyncio.ensure_future(anext(bars))
        await until(lambda: feed.polls == 1)
        fake.faults.down = True
        for n in range(1, 6):
            clock.set(T0 + n * 10 * S)
            await polled(feed, n + 1)
        assert feed.failures == 5 and not nxt.done()
        clock.set(T0 + 60 * S)  # the bar closes though the service is silent
        assert (await nxt) == Bar("ETH-PERP", T0, 2000.0, 2000.0, 2000.0, 2000.0, 1.0)
        nxt = asyncio.ensure_future(anext(bars))
        for n in range(7, 10):
            await polled(feed, n)
            clock.set(T0 + n * 10 * S)
        with pytest.raises(OstiumWireError, match=r"^no answer for 90 s: Ostium price service"):
            await nxt
        assert feed.failures == 9

    run(fake, check)


def test_a_poll_longer_than_the_interval_is_refused() -> None:
    async def never() -> dict[str, Any]:
        return {}

    with pytest.raises(ValueError, match="longer than the interval"):
        OstiumPriceFeed(never, {"A": "A"}, 5 * S, ManualClock(0), poll_s=10)
