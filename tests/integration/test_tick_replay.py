"""Tick replay against bar replay on the same recorded market (Binance XRP/ETH,
2019-10-11..13: every trade, and the 1m bars those trades make; data/README.md).

Tolerance: **exact** (1e-12 relative) with zero latency and market orders. A bar built from
trades opens at its first trade, so "the next bar's open" (bar replay) and "the first trade
after the decision" (tick replay) are the same price, and agents see the same bars, so
they decide the same; only the fill timestamps differ (the trade's time vs the bar's
label). With latency the two replays legitimately differ: bar data knows no price between
opens, so an order arriving mid-minute waits for the next open there, while tick replay
fills it at the first trade at or after its arrival; the test checks each replay honours
its own rule instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.config import parse_scenario
from sim.loaders import load_trades
from sim.runner import run_scenario
from sim.store import DuckDBStore

DATA = Path(__file__).resolve().parents[2] / "data"
TRADES = DATA / "binance_XRP_ETH_trades_2019-10.csv"
BARS = DATA / "binance_XRP_ETH_1m_2019-10.csv"


def scenario(replay: str, execution: dict[str, Any] | None = None,
             venue: dict[str, Any] | None = None) -> dict[str, Any]:
    source = ({"symbol": "XRPETH", "path": str(TRADES), "format": "trades",
               "interval": "1m", "gaps": "skip"} if replay == "ticks"
              else {"symbol": "XRPETH", "path": str(BARS), "interval": "1m", "gaps": "skip"})
    return {
        "name": f"xrp_{replay}", "initial_cash": 10.0,  # ETH
        "data": [source],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 10, "slow": 60}}],
        "policy": {"exposure": 0.9},
        "venues": [{"name": "v", "symbols": ["XRPETH"], "fee_bps": 10.0, **(venue or {})}],
        "execution": {"replay": replay, **(execution or {})},
    }


def tables(tmp_path: Path, raw: dict[str, Any]) -> dict[str, pd.DataFrame]:
    with DuckDBStore(tmp_path / f"{raw['name']}.duckdb") as store:
        run_id = run_scenario(parse_scenario(raw, raw["name"]), store).run_id
        return {t: store.con.execute(
            f"SELECT * EXCLUDE (run_id) FROM {t} WHERE run_id = ? ORDER BY {o}", [run_id]).df()
            for t, o in (("fills", "fill_id"), ("equity", "ts"), ("decisions", "decision_id"),
                         ("orders", "order_id"), ("bars", "ts"))}


def test_ticks_and_bars_agree_exactly_without_latency(tmp_path: Path) -> None:
    ticks = tables(tmp_path, scenario("ticks"))
    bars = tables(tmp_path, scenario("bars"))
    assert len(bars["fills"]) > 20  # a slow strategy that still trades
    pd.testing.assert_frame_equal(ticks["bars"], bars["bars"])  # the bars agents saw
    pd.testing.assert_frame_equal(ticks["decisions"], bars["decisions"])
    for column in ("quantity", "price", "fee", "cash_after", "position_after"):
        np.testing.assert_allclose(ticks["fills"][column], bars["fills"][column], rtol=1e-12)
    pd.testing.assert_frame_equal(ticks["equity"], bars["equity"], rtol=1e-12)
    # The fill happens at the first trade of the bar, within the bar's minute.
    offset = (ticks["fills"]["ts"] - bars["fills"]["ts"]).dt.total_seconds()
    assert ((offset >= 0) & (offset < 60)).all()


def test_with_latency_each_replay_fills_by_its_own_rule(tmp_path: Path) -> None:
    """500 ms of latency. Tick replay: the fill is the first trade at or after arrival.
    Bar replay: the first bar open at or after arrival."""
    latency = {"latency": True}
    venue = {"latency_ms": 500.0}
    ticks = tables(tmp_path, scenario("ticks", latency, venue))
    bars = tables(tmp_path, scenario("bars", latency, venue))
    trades = load_trades(TRADES)
    for replay, label in ((ticks, "ticks"), (bars, "bars")):
        fills = replay["fills"].merge(replay["orders"][["order_id", "arrival_ts"]],
                                      on="order_id")
        assert len(fills) > 20
        arrival = fills["arrival_ts"].astype("int64").to_numpy()
        at = fills["ts"].astype("int64").to_numpy()
        if label == "ticks":
            first = np.searchsorted(trades.ts, arrival, side="left")
            np.testing.assert_array_equal(at, trades.ts[first])
            np.testing.assert_array_equal(fills["price"], trades.price[first])  # no slippage
        else:
            labels = replay["bars"]["ts"].astype("int64").to_numpy()
            first = np.searchsorted(labels, arrival, side="left")
            np.testing.assert_array_equal(at, labels[first])
            np.testing.assert_array_equal(fills["price"], replay["bars"]["open"].to_numpy()[first])
    # Same decisions up to the first fill; afterwards positions differ, so may decisions.
    assert ticks["decisions"].iloc[0].equals(bars["decisions"].iloc[0])


def test_tick_replay_is_deterministic(tmp_path: Path) -> None:
    raw = scenario("ticks", {"latency": True, "order_type": "limit", "offset_bps": 5.0},
                   {"latency_ms": 200.0, "latency_dist": "exponential"})
    first = tables(tmp_path, raw)
    again = tables(tmp_path / "again" if (tmp_path / "again").mkdir() is None else tmp_path,
                   raw)
    for name in first:
        pd.testing.assert_frame_equal(first[name], again[name])
    assert (first["orders"]["order_type"] == "limit").all()


@pytest.mark.parametrize("bad", [{"fill_at": "close"}])
def test_tick_replay_config_errors(bad: dict[str, Any]) -> None:
    from sim.config_base import ConfigError

    with pytest.raises(ConfigError, match="execution"):
        parse_scenario(scenario("ticks", bad))
