"""Causal regime labels (``sim.regimes.labels``): no lookahead, prefix-stable, sensible on
series whose regime is known by construction, on GBM, and on the S&P 500 in 2008."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.data import gbm_bars, load_bars
from sim.regimes.labels import (
    LABELS,
    REGIMES,
    WARMUP,
    LabelConfig,
    label_counts,
    label_regimes,
    regime_codes,
)

DATA = Path(__file__).resolve().parents[2] / "data"
DAY = 86_400 * 10**9
SMALL = LabelConfig(trend_window=10, vol_window=8, baseline_min_blocks=2, crash_window=6)


def series(log_returns: np.ndarray, start: float = 100.0) -> tuple[np.ndarray, np.ndarray]:
    """(ts, close) of daily bars with the given log returns (the first bar at ``start``)."""
    close = start * np.exp(np.concatenate(([0.0], np.cumsum(log_returns))))
    return np.arange(len(close), dtype=np.int64) * DAY, close


def share(labels: np.ndarray, *names: str) -> float:
    return float(np.isin(labels.astype(str), names).mean())


# -- causality -------------------------------------------------------------------------
@st.composite
def label_configs(draw: st.DrawFn) -> LabelConfig:
    blocks = draw(st.none() | st.integers(1, 8))
    return LabelConfig(
        trend_window=draw(st.integers(2, 30)),
        trend_t=draw(st.floats(0.5, 4.0)),
        vol_window=draw(st.integers(2, 30)),
        high_vol_ratio=draw(st.floats(1.1, 3.0)),
        baseline_blocks=blocks,
        baseline_min_blocks=draw(st.integers(1, blocks or 6)),
        crash_window=draw(st.integers(2, 30)),
        crash_drawdown=draw(st.floats(0.01, 0.5)),
        crash_sigmas=draw(st.floats(0.0, 6.0)),
    )


@st.composite
def regime_walk(draw: st.DrawFn, n: int) -> np.ndarray:
    """Log returns in segments of random drift and volatility, with the odd crash."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    out = np.empty(n)
    i = 0
    while i < n:
        length = int(rng.integers(10, 200))
        vol = float(rng.choice([0.002, 0.01, 0.03, 0.08]))
        drift = float(rng.choice([-1.0, 0.0, 0.0, 1.0])) * vol * rng.uniform(0, 1)
        out[i : i + length] = drift + vol * rng.standard_normal(min(length, n - i))
        if rng.random() < 0.2:
            out[i : i + 5] -= 0.08
        i += length
    return out


@given(st.data(), label_configs() | st.just(LabelConfig()))
@settings(max_examples=60, deadline=None)
def test_changing_later_bars_never_changes_earlier_labels(data: st.DataObject,
                                                          config: LabelConfig) -> None:
    n = data.draw(st.integers(1, 700), label="n")
    t = data.draw(st.integers(0, n - 1), label="t")
    returns = data.draw(regime_walk(n), label="returns")
    ts, close = series(returns[: n - 1])
    other = close.copy()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    # Anything after t: a different walk, a crash, a spike, a constant.
    kind = data.draw(st.sampled_from(["walk", "crash", "spike", "flat"]), label="kind")
    tail = n - t - 1
    if tail:
        if kind == "walk":
            other[t + 1 :] = close[t] * np.exp(np.cumsum(0.05 * rng.standard_normal(tail)))
        elif kind == "crash":
            other[t + 1 :] = close[t] * np.geomspace(0.9, 0.01, tail)
        elif kind == "spike":
            other[t + 1 :] = close[t] * 1000.0
        else:
            other[t + 1 :] = 1.0
    before = label_regimes(ts, close, config)
    after = label_regimes(ts, other, config)
    assert before[: t + 1].tolist() == after[: t + 1].tolist()


def incremental(ts: np.ndarray, close: np.ndarray, config: LabelConfig,
                at: range | list[int]) -> dict[int, str]:
    """The label of bar ``k`` as a live process would see it: computed from bars 0..k."""
    return {k: str(label_regimes(ts[: k + 1], close[: k + 1], config)[k]) for k in at}


def test_bar_by_bar_recomputation_equals_the_full_computation() -> None:
    rng = np.random.default_rng(11)
    r = 0.01 * rng.standard_normal(899)
    r[300:400] *= 3.0  # a volatility spell
    r[500:510] -= 0.06  # a crash
    r[600:800] += 0.008  # a trend
    ts, close = series(r)
    full = label_regimes(ts, close, SMALL)
    assert len(set(full.tolist())) == len(LABELS)  # every branch of the rule is exercised
    step = incremental(ts, close, SMALL, range(len(close)))
    assert [step[k] for k in range(len(close))] == full.tolist()


@pytest.mark.parametrize("name", ["sp500_daily_1999-2018.csv", "binance_ETH_BTC_5m_2018-01.csv"])
def test_prefixes_of_real_data_equal_the_full_computation(name: str) -> None:
    bars = load_bars(DATA / name, "X")
    full = label_regimes(bars.ts, bars.close)
    at = sorted({*range(0, len(bars), 97), *range(190, 200), len(bars) - 1})
    step = incremental(bars.ts, bars.close, LabelConfig(), at)
    assert [step[k] for k in at] == [full[k] for k in at]


# -- sensible labels -------------------------------------------------------------------
def test_strong_up_and_down_trends_are_trends() -> None:
    rng = np.random.default_rng(1)
    noise = 0.01 * rng.standard_normal(3000)
    up = label_regimes(*series(0.005 + noise))
    ts, falling = series(-0.005 + noise)
    down = label_regimes(ts, falling)
    assert share(up, "trend_up") > 0.8 and share(up, "trend_down", "crash") == 0
    assert share(down, "trend_down") > 0.8 and share(down, "trend_up") == 0
    # A steady fall is a trend, not a crash, even though it loses nearly all its value.
    assert falling[-1] < 1e-3 * falling[0] and share(down, "crash") < 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gbm_with_strong_drift_is_labelled_by_its_drift(seed: int) -> None:
    kw = {"start_ns": 0, "interval_ns": DAY, "volatility": 0.3}
    up = gbm_bars("UP", 4000, np.random.default_rng(seed), drift=3.0, **kw)
    down = gbm_bars("DN", 4000, np.random.default_rng(seed), drift=-3.0, **kw)
    flat = gbm_bars("FL", 4000, np.random.default_rng(seed), drift=0.0, **kw)
    assert share(label_regimes(up.ts, up.close), "trend_up") > 0.8
    assert share(label_regimes(down.ts, down.close), "trend_down") > 0.75
    flat_labels = label_regimes(flat.ts, flat.close)
    assert share(flat_labels, "ranging") > 0.8
    assert share(flat_labels, "high_volatility", "crash") < 0.01


def test_flat_noise_is_ranging() -> None:
    labels = label_regimes(*series(0.01 * np.random.default_rng(2).standard_normal(5000)))
    assert share(labels, "ranging") > 0.85
    assert share(labels, "high_volatility", "crash") < 0.01


def test_a_volatility_spell_is_high_volatility_and_ends_with_it() -> None:
    r = 0.01 * np.random.default_rng(3).standard_normal(6000)
    r[3000:4000] *= 2.5
    labels = label_regimes(*series(r))
    spell, calm = labels[3049:4001], labels[4100:]  # the window is inside / past the spell
    assert share(spell, "high_volatility", "crash") > 0.95
    assert share(spell, "high_volatility") > 0.85
    assert share(calm, "high_volatility", "crash") == 0
    assert share(labels[200:3000], "high_volatility", "crash") == 0


def test_a_sudden_fall_is_a_crash_and_calm_is_not() -> None:
    r = 0.01 * np.random.default_rng(4).standard_normal(3000)
    r[2000:2010] -= 0.04  # about -33% in ten bars
    labels = label_regimes(*series(r))
    crash_bars = np.flatnonzero(labels == "crash")
    assert crash_bars.size >= 10
    assert crash_bars.min() >= 2000 and crash_bars.max() < 2000 + 24 + 10
    assert share(labels[200:2000], "crash") == 0


def test_sp500_autumn_2008_is_crash_and_high_volatility() -> None:
    bars = load_bars(DATA / "sp500_daily_1999-2018.csv", "SPX")
    labels = pd.Series(label_regimes(bars.ts, bars.close),
                       index=pd.to_datetime(bars.ts, utc=True))
    autumn = labels["2008-09-01":"2008-12-31"]
    assert share(autumn.to_numpy(), "crash", "high_volatility") > 0.8
    assert (labels["2008-10-01":"2008-10-31"] == "crash").sum() >= 10
    calm = labels["2004-01-01":"2006-12-31"].to_numpy()  # the quiet mid-2000s
    assert share(calm, "crash", "high_volatility") == 0
    assert share(calm, "ranging", "trend_up") == 1.0


def test_recorded_crypto_data_is_labelled_without_crashes() -> None:
    bars = load_bars(DATA / "binance_ETH_BTC_5m_2018-01.csv", "ETHBTC")
    counts = label_counts(label_regimes(bars.ts, bars.close))
    assert counts["crash"] == 0 and counts["ranging"] > 0.8 * len(bars)
    assert counts["high_volatility"] > 0  # the mid-January sell-off


# -- warm-up and edges -----------------------------------------------------------------
@pytest.mark.parametrize("config", [LabelConfig(), SMALL,
                                    LabelConfig(trend_window=300, crash_window=500)])
def test_warmup_covers_exactly_the_bars_before_every_measure_is_defined(
        config: LabelConfig) -> None:
    ts, close = series(0.01 * np.random.default_rng(5).standard_normal(1999))
    labels = label_regimes(ts, close, config)
    w = config.warmup_bars
    assert w == max(config.trend_window, config.vol_window * config.baseline_min_blocks,
                    config.crash_window - 1)
    assert (labels[:w] == WARMUP).all()
    assert WARMUP not in labels[w:].tolist()


@pytest.mark.parametrize("n", [0, 1, 2, 191, 192, 193])
def test_short_series(n: int) -> None:
    ts, close = series(0.01 * np.random.default_rng(6).standard_normal(max(n - 1, 0)))
    ts, close = ts[:n], close[:n]
    labels = label_regimes(ts, close)
    assert labels.dtype == object and len(labels) == n
    assert labels.tolist() == [WARMUP] * min(n, 192) + labels[192:].tolist()
    assert set(labels[192:].tolist()) <= set(REGIMES)


def test_degenerate_prices() -> None:
    ts = np.arange(400, dtype=np.int64)
    flat = label_regimes(ts, np.full(400, 5.0))
    assert set(flat[192:].tolist()) == {"ranging"}  # no spread, no move: nothing happens
    growth = label_regimes(ts, 100.0 * 1.01 ** np.arange(400))
    assert set(growth[192:].tolist()) == {"trend_up"}  # no spread, steady move: a trend


def test_output_is_an_object_array_of_label_names() -> None:
    ts, close = series(0.01 * np.random.default_rng(7).standard_normal(500))
    labels = label_regimes(ts, close)
    codes = regime_codes(ts, close)
    assert labels.dtype == object and codes.dtype == np.int8
    assert labels.tolist() == [LABELS[c] for c in codes]
    counts = label_counts(labels)
    assert list(counts) == list(LABELS) and sum(counts.values()) == len(ts)


def test_rolling_baseline_adapts_to_a_lasting_change_of_volatility() -> None:
    r = 0.01 * np.random.default_rng(8).standard_normal(8000)
    r[4000:] *= 2.5  # volatility rises for good
    expanding = label_regimes(*series(r))
    rolling = label_regimes(*series(r), LabelConfig(baseline_blocks=10))
    late = slice(6000, None)
    assert share(expanding[late], "high_volatility", "crash") > 0.9
    assert share(rolling[late], "high_volatility", "crash") < 0.05


@pytest.mark.parametrize(("ts", "close", "message"), [
    (np.arange(3), np.ones(4), "ts has 3 values, close has 4"),
    (np.arange(3), np.array([1.0, 0.0, 1.0]), "close[1] = 0.0 is not a positive finite"),
    (np.arange(3), np.array([1.0, np.nan, 1.0]), "close[1] = nan"),
    (np.array([0, 2, 1]), np.ones(3), "strictly increasing"),
    (np.arange(4).reshape(2, 2), np.ones((2, 2)), "one-dimensional"),
])
def test_bad_input_is_one_line(ts: np.ndarray, close: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match="label_regimes: ") as info:
        label_regimes(ts, close)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="extra"):
        LabelConfig(trend_windw=10)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="baseline_min_blocks"):
        LabelConfig(baseline_blocks=2, baseline_min_blocks=3)
    with pytest.raises(ValueError):
        LabelConfig(trend_window=1)
    with pytest.raises(ValueError):
        LabelConfig(crash_drawdown=1.0)
