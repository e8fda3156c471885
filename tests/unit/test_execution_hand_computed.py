"""Execution worked out by hand on six bars: fill price, fee, cash, realized PnL.

A scripted agent says LONG after bar 2 and FLAT after bar 4. The whole pipeline runs
(runner, consensus, policy, risk, router, SimVenue, portfolio, recorder, DuckDB store), and
the recorded fills and equity are compared with numbers derived by hand below.

Venue: fee 10 bps (0.001), slippage 5 bps (0.0005). Initial cash 10 000.

    bar  open  high   low  close   agent after the close
      1   100   100   100    100   -
      2   100   100    80     80   LONG
      3   100   110   100    110   -
      4   110   115   110    115   FLAT
      5   120   120   118    118   -
      6   118   118   118    118   -
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sim.config import parse_scenario
from sim.data import bars_from_frame, merge
from sim.messages import Side, Signal
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.view import MarketView

AGENT = f"{__name__}:ScriptedAgent"
MINUTE_NS = 60 * 10**9
T0 = pd.Timestamp("2024-03-01T00:00:00Z").value


class ScriptedAgent:
    """Emits ``side`` after the close of bar number ``n`` (1-based) for each [n, side]."""

    def __init__(self, script: Sequence[Sequence[object]]) -> None:
        self._script = {int(n): Signal(Side[str(side)], 1.0) for n, side in script}

    def on_bar(self, view: MarketView) -> Signal | None:
        return self._script.get(view.n)


BARS = [  # open, high, low, close
    (100.0, 100.0, 100.0, 100.0),
    (100.0, 100.0, 80.0, 80.0),
    (100.0, 110.0, 100.0, 110.0),
    (110.0, 115.0, 110.0, 115.0),
    (120.0, 120.0, 118.0, 118.0),
    (118.0, 118.0, 118.0, 118.0),
]


def bar_ts(n: int) -> int:
    """Timestamp (open time) of bar number ``n``, 1-based."""
    return T0 + (n - 1) * MINUTE_NS


def _frame(bars: Sequence[tuple[float, float, float, float]]) -> pd.DataFrame:
    o, h, lo, c = (list(col) for col in zip(*bars, strict=True))
    return pd.DataFrame({
        "timestamp": pd.to_datetime([bar_ts(n + 1) for n in range(len(bars))], utc=True),
        "open": o, "high": h, "low": lo, "close": c, "volume": [1.0] * len(bars),
    })


def _run(
    tmp_path: Path, *, fill_at: str, exposure: float, fee_bps: float = 10.0,
    slippage_bps: float = 5.0, script: Sequence[Sequence[object]] = ((2, "LONG"), (4, "FLAT")),
    bars: Sequence[tuple[float, float, float, float]] = BARS, initial_cash: float = 10_000.0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    config = parse_scenario({
        "name": "hand",
        "initial_cash": initial_cash,
        "agents": [{"name": "script", "kind": AGENT,
                    "params": {"script": [list(step) for step in script]}}],
        "policy": {"exposure": exposure},
        "venues": [{"name": "v", "symbols": ["X"], "fee_bps": fee_bps,
                    "slippage_bps": slippage_bps}],
        "execution": {"fill_at": fill_at},
    }, "hand")
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        data = merge([bars_from_frame(_frame(bars), "X")])
        run_id = run_scenario(config, store, data=data).run_id
        fills = store.con.execute(
            "SELECT epoch_ns(ts) AS ts, venue, quantity, price, fee, ref_price, cash_after,"
            " position_after, realized_pnl FROM fills WHERE run_id = ? ORDER BY fill_id",
            [run_id]).fetchnumpy()
        orders = store.con.execute(
            "SELECT epoch_ns(ts) AS ts, quantity, ref_price, status FROM orders"
            " WHERE run_id = ? ORDER BY order_id", [run_id]).fetchnumpy()
        equity = store.con.execute(
            "SELECT epoch_ns(ts) AS ts, cash, equity FROM equity WHERE run_id = ? ORDER BY ts",
            [run_id]).fetchnumpy()
    return ({k: np.asarray(v) for k, v in fills.items()},
            {k: np.asarray(v) for k, v in orders.items()},
            {k: np.asarray(v) for k, v in equity.items()})


def approx(values: Sequence[float]) -> object:
    return pytest.approx(list(values), rel=1e-12, abs=1e-9)


def test_next_open_round_trip(tmp_path: Path) -> None:
    """Exposure 0.5: LONG after bar 2 fills at bar 3's open, FLAT after bar 4 at bar 5's.

    Buy at bar 3's open (100), sized on equity 10 000 (all cash):
        quantity   = 0.5 * 10 000 / 100            = 50
        fill price = 100 * (1 + 0.0005)            = 100.05
        fee        = 50 * 100.05 * 0.001           = 5.0025
        cash after = 10 000 - 50 * 100.05 - 5.0025 = 10 000 - 5002.5 - 5.0025 = 4992.4975
        (cash covers 10 000 / (100.05 * 1.001) = 99.85 units, so no trim)
    Sell at bar 5's open (120), the whole position:
        fill price = 120 * (1 - 0.0005)            = 119.94
        fee        = 50 * 119.94 * 0.001           = 5.997
        cash after = 4992.4975 + 50 * 119.94 - 5.997 = 4992.4975 + 5997 - 5.997 = 10 983.5005
        realized   = (119.94 - 100.05) * 50        = 19.89 * 50 = 994.5  (before fees)
        check: 994.5 - 5.0025 - 5.997 = 983.5005 = 10 983.5005 - 10 000
    Equity at each close: bars 1-2: 10 000; bar 3: 4992.4975 + 50 * 110 = 10 492.4975;
    bar 4: 4992.4975 + 50 * 115 = 10 742.4975; bars 5-6: 10 983.5005 (flat).
    """
    fills, orders, equity = _run(tmp_path, fill_at="next_open", exposure=0.5)
    assert fills["ts"].tolist() == [bar_ts(3), bar_ts(5)]
    assert fills["venue"].tolist() == ["v", "v"]
    assert fills["quantity"].tolist() == approx([50.0, -50.0])
    assert fills["ref_price"].tolist() == [100.0, 120.0]  # the opens, before slippage
    assert fills["price"].tolist() == approx([100.05, 119.94])
    assert fills["fee"].tolist() == approx([5.0025, 5.997])
    assert fills["cash_after"].tolist() == approx([4992.4975, 10_983.5005])
    assert fills["position_after"].tolist() == approx([50.0, 0.0])
    assert fills["realized_pnl"].tolist() == approx([0.0, 994.5])
    assert orders["quantity"].tolist() == approx([50.0, -50.0])
    assert orders["status"].tolist() == ["filled", "filled"]
    assert equity["ts"].tolist() == [bar_ts(n) for n in range(1, 7)]
    assert equity["equity"].tolist() == approx(
        [10_000.0, 10_000.0, 10_492.4975, 10_742.4975, 10_983.5005, 10_983.5005])
    assert equity["cash"].tolist() == approx(
        [10_000.0, 10_000.0, 4992.4975, 4992.4975, 10_983.5005, 10_983.5005])


def test_close_round_trip(tmp_path: Path) -> None:
    """Same script with fill_at = "close": each decision fills at its own bar's close.

    Buy at bar 2's close (80), sized on equity 10 000:
        quantity   = 0.5 * 10 000 / 80             = 62.5
        fill price = 80 * 1.0005                   = 80.04
        fee        = 62.5 * 80.04 * 0.001          = 5.0025
        cash after = 10 000 - 62.5 * 80.04 - 5.0025 = 10 000 - 5002.5 - 5.0025 = 4992.4975
    Sell at bar 4's close (115):
        fill price = 115 * 0.9995                  = 114.9425
        fee        = 62.5 * 114.9425 * 0.001       = 7.18390625
        cash after = 4992.4975 + 62.5 * 114.9425 - 7.18390625
                   = 4992.4975 + 7183.90625 - 7.18390625 = 12 169.21984375
        realized   = (114.9425 - 80.04) * 62.5     = 34.9025 * 62.5 = 2181.40625
        check: 2181.40625 - 5.0025 - 7.18390625 = 2169.21984375 = 12 169.21984375 - 10 000
    Equity: bar 1: 10 000; bar 2: 4992.4975 + 62.5 * 80 = 9992.4975;
    bar 3: 4992.4975 + 62.5 * 110 = 11 867.4975; bars 4-6: 12 169.21984375.
    The fill is stamped with the bar's timestamp, which is the bar's open time.
    """
    fills, orders, equity = _run(tmp_path, fill_at="close", exposure=0.5)
    assert fills["ts"].tolist() == [bar_ts(2), bar_ts(4)]
    assert fills["quantity"].tolist() == approx([62.5, -62.5])
    assert fills["ref_price"].tolist() == [80.0, 115.0]  # the closes
    assert fills["price"].tolist() == approx([80.04, 114.9425])
    assert fills["fee"].tolist() == approx([5.0025, 7.18390625])
    assert fills["cash_after"].tolist() == approx([4992.4975, 12_169.21984375])
    assert fills["position_after"].tolist() == approx([62.5, 0.0])
    assert fills["realized_pnl"].tolist() == approx([0.0, 2181.40625])
    assert orders["status"].tolist() == ["filled", "filled"]
    assert equity["equity"].tolist() == approx(
        [10_000.0, 9992.4975, 11_867.4975, 12_169.21984375, 12_169.21984375,
         12_169.21984375])


def test_all_in_buy_is_trimmed_to_the_cash(tmp_path: Path) -> None:
    """Exposure 1.0: the policy asks for equity / open, the venue trims it to the cash.

    LONG after bar 2, buy at bar 3's open (100):
        ordered    = 1.0 * 10 000 / 100                  = 100 units (recorded on the order)
        fill price = 100 * 1.0005                        = 100.05
        cost of 100 units = 100 * 100.05 * 1.001         = 10 015.005 > 10 000: trim
        quantity   = 10 000 / (100.05 * 1.001)           = 10 000 / 100.15005
                   = 99.85017481269355...                (= 200 000 000 / 2 003 001)
        fee        = quantity * 100.05 * 0.001 = 10 000 * 0.001 / 1.001 = 9.99000999000999
        cash after = 10 000 - quantity * 100.05 - fee    = 0 (to rounding)
    Sell at bar 5's open (120) the whole position:
        fill price = 119.94, proceeds = quantity * 119.94, fee = proceeds * 0.001
        cash after = quantity * 119.94 * 0.999
        realized   = (119.94 - 100.05) * quantity = 19.89 * quantity
    """
    fills, orders, equity = _run(tmp_path, fill_at="next_open", exposure=1.0)
    q = 10_000 / (100.05 * 1.001)
    assert q == pytest.approx(99.85017481269355, rel=1e-15)
    assert orders["quantity"].tolist() == approx([100.0, -q])
    assert orders["status"].tolist() == ["filled", "filled"]
    assert fills["quantity"].tolist() == approx([q, -q])
    assert fills["price"].tolist() == approx([100.05, 119.94])
    assert fills["fee"].tolist() == approx([9.99000999000999, q * 119.94 * 0.001])
    assert fills["cash_after"].tolist() == approx([0.0, q * 119.94 * 0.999])
    assert fills["realized_pnl"].tolist() == approx([0.0, 19.89 * q])
    # all in: equity at bar 3's close is the position marked at 110
    assert equity["equity"][2] == pytest.approx(q * 110.0, rel=1e-12)


def test_no_fee_no_slippage_fills_at_the_bare_open(tmp_path: Path) -> None:
    """With no costs an all-in buy is not trimmed: 10 000 / 100 = 100 units at exactly 100,
    sold at 120 for 12 000: realized 20 * 100 = 2000, cash 12 000."""
    fills, _, equity = _run(tmp_path, fill_at="next_open", exposure=1.0, fee_bps=0.0,
                            slippage_bps=0.0)
    assert fills["quantity"].tolist() == approx([100.0, -100.0])
    assert fills["price"].tolist() == [100.0, 120.0]
    assert fills["fee"].tolist() == [0.0, 0.0]
    assert fills["cash_after"].tolist() == approx([0.0, 12_000.0])
    assert fills["realized_pnl"].tolist() == approx([0.0, 2000.0])
    assert equity["equity"][-1] == pytest.approx(12_000.0, rel=1e-12)


def test_decision_on_last_bar_never_fills(tmp_path: Path) -> None:
    """Under next_open a LONG after the last bar has no next open: no order, no fill."""
    fills, orders, equity = _run(tmp_path, fill_at="next_open", exposure=1.0,
                                 script=((6, "LONG"),))
    assert len(fills["ts"]) == 0
    assert len(orders["ts"]) == 0
    assert equity["equity"].tolist() == [10_000.0] * 6


def test_round_trip_gain_then_loss(tmp_path: Path) -> None:
    """LONG after bar 3 (buy at bar 4's open 110), FLAT after bar 5 (sell at bar 6's 118),
    no slippage, fee 10 bps, exposure 0.5 of 10 000:
        quantity = 5000 / 110 = 45.4545...; buy fee = 5000 * 0.001 = 5
        cash after buy  = 10 000 - 5000 - 5 = 4995
        sell proceeds   = quantity * 118 = 5000 * 118 / 110 = 5363.6363...
        sell fee        = 5.3636...;  cash after = 4995 + 5363.6363... - 5.3636... = 10 353.2727...
        realized        = (118 - 110) * quantity = 8 * 5000 / 110 = 363.6363...
    Then the same with bar 6 opening at 100 instead: a loss of (100 - 110) * quantity.
    """
    fills, _, _ = _run(tmp_path, fill_at="next_open", exposure=0.5, slippage_bps=0.0,
                       script=((3, "LONG"), (5, "FLAT")))
    q = 5000 / 110
    assert fills["ts"].tolist() == [bar_ts(4), bar_ts(6)]
    assert fills["quantity"].tolist() == approx([q, -q])
    assert fills["fee"].tolist() == approx([5.0, q * 118 * 0.001])
    assert fills["cash_after"].tolist() == approx([4995.0, 4995.0 + q * 118 * 0.999])
    assert fills["realized_pnl"].tolist() == approx([0.0, 8 * q])

    falling = [*BARS[:5], (100.0, 100.0, 100.0, 100.0)]  # bar 6 opens at 100
    (tmp_path / "falling").mkdir()
    fills, _, _ = _run(tmp_path / "falling", fill_at="next_open", exposure=0.5,
                       slippage_bps=0.0, script=((3, "LONG"), (5, "FLAT")), bars=falling)
    # realized = (100 - 110) * 5000 / 110 = -454.5454...
    assert fills["price"].tolist() == [110.0, 100.0]
    assert fills["realized_pnl"].tolist() == approx([0.0, -10 * q])
    assert fills["cash_after"][-1] == pytest.approx(4995.0 + q * 100 * 0.999, rel=1e-12)
