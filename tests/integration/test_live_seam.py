"""Live seam: the live runner, fed by a wall-clock-paced async feed, reproduces a backtest.

The same scenario runs twice into one DuckDB file: once through ``run_scenario`` (the
simulated walk), once through ``LiveRunner`` with bars released by ``PacedReplayFeed`` on an
``AcceleratedClock``: real ``asyncio.sleep``s until each bar's close time, at high speed.
Every recorded row that does not measure wall time must be identical.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from live.clock import AcceleratedClock
from live.feeds import PacedReplayFeed
from live.runner import LiveRunner
from sim.config import parse_scenario
from sim.config_base import parse_duration
from sim.data import MarketData
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data, run_scenario
from sim.store import DuckDBStore

N_BARS = 300
INTERVAL = "1m"
SPEED = 30_000.0  # one 1-minute bar every 2 ms of real time

SCENARIO = {
    "name": "live-seam",
    "seed": 7,
    "initial_cash": 10_000.0,
    "data": [
        {"kind": "gbm", "symbol": "BTC", "bars": N_BARS, "interval": INTERVAL,
         "price": 30_000.0, "volatility": 1.2},
        {"kind": "gbm", "symbol": "ETH", "bars": N_BARS, "interval": INTERVAL,
         "price": 2_000.0, "volatility": 1.5},
    ],
    "agents": [
        {"name": "sma_fast", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}},
        {"name": "sma_slow", "kind": "sma_crossover", "params": {"fast": 10, "slow": 40}},
        {"name": "zscore", "kind": "zscore_reversion",
         "params": {"window": 30, "entry": 1.5, "exit": 0.3}},
        {"name": "zscore_eth", "kind": "zscore_reversion", "symbols": ["ETH"],
         "params": {"window": 20, "entry": 1.2, "exit": 0.2}},
    ],
    "consensus": {"method": "confidence_weighted", "min_agreement": 0.4},
    "policy": {"exposure": 0.5, "allow_short": True, "scale_by_confidence": True},
    "risk": {"max_order_notional": 4_000.0},
    "venues": [
        {"name": "alpha", "symbols": ["BTC", "ETH"], "fee_bps": 10.0, "slippage_bps": 2.0},
        {"name": "beta", "symbols": ["ETH"], "fee_bps": 5.0, "slippage_bps": 1.0},
    ],
}

# table -> (columns compared, ORDER BY). routing_decisions.elapsed_ns is wall time: left out.
TABLES = {
    "signals": ("ts, symbol, agent, side, confidence, target", "ts, symbol, agent"),
    "decisions": ("ts, symbol, side, confidence, target, decision_id, method", "decision_id"),
    "votes": ("decision_id, agent, side, confidence, weight", "decision_id, agent"),
    "orders": ("order_id, decision_id, ts, symbol, quantity, ref_price, notional, status",
               "order_id"),
    "risk_events": ("order_id, ts, symbol, check_name, reason", "order_id"),
    "routing_decisions": ("order_id, ts, symbol, venue, candidates, reason", "order_id"),
    "fills": ("fill_id, order_id, ts, symbol, venue, quantity, price, fee, ref_price, "
              "cash_after, position_after, realized_pnl", "fill_id"),
    "equity": ("ts, cash, equity", "ts"),
    # written by the live runner as it flushes, causal regime labels included
    "bars": ("ts, symbol, open, high, low, close, volume, regime, source_regime, filled",
             "ts, symbol"),
}


def _bars(data: MarketData) -> list[Bar]:
    """The recorded bars as a live exchange would publish them, in the backtest's order."""
    out = []
    for s, pos in zip(data.order_symbol.tolist(), data.order_pos.tolist(), strict=True):
        b = data.bars[s]
        out.append(Bar(b.symbol, *(b.column(c)[pos].item()
                                   for c in ("ts", "open", "high", "low", "close", "volume"))))
    return out


class _Watched:
    """Wraps a feed; records the clock at each release (proof the pacing is real)."""

    def __init__(self, feed: PacedReplayFeed, released: list[tuple[Bar, int]]) -> None:
        self.feed = feed
        self.released = released

    async def __aiter__(self):
        async for bar in self.feed:
            self.released.append((bar, self.feed.clock.now_ns()))
            yield bar


def _rows(store: DuckDBStore, table: str, run_id: str) -> list[tuple]:
    cols, order = TABLES[table]
    return store.con.execute(
        f"SELECT {cols} FROM {table} WHERE run_id = ? ORDER BY {order}", [run_id]
    ).fetchall()


@pytest.mark.parametrize("per_symbol_feeds", [False, True], ids=["one-feed", "feed-per-symbol"])
def test_live_run_matches_simulated_run(tmp_path, per_symbol_feeds):
    config = parse_scenario(SCENARIO)
    data = load_market_data(config, RandomStreams.spawn(config.seed, 2, len(config.agents)).data)
    interval = parse_duration(INTERVAL)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        sim = run_scenario(config, store, data=data)

        bars = _bars(data)
        clock = AcceleratedClock(start_ns=bars[0].ts, speed=SPEED)
        released: list[tuple[Bar, int]] = []
        if per_symbol_feeds:
            # Listed in reverse, so each timestamp's ETH bar arrives before BTC's: the runner
            # must restore the backtest's (timestamp, symbol order) itself.
            feeds = [_Watched(PacedReplayFeed([b for b in bars if b.symbol == sym], clock,
                                              interval), released)
                     for sym in reversed(data.symbols)]
        else:
            feeds = [_Watched(PacedReplayFeed(bars, clock, interval), released)]
        runner = LiveRunner(config, store)
        started = time.monotonic()
        live = asyncio.run(runner.run(feeds))
        real_s = time.monotonic() - started

        # Paced for real: no bar before its close on the clock, and the replay took (at
        # least) the span of the data divided by the speed-up.
        assert len(released) == len(bars)
        assert all(now >= bar.ts + interval for bar, now in released)
        assert real_s >= 0.95 * N_BARS * interval / SPEED / 1e9
        assert live.bars == sim.bars == len(bars)
        if per_symbol_feeds:
            assert [b.symbol for b, _ in released[:2]] == ["ETH", "BTC"]

        status = store.con.execute(
            "SELECT run_id, status, n_bars, mode FROM runs ORDER BY run_id").fetchall()
        assert sorted(status) == sorted([(sim.run_id, "completed", len(bars), "backtest"),
                                         (live.run_id, "completed", len(bars), "paper")])
        for table in TABLES:
            expected = _rows(store, table, sim.run_id)
            got = _rows(store, table, live.run_id)
            assert got == expected, f"{table} differs between simulated and live runs"

        # The scenario is not vacuous: it trades both symbols and trips risk.
        counts = {t: len(_rows(store, t, sim.run_id)) for t in TABLES}
        assert counts["decisions"] >= 10
        assert counts["fills"] >= 5
        assert counts["risk_events"] >= 1
        syms = {r[3] for r in _rows(store, "fills", sim.run_id)}
        assert syms == {"BTC", "ETH"}
