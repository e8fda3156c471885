"""Stylized facts (``sim.regimes.facts``) against independent references: statsmodels'
autocorrelation, scipy's kurtosis, the known tail index of a Pareto sample."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.tsa.stattools import acf as sm_acf

from sim.data import NS_PER_YEAR, SymbolBars, load_bars
from sim.regimes.facts import (
    FACTS,
    acf,
    bar_returns,
    bars_per_year,
    compare_facts,
    hill_index,
    kurtosis,
    stylized_facts,
)

FIVE_MIN = 300 * 10**9


def bars_from_close(close: np.ndarray, step: int = FIVE_MIN,
                    ts: np.ndarray | None = None) -> SymbolBars:
    ts = np.arange(close.size, dtype=np.int64) * step if ts is None else ts
    o = np.concatenate(([close[0]], close[:-1]))
    return SymbolBars("X", "test", ts, o, np.maximum(o, close) * 1.001,
                      np.minimum(o, close) * 0.999, close, np.full(close.size, 5.0))


def test_acf_and_kurtosis_match_statsmodels_and_scipy() -> None:
    x = np.random.default_rng(0).standard_t(5, 5000)
    np.testing.assert_allclose(acf(x, 50), sm_acf(x, nlags=50, fft=False)[1:], rtol=1e-10)
    np.testing.assert_allclose(acf(np.abs(x), 20), sm_acf(np.abs(x), nlags=20)[1:], rtol=1e-8)
    assert kurtosis(x) == pytest.approx(stats.kurtosis(x), rel=1e-10)


def test_hill_index_recovers_a_pareto_tail() -> None:
    """|x| Pareto with index 3: the Hill estimate's se is 3 / sqrt(k), k = 5000 here."""
    x = np.random.default_rng(1).pareto(3.0, 200_000) + 1.0
    assert hill_index(x) == pytest.approx(3.0, abs=5 * 3 / math.sqrt(5000))


def test_returns_across_a_gap_are_left_out() -> None:
    close = np.array([1.0, 2.0, 4.0, 1.0, 1.0])
    ts = np.array([0, 1, 2, 10, 11]) * FIVE_MIN  # bars 2 -> 3 span a gap
    r = bar_returns(bars_from_close(close, ts=ts))
    np.testing.assert_allclose(r, np.log([2.0, 2.0, 1.0]))


def test_bars_per_year_calendar_for_intraday_trading_days_for_daily() -> None:
    assert bars_per_year(bars_from_close(np.ones(10))) == NS_PER_YEAR / FIVE_MIN
    sp = load_bars("data/sp500_daily_1999-2018.csv", "SPX")
    assert bars_per_year(sp) == 252


def test_a_series_agrees_with_itself_and_a_scaled_one_fails_volatility() -> None:
    close = np.exp(np.cumsum(np.random.default_rng(2).normal(0, 0.01, 3000))) * 100
    a = stylized_facts(bars_from_close(close), 105120)
    rows = compare_facts(a, a)
    assert [r.fact.name for r in rows] == [f.name for f in FACTS]
    assert all(r.passed for r in rows)
    wider = np.exp(np.log(close) * 1.2)  # every return 20% larger
    rows = {r.fact.name: r for r in compare_facts(a, stylized_facts(bars_from_close(wider),
                                                                      105120))}
    assert not rows["annual_volatility"].passed
    assert rows["acf_1"].passed and rows["excess_kurtosis"].passed  # scale-free facts


def test_tolerances_are_absolute_or_relative() -> None:
    real = dict.fromkeys((f.name for f in FACTS), 1.0)
    gen = {**real, "excess_kurtosis": 1.36, "acf_1": 1.049, "annual_volatility": 0.89}
    rows = {r.fact.name: r for r in compare_facts(real, gen)}
    assert not rows["excess_kurtosis"].passed  # 36% off, 35% allowed
    assert rows["acf_1"].passed  # 0.049 off, 0.05 allowed
    assert not rows["annual_volatility"].passed  # 11% off, 10% allowed
    gen["acf_1"] = math.nan
    assert not {r.fact.name: r for r in compare_facts(real, gen)}["acf_1"].passed
