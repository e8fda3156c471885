"""No order opposite to its decision; at equity <= 0 only reductions pass (issue 15, §3).

Drawn across the states that used to invert orders and across scales: every sizing
method, fees and slippage up to just under 10,000 bps, spot shorts squeezed and
perpetuals gapping through their liquidation price, prices from 1e-8 to 1e6 and accounts
from a cent to a billion. Read back from the stored rows of one symbol:

* the run completes (the engine's invariant never had to stop it);
* a decision's order never leaves the position on the other side of the decision (LONG:
  never below zero; SHORT: never above; FLAT, or SHORT without shorting: flat);
* every order that passed risk while the account's equity was <= 0 reduced the position
  (equity rebuilt exactly as the engine saw it: cash after the last fill plus the
  position at the order's price), and every ``equity`` denial found equity <= 0;
* no fill goes the other way from its order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.data import bars_from_frame, merge
from sim.messages import Side, Signal
from sim.risk import reduces
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.view import MarketView
from tests.property._support import policy

AGENT = f"{__name__}:Script"
SIDES = ("LONG", "SHORT", "FLAT")
MINUTE_NS = 60 * 10**9
T0 = pd.Timestamp("2024-03-01T00:00:00Z").value


class Script:
    """Emits [side, confidence] after the close of bar ``n`` for each [n, side, conf]."""

    def __init__(self, script: Sequence[Sequence[Any]]) -> None:
        self._at = {int(n): Signal(Side[str(side)], float(conf)) for n, side, conf in script}

    def on_bar(self, view: MarketView) -> Signal | None:
        return self._at.get(view.n)


@st.composite
def market(draw: st.DrawFn) -> pd.DataFrame:
    """Bars at a price scale of 10^-8..10^6, with up to three gaps of x0.05..x8."""
    n = draw(st.integers(8, 28))
    scale = 10.0 ** draw(st.integers(-8, 6))
    moves = np.array(draw(st.lists(st.integers(-60, 60), min_size=n, max_size=n))) / 1000
    close = scale * np.exp(np.cumsum(moves))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(3, n - 1))
        close[at:] *= draw(st.sampled_from([0.05, 0.2, 0.5, 2.0, 3.0, 8.0]))
    open_ = np.concatenate(([scale], close[:-1]))
    wick = np.array(draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))) / 1000
    return pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + i * MINUTE_NS for i in range(n)], utc=True),
        "open": open_, "high": np.maximum(open_, close) * np.exp(wick),
        "low": np.minimum(open_, close) * np.exp(-wick), "close": close,
        "volume": np.full(n, 1e3)})


@st.composite
def script(draw: st.DrawFn, n: int, opens: bool) -> list[list[Any]]:
    """[bar, side, confidence] steps; ``opens``: a position is asked for at bar 1, so a
    later gap meets it."""
    step = st.tuples(st.sampled_from(SIDES), st.sampled_from([0.2, 0.5, 0.8, 1.0]))
    steps = draw(st.dictionaries(st.integers(2, n - 1), step, max_size=8))
    if opens or not steps:
        steps[1] = (draw(st.sampled_from(SIDES[:2])), 1.0)
    return [[k, side, conf] for k, (side, conf) in sorted(steps.items())]


@st.composite
def case(draw: st.DrawFn) -> dict[str, Any]:
    bars = draw(market())
    n = len(bars)
    perp = draw(st.booleans())
    venue: dict[str, Any] = {
        "name": "v", "symbols": ["X"],
        "fee_bps": draw(st.sampled_from([0.0, 4.5, 100.0, 5_000.0, 9_999.0])),
        "slippage_bps": draw(st.sampled_from([0.0, 1.0, 500.0, 9_999.0])),
    }
    if perp:
        leverage = draw(st.sampled_from([1.0, 3.0, 10.0, 10.0, 50.0]))
        venue.update(kind="perp", max_leverage=leverage,
                     maintenance_margin=draw(st.sampled_from([0.0, 0.5])) / leverage)
    sizing = draw(policy(max_exposure=5.0 if perp else 1.5))
    if "vol_lookback" in sizing:
        sizing["vol_lookback"] = min(sizing["vol_lookback"], n // 3)
    if perp and draw(st.booleans()):  # levered: what a gap takes past the margin
        sizing.update(exposure=draw(st.sampled_from([2.0, 3.0, 5.0])), max_leverage=5.0)
    return {"bars": bars, "allow_short": sizing["allow_short"], "scenario": {
        "name": "no-inversion", "seed": 0,
        "initial_cash": draw(st.sampled_from([0.01, 3.0, 10_000.0, 1e9])),
        # Two scripted agents: their disagreements give decisions of varied confidence.
        "agents": [{"name": f"s{i}", "kind": AGENT,
                    "params": {"script": draw(script(n, opens=i == 0))}} for i in range(2)],
        "consensus": {"method": draw(st.sampled_from(["majority", "confidence_weighted"])),
                      "conflict": "highest_confidence"},
        "policy": sizing,
        "execution": {"fill_at": draw(st.sampled_from(["next_open", "close"]))},
        "venues": [venue]}}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case())
def test_no_order_opposite_to_its_decision_and_only_reductions_when_bust(
        c: dict[str, Any]) -> None:
    config = parse_scenario(c["scenario"], "no-inversion")
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(config, store,
                              data=merge([bars_from_frame(c["bars"], "X")])).run_id
        orders = store.con.execute(
            "SELECT o.order_id, o.role, d.side, o.quantity, o.ref_price, o.status,"
            " r.check_name, r.actual_value FROM orders o"
            " LEFT JOIN decisions d USING (run_id, decision_id)"
            " LEFT JOIN risk_events r USING (run_id, order_id)"
            " WHERE o.run_id = ? ORDER BY o.order_id", [run_id]).fetchall()
        fills = store.con.execute(
            "SELECT f.order_id, f.quantity, o.quantity, f.cash_after, f.position_after"
            " FROM fills f JOIN orders o USING (run_id, order_id) WHERE f.run_id = ?"
            " ORDER BY f.fill_id", [run_id]).fetchall()
        (low,) = store.con.execute("SELECT min(equity) FROM equity WHERE run_id = ?",
                                   [run_id]).fetchone()
    if low is not None and low <= 0.0:
        event("equity <= 0 reached")
    # the account just before each order: the last fill of an earlier order
    cash, position = c["scenario"]["initial_cash"], 0.0
    pending = iter(fills)
    nxt = next(pending, None)
    allow_short = c["allow_short"]
    for order_id, role, side, qty, ref, status, check, value in orders:
        while nxt is not None and nxt[0] < order_id:
            cash, position = nxt[3], nxt[4]
            nxt = next(pending, None)
        if role == "liquidation":  # the venue's, not an order risk judges
            continue
        after = position + qty
        if side is not None and qty != 0.0:
            if side == "LONG":
                assert after >= 0.0, (order_id, side, position, qty)
            elif side == "SHORT" and allow_short:
                assert after <= 0.0, (order_id, side, position, qty)
            else:
                assert after == 0.0, (order_id, side, position, qty)
        equity = cash + position * ref if position else cash
        if status != "denied" and equity <= 0.0:
            event("an order passed at equity <= 0")
            assert reduces(position, qty), (order_id, equity, position, qty)
        if check == "equity":
            event("denied: equity <= 0")
            assert status == "denied" and value <= 0.0 and equity == value
    for _, filled, ordered, _, _ in fills:
        assert filled * ordered > 0.0
