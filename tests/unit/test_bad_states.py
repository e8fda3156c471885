"""Bad states never invert an order (issue 15, section 3).

Sizing aims at ``target x equity / price``; a negative equity turned that around (a LONG
decision selling). Now: at equity <= 0 sizing aims at flat, risk lets only reductions
through (check "equity", stored), and an order opposite to its decision stops the run as
failed. The cases observed: a perpetual gapping through its liquidation price, a spot
short squeezed past its equity.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.data import bars_from_frame, merge
from sim.instruments import FillOutsideBand
from sim.messages import Side, Signal, SubmitOrder
from sim.policy import InvertedOrderError, TargetExposurePolicy, inverted
from sim.risk import RiskEngine, reduces
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.view import MarketView

AGENT = f"{__name__}:Script"
MINUTE_NS = 60 * 10**9
T0 = pd.Timestamp("2024-03-01T00:00:00Z").value


class Script:
    """Emits ``side`` after the close of bar ``n`` for each [n, side]."""

    def __init__(self, script: Sequence[Sequence[Any]]) -> None:
        self._at = {int(n): Signal(Side[str(side)], 1.0) for n, side in script}

    def on_bar(self, view: MarketView) -> Signal | None:
        return self._at.get(view.n)


def frame(opens: Sequence[float], closes: Sequence[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.to_datetime([T0 + i * MINUTE_NS for i in range(len(closes))], utc=True),
        "open": opens, "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
        "low": [min(o, c) for o, c in zip(opens, closes, strict=True)], "close": closes,
        "volume": [1.0] * len(closes)})


def run(tmp_path: Path, opens: Sequence[float], closes: Sequence[float],
        script: Sequence[Sequence[Any]], venue: dict[str, Any], **policy: Any
        ) -> tuple[str, DuckDBStore]:
    config = parse_scenario({
        "name": "bad-states", "initial_cash": 10_000.0,
        "agents": [{"name": "s", "kind": AGENT, "params": {"script": [list(x) for x in script]}}],
        "policy": {"allow_short": True, **policy},
        "venues": [{"name": "v", "symbols": ["X"], **venue}]}, "bad-states")
    store = DuckDBStore(tmp_path / "runs.duckdb")
    run_id = run_scenario(config, store, data=merge([bars_from_frame(frame(opens, closes),
                                                                     "X")])).run_id
    return run_id, store


# -- sizing -------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "position", "expected"), [
    (1.0, 0.0, 0.0),      # LONG, flat: nothing to size from, nothing to reduce
    (1.0, 5.0, -5.0),     # LONG, long: aims at flat (reduces), never below it
    (1.0, -5.0, 5.0),     # LONG, short: covers to flat
    (-1.0, 5.0, -5.0),    # SHORT, long: sells to flat, never short
    (-1.0, -5.0, 5.0),
    (0.0, 5.0, -5.0),     # FLAT closes as always
])
@pytest.mark.parametrize("equity", [0.0, -1.0, -19_881.0])
def test_sizing_at_equity_not_positive_aims_at_flat(target: float, position: float,
                                                    expected: float, equity: float) -> None:
    policy = TargetExposurePolicy(exposure=1.0, allow_short=True)
    assert policy.order_quantity(target, position, equity, 100.0) == expected


def test_a_nan_equity_is_not_sized_as_flat() -> None:
    """Unknown equity must not look like a bust account (which flattens): it stays NaN,
    and the engine's invariant stops the run on it."""
    qty = TargetExposurePolicy().order_quantity(1.0, 0.0, math.nan, 100.0)
    assert math.isnan(qty) and inverted(1.0, 0.0, qty)


@given(target=st.floats(-10, 10), position=st.floats(-1e12, 1e12),
       equity=st.floats(-1e12, 1e12), price=st.floats(1e-8, 1e6),
       min_notional=st.sampled_from([0.0, 1.0]))
def test_no_sized_order_is_opposite_to_its_target(target: float, position: float,
                                                  equity: float, price: float,
                                                  min_notional: float) -> None:
    """Across scales (prices 1e-8..1e6, tiny to huge accounts and positions, negative
    equity): the order never leaves the position on the other side of the target; at
    equity <= 0 it only reduces."""
    qty = TargetExposurePolicy(min_notional=min_notional).order_quantity(
        target, position, equity, price)
    if qty == 0.0:
        return
    assert not inverted(target, position, qty)
    if equity <= 0.0:
        assert reduces(position, qty)


@pytest.mark.parametrize(("target", "position", "qty", "bad"), [
    (1.0, 0.0, 2.0, False), (1.0, 10.0, -4.0, False),  # buy; sell down to a smaller long
    (1.0, 10.0, -10.0, False), (1.0, -3.0, 5.0, False),  # to flat; cover a short and go long
    (1.0, 0.0, -101.0, True), (1.0, 10.0, -11.0, True),  # the observed sell; a flip
    (-1.0, 0.0, 3.0, True), (-1.0, -5.0, 2.0, False),
    (0.0, 5.0, -5.0, False), (0.0, 5.0, -6.0, True), (0.0, 5.0, 1.0, True),
    (1.0, 0.0, math.inf, True), (1.0, 0.0, math.nan, True),
])
def test_inverted(target: float, position: float, qty: float, bad: bool) -> None:
    assert inverted(target, position, qty) is bad


# -- risk ---------------------------------------------------------------------------
def order(qty: float) -> SubmitOrder:
    return SubmitOrder(1, 1, T0, "X", qty, 100.0)


@pytest.mark.parametrize(("position", "qty", "passes"), [
    (0.0, 1.0, False), (0.0, -1.0, False), (0.0, 0.0, False),  # opening (or nothing)
    (5.0, 1.0, False), (5.0, -6.0, False),                     # growing; flipping
    (5.0, -2.0, True), (5.0, -5.0, True), (-5.0, 5.0, True),   # reducing, closing
])
@pytest.mark.parametrize("equity", [0.0, -14_000.0])
def test_at_equity_not_positive_only_reductions_pass(position: float, qty: float,
                                                     passes: bool, equity: float) -> None:
    denial = RiskEngine().check(order(qty), position, equity=equity)
    if passes:
        assert denial is None
    else:
        assert denial is not None and denial.check == "equity"
        assert denial.value == equity and denial.limit == 0.0
        assert "not positive" in denial.reason


def test_positive_or_unknown_equity_is_not_judged() -> None:
    assert RiskEngine().check(order(5.0), 0.0, equity=0.01) is None
    assert RiskEngine().check(order(5.0), 0.0) is None  # no account given (NaN)


@given(position=st.floats(-1e9, 1e9), qty=st.floats(-1e9, 1e9).filter(bool),
       equity=st.floats(-1e12, 0.0))
def test_risk_at_equity_not_positive_lets_only_reductions_through(
        position: float, qty: float, equity: float) -> None:
    denial = RiskEngine().check(order(qty), position, equity=equity)
    assert (denial is None) == reduces(position, qty)


# -- the pipeline -------------------------------------------------------------------------
PERP = {"kind": "perp", "max_leverage": 5.0, "maintenance_margin": 0.05}


def orders_of(store: DuckDBStore, run_id: str) -> list[tuple]:
    return store.con.execute(
        "SELECT o.order_id, o.role, d.side, o.quantity, o.status, r.check_name,"
        " r.actual_value, r.reason FROM orders o LEFT JOIN decisions d"
        " USING (run_id, decision_id) LEFT JOIN risk_events r USING (run_id, order_id)"
        " WHERE o.run_id = ? ORDER BY o.order_id", [run_id]).fetchall()


def test_a_perp_gapped_through_liquidation_never_sells_on_a_long_decision(
        tmp_path: Path) -> None:
    """3x long, the market gaps from 100 to 20: liquidated at the open, equity -14,000.
    Every later LONG decision was a sell (observed: -2000, -1750 units); now each is
    denied by risk with its reason and the equity, stored."""
    opens = [100, 100, 100, 20, 20, 20, 21, 22, 23, 24, 25, 26]
    closes = [100, 100, 100, 20, 20, 21, 22, 23, 24, 25, 26, 27]
    run_id, store = run(tmp_path, opens, closes,
                        [(1, "LONG"), (5, "FLAT"), (6, "LONG"), (8, "FLAT"), (9, "LONG")],
                        PERP, exposure=3.0)
    with store:
        rows = orders_of(store, run_id)
        (equity,) = store.con.execute("SELECT min(equity) FROM equity WHERE run_id = ?",
                                      [run_id]).fetchone()
    assert equity < 0  # the bad state is reached
    assert [r[1] for r in rows[:2]] == ["entry", "liquidation"]
    later = [r for r in rows if r[0] > 2]
    assert len(later) == 2 and all(r[2] == "LONG" for r in later)
    for _, _, _, qty, status, check, value, reason in later:
        assert qty == 0.0 and status == "denied" and check == "equity"
        assert value == equity and "only position-reducing orders may go" in reason


def test_a_squeezed_short_past_its_equity_covers_on_a_long_decision_never_flips(
        tmp_path: Path) -> None:
    """Spot short at 100% of equity, the price triples: equity -10,000. The LONG decision
    aimed at a short of 66.7 (1.0 x -20,000 / 300: a buy of 33.3 still short); now it
    aims at flat: a buy of all 100, trimmed to the cash (a cash account's rule)."""
    prices = [100, 100, 100, 300, 300, 300]
    run_id, store = run(tmp_path, prices, prices, [(1, "SHORT"), (4, "LONG")], {},
                        exposure=1.0)
    with store:
        rows = orders_of(store, run_id)
        fills = store.con.execute("SELECT quantity, position_after, cash_after FROM fills"
                                  " WHERE run_id = ? ORDER BY fill_id", [run_id]).fetchall()
    short, cover = rows
    assert short[2] == "SHORT" and short[3] == pytest.approx(-100.0)
    assert cover[2] == "LONG" and cover[3] == pytest.approx(100.0) and cover[4] == "filled"
    assert fills[-1][0] == pytest.approx(20_000.0 / 300.0)  # what the cash covers
    assert -100.0 < fills[-1][1] <= 0.0 and fills[-1][2] == pytest.approx(0.0, abs=1e-9)


class _InvertingPolicy(TargetExposurePolicy):
    """A sizing bug on purpose: every order goes the wrong way."""

    def order_quantity(self, target: float, position: float, equity: float,
                       price: float) -> float:
        return -super().order_quantity(target, position, equity, price)


def test_an_inverted_order_stops_the_run_as_failed_naming_it(tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setattr("sim.runner.TargetExposurePolicy", _InvertingPolicy)
    config = parse_scenario({
        "name": "invert", "agents": [{"name": "s", "kind": AGENT,
                                      "params": {"script": [[2, "LONG"]]}}],
        "venues": [{"name": "v", "symbols": ["X"]}]}, "invert")
    data = merge([bars_from_frame(frame([100.0] * 5, [100.0] * 5), "X")])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(InvertedOrderError, match="opposite to its decision") as err:
            run_scenario(config, store, data=data)
        status, error = store.con.execute("SELECT status, error FROM runs").fetchone()
        (n_fills,) = store.con.execute("SELECT count(*) FROM fills").fetchone()
    assert "decision 1 (LONG" in str(err.value) and "to -100" in str(err.value)
    assert status == "failed" and "InvertedOrderError" in error
    assert n_fills == 0  # stopped before the order went anywhere


def test_slippage_reaching_100_percent_stops_the_run_never_a_negative_price(
        tmp_path: Path) -> None:
    """Each slippage field is below 10,000 bps, but fixed + volatility-scaled slippage can
    still pass 100% on a wide bar: a sell filled at a negative price (observed with
    slippage_bps = 1e9). Now the run stops as failed, naming the venue and the cause."""
    opens = [100, 100, 100, 100, 100, 100]
    closes = [100, 100, 100, 100, 100, 100]
    frame_ = frame(opens, closes)
    frame_.loc[2, "low"] = 20.0  # a bar 80% wide: the next fills pay 0.8 x that
    config = parse_scenario({
        "name": "slip", "agents": [{"name": "s", "kind": AGENT,
                                    "params": {"script": [[1, "LONG"], [3, "FLAT"]]}}],
        "venues": [{"name": "v", "symbols": ["X"], "slippage_bps": 5_000.0,
                    "volatility_slippage": 1.0}]}, "slip")
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(FillOutsideBand,
                           match=r"not positive: order \d+ \(sell X on v\) at -30"):
            run_scenario(config, store, data=merge([bars_from_frame(frame_, "X")]))
        status, error = store.con.execute("SELECT status, error FROM runs").fetchone()
        (low,) = store.con.execute("SELECT min(price) FROM fills").fetchone()
    assert status == "failed" and "a sell cannot pay 100% or more" in error
    assert low > 0.0
