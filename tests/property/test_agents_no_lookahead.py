"""No look-ahead, agent by agent: a signal at bar t depends only on bars up to t.

Two series agree on bars 0..t and differ arbitrarily after t (other prices, gapped opens,
a spike, more or fewer bars, or none). A fresh agent with the same parameters driven over
each (directly through a ``MarketView``, as the engine does) must return the same thing at
every bar up to t. Every built-in agent is checked, with drawn parameters.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sim.agents.base import build_agent, registered_agents
from sim.data import SymbolBars
from sim.messages import LONG, SHORT, Signal
from sim.view import MarketView
from tests._agents import drive, symbol_bars
from tests.property._support import random_ohlc

steps = st.sampled_from([0.05, 0.1, 0.25, 0.5, 1.0])


@st.composite
def fast_slow(draw: st.DrawFn) -> dict[str, Any]:
    fast = draw(st.integers(1, 10))
    return {"fast": fast, "slow": draw(st.integers(fast + 1, fast + 30)),
            "long_only": draw(st.booleans())}


@st.composite
def zscore(draw: st.DrawFn) -> dict[str, Any]:
    entry = draw(st.integers(5, 30)) / 10
    return {"window": draw(st.integers(2, 40)), "entry": entry,
            "exit": draw(st.integers(0, int(entry * 10) - 1)) / 10,
            "confidence_step": draw(steps)}


@st.composite
def donchian(draw: st.DrawFn) -> dict[str, Any]:
    window = draw(st.integers(1, 30))
    return {"window": window, "exit_window": draw(st.integers(0, window)),
            "long_only": draw(st.booleans())}


@st.composite
def rsi(draw: st.DrawFn) -> dict[str, Any]:
    return {"period": draw(st.integers(1, 20)), "oversold": draw(st.integers(10, 45)),
            "exit": draw(st.integers(46, 54)), "overbought": draw(st.integers(55, 90)),
            "confidence_step": draw(steps)}


@st.composite
def momentum(draw: st.DrawFn) -> dict[str, Any]:
    threshold = draw(st.sampled_from([0.0, 0.001, 0.005, 0.02]))
    return {"window": draw(st.integers(1, 30)), "threshold": threshold,
            "saturation": threshold + draw(st.sampled_from([0.001, 0.01, 0.05, 0.2])),
            "confidence_step": draw(steps), "long_only": draw(st.booleans())}


PARAMS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "sma_crossover": fast_slow(),
    "zscore_reversion": zscore(),
    "ema_crossover": fast_slow(),
    "donchian_breakout": donchian(),
    "bollinger_reversion": st.fixed_dictionaries({
        "window": st.integers(2, 30), "width": st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]),
        "confidence_step": steps}),
    "rsi": rsi(),
    "momentum": momentum(),
    "smc": st.fixed_dictionaries({
        "swing_length": st.integers(1, 6), "min_gap": st.sampled_from([0.0, 0.0, 0.001, 0.01]),
        "max_open_gaps": st.integers(1, 20)}),
}


def test_every_builtin_agent_is_covered() -> None:
    """A new built-in must be added to PARAMS (the helper adding ML agents adds its own)."""
    ours = {k for k, target in registered_agents().items()
            if target.startswith(("sim.agents.classic:", "sim.agents.smc:", "sim.agents.sma:",
                                  "sim.agents.zscore:"))}
    assert ours == set(PARAMS)


def ohlc(rng: np.random.Generator, n: int, price: float, sigma: float, tick: float | None,
         gapped: bool = False) -> tuple[np.ndarray, ...]:
    """Valid OHLC; with ``tick``, prices on a grid of that fraction of ``price`` (ties)."""
    o, h, lo, c, _ = random_ohlc(rng, n, price, sigma, gapped_opens=gapped)
    if tick is not None:
        grid = tick * price
        o, h, lo, c = (np.maximum(grid, np.round(x / grid) * grid) for x in (o, h, lo, c))
        h = np.maximum.reduce([h, o, c])
        lo = np.minimum.reduce([lo, o, c])
    return o, h, lo, c


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    return {
        # long enough, and mostly cut late enough, for the agents to have warmed up by t
        "n": draw(st.integers(120, 400)),
        "cut": draw(st.floats(0.0, 1.0) if draw(st.booleans()) else st.floats(0.5, 1.0)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "sigma": draw(st.sampled_from([0.002, 0.01, 0.03])),
        "tick": draw(st.sampled_from([None, None, 0.001, 0.01])),
        "after": draw(st.integers(0, 200)),
        "after_seed": draw(st.integers(0, 2**32 - 1)),
        "after_kind": draw(st.sampled_from(["walk", "gapped", "spike"])),
    }


def series(case: dict[str, Any]) -> tuple[SymbolBars, SymbolBars, int]:
    """(original, the same up to bar t and different after, t)."""
    rng = np.random.default_rng(case["seed"])
    n = case["n"]
    base = ohlc(rng, n, 100.0, case["sigma"], case["tick"])
    t = min(n - 1, int(case["cut"] * n))
    other = np.random.default_rng(case["after_seed"])
    m = case["after"]
    last_close = float(base[3][t])
    new: tuple[np.ndarray, ...]
    if m == 0:  # nothing after t at all
        new = tuple(np.empty(0) for _ in base)
    elif case["after_kind"] == "spike":  # a jump to 3x the last close, then a walk
        new = ohlc(other, m, last_close * 3.0, case["sigma"], case["tick"])
    else:
        new = ohlc(other, m, last_close * float(other.uniform(0.5, 2.0)),
                   float(other.uniform(0.001, 0.2)), case["tick"],
                   gapped=case["after_kind"] == "gapped")
    altered = [np.concatenate([col[: t + 1], nc]) for col, nc in zip(base, new, strict=True)]
    return symbol_bars(*base), symbol_bars(*altered), t


@pytest.mark.parametrize("kind", sorted(PARAMS))
@settings(max_examples=60, deadline=None)
@given(data=st.data(), case=cases())
def test_signals_up_to_t_ignore_bars_after_t(kind: str, data: st.DataObject,
                                            case: dict[str, Any]) -> None:
    params = data.draw(PARAMS[kind], label="params")
    original, altered, t = series(case)
    rng = np.random.default_rng(0)
    a = drive(build_agent(kind, params, rng), original)
    b = drive(build_agent(kind, params, rng), altered)
    assert a[: t + 1] == b[: t + 1]
    assert a == drive(build_agent(kind, params, rng), original)  # and deterministic
    event(f"signals by t: {'some' if any(s is not None for s in a[: t + 1]) else 'none'}")


class _Peeker:
    """A cheat: LONG when the *next* close is higher (through the view's private bars)."""

    def __init__(self) -> None:
        self.last: Signal | None = None

    def on_bar(self, view: MarketView) -> Signal | None:
        closes = view._bars.column("close")
        up = view.n < len(closes) and closes[view.n] > view.close
        signal = _UP if up else _DOWN
        if signal is self.last:
            return None
        self.last = signal
        return signal


_UP, _DOWN = Signal(LONG, 1.0), Signal(SHORT, 1.0)


def test_the_check_catches_an_agent_that_peeks() -> None:
    case = {"n": 200, "cut": 0.5, "seed": 1, "sigma": 0.01, "tick": None, "after": 0,
            "after_seed": 2, "after_kind": "walk"}
    original, _, t = series(case)
    # the same bars up to t, then one bar that closes the other way from the original's
    cols = [original.column(c)[: t + 2].copy() for c in ("open", "high", "low", "close")]
    o, h, lo, c = cols
    c[t + 1] = c[t] * (0.5 if c[t + 1] > c[t] else 2.0)
    h[t + 1], lo[t + 1] = max(o[t + 1], c[t + 1]), min(o[t + 1], c[t + 1])
    altered = symbol_bars(o, h, lo, c)
    assert drive(_Peeker(), original)[: t + 1] != drive(_Peeker(), altered)[: t + 1]
