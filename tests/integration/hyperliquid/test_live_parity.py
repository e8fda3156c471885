"""Parity through the real WebSocket path: recorded bars pushed by the fake Hyperliquid as
candle updates (an early partial update, then the final one) reach the paper live runner
through ``HyperliquidCandleFeed``, and every stored row that does not measure wall time
equals the backtest of the same bars.

Variants: a plain session; and one that warms up from ``candleSnapshot`` history, then
loses the WebSocket mid-stream while candles keep coming (the server refuses to reconnect
for a while), reconnects and backfills. Both must be identical to the backtest.
"""

from __future__ import annotations

import asyncio

import pytest

from live.hyperliquid.candles import HyperliquidCandleFeed
from live.hyperliquid.stream import candle
from live.runner import LiveRunner
from sim.config import parse_scenario
from sim.config_base import parse_duration
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data, run_scenario
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.test_live_seam import SCENARIO, TABLES, _bars, _rows

from .conftest import make_config
from .test_faults import wait_for

INTERVAL_NS = parse_duration(SCENARIO["data"][0]["interval"])
INTERVAL_MS = INTERVAL_NS // 1_000_000
GRACE_NS = 2 * 10**9
WARMUP = 60
DROP_AT, LOST = 150, 25  # the stream drops before this bar; this many are pushed meanwhile


def push(fake: FakeHyperliquid, bar: Bar, partial: bool = False) -> None:
    ms = bar.ts // 1_000_000
    if partial:  # what the candle looked like early in its interval
        fake.push_bar(bar.symbol, "1m", INTERVAL_MS, ms, bar.open, bar.open, bar.open,
                      bar.open, 0.0)
    else:
        fake.push_bar(bar.symbol, "1m", INTERVAL_MS, ms, bar.open, bar.high, bar.low,
                      bar.close, bar.volume)


async def drive(fake: FakeHyperliquid, feed: HyperliquidCandleFeed, clock: ManualClock,
                steps: list[list[Bar]], start: int, drop: bool) -> None:
    """The exchange: candle k opens at its time (the clock moves there), is updated, and
    is closed by the push of candle k + 1 (or, for the last one, by the clock). While
    connected, the clock waits for the feed to have seen each final update, so the
    next push closes it (on a loaded machine the clock would otherwise outrun the feed,
    and candleSnapshot would close the candles instead: the same values, another path)."""
    coins = {b.symbol for b in steps[0]}

    def subscribed() -> bool:
        return all(fake.subscribed(candle(c, "1m")) == 1 for c in coins)

    await wait_for(subscribed)
    for k in range(start, len(steps)):
        if drop and k == DROP_AT:
            fake.faults.ws_refuse = True
            fake.drop_websockets()
            await wait_for(lambda: fake.connections == 0)
        if drop and k == DROP_AT + LOST:
            fake.faults.ws_refuse = False
            await wait_for(subscribed)
        clock.set(steps[k][0].ts)
        for bar in steps[k]:
            push(fake, bar, partial=True)
        for bar in steps[k]:
            push(fake, bar)
        if not (drop and DROP_AT <= k < DROP_AT + LOST):
            while any(feed.coins[b.symbol].open != b for b in steps[k]):
                await asyncio.sleep(0.0002)
    clock.set(steps[-1][0].ts + INTERVAL_NS + GRACE_NS)  # the last candle closes by time


@pytest.mark.parametrize("variant", ["stream", "warmup-and-dropped-websocket"])
def test_paper_session_over_the_websocket_matches_the_backtest(tmp_path, variant) -> None:
    config = parse_scenario(SCENARIO)
    data = load_market_data(config, RandomStreams.spawn(config.seed, 2, len(config.agents)).data)
    bars = _bars(data)
    steps: list[list[Bar]] = []
    for bar in bars:
        if not steps or steps[-1][0].ts != bar.ts:
            steps.append([])
        steps[-1].append(bar)
    drop = variant != "stream"
    warmup = WARMUP if drop else 0
    fake = FakeHyperliquid(mainnet=False).start()
    try:
        for step in steps[:warmup]:  # history the session starts with
            for bar in step:
                push(fake, bar)
        if warmup:
            for bar in steps[warmup]:
                push(fake, bar, partial=True)  # the candle open at start: not history
        start_ns = steps[warmup][0].ts + INTERVAL_NS // 2
        clock = ManualClock(start_ns)
        how: list[str] = []
        feed = HyperliquidCandleFeed(
            make_config(fake), {"BTC": "BTC", "ETH": "ETH"}, INTERVAL_NS, clock=clock,
            warmup_bars=warmup, close_grace_ns=GRACE_NS, max_bars=len(steps) - warmup,
            on_event=lambda kind, bar: how.append(kind))

        with DuckDBStore(tmp_path / "runs.duckdb") as store:
            sim = run_scenario(config, store, data=data)
            runner = LiveRunner(config, store)

            async def session():
                driver = asyncio.create_task(drive(fake, feed, clock, steps, warmup, drop))
                result = await asyncio.wait_for(runner.run([feed]), 60)
                await driver
                return result

            live = asyncio.run(session())
            assert live.bars == sim.bars == len(bars)
            for table in TABLES:
                assert _rows(store, table, live.run_id) == _rows(store, table, sim.run_id), (
                    f"{table} differs between the backtest and the live session")
            mode = store.con.execute("SELECT mode, status FROM runs WHERE run_id = ?",
                                     [live.run_id]).fetchone()
            assert mode == ("paper", "completed")
            fills = len(_rows(store, "fills", sim.run_id))
    finally:
        fake.stop()
    assert fills >= 5  # not vacuous
    assert how.count("warmup") == 2 * warmup
    assert how[-2:] == ["rest", "rest"]  # the last candles closed by the clock
    if drop:
        # the candles pushed while disconnected came from candleSnapshot
        assert how.count("rest") >= 2 * (LOST - 1)
        assert feed.stream.connects == 2
    else:
        assert how.count("push") == len(bars) - 2
