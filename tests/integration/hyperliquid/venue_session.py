"""Driving a real-venue live session (``--venue hyperliquid``) against the fake exchange.

The fake pushes recorded bars as candles; before the candle that closes bar k is pushed,
its book is quoted at bar k's open (bid: the open rounded down to the price grid, ask:
rounded up), so a market order released at that open meets the price a backtest fills it
at (the sim venue with tick 0.1 rounds buys up and sells down the same way). The driver
waits for each bar's orders to settle at the venue before the next bar, as a backtest
books a fill before the next bar.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from pathlib import Path
from typing import Any

from live.hyperliquid.config import Credentials
from live.hyperliquid.signing import Signer
from live.hyperliquid.stream import candle
from quorum.live import VenueSession, open_venue_session
from research.validation import PromotionVerdict
from sim.config import ScenarioConfig, parse_scenario
from sim.config_base import parse_duration
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.test_live_seam import _bars

from .conftest import KEY, make_config
from .test_faults import wait_for

SCENARIO: dict[str, Any] = {
    "name": "live-venue",
    "seed": 11,
    "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 90, "interval": "1m",
              "price": 2_000.0, "volatility": 1.5}],
    "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    # Hyperliquid's taker fee; ETH trades on a 0.1 price grid at these prices, in 0.0001
    "venues": [{"name": "hl", "symbols": ["ETH"], "fee_bps": 4.5, "slippage_bps": 0.0,
                "tick_size": 0.1, "lot_size": 0.0001}],
}
INTERVAL_NS = parse_duration("1m")
INTERVAL_MS = INTERVAL_NS // 1_000_000
GRACE_NS = 2 * 10**9
VERDICT = PromotionVerdict(True, "test: allowed", "cafe")
CREDENTIALS = Credentials(Signer(KEY, mainnet=False))
ACCOUNT = CREDENTIALS.account


def scenario(**overrides: Any) -> ScenarioConfig:
    raw = {**SCENARIO, **overrides}
    return parse_scenario(raw)


def bars_of(config: ScenarioConfig) -> list[Bar]:
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    return _bars(load_market_data(config, streams.data))


def push(fake: FakeHyperliquid, bar: Bar) -> None:
    fake.push_bar(bar.symbol, "1m", INTERVAL_MS, bar.ts // 1_000_000, bar.open, bar.high,
                  bar.low, bar.close, bar.volume)


def quote_at(fake: FakeHyperliquid, bar: Bar) -> None:
    """The book around ``bar``'s open, on the price grid (0.1 at these prices)."""
    bid = math.floor(bar.open * 10 + 1e-9) / 10
    ask = math.ceil(bar.open * 10 - 1e-9) / 10
    fake.quote(bar.symbol, round(bid, 1), round(ask, 1))


async def open_session(fake: FakeHyperliquid, store: DuckDBStore, config: ScenarioConfig,
                       clock: ManualClock, tmp_path: Path, *, max_bars: int,
                       resume: str | None = None, rehearse_every_s: float | None = None,
                       capital_from_account: bool = False, **hl: Any) -> VenueSession:
    return await open_venue_session(
        config, store, make_config(fake, **hl), VERDICT, override_reason=None,
        kill_file=tmp_path / "runs.kill", credentials=CREDENTIALS, max_bars=max_bars,
        clock=clock, resume_run=resume, settle_s=5.0, refresh_s=0.05,
        rehearse_every_s=rehearse_every_s, capital_from_account=capital_from_account)


def history(fake: FakeHyperliquid, bars: list[Bar], warmup: int) -> ManualClock:
    """Push the warm-up bars as history; the clock stands in the first live bar."""
    for bar in bars[:warmup]:
        push(fake, bar)
    return ManualClock(bars[warmup].ts + INTERVAL_NS // 2)


async def drive(fake: FakeHyperliquid, session: VenueSession, clock: ManualClock,
                bars: list[Bar], start: int, quote: bool = True,
                stop_after: int | None = None, on_step: Any = None) -> None:
    """Bar k opens (the clock moves there) and is pushed; the push of bar k + 1 closes
    it. The book is quoted at bar k's open before bar k is closed, and the next bar
    waits until the runner has taken bar k and nothing of ours is in flux at the venue
    (what works rests there: brackets, stop entries)."""
    await wait_for(lambda: fake.subscribed(candle("ETH", "1m")) == 1, 10)
    end = len(bars) if stop_after is None else stop_after
    for k in range(start, end):
        if on_step is not None:
            await on_step(k)
        clock.set(bars[k].ts)
        if k > start and quote:
            quote_at(fake, bars[k - 1])
        push(fake, bars[k])
        if k > start:
            await settled(session, k)  # bar k - 1 taken (k bars seen, warm-up included)
    if stop_after is None:
        if quote:
            quote_at(fake, bars[-1])
        clock.set(bars[-1].ts + INTERVAL_NS + GRACE_NS)  # the last bar closes by time


async def settled(session: VenueSession, bars_seen: int, timeout: float = 10.0) -> None:
    runner, port = session.runner, session.port

    def state() -> str:
        legs = [(t.cloid[:10], t.status, t.placing, t.done, t.booked, t.venue_filled)
                for t in port.by_cloid.values()]
        return (f"waiting for {bars_seen} bars: seen {runner.bars_seen}, queue "
                f"{runner.queue.qsize()}, legs {legs}, outbox {len(port._outbox)}")

    try:
        await wait_for(lambda: runner.bars_seen >= bars_seen and port.settled
                       and runner.queue.empty(), timeout)
        await asyncio.sleep(0.01)
        await wait_for(lambda: port.settled and runner.queue.empty(), timeout)
    except AssertionError:
        raise AssertionError(state()) from None


def venue_once_each(fake: FakeHyperliquid, store: DuckDBStore, run_id: str,
                    foreign: frozenset[str] = frozenset()) -> None:
    """No order lost or duplicated at the venue, every fill booked exactly once, and the
    store's position equals the venue's."""
    con = store.con
    sent = {r[0] for r in con.execute("SELECT cloid FROM venue_orders WHERE run_id = ?",
                                      [run_id]).fetchall()}
    at_venue = Counter(o.cloid for o in fake.user_orders(ACCOUNT) if o.cloid)
    assert all(n == 1 for n in at_venue.values()), at_venue
    placed = Counter(o.get("c") for _, a in fake.actions_run if a["type"] == "order"
                     for o in a["orders"])
    assert all(n == 1 for n in placed.values()), "an order was run twice at the venue"
    assert set(at_venue) <= set(placed)
    assert set(placed) - foreign <= sent, "the venue ran an order the store does not know"
    tids = [f["tid"] for f in fake.fills_of(ACCOUNT)]
    booked = [r[0] for r in con.execute("SELECT tid FROM venue_fills WHERE run_id = ?",
                                        [run_id]).fetchall()]
    assert Counter(booked) == Counter(tids), "a fill was lost or booked twice"
    (fills,) = con.execute("SELECT count(*) FROM fills WHERE run_id = ? AND liquidity !="
                           " 'adjustment'", [run_id]).fetchone()
    assert fills == len(tids)
    (position,) = con.execute("SELECT coalesce(sum(quantity), 0) FROM fills WHERE run_id = ?",
                              [run_id]).fetchone()
    assert abs(position - fake.position(ACCOUNT, "ETH")) < 1e-9
