"""Farms in a paper session (``live.farms``): one feed, one account, each farm's own
pipeline and ledger, as in a backtest.

A paper session of a two-farm scenario stores exactly the rows the backtest of the same
bars stores (signals to equity, and each farm's orders, decisions and ledger); its farms
and their initial allocations are recorded when it starts; ``quorum parity`` replays it
with zero divergences. A farm run watched on a bus (every bar and equity row published:
``quorum live --api``'s stream) stores the same rows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from live.runner import LiveRunner
from quorum.parity import replay
from reports.parity import parity
from sim.bus import BAR, EQUITY, Envelope, EventBus
from sim.config import ScenarioConfig, parse_scenario
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data, run_scenario
from sim.store import DuckDBStore
from tests.integration.test_live_seam import _bars

FARMS: dict[str, Any] = {
    "name": "farms-live",
    "seed": 3,
    "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "BTC", "bars": 240, "interval": "1m",
              "price": 30_000.0, "volatility": 1.2},
             {"kind": "gbm", "symbol": "ETH", "bars": 240, "interval": "1m",
              "price": 2_000.0, "volatility": 1.5}],
    "agents": [
        {"name": "fast", "kind": "sma_crossover", "params": {"fast": 3, "slow": 10}},
        {"name": "slow", "kind": "sma_crossover", "params": {"fast": 8, "slow": 30}},
        {"name": "revert", "kind": "zscore_reversion", "symbols": ["ETH"],
         "params": {"window": 20, "entry": 1.2, "exit": 0.2}},
    ],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "alpha", "symbols": ["BTC", "ETH"], "fee_bps": 5.0,
                "slippage_bps": 1.0}],
    "farms": [
        {"name": "trend", "agents": ["fast", "slow"], "share": 0.6,
         "risk": {"max_drawdown": 0.2}},
        {"name": "revert", "agents": ["revert"], "capital": 3_000.0,
         "risk": {"daily_loss": 500.0}},
    ],
}

# table -> columns compared (every column but the run id; the farm rows in full)
TABLES = {
    "signals": "ts, symbol, agent, side, confidence, target",
    "decisions": "ts, symbol, side, confidence, target, decision_id",
    "orders": "order_id, decision_id, ts, symbol, quantity, ref_price, status",
    "fills": "fill_id, order_id, ts, symbol, venue, quantity, price, fee, cash_after,"
             " position_after",
    "equity": "ts, cash, equity",
    "farm_orders": "order_id, decision_id, farm",
    "farm_decisions": "decision_id, farm",
    "farm_equity": "ts, farm, cash, equity, realized_pnl, unrealized_pnl",
    "farms": "farm, agents, capital, wallet, consensus, policy, risk",
}


class _Feed:
    """The bars as a live exchange publishes them, as fast as the runner takes them."""

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for bar in self.bars:
            yield bar


def _rows(con: duckdb.DuckDBPyConnection, table: str, run_id: str) -> list[tuple]:
    return con.execute(f"SELECT {TABLES[table]} FROM {table} WHERE run_id = ? ORDER BY ALL",
                       [run_id]).fetchall()


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """(store, backtest run, paper run) of the same bars."""
    config: ScenarioConfig = parse_scenario(FARMS)
    data = load_market_data(
        config, RandomStreams.spawn(config.seed, len(config.data), len(config.agents)).data)
    db = tmp_path_factory.mktemp("farms_live") / "runs.duckdb"
    with DuckDBStore(db) as store:
        sim = run_scenario(config, store, data=data)
        live = asyncio.run(LiveRunner(config, store).run([_Feed(_bars(data))]))
    return db, sim.run_id, live.run_id


def test_a_paper_session_stores_the_backtests_farm_rows(sessions) -> None:
    db, sim, live = sessions
    with duckdb.connect(str(db), read_only=True) as con:
        for table in TABLES:
            expected = _rows(con, table, sim)
            assert _rows(con, table, live) == expected, f"{table} differs"
        # not vacuous: both farms traded, each order carries its farm
        farms = dict(con.execute("SELECT farm, count(*) FROM orders_by_farm WHERE run_id = ?"
                                 " GROUP BY farm", [live]).fetchall())
        assert set(farms) == {"trend", "revert"} and min(farms.values()) >= 3, farms
        # the session's allocations: one per farm, at its start (not at a bar's time)
        transfers = con.execute(
            "SELECT to_farm, amount FROM capital_transfers WHERE run_id = ? ORDER BY to_farm",
            [live]).fetchall()
        assert transfers == [("revert", 3_000.0), ("trend", 6_000.0)]
        # the account is the sum of the farm ledgers (and the 1,000 reserve) at the end
        (account,) = con.execute("SELECT last(equity ORDER BY ts) FROM equity WHERE"
                                 " run_id = ?", [live]).fetchone()
        (farm_sum,) = con.execute(
            "SELECT sum(e) FROM (SELECT last(equity ORDER BY ts) AS e FROM farm_equity"
            " WHERE run_id = ? GROUP BY farm)", [live]).fetchone()
        assert account == pytest.approx(farm_sum + 1_000.0, rel=1e-9)


def test_quorum_parity_replays_a_farms_paper_session_to_zero_divergences(sessions) -> None:
    db, _, live = sessions
    with duckdb.connect(str(db), read_only=True) as con:
        rep = replay(con, live)
        try:
            result = parity(rep.store.con, rep.live_run, rep.replay_run, rep.mode)
        finally:
            rep.store.close()
    assert result.mode == "paper" and result.divergences == []
    assert result.shortfall["live"]["fills"] >= 6


def test_a_farm_run_publishing_every_bar_stores_the_same_rows(sessions) -> None:
    db, sim, _ = sessions
    bus = EventBus()
    events: list[Envelope] = []
    bus.subscribe(events.append, [BAR, EQUITY])
    with DuckDBStore(db) as store:
        watched = run_scenario(parse_scenario(FARMS), store, bus=bus).run_id
        for table in TABLES:
            assert _rows(store.con, table, watched) == _rows(store.con, table, sim), table
        (equity,) = store.con.execute("SELECT count(*) FROM equity WHERE run_id = ?",
                                      [sim]).fetchone()
    topics = [e.topic for e in events]
    assert topics.count(BAR) == 480 and topics.count(EQUITY) == equity
