"""The returns-based statistics (used for regime slices and agents' shadow series) against
empyrical-reloaded, and the execution metrics against hand-computed cases.

empyrical takes the same per-bar simple returns; its ``annualization`` is our
``per_year``. Differences: empyrical reports the drawdown negative (we report it
positive) and its Sortino is inf without a losing bar (ours is NaN; not compared).
"""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reports.metrics import (
    annual_volatility,
    compounded_return,
    implementation_shortfall,
    latency_summary,
    max_drawdown,
    pnl_max_drawdown,
    returns_max_drawdown,
    returns_sharpe,
    returns_sortino,
    returns_volatility,
    sharpe_ratio,
    shortfall_bps,
    sortino_ratio,
)

REL = 1e-9
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
returns_lists = st.lists(st.floats(-0.2, 0.2, allow_nan=False, allow_infinity=False),
                         min_size=2, max_size=300).map(np.array)
per_years = st.sampled_from([365.0, 8_760.0, 105_120.0, 525_600.0])


def close(ours: float, ref: float) -> bool:
    return ours == pytest.approx(ref, rel=REL, abs=REL)


@SETTINGS
@given(returns_lists, per_years)
def test_returns_statistics_match_empyrical(r: np.ndarray, per_year: float) -> None:
    assert close(returns_volatility(r, per_year),
                 empyrical.annual_volatility(r, annualization=per_year))
    assert close(returns_max_drawdown(r), -empyrical.max_drawdown(r))
    assert close(compounded_return(r), empyrical.cum_returns_final(r))
    if r.std(ddof=1) > 1e-6:
        assert close(returns_sharpe(r, per_year),
                     empyrical.sharpe_ratio(r, annualization=per_year))
    if r.min() < -1e-6:
        assert close(returns_sortino(r, per_year),
                     empyrical.sortino_ratio(r, annualization=per_year))


@SETTINGS
@given(returns_lists, per_years, st.floats(100.0, 1e6))
def test_equity_and_returns_versions_are_one_definition(r: np.ndarray, per_year: float,
                                                        initial: float) -> None:
    # the equity-based functions are the returns-based ones on the path's returns
    equity = initial * np.cumprod(1.0 + r)
    path = np.concatenate(([initial], equity))
    back = path[1:] / path[:-1] - 1.0
    assert sharpe_ratio(equity, initial, per_year) == returns_sharpe(back, per_year) or (
        math.isnan(sharpe_ratio(equity, initial, per_year)))
    assert annual_volatility(equity, initial, per_year) == returns_volatility(back, per_year)
    s1, s2 = sortino_ratio(equity, initial, per_year), returns_sortino(back, per_year)
    assert s1 == s2 or (math.isnan(s1) and math.isnan(s2))
    assert close(returns_max_drawdown(back), max_drawdown(equity, initial))


def test_returns_statistics_of_nothing() -> None:
    empty = np.zeros(0)
    assert math.isnan(returns_sharpe(empty, 365.0))
    assert math.isnan(returns_volatility(np.array([0.1]), 365.0))
    assert math.isnan(returns_sortino(np.array([0.1, 0.2]), 365.0))  # no losing bar
    assert math.isnan(returns_max_drawdown(empty))
    assert compounded_return(empty) == 0.0


def test_pnl_max_drawdown_by_hand() -> None:
    # running sum 0.1, 0.3, 0.1, -0.2, 0.0, 0.5: peak 0.3 -> trough -0.2 is 0.5
    pnl = np.array([0.1, 0.2, -0.2, -0.3, 0.2, 0.5])
    assert pnl_max_drawdown(pnl) == pytest.approx(0.5, rel=1e-12)
    # falls from the start: 0 counts as the first peak
    assert pnl_max_drawdown(np.array([-0.1, -0.1, 0.05])) == pytest.approx(0.2, rel=1e-12)
    assert pnl_max_drawdown(np.array([0.1, 0.2])) == 0.0
    assert pnl_max_drawdown(np.zeros(0)) == 0.0


# -- execution, by hand ----------------------------------------------------------------
def test_implementation_shortfall_by_hand() -> None:
    # buy 2 expected 100 filled 101: cost 2; sell 3 expected 50 filled 49.5: cost 1.5;
    # buy 1 expected 10 filled 9.9 (better than expected): -0.1
    q = np.array([2.0, -3.0, 1.0])
    exp = np.array([100.0, 50.0, 10.0])
    fill = np.array([101.0, 49.5, 9.9])
    assert implementation_shortfall(q, exp, fill) == pytest.approx([2.0, 1.5, -0.1], rel=1e-12)
    # expected notional 200 + 150 + 10 = 360; shortfall 3.4 -> 1e4 * 3.4 / 360 bps
    assert shortfall_bps(q, exp, fill) == pytest.approx(1e4 * 3.4 / 360, rel=1e-12)
    assert math.isnan(shortfall_bps(q[:0], exp[:0], fill[:0]))


def test_latency_summary_by_hand() -> None:
    # 1, 2, 3, 4, 10 ms: mean 4, median 3; linear percentiles: p90 at rank 3.6 -> 4 + 0.6*6
    ns = np.array([1, 2, 3, 4, 10], dtype=np.int64) * 1_000_000
    got = latency_summary(ns)
    assert got["count"] == 5
    assert got["mean"] == pytest.approx(4.0, rel=1e-12)
    assert got["p50"] == pytest.approx(3.0, rel=1e-12)
    assert got["p90"] == pytest.approx(7.6, rel=1e-12)
    assert got["p99"] == pytest.approx(4 + 0.96 * 6, rel=1e-12)
    assert got["max"] == 10.0
    nothing = latency_summary(np.zeros(0))
    assert nothing["count"] == 0 and math.isnan(nothing["p99"])


@SETTINGS
@given(st.lists(st.tuples(st.floats(-10, 10).filter(lambda q: abs(q) > 1e-3),
                          st.floats(1.0, 1000.0), st.floats(-0.05, 0.05)),
                min_size=1, max_size=50))
def test_shortfall_is_the_notional_weighted_mean_of_per_fill_bps(rows) -> None:
    q, exp, move = (np.array(c) for c in zip(*rows, strict=True))
    fill = exp * (1.0 + move)
    per_fill_bps = 1e4 * implementation_shortfall(q, exp, fill) / (np.abs(q) * exp)
    weights = np.abs(q) * exp
    assume(weights.sum() > 0)
    assert close(shortfall_bps(q, exp, fill), float(np.average(per_fill_bps, weights=weights)))
