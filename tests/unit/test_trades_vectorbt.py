"""Round trips and trade statistics against vectorbt's position records.

Our round trip (flat to flat, a flip split into a close and an open, fees split in
proportion to quantity) is vectorbt's *position* (``Portfolio.positions``), not its
*trade* (``Portfolio.trades``: one record per exit). On the same fills:

* ``pnl``: ours equals vectorbt's position PnL, fees included;
* our ``entry_notional`` is vectorbt's ``size * entry_price`` (size-weighted average), so
  our per-trade return ``pnl / entry_notional`` is vectorbt's position ``return``. (Its
  ``size`` is everything bought into the position, our ``quantity`` the largest position
  held: a definition difference, not compared);
* ``win_rate``, ``profit_factor`` are the same definitions; vectorbt's ``expectancy`` is
  the mean PnL in cash, which is our ``average_trade`` (our ``expectancy`` is the mean of
  the per-trade returns, compared with the mean of vectorbt's returns).

Quantities are multiples of 1/4 so every running position is exact in binary and both
sides agree on when it is flat. Positions still open at the end are not trades (ours drop
them; vectorbt's open records are filtered out).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.metrics import average_trade, expectancy, profit_factor, round_trips, win_rate

REL = 1e-9
T0 = 1_700_000_000 * 10**9
MINUTE = 60 * 10**9


@st.composite
def fill_sequences(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    n = draw(st.integers(2, 60))
    quarters = draw(st.lists(st.integers(-40, 40).filter(bool), min_size=n, max_size=n))
    qty = np.array(quarters, dtype=np.float64) / 4.0
    # price moves of whole basis points (or none): vectorbt treats prices within its float
    # tolerance as equal, so a 1e-12 move that is a real 1e-9 of PnL to us is 0 to it
    steps = draw(st.lists(st.integers(-500, 500), min_size=n, max_size=n))
    steps = np.array(steps) / 1e4
    price = 100.0 * np.cumprod(1.0 + steps)
    fee_rate = draw(st.sampled_from([0.0, 0.0005, 0.001, 0.0075]))
    return qty, price, fee_rate


def _ours(qty: np.ndarray, price: np.ndarray, fee_rate: float) -> dict[str, np.ndarray]:
    n = len(qty)
    return round_trips({"ts": T0 + MINUTE * np.arange(n, dtype=np.int64),
                        "symbol": np.array(["X"] * n, dtype=object), "quantity": qty,
                        "price": price, "fee": np.abs(qty) * price * fee_rate})


def _vectorbt(qty: np.ndarray, price: np.ndarray, fee_rate: float) -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=len(qty), freq="1min")
    pf = vbt.Portfolio.from_orders(pd.Series(price, index=index), pd.Series(qty, index=index),
                                   size_type="amount", direction="both", fees=fee_rate,
                                   init_cash=1e12, freq="1min")
    rec = pf.positions.records_readable
    return rec[rec["Status"] == "Closed"].reset_index(drop=True)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fill_sequences())
def test_round_trips_are_vectorbt_positions(seq) -> None:
    qty, price, fee_rate = seq
    ours = _ours(qty, price, fee_rate)
    ref = _vectorbt(qty, price, fee_rate)
    assert len(ours["pnl"]) == len(ref)
    if not len(ref):
        return
    pnl, returns = ref["PnL"].to_numpy(), ref["Return"].to_numpy()
    assert ours["pnl"] == pytest.approx(pnl, rel=REL, abs=1e-9)
    assert ours["pnl"] / ours["entry_notional"] == pytest.approx(returns, rel=REL, abs=1e-12)
    assert ours["direction"].tolist() == [1 if d == "Long" else -1 for d in ref["Direction"]]
    # vectorbt's Size is the total bought (sold) into the position; our ``quantity`` is
    # the largest position held (they differ when a position is reduced and added to
    # again), so the comparable number is the entry notional
    assert ours["entry_notional"] == pytest.approx(
        (ref["Size"] * ref["Avg Entry Price"]).to_numpy(), rel=REL)
    assert ours["fees"] == pytest.approx((ref["Entry Fees"] + ref["Exit Fees"]).to_numpy(),
                                         rel=REL, abs=1e-12)
    # the statistics, on vectorbt's own numbers
    assert average_trade(ours["pnl"]) == pytest.approx(float(np.mean(pnl)), rel=REL, abs=1e-9)
    assert expectancy(ours["pnl"], ours["entry_notional"]) == pytest.approx(
        float(np.mean(returns)), rel=REL, abs=1e-12)
    # win or loss is the sign of the PnL: a breakeven trade's sign is rounding (flat
    # prices, no fees), so the sign-based statistics are compared without such trades
    if np.all(np.abs(pnl) > 1e-9 * ours["entry_notional"]):
        assert win_rate(ours["pnl"]) == pytest.approx(float(np.mean(pnl > 0)), rel=REL)
        losses = -pnl[pnl < 0].sum()
        if losses > 0:
            assert profit_factor(ours["pnl"]) == pytest.approx(pnl[pnl > 0].sum() / losses,
                                                               rel=REL)


def test_vectorbt_statistics_agree_on_a_fixed_case() -> None:
    # long 2 @ 100 -> flip short 3 @ 110 -> cover @ 100 -> long 1 @ 120 -> sold @ 90, 1 %
    qty = np.array([2.0, -5.0, 3.0, 1.0, -1.0])
    price = np.array([100.0, 110.0, 100.0, 120.0, 90.0])
    index = pd.date_range("2024-01-01", periods=5, freq="1D")
    pf = vbt.Portfolio.from_orders(pd.Series(price, index=index), pd.Series(qty, index=index),
                                   size_type="amount", direction="both", fees=0.01,
                                   init_cash=1e6, freq="1D")
    ours = _ours(qty, price, 0.01)
    # by hand: +20 - 2 - 2.2 = 15.8; +30 - 3.3 - 3 = 23.7; -30 - 1.2 - 0.9 = -32.1
    assert ours["pnl"] == pytest.approx([15.8, 23.7, -32.1], rel=1e-12)
    assert win_rate(ours["pnl"]) == pytest.approx(pf.positions.win_rate(), rel=REL)
    assert profit_factor(ours["pnl"]) == pytest.approx(pf.positions.profit_factor(), rel=REL)
    assert average_trade(ours["pnl"]) == pytest.approx(pf.positions.expectancy(), rel=REL)
