"""Classic agents and their indicators.

Each incremental indicator is checked against an independent from-scratch computation
over the same history (pandas ``ewm``/``rolling``, numpy windows, a closed form) to 1e-9
relative on a few thousand bars. Each agent is checked on small hand-built sequences whose
signals are worked out by hand in the comments.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from sim.agents.base import AgentError, build_agent, describe_agent, registered_agents
from sim.agents.classic import (
    BollingerReversion,
    DonchianBreakout,
    EmaCrossover,
    Momentum,
    Rsi,
)
from sim.data import gbm_bars
from sim.indicators import (
    EMA,
    RateOfChange,
    RollingMax,
    RollingMeanStd,
    RollingMin,
    WilderRSI,
)
from sim.messages import FLAT, LONG, SHORT
from tests._agents import bars_from_rows, closes_only, compact, drive

RTOL = 1e-9
N = 5_000
L, S, F = int(LONG), int(SHORT), int(FLAT)


@pytest.fixture(scope="module")
def series() -> dict[str, np.ndarray]:
    """A few thousand GBM bars plus a coarse, tie-heavy series (prices on a 0.5 grid)."""
    bars = gbm_bars("X", N, np.random.default_rng(11), start_ns=0, interval_ns=60 * 10**9,
                    volatility=1.5)
    rng = np.random.default_rng(12)
    ticks = 100 + np.cumsum(rng.integers(-2, 3, N)) * 0.5
    return {"close": bars.close, "high": bars.high, "low": bars.low, "ticks": ticks}


def run(indicator: object, xs: np.ndarray) -> np.ndarray:
    update = indicator.update  # type: ignore[attr-defined]
    return np.array([update(x) for x in xs.tolist()])


# -- indicators --------------------------------------------------------------------------
@pytest.mark.parametrize("span", [1, 2, 12, 26, 200])
def test_ema_equals_pandas_ewm(series: dict[str, np.ndarray], span: int) -> None:
    x = series["close"]
    ema = EMA(span)
    got = run(ema, x)
    want = pd.Series(x).ewm(span=span, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=0)
    # and the closed form over the whole history at the last bar
    a = 2 / (span + 1)
    weights = a * (1 - a) ** np.arange(len(x) - 1, -1, -1)
    weights[0] = (1 - a) ** (len(x) - 1)
    assert math.isclose(got[-1], math.fsum(weights * x), rel_tol=RTOL)
    assert ema.ready and ema.value == got[-1]


def test_ema_ready_after_span_values() -> None:
    ema = EMA(3)
    assert math.isnan(ema.value)
    readiness = []
    for x in (1.0, 2.0, 3.0, 4.0):
        ema.update(x)
        readiness.append(ema.ready)
    assert readiness == [False, False, True, True]
    assert ema.value == 3.125  # alpha 0.5: 1, 1.5, 2.25, 3.125


@pytest.mark.parametrize("length", [1, 2, 5, 20, 55])
@pytest.mark.parametrize("column", ["high", "ticks"])
def test_rolling_max_min_equal_pandas_rolling(
    series: dict[str, np.ndarray], length: int, column: str
) -> None:
    x = series[column]
    frame = pd.Series(x).rolling(length, min_periods=1)
    mx, mn = RollingMax(length), RollingMin(length)
    np.testing.assert_array_equal(run(mx, x), frame.max().to_numpy())  # exact: no arithmetic
    np.testing.assert_array_equal(run(mn, x), frame.min().to_numpy())
    assert mx.ready and mn.ready
    assert mx.value == x[-length:].max() and mn.value == x[-length:].min()


def test_rolling_max_deque_stays_within_the_window() -> None:
    mx = RollingMax(4)
    for x in np.linspace(100.0, 1.0, 1_000).tolist():  # falling: every value is kept a while
        mx.update(x)
        assert len(mx._deque) <= 4


@pytest.mark.parametrize("length", [2, 3, 20, 100])
@pytest.mark.parametrize("column", ["close", "ticks"])
def test_rolling_mean_std_equal_numpy_windows(
    series: dict[str, np.ndarray], length: int, column: str
) -> None:
    x = series[column]
    stats = RollingMeanStd(length)
    means, stds = [], []
    for v in x.tolist():
        stats.update(v)
        means.append(stats.mean)
        stds.append(stats.std)
    windows = sliding_window_view(x, length)  # from scratch, two-pass, per window
    np.testing.assert_allclose(means[length - 1:], windows.mean(axis=1), rtol=RTOL, atol=0)
    np.testing.assert_allclose(stds[length - 1:], windows.std(axis=1), rtol=RTOL,
                               atol=1e-12 * x.max())  # a flat tick window has std 0
    # warming up: over the values so far
    for k in range(1, length):
        assert math.isclose(means[k - 1], x[:k].mean(), rel_tol=RTOL)
        assert math.isclose(stds[k - 1], x[:k].std(), rel_tol=RTOL, abs_tol=1e-12 * x.max())


def test_rolling_std_of_a_flat_window_is_exactly_zero() -> None:
    stats = RollingMeanStd(3)
    for v in (5.0, 7.0, 7.0, 7.0, 7.0):
        stats.update(v)
    assert (stats.mean, stats.std) == (7.0, 0.0)


def reference_rsi(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder's RSI from scratch: SMA seed of the first n gains/losses, then an EMA with
    alpha = 1/n (pandas), RSI = 100 g / (g + l)."""
    d = np.diff(x)
    gain, loss = np.clip(d, 0, None), np.clip(-d, 0, None)

    def smoothed(v: np.ndarray) -> np.ndarray:
        seeded = np.concatenate(([v[:n].mean()], v[n:]))
        return pd.Series(seeded).ewm(alpha=1 / n, adjust=False).mean().to_numpy()

    g, lo = smoothed(gain), smoothed(loss)
    rsi = np.where(g + lo > 0, 100 * g / np.where(g + lo > 0, g + lo, 1), 50.0)
    return np.concatenate((np.full(n, np.nan), rsi))


@pytest.mark.parametrize("period", [1, 2, 14, 50])
@pytest.mark.parametrize("column", ["close", "ticks"])
def test_wilder_rsi_equals_reference(
    series: dict[str, np.ndarray], period: int, column: str
) -> None:
    x = series[column]
    rsi = WilderRSI(period)
    got = run(rsi, x)
    want = reference_rsi(x, period)
    assert np.isnan(got[:period]).all()
    np.testing.assert_allclose(got[period:], want[period:], rtol=RTOL, atol=1e-9)
    assert rsi.ready and rsi.value == got[-1]


def test_wilder_rsi_by_hand() -> None:
    # period 2, closes 1, 2, 1.5, 2.5: changes +1, -0.5, +1.
    # seed: gain (1 + 0)/2 = 0.5, loss (0 + 0.5)/2 = 0.25 -> RSI 100 * 0.5/0.75
    # then: gain (0.5 * 1 + 1)/2 = 0.75, loss 0.25/2 = 0.125 -> RSI 100 * 0.75/0.875
    got = run(WilderRSI(2), np.array([1.0, 2.0, 1.5, 2.5]))
    assert np.isnan(got[:2]).all()
    assert got[2] == pytest.approx(200 / 3, rel=1e-12)
    assert got[3] == pytest.approx(600 / 7, rel=1e-12)
    assert run(WilderRSI(2), np.array([3.0, 3.0, 3.0]))[-1] == 50.0  # no movement
    assert run(WilderRSI(2), np.array([3.0, 4.0, 5.0]))[-1] == 100.0  # no losses


@pytest.mark.parametrize("length", [1, 2, 20, 90])
def test_rate_of_change_equals_pandas(series: dict[str, np.ndarray], length: int) -> None:
    x = series["close"]
    roc = RateOfChange(length)
    got = run(roc, x)
    want = pd.Series(x).pct_change(length).to_numpy()
    assert np.isnan(got[:length]).all()
    np.testing.assert_allclose(got[length:], want[length:], rtol=RTOL, atol=1e-15)
    assert math.isclose(got[-1], x[-1] / x[-1 - length] - 1, rel_tol=RTOL)


# -- agents on hand-built sequences -------------------------------------------------------
def test_ema_crossover_signals_on_the_cross() -> None:
    # fast = EMA(1) is the close; slow = EMA(3), alpha 0.5: 10, 10, 10, 10.5, 11.25, 10.125.
    # ready at bar 2 (3 values): 10 > 10 is false -> SHORT; bar 3: 11 > 10.5 -> LONG;
    # bar 4: 12 > 11.25 still LONG (no signal); bar 5: 9 < 10.125 -> SHORT.
    bars = closes_only([10, 10, 10, 11, 12, 9])
    got = drive(EmaCrossover(fast=1, slow=3), bars)
    assert compact(got) == [None, None, (S, 1.0), (L, 1.0), None, (S, 1.0)]
    assert got[3].reason == "EMA cross: EMA(1) above EMA(3)"
    got = drive(EmaCrossover(fast=1, slow=3, long_only=True), bars)
    assert compact(got) == [None, None, (F, 1.0), (L, 1.0), None, (F, 1.0)]


DONCHIAN_ROWS = [  # (open, high, low, close)
    (9.5, 10.0, 9.0, 9.5),
    (9.5, 10.5, 9.2, 10.0),
    (10.0, 10.2, 9.1, 9.8),
    (9.8, 10.4, 9.6, 10.0),  # channel of bars 0-2: 9.0..10.5 -> inside: first view FLAT
    (10.0, 11.0, 10.4, 10.9),  # 10.9 > 10.5 -> LONG
    (10.9, 11.2, 10.6, 11.1),  # 11.1 > 11.0: LONG again, no new signal
    (11.1, 11.0, 10.5, 10.7),  # exit low (bars 4-5) 10.4: 10.7 stays
    (10.7, 10.6, 10.3, 10.45),  # exit low (bars 5-6) 10.5 > 10.45 -> FLAT; entry low 10.4
    (10.45, 10.5, 9.0, 9.2),  # entry low (bars 5-7) 10.3 > 9.2 -> SHORT
]


def test_donchian_breakout_entries_and_exits() -> None:
    bars = bars_from_rows(DONCHIAN_ROWS)
    got = drive(DonchianBreakout(window=3, exit_window=2), bars)
    assert compact(got) == [None, None, None, (F, 1.0), (L, 1.0), None, None, (F, 1.0),
                            (S, 1.0)]
    assert [s.reason for s in got if s is not None] == [
        "Donchian: inside the channel, no breakout yet",
        "Donchian breakout: close above the 3-bar high",
        "Donchian exit: close below the 2-bar low",
        "Donchian breakout: close below the 3-bar low",
    ]
    # no exit channel: the LONG stands until the downside breakout
    got = drive(DonchianBreakout(window=3, exit_window=0), bars)
    assert compact(got) == [None, None, None, (F, 1.0), (L, 1.0), None, None, None, (S, 1.0)]
    got = drive(DonchianBreakout(window=3, exit_window=2, long_only=True), bars)
    assert compact(got)[-1] == (F, 1.0)


def test_bollinger_reversion_enters_outside_and_exits_at_the_middle() -> None:
    # window 3, width 1. Bars 0-2 flat: sd 0, no bands -> FLAT.
    # bar 3, 13: mean 11, sd sqrt(2); |13 - 11| = 2 > sqrt(2) -> SHORT, depth sqrt(2),
    #   confidence sqrt(2)/2 = 0.707 -> 0.7.
    # bar 4, 12: mean 11.667, sd 1.247: inside, above the middle: SHORT stands.
    # bar 5, 11.9: mean 12.3, sd 0.497, |dev| 0.4 inside, below the middle -> FLAT.
    up = [10, 10, 10, 13, 12, 11.9]
    got = drive(BollingerReversion(window=3, width=1.0), closes_only(up))
    assert compact(got) == [None, None, (F, 1.0), (S, 0.7), None, (F, 1.0)]
    assert got[2].reason == "Bollinger: inside the bands"
    assert got[3].reason == "Bollinger: close above the upper band (1.0 sd)"
    assert got[5].reason == "Bollinger: back at the middle band"
    # the mirror image
    down = [20 - x for x in up]
    got = drive(BollingerReversion(window=3, width=1.0), closes_only(down))
    assert compact(got) == [None, None, (F, 1.0), (L, 0.7), None, (F, 1.0)]


def test_bollinger_confidence_deepens_outside_the_band_only() -> None:
    # window 4, width 0.5. bar 4, 14: mean 11, sd sqrt(6.75)/... computed by the agent.
    agent = BollingerReversion(window=4, width=0.5, confidence_step=0.25)
    got = compact(drive(agent, closes_only([10, 10, 10, 10, 11, 13, 12.9])))
    # bar 3: flat window -> FLAT. bar 4: mean 10.25, sd 0.433, band 0.217, dev 0.75:
    #   depth 3.46 -> confidence 1 (saturated). bar 5 (13): still outside, confidence 1:
    #   no new signal. bar 6 (12.9): window 10, 11, 13, 12.9 mean 11.725, sd 1.226, band
    #   0.613, dev 1.175 -> depth 1.92 -> 0.96 -> 1.0: no new signal.
    assert got == [None, None, None, (F, 1.0), (S, 1.0), None, None]


def test_rsi_thresholds_exit_and_confidence() -> None:
    # period 2. bar 2: changes +1, +1 -> RSI 100 -> SHORT, 0.5 + 0.5 * 30/30 = 1.0.
    # (the agent's first view is SHORT: it is beyond a threshold from the start)
    # bar 3 (-0.5): gain 0.5, loss 0.25 -> 66.7: between exit and overbought, SHORT stands.
    # bar 4 (-0.5): gain 0.25, loss 0.375 -> 40 <= 50 -> FLAT.
    # bar 5 (-1): gain 0.125, loss 0.6875 -> 15.38 -> LONG, 0.5 + 0.5 * 14.62/30 = 0.74 -> 0.7.
    got = drive(Rsi(period=2), closes_only([10, 11, 12, 11.5, 11, 10]))
    assert compact(got) == [None, None, (S, 1.0), None, (F, 1.0), (L, 0.7)]
    assert [s.reason for s in got if s is not None] == [
        "RSI(2) above 70: overbought", "RSI(2) back to 50", "RSI(2) below 30: oversold",
    ]


def test_rsi_first_view_between_the_thresholds_is_flat() -> None:
    # period 2: changes +1, -1 -> gain 0.5, loss 0.5, RSI 50: FLAT, with its own reason.
    # bar 3 (+1): gain 0.75, loss 0.25 -> 75 -> SHORT 0.5 + 0.5 * 5/30 = 0.58 -> 0.6.
    # bar 4 (+1): gain 0.875, loss 0.125 -> 87.5 -> 0.5 + 0.5 * 17.5/30 = 0.79 -> 0.8.
    got = drive(Rsi(period=2), closes_only([10, 11, 10, 11, 12]))
    assert compact(got) == [None, None, (F, 1.0), (S, 0.6), (S, 0.8)]
    assert got[2].reason == "RSI(2) between the thresholds"


def test_momentum_side_and_confidence_follow_the_rate_of_change() -> None:
    # window 2, threshold 1%, saturation 10%: ROC 0 -> FLAT; +5% -> LONG 0.5; +3% -> 0.3;
    # 99/105 - 1 = -5.7% -> SHORT 0.6; 100/103 - 1 = -2.9% -> SHORT 0.3; 100/99 - 1 = 1.01%
    # -> LONG 0.1 (one step at least); 100.5/100 - 1 = 0.5% -> FLAT.
    closes = [100, 100, 100, 105, 103, 99, 100, 100, 100.5]
    got = drive(Momentum(window=2, threshold=0.01, saturation=0.1), closes_only(closes))
    assert compact(got) == [None, None, (F, 1.0), (L, 0.5), (L, 0.3), (S, 0.6), (S, 0.3),
                            (L, 0.1), (F, 1.0)]
    got = drive(Momentum(window=2, threshold=0.01, saturation=0.1, long_only=True),
                closes_only(closes))
    assert compact(got)[5:7] == [(F, 1.0), None]


def test_unchanged_views_return_none_and_signals_are_cached() -> None:
    agent = Momentum(window=1, saturation=0.5, confidence_step=0.5)
    got = drive(agent, closes_only([100, 101, 102, 103, 104]))
    assert compact(got) == [None, (L, 0.5), None, None, None]


# -- registry and parameters ---------------------------------------------------------------
KINDS = ["ema_crossover", "donchian_breakout", "bollinger_reversion", "rsi", "momentum"]


@pytest.mark.parametrize("kind", KINDS)
def test_registered_and_described(kind: str) -> None:
    assert kind in registered_agents()
    agent = build_agent(kind, {}, np.random.default_rng(0))
    assert callable(agent.on_bar)
    params = describe_agent(kind)
    assert params and all(p["description"] for p in params)


@pytest.mark.parametrize(("kind", "params", "message"), [
    ("ema_crossover", {"fast": 30, "slow": 20}, "fast (30) must be below slow (20)"),
    ("donchian_breakout", {"window": 5, "exit_window": 6}, "must not exceed window"),
    ("donchian_breakout", {"window": 0}, "params.window"),
    ("bollinger_reversion", {"width": 0}, "params.width"),
    ("rsi", {"oversold": 60}, "need oversold (60.0) < exit (50.0)"),
    ("rsi", {"period": 14, "speed": 1}, "params.speed: unknown parameter"),
    ("momentum", {"threshold": 0.1, "saturation": 0.05}, "must be below saturation"),
])
def test_bad_parameters_are_named(kind: str, params: dict[str, object], message: str) -> None:
    with pytest.raises(AgentError) as err:
        build_agent(kind, params, np.random.default_rng(0))
    assert message in str(err.value)
