"""Perpetuals by hand: margin, liquidation price, funding cash flows.

Cross margin on the one ledger: a perpetual fill books cash -= quantity x price + fee like
a spot fill (cash may go negative: that is the borrowed notional), so equity = cash +
position x mark is unchanged. What a perpetual adds is the margin rule (a growing fill is
trimmed so |position| x price <= (equity - other margin) x max_leverage), liquidation when
equity falls to the maintenance margin, and funding.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from sim.data import FundingRates
from tests.unit.test_execution_hand_computed import bar_ts
from tests.unit.test_execution_realism import flat, ns, run

PERP = {"name": "p", "symbols": ["X"], "kind": "perp", "max_leverage": 10.0,
        "maintenance_margin": 0.05}


def test_long_liquidation_price_by_hand(tmp_path: Path) -> None:
    """1000 of equity, 10x: 100 units at 100 (notional 10 000), cash 1000 - 10 000 =
    -9000. Equity at price P is -9000 + 100 P; maintenance 0.05 x 100 P. Equal at
        P = 9000 / (100 x (1 - 0.05)) = 94.7368...  (= 100 x (1 - 1/10) / (1 - 0.05))
    Bar 4 trades down to 94: liquidated there; equity left = 0.05 x 100 x P."""
    bars = [flat(100.0), flat(100.0), flat(100.0), (99.0, 99.5, 94.0, 96.0, 1e3), flat(96.0)]
    out = run(tmp_path, bars, venues=[PERP], exposure=10.0, initial_cash=1_000.0)
    price = 9000.0 / 95.0
    assert price == pytest.approx(100.0 * (1 - 1 / 10) / (1 - 0.05), rel=1e-12)
    liq = out["liquidations"]
    assert liq["liquidation_price"].tolist() == [pytest.approx(price, rel=1e-12)]
    assert liq["price"].tolist() == [pytest.approx(price, rel=1e-12)]
    assert liq["position"].tolist() == [100.0]
    fills = out["fills"]
    assert fills["quantity"].tolist() == [100.0, -100.0]
    assert fills["liquidity"].tolist() == ["taker", "liquidation"]
    assert ns(fills["ts"]) == [bar_ts(3), bar_ts(4)]
    assert fills["cash_after"].iloc[-1] == pytest.approx(0.05 * 100 * price, rel=1e-12)
    orders = out["orders"]
    assert orders["role"].tolist() == ["entry", "liquidation"]
    assert orders["status"].tolist() == ["filled", "filled"]


def test_liquidation_on_a_gap_fills_at_the_open(tmp_path: Path) -> None:
    bars = [flat(100.0), flat(100.0), flat(100.0), flat(90.0), flat(90.0)]
    out = run(tmp_path, bars, venues=[PERP], exposure=10.0, initial_cash=1_000.0)
    assert out["liquidations"]["liquidation_price"].tolist() == [
        pytest.approx(9000.0 / 95.0, rel=1e-12)]
    assert out["liquidations"]["price"].tolist() == [90.0]  # worse than the price stored


def test_short_liquidation_price_by_hand(tmp_path: Path) -> None:
    """Short 100 at 100: cash 1000 + 10 000 = 11 000; equity 11 000 - 100 P equals
    0.05 x 100 P at P = 11 000 / 105 = 104.7619..."""
    bars = [flat(100.0), flat(100.0), flat(100.0), (101.0, 105.0, 100.5, 104.0, 1e3),
            flat(104.0)]
    out = run(tmp_path, bars, venues=[PERP], exposure=10.0, initial_cash=1_000.0,
              script=((2, "SHORT"),), allow_short=True)
    assert out["fills"]["quantity"].tolist() == [-100.0, 100.0]
    assert out["liquidations"]["liquidation_price"].tolist() == [
        pytest.approx(11_000.0 / 105.0, rel=1e-12)]


def test_margin_trims_a_fill_past_max_leverage(tmp_path: Path) -> None:
    """Asking for 10x on a 5x venue: 1000 x 5 / 100 = 50 units, trimmed, filled."""
    venue = {**PERP, "max_leverage": 5.0, "maintenance_margin": 0.01}
    out = run(tmp_path, [flat(100.0)] * 4, venues=[venue], exposure=10.0,
              initial_cash=1_000.0)
    assert out["fills"]["quantity"].tolist() == [pytest.approx(50.0, rel=1e-12)]
    assert out["orders"]["status"].tolist() == ["filled"]


def test_funding_cash_flows_over_a_known_series(tmp_path: Path) -> None:
    """Long 50 from bar 3's open (100). Funding 30 s after bars 3, 4, 5 open, at rates
    +0.001, -0.002, +0.0005, marked at the last close seen (102, 104, 98):
        -0.001 x 50 x 102 = -5.10   (longs pay a positive rate)
        +0.002 x 50 x 104 = +10.40
        -0.0005 x 50 x 98 = -2.45        total +2.85
    A funding time before the position opened (00:00:30) pays nothing and stores no row.
    """
    bars = [flat(100.0), flat(100.0), (100.0, 102.0, 100.0, 102.0, 1e3), flat(104.0),
            flat(98.0), flat(98.0)]
    times = np.array([bar_ts(1), bar_ts(3), bar_ts(4), bar_ts(5)], dtype=np.int64) + 30 * 10**9
    rates = np.array([0.003, 0.001, -0.002, 0.0005])
    funding = FundingRates("hand", times, rates)
    venue = {**PERP, "max_leverage": 2.0, "maintenance_margin": 0.01}
    out = run(tmp_path, bars, venues=[venue], funding=funding)
    paid = out["funding"]
    assert ns(paid["ts"]) == times[1:].tolist()
    assert paid["mark"].tolist() == [102.0, 104.0, 98.0]
    assert paid["payment"].tolist() == pytest.approx([-5.1, 10.4, -2.45], rel=1e-12)
    equity = out["equity"]
    assert equity["cash"].iloc[-1] == pytest.approx(10_000 - 5_000 + 2.85, rel=1e-12)
    # equity = initial + realized + unrealized - fees + funding, row by row
    cumulative = [math.fsum(p for t, p in zip(ns(paid["ts"]), paid["payment"], strict=True)
                            if t <= ts) for ts in ns(equity["ts"])]
    assert (equity["equity"]).tolist() == pytest.approx(
        (10_000 + equity["realized_pnl"] + equity["unrealized_pnl"] + cumulative).tolist(),
        rel=1e-12)


def test_generated_funding_on_the_epoch_grid(tmp_path: Path) -> None:
    """funding_rate 0.0001 every 2m: times 00:02 and 00:04 within the bars; at 00:02 the
    position is not open yet (funding runs before the bar's open), at 00:04 it is 50
    marked at bar 4's close (100): -0.0001 x 50 x 100 = -0.5."""
    venue = {**PERP, "max_leverage": 2.0, "maintenance_margin": 0.01,
             "funding_rate": 0.0001, "funding_interval": "2m"}
    out = run(tmp_path, [flat(100.0)] * 6, venues=[venue])
    assert ns(out["funding"]["ts"]) == [bar_ts(5)]
    assert out["funding"]["payment"].tolist() == [pytest.approx(-0.5, rel=1e-12)]
