"""Invariants of the order lifecycle and the one fill path, over drawn markets, scripts
and execution settings (order types, brackets, intrabar conventions, latency, impact,
participation, perpetual margin with funding, venue faults):

* every order ends in exactly one terminal state, and it is the order's last event;
* every fill and event belongs to a recorded order, and an order's filled quantity is
  the sum of its fills;
* the position after each fill equals the running sum of fills;
* cash = initial cash - sum(quantity x price + fee) + funding (math.fsum, 1e-9 relative);
* a limit order never fills through its limit price; a post-only order never takes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.data import FundingRates, bars_from_frame, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.unit.test_execution_hand_computed import AGENT, bar_ts

TERMINAL = {"filled", "cancelled", "expired", "rejected", "denied"}


@st.composite
def market(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(8, 24))
    moves = draw(st.lists(st.integers(-40, 40), min_size=n, max_size=n))
    close = 100.0 * np.exp(np.cumsum(np.array(moves) / 1000.0))
    open_ = np.concatenate(([100.0], close[:-1]))
    gap = np.array(draw(st.lists(st.integers(-10, 10), min_size=n, max_size=n))) / 1000.0
    open_ = open_ * np.exp(gap)
    wick = np.array(draw(st.lists(st.integers(0, 30), min_size=2 * n, max_size=2 * n)))
    high = np.maximum(open_, close) * np.exp(wick[:n] / 1000.0)
    low = np.minimum(open_, close) * np.exp(-wick[n:] / 1000.0)
    volume = np.array(draw(st.lists(st.integers(0, 500), min_size=n, max_size=n)), float)
    return pd.DataFrame({
        "timestamp": pd.to_datetime([bar_ts(i + 1) for i in range(n)], utc=True),
        "open": open_, "high": high, "low": low, "close": close, "volume": volume})


@st.composite
def case(draw: st.DrawFn) -> dict[str, Any]:
    bars = draw(market())
    n = len(bars)
    sides = ["LONG", "FLAT", "SHORT"]
    script = sorted({draw(st.integers(1, n - 1)): draw(st.sampled_from(sides))
                     for _ in range(draw(st.integers(1, 6)))}.items())
    order_type = draw(st.sampled_from(["market", "limit", "stop"]))
    execution: dict[str, Any] = {
        "order_type": order_type,
        "offset_bps": float(draw(st.integers(0, 150))),
        "time_in_force": draw(st.sampled_from(["gtc", "gtc", "ioc"])),
        "post_only": order_type == "limit" and draw(st.booleans()),
        "intrabar": draw(st.sampled_from(["worst_case", "ohlc", "olhc"])),
        "limit_fill": draw(st.sampled_from(["through", "touch"])),
        "latency": draw(st.booleans()),
        "fill_at": draw(st.sampled_from(["next_open", "close"])),
    }
    if draw(st.booleans()):
        execution["take_profit"] = draw(st.integers(5, 40)) / 1000
        execution["stop_loss"] = draw(st.integers(5, 40)) / 1000
    if draw(st.booleans()):
        execution["order_ttl"] = draw(st.sampled_from(["1m", "3m"]))
    perp = draw(st.booleans())
    venue_extra: dict[str, Any] = {
        "fee_bps": float(draw(st.integers(0, 20))),
        "maker_fee_bps": float(draw(st.integers(-3, 5))),
        "slippage_bps": float(draw(st.integers(0, 10))),
        "impact_bps": float(draw(st.sampled_from([0, 0, 30]))),
        "max_participation": draw(st.sampled_from([None, None, 0.2, 1.0])),
        "latency_ms": float(draw(st.sampled_from([0, 20_000, 60_000, 90_000]))),
        "latency_dist": draw(st.sampled_from(["fixed", "exponential"])),
    }
    if perp:
        venue_extra.update(kind="perp", max_leverage=3.0, maintenance_margin=0.1)
    venues = [
        {"name": "a", "symbols": ["X"], **venue_extra,
         "reject_rate": draw(st.sampled_from([0.0, 0.3, 1.0])),
         "timeout_ms": draw(st.sampled_from([None, 50_000.0]))},
        {"name": "b", "symbols": ["X"], **venue_extra, "fee_bps": venue_extra["fee_bps"] + 1},
    ]
    events = []
    if draw(st.booleans()):
        down = draw(st.integers(1, n))
        events = [{"at": pd.Timestamp(bar_ts(down) + 30 * 10**9, tz="UTC").isoformat(),
                   "kind": "venue_down", "venue": "a"},
                  {"at": pd.Timestamp(bar_ts(down + 3), tz="UTC").isoformat(),
                   "kind": "venue_up", "venue": "a"}]
    return {"bars": bars, "perp": perp, "scenario": {
        "name": "inv", "seed": draw(st.integers(0, 5)), "initial_cash": 10_000.0,
        "agents": [{"name": "s", "kind": AGENT,
                    "params": {"script": [[k, v] for k, v in script]}}],
        "policy": {"exposure": draw(st.sampled_from([0.3, 1.0, 2.5])) if perp else 0.9,
                   "allow_short": True},
        "venues": venues, "execution": execution, "events": events}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_lifecycle_and_ledger_invariants(c: dict[str, Any]) -> None:
    config = parse_scenario(c["scenario"], "inv")
    bars = bars_from_frame(c["bars"], "X")
    funding = None
    if c["perp"]:
        times = bars.ts[1::3] + 17 * 10**9
        funding = FundingRates("drawn", times, np.resize([0.001, -0.0005, 0.002], len(times)))
        from dataclasses import replace

        bars = replace(bars, funding=funding)
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(config, store, data=merge([bars])).run_id
        q = lambda sql: store.con.execute(sql, [run_id]).df()  # noqa: E731
        orders = q("SELECT * FROM orders WHERE run_id = ? ORDER BY order_id")
        events = q("SELECT * FROM order_events WHERE run_id = ? ORDER BY rowid")
        fills = q("SELECT * FROM fills WHERE run_id = ? ORDER BY fill_id")
        paid = q("SELECT * FROM funding WHERE run_id = ? ORDER BY ts")
        equity = q("SELECT * FROM equity WHERE run_id = ? ORDER BY ts")

    # exactly one terminal state per order, its last event
    assert orders["order_id"].is_unique
    assert set(orders["status"]) <= TERMINAL
    for order_id, group in events.groupby("order_id", sort=False):
        terminal = group[group["event"].isin(TERMINAL)]
        assert len(terminal) == 1, (group.to_string(), orders.to_string(), fills.to_string())
        assert group["event"].iloc[-1] == terminal["event"].iloc[0]
        status = orders.loc[orders["order_id"] == order_id, "status"]
        assert status.tolist() == [terminal["event"].iloc[0]]
    assert set(events["order_id"]) == set(orders["order_id"])
    assert set(fills["order_id"]) <= set(orders["order_id"])
    by_order = fills.groupby("order_id")["quantity"].sum()
    filled = orders.set_index("order_id")["filled_quantity"]
    for order_id, qty in filled.items():
        assert math.isclose(by_order.get(order_id, 0.0), qty, rel_tol=1e-9, abs_tol=1e-9)

    # position = running sum of fills; cash = fills + fees + funding
    running = np.cumsum(fills["quantity"].to_numpy())
    np.testing.assert_allclose(fills["position_after"], running, rtol=1e-9, atol=1e-9)
    flows = [-q * p - f for q, p, f in zip(fills["quantity"], fills["price"], fills["fee"],
                                            strict=True)]
    expected_cash = math.fsum([10_000.0, *flows, *paid["payment"]])
    final_cash = equity["cash"].iloc[-1]
    assert math.isclose(final_cash, expected_cash, rel_tol=1e-9, abs_tol=1e-6)

    # limits never fill through their price; post-only never takes
    merged = fills.merge(orders[["order_id", "order_type", "limit_price", "post_only"]],
                         on="order_id")
    limits = merged[merged["order_type"] == "limit"]
    buys, sells = limits[limits["quantity"] > 0], limits[limits["quantity"] < 0]
    assert (buys["price"] <= buys["limit_price"] * (1 + 1e-12)).all()
    assert (sells["price"] >= sells["limit_price"] * (1 - 1e-12)).all()
    assert not (merged["post_only"] & (merged["liquidity"] == "taker")).any()
