"""Acceptance: the whole pipeline agrees with vectorbt on an all-in SMA(10, 50) crossover.

Quorum side: one ``sma_crossover`` agent (fast 10, slow 50, long only) through the real
pipeline (consensus, policy at exposure 1.0, risk, router, one SimVenue charging 10 bps and
no slippage, the portfolio, the recorder and the DuckDB store), 10 000 of initial cash.

Reference side, built without any Quorum code but the data loaders:

* SMAs are pandas rolling means of the close; nothing is signalled before the slow window
  is full. The agent is LONG while fast > slow and FLAT otherwise, so the reference enters
  on ``fast > slow`` and exits on ``not fast > slow`` (an exact tie goes FLAT, as in the
  agent; ``test_reference_is_well_conditioned`` shows no bar comes near a tie, so the
  result does not depend on how either side sums its windows).
* ``fill_at = "next_open"``: signals are shifted one bar and executed at that bar's open
  (``price=open``). ``fill_at = "close"``: executed unshifted at the decision bar's close.
* ``size=np.inf`` with ``direction="longonly"`` and ``accumulate=False``: an entry spends all
  the cash (vectorbt's ``(cash / (1 + fees)) / price``, the same trim as SimVenue's
  ``cash / (price * (1 + fee))``), an exit sells the whole position, a repeated entry while
  long and an exit while flat do nothing, and there is never a short.

Prices must agree exactly (no slippage: both fill at the bar's price); quantities, fees,
cash, equity and trade PnL to 1e-9 relative (they differ only by float rounding, ~1e-13).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from sim.config import parse_scenario
from sim.data import SymbolBars, gbm_bars, load_bars, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore

ROOT = Path(__file__).resolve().parents[2]
ETH_FILE = ROOT / "data" / "binance_ETH_BTC_5m_2018-01.csv"

FAST, SLOW = 10, 50
FEE_BPS = 10.0
INITIAL_CASH = 10_000.0
RTOL = 1e-9
GBM_SEEDS = (7, 42, 2024)
GBM_BARS = 4_000
FIVE_MINUTES_NS = 5 * 60 * 10**9


def _bars(dataset: str) -> SymbolBars:
    if dataset == "ETHBTC":
        return load_bars(ETH_FILE, "ETHBTC", interval_ns=FIVE_MINUTES_NS)
    seed = int(dataset.removeprefix("gbm-"))
    return gbm_bars(
        "SYN", GBM_BARS, np.random.default_rng(seed),
        start_ns=pd.Timestamp("2024-01-01", tz="UTC").value, interval_ns=FIVE_MINUTES_NS,
        s0=100.0, drift=0.0, volatility=0.8,
    )


def _scenario(symbol: str, fill_at: str) -> dict:
    return {
        "name": f"vectorbt_crosscheck_{fill_at}",
        "seed": 0,
        "initial_cash": INITIAL_CASH,
        "agents": [{
            "name": "sma_10_50", "kind": "sma_crossover",
            "params": {"fast": FAST, "slow": SLOW, "long_only": True},
        }],
        "policy": {"exposure": 1.0, "allow_short": False},
        "venues": [{"name": "only", "symbols": [symbol], "fee_bps": FEE_BPS,
                    "slippage_bps": 0.0}],
        "execution": {"fill_at": fill_at},
    }


def _vectorbt_reference(bars: SymbolBars, fill_at: str) -> tuple[vbt.Portfolio, pd.Series]:
    """vectorbt portfolio from independently computed signals; also returns fast - slow."""
    index = pd.DatetimeIndex(pd.to_datetime(bars.ts, utc=True))
    close = pd.Series(np.asarray(bars.close, dtype=np.float64), index=index)
    open_ = pd.Series(np.asarray(bars.open, dtype=np.float64), index=index)
    fast = close.rolling(FAST, min_periods=FAST).mean()
    slow = close.rolling(SLOW, min_periods=SLOW).mean()
    ready = slow.notna()  # the agent abstains until the slow window is full
    entries = ready & (fast > slow)
    exits = ready & ~(fast > slow)
    if fill_at == "next_open":
        # decided on bar t's close, executed at bar t+1's open; the last bar's decision
        # never executes
        entries = entries.shift(1, fill_value=False)
        exits = exits.shift(1, fill_value=False)
        price = open_
    else:
        price = close
    pf = vbt.Portfolio.from_signals(
        close=close,
        entries=entries,
        exits=exits,
        price=price,
        size=np.inf,
        size_type="amount",
        direction="longonly",
        accumulate=False,
        fees=FEE_BPS / 10_000.0,
        fixed_fees=0.0,
        slippage=0.0,
        init_cash=INITIAL_CASH,
        lock_cash=False,
        allow_partial=True,
        freq=pd.Timedelta(int(np.diff(bars.ts)[0]), unit="ns"),
    )
    return pf, (fast - slow)[ready] / slow[ready]


@dataclass(frozen=True)
class Case:
    name: str
    fill_at: str
    bars: SymbolBars
    fills: dict[str, np.ndarray]
    equity: dict[str, np.ndarray]
    pf: vbt.Portfolio
    spread: pd.Series  # (fast - slow) / slow once the slow window is full


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    with DuckDBStore(tmp_path_factory.mktemp("crosscheck") / "runs.duckdb") as s:
        yield s


CASES = [
    *[(f"gbm-{seed}", "next_open") for seed in GBM_SEEDS],
    ("ETHBTC", "next_open"),
    (f"gbm-{GBM_SEEDS[0]}", "close"),
    ("ETHBTC", "close"),
]


@pytest.fixture(scope="module", params=CASES, ids=[f"{d}-{f}" for d, f in CASES])
def case(request: pytest.FixtureRequest, store: DuckDBStore) -> Case:
    dataset, fill_at = request.param
    bars = _bars(dataset)
    config = parse_scenario(_scenario(bars.symbol, fill_at), "crosscheck")
    result = run_scenario(config, store, data=merge([bars]))
    assert result.status == "completed"
    fills = store.con.execute(
        "SELECT epoch_ns(ts) AS ts, quantity, price, fee, ref_price, cash_after,"
        " position_after, realized_pnl FROM fills WHERE run_id = ? ORDER BY fill_id",
        [result.run_id],
    ).fetchnumpy()
    equity = store.con.execute(
        "SELECT epoch_ns(ts) AS ts, cash, equity FROM equity WHERE run_id = ? ORDER BY ts",
        [result.run_id],
    ).fetchnumpy()
    pf, spread = _vectorbt_reference(bars, fill_at)
    return Case(dataset, fill_at, bars,
                {k: np.asarray(v) for k, v in fills.items()},
                {k: np.asarray(v) for k, v in equity.items()}, pf, spread)


def _orders(case: Case) -> pd.DataFrame:
    return case.pf.orders.records.sort_values("id").reset_index(drop=True)


def test_reference_is_well_conditioned(case: Case) -> None:
    """No bar sits within float noise of a crossover, so the check is meaningful.

    Quorum's incremental means and pandas' rolling means differ in the last bits; a bar
    with fast and slow this close could legitimately go either way on either side.
    """
    assert np.abs(case.spread.to_numpy()).min() > 1e-12
    assert len(_orders(case)) >= 20, "too few trades for the check to say much"


def test_fill_count_and_bars_match(case: Case) -> None:
    orders = _orders(case)
    assert len(case.fills["ts"]) == len(orders)
    # every fill on the same bar as vectorbt's order
    expected_ts = np.asarray(case.bars.ts)[orders["idx"].to_numpy()]
    np.testing.assert_array_equal(case.fills["ts"], expected_ts)
    # alternating buy / sell, starting with a buy: long only, all in, all out
    sides = orders["side"].to_numpy()
    np.testing.assert_array_equal(sides, np.arange(len(sides)) % 2)
    np.testing.assert_array_equal(np.sign(case.fills["quantity"]), np.where(sides == 0, 1, -1))


def test_every_fill_price_matches(case: Case) -> None:
    orders = _orders(case)
    bar_price = case.bars.open if case.fill_at == "next_open" else case.bars.close
    expected = np.asarray(bar_price)[orders["idx"].to_numpy()]
    np.testing.assert_array_equal(orders["price"].to_numpy(), expected)  # reference sanity
    np.testing.assert_allclose(case.fills["price"], orders["price"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(case.fills["ref_price"], expected, rtol=RTOL)


def test_every_fill_quantity_and_fee_matches(case: Case) -> None:
    orders = _orders(case)
    signed = np.where(orders["side"].to_numpy() == 0, 1.0, -1.0) * orders["size"].to_numpy()
    np.testing.assert_allclose(case.fills["quantity"], signed, rtol=RTOL)
    np.testing.assert_allclose(case.fills["fee"], orders["fees"].to_numpy(), rtol=RTOL)


def test_final_equity_matches(case: Case) -> None:
    assert case.equity["equity"][-1] == pytest.approx(float(case.pf.final_value()), rel=RTOL)


def test_whole_equity_curve_matches(case: Case) -> None:
    value = case.pf.value()
    assert len(case.equity["ts"]) == len(case.bars) == len(value)
    np.testing.assert_array_equal(case.equity["ts"], np.asarray(case.bars.ts))
    np.testing.assert_allclose(case.equity["equity"], value.to_numpy(), rtol=RTOL)
    # All-in leaves ~0 cash after a buy, where a relative tolerance means nothing: compare
    # cash to 1e-9 of the account size instead.
    np.testing.assert_allclose(case.equity["cash"], case.pf.cash().to_numpy(),
                               rtol=RTOL, atol=RTOL * INITIAL_CASH)


def test_round_trip_pnl_matches(case: Case) -> None:
    """Quorum's realized PnL excludes fees; vectorbt's trade PnL is net of both fees."""
    trades = case.pf.trades.records
    closed = trades[trades["status"] == 1].sort_values("exit_idx")
    realized = case.fills["realized_pnl"]
    sells = np.flatnonzero(case.fills["quantity"] < 0)
    gross = np.diff(np.concatenate(([0.0], realized[sells])))
    net = gross - case.fills["fee"][sells - 1] - case.fills["fee"][sells]
    assert len(net) == len(closed)
    np.testing.assert_allclose(net, closed["pnl"].to_numpy(), rtol=RTOL,
                               atol=RTOL * INITIAL_CASH)
    # each sell closes the whole position
    np.testing.assert_array_equal(case.fills["position_after"][sells], 0.0)
