"""The Hyperliquid candle feed against the fake server: only closed candles, each once, in
order; closed by a later push or by the clock (then read from candleSnapshot); gaps and
reconnects filled from candleSnapshot; warm-up from history without the open candle."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from live.hyperliquid.candles import HyperliquidCandleFeed, hyperliquid_interval
from live.hyperliquid.stream import candle
from live.observe import FeedFallback
from sim.bus import HEALTH, EventBus
from sim.config_base import ConfigError
from sim.messages import Bar
from sim.monitor.config import MonitorConfig
from sim.monitor.monitor import Monitor, MonitorContext
from tests.fakes.clock import ManualClock
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import make_config
from .test_faults import wait_for

MIN_MS = 60_000
MIN_NS = MIN_MS * 1_000_000
T0 = 1_700_000_040_000  # a minute boundary, in ms
GRACE_NS = 2_000_000_000


def bar_at(k: int, coin: str = "ETH") -> tuple[float, float, float, float, float]:
    o = 2000.0 + k
    return (o, o + 3.5, o - 2.25, o + 1.0, 10.0 + k)


def push(fake: FakeHyperliquid, k: int, coin: str = "ETH", partial: bool = False) -> None:
    o, h, lo, c, v = bar_at(k, coin)
    if partial:  # an early update of the open candle: not its final state
        h, lo, c, v = o + 0.5, o - 0.5, o, 1.0
    fake.push_bar(coin, "1m", MIN_MS, T0 + k * MIN_MS, o, h, lo, c, v)


def expected(k: int, coin: str = "ETH") -> Bar:
    return Bar(coin, (T0 + k * MIN_MS) * 1_000_000, *bar_at(k, coin))


class Collector:
    """Runs the feed in a task, collecting bars and how each one closed."""

    def __init__(self, feed: HyperliquidCandleFeed) -> None:
        self.feed = feed
        self.bars: list[Bar] = []
        self.how: list[str] = []
        feed.on_event = lambda how, bar: self.how.append(how)
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for bar in self.feed:
            self.bars.append(bar)

    def start(self) -> Collector:
        self.task = asyncio.create_task(self._run())
        return self

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def make_feed(fake: FakeHyperliquid, clock: ManualClock, **kw: Any) -> HyperliquidCandleFeed:
    coins = kw.pop("coins", {"ETH": "ETH"})
    return HyperliquidCandleFeed(make_config(fake), coins, MIN_NS, clock=clock,
                                 close_grace_ns=GRACE_NS, **kw)


async def until(cond: Callable[[], bool]) -> None:
    await wait_for(cond, timeout=5.0)


def test_interval_names() -> None:
    assert hyperliquid_interval(MIN_NS) == "1m"
    assert hyperliquid_interval(3600 * 10**9) == "1h"
    with pytest.raises(ValueError, match="no 120s candles"):
        hyperliquid_interval(2 * MIN_NS)


def test_a_later_push_closes_a_candle_and_updates_never_leak(fake: FakeHyperliquid) -> None:
    async def go() -> None:
        clock = ManualClock(T0 * 1_000_000)
        c = Collector(make_feed(fake, clock)).start()
        await until(lambda: fake.subscribed(candle("ETH", "1m")) == 1)
        for k in range(4):
            clock.set((T0 + k * MIN_MS) * 1_000_000)
            push(fake, k, partial=True)
            push(fake, k)
            if k == 2:
                push(fake, 1)  # an old candle repeated: dropped
        await until(lambda: len(c.bars) == 3)
        await asyncio.sleep(0.05)
        await c.stop()
        assert c.bars == [expected(k) for k in range(3)]  # k=3 is still open
        assert c.how == ["push"] * 3
        assert c.feed.rest_checks == 0  # nothing asked of REST on the normal path

    asyncio.run(go())


def test_the_clock_closes_a_quiet_candle_from_rest(fake: FakeHyperliquid) -> None:
    # a watched session hooks the feed (live.observe.FeedFallback): on REST, the feed's
    # health is degraded until a bar closes on the stream again
    bus = EventBus()
    health: list[tuple[str, str]] = []
    bus.subscribe(lambda env: health.append((env.event.component, env.event.state)),
                  (HEALTH,))
    Monitor(bus, MonitorConfig(), MonitorContext((), {}, {}, 0)).attach()

    async def go() -> None:
        clock = ManualClock(T0 * 1_000_000)
        c = Collector(make_feed(fake, clock))
        FeedFallback.attach(c.feed, bus)
        c.start()
        await until(lambda: fake.subscribed(candle("ETH", "1m")) == 1)
        push(fake, 0, partial=True)
        push(fake, 0)
        await until(lambda: c.feed.coins["ETH"].open is not None)
        clock.set((T0 + MIN_MS) * 1_000_000 + GRACE_NS - 1)  # a nanosecond early
        await asyncio.sleep(0.05)
        assert c.bars == [] and c.feed.rest_checks == 0
        clock.set((T0 + MIN_MS) * 1_000_000 + GRACE_NS)
        await until(lambda: len(c.bars) == 1)
        assert c.bars == [expected(0)] and c.how == ["rest"]
        # nothing closed in the next interval: asked again one interval later, not before
        checks = c.feed.rest_checks
        clock.set((T0 + 2 * MIN_MS) * 1_000_000 + GRACE_NS)
        await until(lambda: c.feed.rest_checks == checks + 1)
        clock.set((T0 + 3 * MIN_MS) * 1_000_000 + GRACE_NS - 2)
        await asyncio.sleep(0.05)
        assert c.feed.rest_checks == checks + 1
        # the late push of candle 0 is a repeat; candle 1 and 2 arrive and close by push
        push(fake, 0)
        push(fake, 1)
        push(fake, 2)
        await until(lambda: len(c.bars) == 2)
        await c.stop()
        assert c.bars == [expected(0), expected(1)]
        assert c.how == ["rest", "push"]
        feed = [h for h in health if h[0] == "feed:ETH"]
        assert feed == [("feed:ETH", "degraded"), ("feed:ETH", "healthy")]

    asyncio.run(go())


def test_warmup_takes_closed_history_only_then_the_stream(fake: FakeHyperliquid) -> None:
    for k in range(10):  # history: candles 0..9 closed, 10 open
        push(fake, k)
    push(fake, 10, partial=True)

    async def go() -> None:
        now = (T0 + 10 * MIN_MS) * 1_000_000 + 30 * 10**9  # half way through candle 10
        clock = ManualClock(now)
        c = Collector(make_feed(fake, clock, warmup_bars=4, max_bars=2)).start()
        await until(lambda: len(c.bars) == 4)
        assert c.bars == [expected(k) for k in range(6, 10)]
        assert c.how == ["warmup"] * 4
        await until(lambda: fake.subscribed(candle("ETH", "1m")) == 1)
        push(fake, 9)  # a repeat of history: dropped
        push(fake, 10)
        push(fake, 11)
        push(fake, 12)
        assert c.task is not None
        await asyncio.wait_for(c.task, 5)  # max_bars=2 live bars: the feed ends itself
        assert c.bars == [expected(k) for k in range(6, 12)]

    asyncio.run(go())


def test_a_gap_in_the_pushes_is_filled_from_rest(fake: FakeHyperliquid) -> None:
    async def go() -> None:
        clock = ManualClock(T0 * 1_000_000)
        c = Collector(make_feed(fake, clock)).start()
        await until(lambda: fake.subscribed(candle("ETH", "1m")) == 1)
        push(fake, 0)
        push(fake, 1)
        with fake.lock:  # candles 2 and 3 reach the history but the pushes are lost
            for k in (2, 3):
                o, h, lo, cl, v = bar_at(k)
                fake.candles[("ETH", "1m")].append({
                    "t": T0 + k * MIN_MS, "T": T0 + (k + 1) * MIN_MS - 1, "s": "ETH",
                    "i": "1m", "o": repr(o), "c": repr(cl), "h": repr(h), "l": repr(lo),
                    "v": repr(v), "n": 1})
        push(fake, 4)
        push(fake, 5)
        await until(lambda: len(c.bars) == 5)
        await c.stop()
        assert c.bars == [expected(k) for k in range(5)]
        assert c.how == ["push", "push", "rest", "rest", "push"]  # 1 closed by 4

    asyncio.run(go())


def test_two_coins_each_in_order(fake: FakeHyperliquid) -> None:
    async def go() -> None:
        clock = ManualClock(T0 * 1_000_000)
        c = Collector(make_feed(fake, clock, coins={"ETH": "ETH", "XBT": "BTC"})).start()
        await until(lambda: fake.subscribed(candle("BTC", "1m")) == 1)
        for k in range(3):
            push(fake, k, "BTC")
            push(fake, k, "ETH")
        await until(lambda: len(c.bars) == 4)
        await c.stop()
        # symbols are ours ("XBT" trades coin BTC); each symbol's bars in order
        assert [b for b in c.bars if b.symbol == "ETH"] == [expected(k) for k in range(2)]
        assert [b for b in c.bars if b.symbol == "XBT"] == [
            Bar("XBT", (T0 + k * MIN_MS) * 1_000_000, *bar_at(k, "BTC")) for k in range(2)]

    asyncio.run(go())


def test_a_history_shorter_than_the_warmup_is_an_error_never_a_shorter_warmup(
        fake: FakeHyperliquid) -> None:
    """3 closed candles, warmup_bars = 4: asked up front it is bad input naming the field;
    the warm-up itself refuses too (it used to warm up on 3, silently)."""
    for k in range(3):
        push(fake, k)
    push(fake, 3, partial=True)
    now = (T0 + 3 * MIN_MS) * 1_000_000 + 30 * 10**9

    async def go() -> list[Bar]:
        feed = make_feed(fake, ManualClock(now), warmup_bars=4, max_bars=1)
        with pytest.raises(ConfigError, match=r"live\.warmup_bars = 4: Hyperliquid has 3 "
                                              r"closed 1m candle\(s\) of ETH"):
            await feed.check_warmup()
        await make_feed(fake, ManualClock(now), warmup_bars=3).check_warmup()  # enough
        got: list[Bar] = []
        with pytest.raises(ValueError, match=r"live\.warmup_bars = 4"):
            async for bar in make_feed(fake, ManualClock(now), warmup_bars=4, max_bars=1):
                got.append(bar)
        return got

    assert asyncio.run(go()) == []
