"""reports.metrics against empyrical-reloaded where the definitions match, and against
numbers worked out by hand where there is no reference (trades, exposure, turnover,
drawdown duration, APR).

Conventions shared with empyrical: returns are simple per-bar returns of
``[initial, *equity]`` and empyrical's ``annualization`` is our ``per_year``.
"""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reports.metrics import (
    DAY_NS,
    NS_PER_YEAR,
    ROUND_TRIP_FIELDS,
    annual_volatility,
    apr,
    average_trade,
    cagr,
    calmar_ratio,
    expectancy,
    exposure,
    max_drawdown,
    max_drawdown_duration,
    periods_per_year,
    profit_factor,
    round_trips,
    sharpe_ratio,
    sortino_ratio,
    turnover,
    win_rate,
)

SECOND = 10**9
MINUTE = 60 * SECOND
HOUR = 3600 * SECOND
T0 = 1_700_000_000 * SECOND
REL = 1e-9


# -- against empyrical-reloaded (hypothesis over bounded, positive equity paths) -------
@st.composite
def equity_paths(draw: st.DrawFn) -> tuple[np.ndarray, float, np.ndarray, float]:
    """(returns, initial, equity, per_year): per-bar returns in [-20 %, +20 %] keep the
    equity positive and bounded; spacing from a minute to a day."""
    returns = np.array(draw(st.lists(
        st.floats(-0.2, 0.2, allow_nan=False, allow_infinity=False), min_size=2, max_size=300)))
    initial = draw(st.floats(1_000.0, 100_000.0))
    step = draw(st.sampled_from([MINUTE, 5 * MINUTE, HOUR, 86_400 * SECOND]))
    ts = T0 + step * np.arange(len(returns), dtype=np.int64)
    equity = initial * np.cumprod(1.0 + returns)
    return returns, initial, equity, periods_per_year(ts)


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def close(ours: float, ref: float) -> bool:
    return ours == pytest.approx(ref, rel=REL, abs=REL)


@SETTINGS
@given(equity_paths())
def test_sharpe_matches_empyrical(path) -> None:
    returns, initial, equity, per_year = path
    assume(returns.std(ddof=1) > 1e-6)  # both are undefined without dispersion
    ref = empyrical.sharpe_ratio(returns, annualization=per_year)
    assert close(sharpe_ratio(equity, initial, per_year), ref)


@SETTINGS
@given(equity_paths())
def test_annual_volatility_matches_empyrical(path) -> None:
    returns, initial, equity, per_year = path
    ref = empyrical.annual_volatility(returns, annualization=per_year)
    assert close(annual_volatility(equity, initial, per_year), ref)


@SETTINGS
@given(equity_paths())
def test_sortino_matches_empyrical(path) -> None:
    # Same definition: target 0, downside deviation sqrt(mean(min(r, 0)^2)) over ALL bars.
    # Difference: with no losing bar empyrical returns inf, we return NaN; not compared.
    returns, initial, equity, per_year = path
    assume(np.min(returns) < -1e-6)
    ref = empyrical.sortino_ratio(returns, required_return=0.0, annualization=per_year)
    assert close(sortino_ratio(equity, initial, per_year), ref)


@SETTINGS
@given(equity_paths())
def test_max_drawdown_matches_empyrical(path) -> None:
    # empyrical reports the drawdown negative, we report it positive; both count the
    # starting value as a peak.
    returns, initial, equity, _ = path
    assert close(max_drawdown(equity, initial), -empyrical.max_drawdown(returns))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@SETTINGS
@given(equity_paths())
def test_cagr_matches_empyrical(path) -> None:
    # empyrical.annual_return is the CAGR over len(returns) / annualization years.
    # Short minute paths compound to huge annual rates; compare the growth factor in
    # log space there so the 1e-9 is relative to a number of sane size.
    returns, initial, equity, per_year = path
    ours, ref = cagr(equity, initial, per_year), empyrical.cagr(returns, annualization=per_year)
    if math.isfinite(ref) and abs(ref) < 1e6:
        assert close(ours, ref)
    else:
        assert close(math.log1p(ours) if math.isfinite(ours) else ours,
                     math.log1p(ref) if math.isfinite(ref) else ref)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@SETTINGS
@given(equity_paths())
def test_calmar_matches_empyrical(path) -> None:
    # Same definition: CAGR / max drawdown, NaN when there is no drawdown.
    returns, initial, equity, per_year = path
    # A drawdown d measured from prices keeps only about eps / d of relative precision
    # (a few ulps on a flat path: rounding over rounding). To compare at 1e-9 the
    # drawdown must be well above eps / 1e-9, hence 1e-5.
    assume(max_drawdown(equity, initial) > 1e-5)
    ref = empyrical.calmar_ratio(returns, annualization=per_year)
    ours = calmar_ratio(equity, initial, per_year)
    if math.isnan(ref):
        # empyrical also returns NaN when the ratio overflows to inf; we return inf there
        assert math.isnan(ours) or math.isinf(ours)
    elif abs(ref) < 1e6:
        assert close(ours, ref)
    else:
        # An astronomical CAGR (minute bars compounding +20% moves) over a drawdown made of
        # rounding: the two implementations' last-bit differences in that drawdown are
        # amplified without bound, so compare only the sign and the order of magnitude.
        assert math.copysign(1.0, ours) == math.copysign(1.0, ref)
        assert math.log10(abs(ours)) == pytest.approx(math.log10(abs(ref)), abs=0.5)


# -- CAGR and APR by hand --------------------------------------------------------------
def test_cagr_by_hand() -> None:
    # 100 -> 121 over 730 daily bars (two 365-day years): sqrt(1.21) - 1 = 10 %
    equity = np.full(730, 121.0)
    assert cagr(equity, 100.0, 365.0) == pytest.approx(0.1, rel=1e-12)
    # 100 -> 150 over half a year of daily bars: 1.5 ** 2 - 1 = 125 %
    assert cagr(np.full(182, 150.0), 100.0, 364.0) == pytest.approx(1.25, rel=1e-12)
    assert math.isnan(cagr(np.array([]), 100.0, 365.0))


def test_apr_by_hand() -> None:
    # daily bars, 120 of them: equity 100 before, 110 at bar 29, 105 at bar 89, 120 at 119
    ts = T0 + DAY_NS * np.arange(120, dtype=np.int64)
    equity = np.full(120, 100.0)
    equity[29], equity[89], equity[119] = 110.0, 105.0, 120.0
    # 30 days: from bar 89 (105) to bar 119 (120): (120/105 - 1) * 365/30
    assert apr(equity, 100.0, ts, 30 * DAY_NS) == pytest.approx(
        (120 / 105 - 1) * 365 / 30, rel=1e-12)
    # 90 days: from bar 29 (110): (120/110 - 1) * 365/90
    assert apr(equity, 100.0, ts, 90 * DAY_NS) == pytest.approx(
        (120 / 110 - 1) * 365 / 90, rel=1e-12)
    # since inception: initial 100 dated a day before bar 0, so 120 days: 0.2 * 365/120
    assert apr(equity, 100.0, ts) == pytest.approx(0.2 * 365 / 120, rel=1e-12)
    # a window as long as the whole history starts at the initial equity
    assert apr(equity, 100.0, ts, 120 * DAY_NS) == pytest.approx(0.2 * 365 / 120, rel=1e-12)
    # longer than the history: undefined
    assert math.isnan(apr(equity, 100.0, ts, 121 * DAY_NS))


def test_apr_with_a_gap_reaches_back_to_the_bar_before_the_window() -> None:
    # hourly bars at 0..9 h, then a jump to 20 h: equity 100,...; window of 5 h from 20 h
    # starts at 15 h, where there is no bar: the latest bar at or before it is 9 h
    ts = T0 + HOUR * np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20], dtype=np.int64)
    equity = np.array([100.0] * 9 + [104.0, 117.0])
    expected = (117 / 104 - 1) * NS_PER_YEAR / (11 * HOUR)
    assert apr(equity, 100.0, ts, 5 * HOUR) == pytest.approx(expected, rel=1e-12)


# -- drawdown duration by hand ---------------------------------------------------------
def test_drawdown_duration_by_hand() -> None:
    ts = T0 + HOUR * np.arange(8, dtype=np.int64)
    # start 100; bars: 100, 90, 95, 100 (recovers after 3 bars), 120, 110, 100, 105
    # first drawdown: peak bar 0 -> recovery bar 3 = 3 bars
    # second: peak bar 4 (120), never recovers, last bar 7 = 3 bars... make it longer:
    equity = np.array([100.0, 90.0, 95.0, 100.0, 120.0, 110.0, 100.0, 105.0])
    assert max_drawdown_duration(equity, 100.0, ts) == (3, 3 * HOUR)
    equity = np.append(equity, 119.0)  # still under 120 at bar 8: 4 bars
    ts = T0 + HOUR * np.arange(9, dtype=np.int64)
    assert max_drawdown_duration(equity, 100.0, ts) == (4, 4 * HOUR)


def test_drawdown_duration_from_the_start() -> None:
    # the initial equity is a peak dated one bar before bar 0: 100 -> 99, 98, 100 is 3 bars
    ts = T0 + MINUTE * np.arange(4, dtype=np.int64)
    equity = np.array([99.0, 98.0, 100.0, 101.0])
    assert max_drawdown_duration(equity, 100.0, ts) == (3, 3 * MINUTE)


def test_drawdown_duration_in_time_counts_missing_bars() -> None:
    # bars at 0, 1, 2, 10, 11 min; peak at 0 (100), under water at 1 and 2, back at 10 min
    # -> 3 bars but 10 minutes; a later 1-bar dip at 11 min -> 1 bar, 1 minute
    ts = T0 + MINUTE * np.array([0, 1, 2, 10, 11], dtype=np.int64)
    equity = np.array([100.0, 90.0, 95.0, 100.0, 99.0])
    assert max_drawdown_duration(equity, 100.0, ts) == (3, 10 * MINUTE)


def test_drawdown_duration_of_a_rising_or_empty_path_is_zero() -> None:
    ts = T0 + MINUTE * np.arange(3, dtype=np.int64)
    assert max_drawdown_duration(np.array([101.0, 101.0, 102.0]), 100.0, ts) == (0, 0)
    assert max_drawdown_duration(np.array([]), 100.0, ts[:0]) == (0, 0)


# -- exposure and turnover by hand -----------------------------------------------------
def test_exposure_by_hand() -> None:
    assert exposure(np.array([0.0, 1.0, -2.0, 0.0])) == pytest.approx(0.5, rel=1e-12)
    # bars x symbols: bar held if any symbol is: bars 1, 2 and 3 of 5
    pos = np.array([[0, 0], [1, 0], [0, -1], [2, 3], [0, 0]], dtype=float)
    assert exposure(pos) == pytest.approx(0.6, rel=1e-12)
    assert math.isnan(exposure(np.array([])))


def test_turnover_by_hand() -> None:
    # buy 2 @ 100 (200), sell 2 @ 110 (220), sell 1 @ 105 (105): 525 traded
    # average equity (1000 + 1020 + 1040 + 1040) / 4 = 1025 -> 525 / 1025
    q = np.array([2.0, -2.0, -1.0])
    p = np.array([100.0, 110.0, 105.0])
    equity = np.array([1000.0, 1020.0, 1040.0, 1040.0])
    assert turnover(q, p, equity) == pytest.approx(525 / 1025, rel=1e-12)
    assert turnover(q[:0], p[:0], equity) == 0.0


# -- round trips by hand ---------------------------------------------------------------
def make_fills(rows: list[tuple[int, str, float, float, float]]) -> dict[str, np.ndarray]:
    ts, sym, q, p, f = zip(*rows, strict=True)
    return {"ts": T0 + MINUTE * np.array(ts, dtype=np.int64),
            "symbol": np.array(sym, dtype=object), "quantity": np.array(q),
            "price": np.array(p), "fee": np.array(f)}


def test_round_trip_long_scaled_in_and_out() -> None:
    # buy 1 @ 100 (fee 1), buy 1 @ 110 (fee 1), sell 1 @ 120 (fee 1), sell 1 @ 90 (fee 1)
    # cash flow -100 - 110 + 120 + 90 = 0; fees 4 -> pnl -4
    trips = round_trips(make_fills([(0, "BTC", 1, 100, 1), (1, "BTC", 1, 110, 1),
                                    (2, "BTC", -1, 120, 1), (3, "BTC", -1, 90, 1)]))
    assert set(trips) == set(ROUND_TRIP_FIELDS)
    assert list(trips["symbol"]) == ["BTC"]
    assert trips["entry_ts"][0] == T0 and trips["exit_ts"][0] == T0 + 3 * MINUTE
    assert trips["direction"][0] == 1
    assert trips["quantity"][0] == 2.0
    assert trips["entry_notional"][0] == pytest.approx(210.0, rel=1e-12)
    assert trips["fees"][0] == pytest.approx(4.0, rel=1e-12)
    assert trips["pnl"][0] == pytest.approx(-4.0, rel=1e-12)
    assert trips["n_fills"][0] == 4


def test_round_trip_flip_splits_the_fill_and_its_fee() -> None:
    # long 2 @ 100 (fee 2); sell 5 @ 110 (fee 5): 2 of 5 close the long, 3 open a short
    # long: 2 * (110 - 100) = 20, fees 2 + 5 * 2/5 = 4 -> 16
    # short 3 @ 110, fee 3; buy 3 @ 100 (fee 3): 3 * 10 = 30, fees 6 -> 24
    trips = round_trips(make_fills([(0, "ETH", 2, 100, 2), (1, "ETH", -5, 110, 5),
                                    (2, "ETH", 3, 100, 3)]))
    assert trips["direction"].tolist() == [1, -1]
    assert trips["pnl"] == pytest.approx([16.0, 24.0], rel=1e-12)
    assert trips["fees"] == pytest.approx([4.0, 6.0], rel=1e-12)
    assert trips["quantity"].tolist() == [2.0, 3.0]
    assert trips["entry_notional"] == pytest.approx([200.0, 330.0], rel=1e-12)
    assert (trips["entry_ts"] - T0).tolist() == [0, MINUTE]
    assert (trips["exit_ts"] - T0).tolist() == [MINUTE, 2 * MINUTE]
    assert trips["n_fills"].tolist() == [2, 2]


def test_round_trips_follow_each_symbol_and_drop_open_positions() -> None:
    # BTC long 1 @ 100 closed @ 105 (+5 - 0.5 fees); ETH short 2 @ 50 closed @ 45 (+10 - 0)
    # interleaved; SOL bought and never sold: no trade
    trips = round_trips(make_fills([
        (0, "BTC", 1, 100, 0.25), (1, "ETH", -2, 50, 0), (2, "SOL", 4, 10, 0),
        (3, "ETH", 2, 45, 0), (4, "BTC", -1, 105, 0.25),
    ]))
    assert list(trips["symbol"]) == ["ETH", "BTC"]  # ordered by exit
    assert trips["pnl"] == pytest.approx([10.0, 4.5], rel=1e-12)
    assert trips["direction"].tolist() == [-1, 1]


def test_round_trips_of_no_fills() -> None:
    trips = round_trips(make_fills([(0, "BTC", 1, 100, 0)]))
    assert all(len(v) == 0 for v in trips.values())
    assert trips["entry_ts"].dtype == np.int64


def test_round_trips_atol_treats_dust_as_flat() -> None:
    fills = make_fills([(0, "BTC", 0.3, 100, 0), (1, "BTC", -0.1, 110, 0),
                        (2, "BTC", -0.2, 110, 0)])
    # 0.3 - 0.1 - 0.2 is -2.8e-17 in doubles: exactly (as the engine's portfolio) this is a
    # flip, closing the long (pnl 0.1 * 10 + 0.2 * 10 = 3) and leaving a dust short open
    assert 0.3 - 0.1 - 0.2 < 0.0
    exact = round_trips(fills)
    assert exact["pnl"] == pytest.approx([3.0], rel=1e-9)
    assert exact["quantity"] == pytest.approx([0.3], rel=1e-12)
    # with a tolerance the same fill is a plain close; the same single trade either way
    trips = round_trips(fills, atol=1e-12)
    assert trips["pnl"] == pytest.approx([3.0], rel=1e-9)
    # then a fresh long from flat: 1 @ 100 sold @ 90 is a second trade of -10
    more = make_fills([(0, "BTC", 0.3, 100, 0), (1, "BTC", -0.1, 110, 0),
                       (2, "BTC", -0.2, 110, 0), (3, "BTC", 1, 100, 0), (4, "BTC", -1, 90, 0)])
    assert round_trips(more, atol=1e-12)["pnl"] == pytest.approx([3.0, -10.0], rel=1e-9)


# -- trade statistics by hand ----------------------------------------------------------
def test_trade_statistics_by_hand() -> None:
    pnl = np.array([30.0, -10.0, 0.0, 20.0, -20.0])
    notional = np.array([100.0, 100.0, 50.0, 400.0, 200.0])
    assert win_rate(pnl) == pytest.approx(0.4, rel=1e-12)  # 2 of 5; breakeven is no win
    assert profit_factor(pnl) == pytest.approx(50 / 30, rel=1e-12)
    assert average_trade(pnl) == pytest.approx(4.0, rel=1e-12)  # 20 / 5
    # textbook expectancy p_win * mean_win - p_loss * mean_loss = 0.4*25 - 0.4*15 = 4
    assert average_trade(pnl) == pytest.approx(0.4 * 25 - 0.4 * 15, rel=1e-12)
    # returns 0.3, -0.1, 0, 0.05, -0.1 -> mean 0.15 / 5 = 0.03
    assert expectancy(pnl, notional) == pytest.approx(0.03, rel=1e-12)


def test_trade_statistics_edge_cases() -> None:
    empty = np.array([])
    for f in (win_rate, profit_factor, average_trade):
        assert math.isnan(f(empty))
    assert math.isnan(expectancy(empty, empty))
    assert profit_factor(np.array([5.0, 0.0])) == math.inf
    assert math.isnan(profit_factor(np.array([0.0, 0.0])))
    assert profit_factor(np.array([-5.0])) == 0.0


def test_round_trips_feed_the_trade_statistics() -> None:
    trips = round_trips(make_fills([(0, "ETH", 2, 100, 2), (1, "ETH", -5, 110, 5),
                                    (2, "ETH", 3, 120, 3)]))
    # long +16 as above; short 3 @ 110 bought back @ 120: -30 - 6 = -36
    assert trips["pnl"] == pytest.approx([16.0, -36.0], rel=1e-12)
    assert win_rate(trips["pnl"]) == 0.5
    assert profit_factor(trips["pnl"]) == pytest.approx(16 / 36, rel=1e-12)
    assert average_trade(trips["pnl"]) == pytest.approx(-10.0, rel=1e-12)
    assert expectancy(trips["pnl"], trips["entry_notional"]) == pytest.approx(
        (16 / 200 - 36 / 330) / 2, rel=1e-12)
