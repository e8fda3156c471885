"""Agents' batch forms (``sim.agents.batch``) against their own ``on_bar``, bar for bar.

The event-skipping engine path needs identical rows, so a batch form must return exactly
the signals ``on_bar`` returns, at exactly the same bars, warm-up included: the same
Signal objects, not merely equal ones. Drawn parameters and price paths range over scales
(1e-8 .. 1e6), lengths across several indicator window wraps (where the running sums are
restarted from ``fsum``), and paths with runs of equal prices (flat windows); the bundled
regimes are replayed too. Causality: the batch form of the first k bars is the first
events of the whole.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.agents.base import build_agent
from sim.agents.batch import SignalChanges, exact_row_sums, has_batch_form, rolling_extreme
from sim.agents.batch_forms import fast_slow_means, zscores
from sim.data import SymbolBars
from sim.indicators import FastSlowMeans, RollingMax, RollingMin, RollingZScore
from sim.regimes.generators import REGIMES, generate
from tests._agents import drive, symbol_bars

STEPS = st.sampled_from([1.0, 0.5, 0.3, 0.25, 0.1, 0.05])


@st.composite
def sma_params(draw: st.DrawFn) -> dict[str, Any]:
    fast = draw(st.integers(1, 30))
    return {"fast": fast, "slow": draw(st.integers(fast + 1, 80)),
            "long_only": draw(st.booleans())}


@st.composite
def zscore_params(draw: st.DrawFn) -> dict[str, Any]:
    entry = draw(st.floats(0.05, 4.0))
    return {"window": draw(st.integers(2, 60)), "entry": entry,
            "exit": draw(st.floats(0.0, entry * 0.99)), "confidence_step": draw(STEPS)}


@st.composite
def rsi_params(draw: st.DrawFn) -> dict[str, Any]:
    a, b, c = sorted(draw(st.lists(st.floats(1.0, 99.0), min_size=3, max_size=3,
                                   unique=True)))
    return {"period": draw(st.integers(1, 30)), "oversold": a, "exit": b, "overbought": c,
            "confidence_step": draw(STEPS)}


@st.composite
def momentum_params(draw: st.DrawFn) -> dict[str, Any]:
    threshold = draw(st.floats(0.0, 0.05))
    return {"window": draw(st.integers(1, 40)), "threshold": threshold,
            "saturation": threshold + draw(st.floats(1e-4, 0.1)),
            "confidence_step": draw(STEPS), "long_only": draw(st.booleans())}


@st.composite
def donchian_params(draw: st.DrawFn) -> dict[str, Any]:
    window = draw(st.integers(1, 40))
    return {"window": window, "exit_window": draw(st.integers(0, window)),
            "long_only": draw(st.booleans())}


AGENTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "sma_crossover": sma_params(),
    "ema_crossover": sma_params(),
    "zscore_reversion": zscore_params(),
    "bollinger_reversion": st.fixed_dictionaries({
        "window": st.integers(2, 60), "width": st.floats(0.05, 4.0),
        "confidence_step": STEPS}),
    "rsi": rsi_params(),
    "momentum": momentum_params(),
    "donchian_breakout": donchian_params(),
}


@st.composite
def price_paths(draw: st.DrawFn) -> SymbolBars:
    """Random-walk bars at a drawn scale and volatility; some rounded to a coarse tick so
    that equal closes (flat windows, zero changes) occur."""
    n = draw(st.integers(0, 400))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = 10.0 ** draw(st.floats(-8.0, 6.0))
    vol = draw(st.sampled_from([1e-4, 3e-3, 0.03, 0.2]))
    close = scale * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    if draw(st.booleans()):
        tick = scale * draw(st.sampled_from([1e-3, 1e-2, 0.1]))
        close = np.maximum(np.round(close / tick), 1.0) * tick
    spread = np.abs(rng.normal(0.0, vol, n)) * close
    high = close + spread
    low = np.maximum(close - spread * rng.uniform(0, 1, n), close * 0.5)
    open_ = np.clip(np.roll(close, 1), low, high) if n else close
    return symbol_bars(open_, high, low, close)


def expected(kind: str, params: dict[str, Any], bars: SymbolBars) -> tuple[list[int], list]:
    agent = build_agent(kind, params, np.random.default_rng(0))
    got = drive(agent, bars)
    at = [i for i, s in enumerate(got) if s is not None]
    return at, [got[i] for i in at]


def assert_same(kind: str, params: dict[str, Any], bars: SymbolBars) -> SignalChanges:
    agent = build_agent(kind, params, np.random.default_rng(0))
    batch = agent.batch_signals(bars)
    # on the same instance, after the batch form: it must not have moved the agent's state
    replayed = drive(agent, bars)
    at = [i for i, s in enumerate(replayed) if s is not None]
    assert batch.index.tolist() == at, (kind, params)
    assert all(a is b for a, b in zip(batch.signals, (replayed[i] for i in at), strict=True))
    return batch


def truncated(bars: SymbolBars, k: int) -> SymbolBars:
    return symbol_bars(bars.open[:k], bars.high[:k], bars.low[:k], bars.close[:k])


@pytest.mark.parametrize("kind", sorted(AGENTS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batch_form_equals_on_bar_replay(kind: str, data: st.DataObject) -> None:
    assert_same(kind, data.draw(AGENTS[kind]), data.draw(price_paths()))


@pytest.mark.parametrize("kind", sorted(AGENTS))
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_batch_form_is_causal(kind: str, data: st.DataObject) -> None:
    params = data.draw(AGENTS[kind])
    bars = data.draw(price_paths())
    agent = build_agent(kind, params, np.random.default_rng(0))
    whole = agent.batch_signals(bars)
    k = data.draw(st.integers(0, len(bars)))
    head = agent.batch_signals(truncated(bars, k))
    part = whole.upto(k)
    assert head.index.tolist() == part.index.tolist()
    assert all(a is b for a, b in zip(head.signals, part.signals, strict=True))


@pytest.mark.parametrize("regime", REGIMES)
@pytest.mark.parametrize("kind", sorted(AGENTS))
def test_batch_form_equals_on_bar_on_bundled_regimes(kind: str, regime: str) -> None:
    (bars,) = generate(regime, 5_000, np.random.default_rng(7))
    batch = assert_same(kind, {}, bars)
    assert len(batch) > 0


def test_long_run_across_many_window_wraps() -> None:
    """20,000 bars at a 1e6 price level: hundreds of fsum restarts of each running sum."""
    (bars,) = generate("ranging", 20_000, np.random.default_rng(3), price=1e6)
    for kind, params in [("sma_crossover", {"fast": 7, "slow": 31}),
                         ("zscore_reversion", {"window": 37, "entry": 1.0, "exit": 0.2}),
                         ("bollinger_reversion", {"window": 23, "width": 1.0})]:
        assert len(assert_same(kind, params, bars)) > 20


def test_built_ins_declare_batch_forms_and_the_rest_do_not() -> None:
    rng = np.random.default_rng(0)
    for kind in AGENTS:
        assert has_batch_form(build_agent(kind, {}, rng))
    assert not has_batch_form(build_agent("smc", {}, rng))


def bits(values: Any) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


@settings(max_examples=80, deadline=None)
@given(bars=price_paths(), fast=st.integers(1, 30), extra=st.integers(1, 50))
def test_vectorised_indicators_are_bit_identical_to_the_incremental_ones(
    bars: SymbolBars, fast: int, extra: int,
) -> None:
    """The identity does not rest on signals happening to agree: the batch indicators equal
    the incremental classes' values bit for bit (the same rounding at every step)."""
    slow = fast + extra
    x = np.asarray(bars.close, dtype=np.float64)
    xs = x.tolist()
    means = FastSlowMeans(fast, slow)
    incremental = [means.update(v) for v in xs][slow - 1 :]
    fast_mean, slow_mean = fast_slow_means(x, fast, slow)
    assert bits(fast_mean) == bits([f for f, _ in incremental])
    assert bits(slow_mean) == bits([s for _, s in incremental])
    z = RollingZScore(slow)
    assert bits(zscores(x, slow)) == bits([z.update(v) for v in xs][slow - 1 :])
    for cls, maximum in ((RollingMax, True), (RollingMin, False)):
        ind = cls(fast)
        assert bits(rolling_extreme(x, fast, maximum)[fast - 1 :]) == bits(
            [ind.update(v) for v in xs][fast - 1 :])


def _fsums_equal(rows: np.ndarray) -> None:
    got = exact_row_sums(rows)
    want = np.array([math.fsum(r) for r in rows.tolist()])
    assert got.tobytes() == want.tobytes()  # bit for bit, the sign of a zero included


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(width=st.integers(1, 300), scale=st.integers(-320, 300), spread=st.floats(0.0, 1.0),
       seed=st.integers(0, 2**32 - 1))
def test_exact_row_sums_are_fsum_bit_for_bit(width: int, scale: int, spread: float,
                                            seed: int) -> None:
    """The bulk wrap sums of the running sums are ``math.fsum``'s, for rows the integer
    route takes (narrow, non-zero) and for those it leaves to fsum (zeros, wide spans,
    subnormals), with rounding ties (values one ulp apart)."""
    rng = np.random.default_rng(seed)
    rows = 10.0 ** scale * np.exp(rng.normal(0.0, spread, (40, width)))
    rows *= rng.choice([-1.0, 1.0], size=rows.shape) if spread > 0.5 else 1.0
    rows[::7, 0] = 0.0
    rows[1::5] = np.nextafter(rows[1::5], np.inf)
    rows[2::5, -1] = -rows[2::5, 0]
    _fsums_equal(rows)
    _fsums_equal(np.where(rng.random(rows.shape) < 0.5, 1.0, 1.0 + 2.0 ** -52))


def test_exact_row_sums_in_slices_are_fsum_bit_for_bit() -> None:
    """A long run's wraps (more values than one slice): the same sums, in order."""
    rng = np.random.default_rng(7)
    rows = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, (3_000, 50)), axis=1))
    rows[::11, 3] = 0.0  # some rows take fsum itself, in every slice
    _fsums_equal(rows)
