"""reports.metrics against numbers worked out by hand and against plain-loop versions."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from reports.metrics import (
    NS_PER_YEAR,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    total_return,
)

SECOND = 10**9
MINUTE = 60 * SECOND
DAY = 86_400 * SECOND


# -- independent, deliberately naive implementations ----------------------------------
def loop_total_return(equity: list[float], initial: float) -> float:
    if not equity:
        return 0.0
    return equity[-1] / initial - 1.0


def loop_max_drawdown(equity: list[float], initial: float) -> float:
    peak = initial
    worst = 0.0
    for value in equity:
        peak = max(peak, value)
        worst = max(worst, (peak - value) / peak)
    return worst


def loop_periods_per_year(ts: list[int]) -> float:
    if len(ts) < 2:
        return math.nan
    gaps = sorted(b - a for a, b in itertools.pairwise(ts))
    mid = len(gaps) // 2
    median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
    return 365 * 86_400 * 10**9 / median


def loop_sharpe(equity: list[float], initial: float, per_year: float) -> float:
    values = [initial, *equity]
    returns = [values[i] / values[i - 1] - 1.0 for i in range(1, len(values))]
    n = len(returns)
    if n < 2:
        return math.nan
    mean = sum(returns) / n
    var = sum((r - mean) ** 2 for r in returns) / (n - 1)
    if var == 0.0:
        return math.nan
    return mean / math.sqrt(var) * math.sqrt(per_year)


# -- total_return ----------------------------------------------------------------------
def test_total_return_by_hand() -> None:
    # 10 000 -> 12 100 is +21 %; the path in between does not matter
    assert total_return(np.array([11_000.0, 9_000.0, 12_100.0]), 10_000.0) == pytest.approx(
        0.21, rel=1e-12)
    # 10 000 -> 7 500 is -25 %
    assert total_return(np.array([7_500.0]), 10_000.0) == pytest.approx(-0.25, rel=1e-12)
    assert total_return(np.array([10_000.0, 10_000.0]), 10_000.0) == 0.0


def test_total_return_of_nothing_is_zero() -> None:
    assert total_return(np.array([]), 10_000.0) == 0.0


# -- max_drawdown ----------------------------------------------------------------------
def test_max_drawdown_by_hand() -> None:
    # path from 100: 120, 90, 150, 75, 100. Peaks 120 then 150.
    # 120 -> 90 is 30/120 = 0.25; 150 -> 75 is 75/150 = 0.5 (the largest)
    eq = np.array([120.0, 90.0, 150.0, 75.0, 100.0])
    assert max_drawdown(eq, 100.0) == pytest.approx(0.5, rel=1e-12)


def test_max_drawdown_counts_the_start_as_a_peak() -> None:
    # falls straight from the initial 100 to 80 (20 %), then recovers to 120
    assert max_drawdown(np.array([80.0, 120.0]), 100.0) == pytest.approx(0.2, rel=1e-12)
    # a drawdown that is never recovered: 100 -> 60 is 40 %
    assert max_drawdown(np.array([90.0, 70.0, 60.0]), 100.0) == pytest.approx(0.4, rel=1e-12)


def test_max_drawdown_of_a_rising_or_empty_path_is_zero() -> None:
    assert max_drawdown(np.array([101.0, 102.0, 102.0, 150.0]), 100.0) == 0.0
    assert max_drawdown(np.array([]), 100.0) == 0.0


# -- periods_per_year ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (MINUTE, 365 * 24 * 60),  # 525 600
        (5 * MINUTE, 365 * 24 * 12),  # 105 120
        (3600 * SECOND, 365 * 24),  # 8 760
        (DAY, 365),
    ],
)
def test_periods_per_year_by_hand(step: int, expected: int) -> None:
    ts = 1_700_000_000 * SECOND + step * np.arange(10, dtype=np.int64)
    assert periods_per_year(ts) == pytest.approx(expected, rel=1e-12)


def test_periods_per_year_uses_the_median_spacing() -> None:
    # gaps 60, 60, 120 (one missing bar), 60 s: the median gap is still 60 s
    ts = np.array([0, 60, 120, 240, 300], dtype=np.int64) * SECOND
    assert periods_per_year(ts) == pytest.approx(525_600, rel=1e-12)
    # an even number of gaps takes the mean of the middle two: 60, 60, 180, 180 -> 120 s
    ts = np.array([0, 60, 120, 300, 480], dtype=np.int64) * SECOND
    assert periods_per_year(ts) == pytest.approx(262_800, rel=1e-12)


def test_periods_per_year_needs_two_stamps() -> None:
    assert math.isnan(periods_per_year(np.array([0], dtype=np.int64)))
    assert math.isnan(periods_per_year(np.array([], dtype=np.int64)))


def test_ns_per_year_is_a_365_day_year() -> None:
    assert NS_PER_YEAR == 365 * 24 * 3600 * 10**9


# -- sharpe_ratio ----------------------------------------------------------------------
def test_sharpe_ratio_by_hand() -> None:
    # 100 -> 110 -> 99 -> 108.9: returns +10 %, -10 %, +10 % (a = 0.1: a, -a, a)
    # mean = a/3; deviations 2a/3, -4a/3, 2a/3; sample variance = (4+16+4)a²/9 / 2 = 4a²/3
    # sd = 2a/sqrt(3); mean / sd = (a/3) / (2a/sqrt(3)) = sqrt(3)/6 = 1/sqrt(12)
    # annualised with 12 periods a year: sqrt(12) / sqrt(12) = 1
    eq = np.array([110.0, 99.0, 108.9])
    assert sharpe_ratio(eq, 100.0, 12.0) == pytest.approx(1.0, rel=1e-12)
    # with 48 periods: sqrt(48 / 12) = 2
    assert sharpe_ratio(eq, 100.0, 48.0) == pytest.approx(2.0, rel=1e-12)


def test_sharpe_ratio_two_returns_by_hand() -> None:
    # 100 -> 102 -> 102.51: returns 2 % and 0.5 %; mean 1.25 %, sample sd = 1.5 % / sqrt(2)
    # ratio = 0.0125 / (0.015 / sqrt(2)) = 1.1785113...; x sqrt(365)
    expected = 0.0125 / (0.015 / math.sqrt(2)) * math.sqrt(365)
    assert sharpe_ratio(np.array([102.0, 102.51]), 100.0, 365.0) == pytest.approx(
        expected, rel=1e-9)


def test_sharpe_ratio_is_nan_without_dispersion_or_enough_returns() -> None:
    assert math.isnan(sharpe_ratio(np.array([100.0, 100.0, 100.0]), 100.0, 365.0))
    assert math.isnan(sharpe_ratio(np.array([110.0]), 100.0, 365.0))  # one return
    assert math.isnan(sharpe_ratio(np.array([]), 100.0, 365.0))


def test_sharpe_ratio_sign_follows_the_mean_return() -> None:
    assert sharpe_ratio(np.array([90.0, 81.0, 81.81]), 100.0, 365.0) < 0.0


# -- against the loops -----------------------------------------------------------------
@pytest.mark.parametrize("seed", range(8))
def test_metrics_match_plain_loops(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 400))
    initial = float(rng.uniform(1_000.0, 50_000.0))
    equity = initial * np.exp(np.cumsum(rng.normal(0.0, 0.02, n)))
    step = int(rng.choice([MINUTE, 5 * MINUTE, DAY]))
    ts = 1_600_000_000 * SECOND + step * np.arange(n, dtype=np.int64)
    ts[n // 3 :] += step  # one gap: the median spacing is unchanged
    eq_list = equity.tolist()
    per_year = periods_per_year(ts)

    assert total_return(equity, initial) == pytest.approx(
        loop_total_return(eq_list, initial), rel=1e-12)
    assert max_drawdown(equity, initial) == pytest.approx(
        loop_max_drawdown(eq_list, initial), rel=1e-12, abs=1e-15)
    assert per_year == pytest.approx(loop_periods_per_year(ts.tolist()), rel=1e-12)
    assert per_year == pytest.approx(NS_PER_YEAR / step, rel=1e-12)
    assert sharpe_ratio(equity, initial, per_year) == pytest.approx(
        loop_sharpe(eq_list, initial, per_year), rel=1e-9)
