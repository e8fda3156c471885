"""The indicator values built-in agents decide on, as series over a run's bars: the
``indicators`` hook of each built-in agent class, used by ``quorum report`` after the run.

Nothing here runs while a run runs (no per-bar cost): the report recomputes the series
from the stored bars and the agent's resolved params, with the same online indicator
classes (``sim.indicators``) fed the same prices in the same order as the agent, so the
value shown at a signal is the value the agent compared. Each function takes the bars
(``open``, ``high``, ``low``, ``close``, ``volume`` arrays of one symbol, in time order)
and the agent's params, and returns ``{name: array}`` aligned with the bars, NaN where the
agent abstains (warming up). A user agent may expose the same hook:
``indicators(bars, **params) -> dict[str, numpy.ndarray]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from sim.indicators import (
    EMA,
    FastSlowMeans,
    RateOfChange,
    RollingMax,
    RollingMeanStd,
    RollingMin,
    RollingZScore,
    WilderRSI,
)

Bars = Mapping[str, np.ndarray]
NAN = math.nan


def _empty(n: int, *names: str) -> dict[str, np.ndarray]:
    return {name: np.full(n, NAN) for name in names}


def sma_crossover(bars: Bars, fast: int = 10, slow: int = 50, **_: Any) -> dict[str, np.ndarray]:
    """``sma_fast``, ``sma_slow``: the trailing means of the closes the crossover compares."""
    close = bars["close"]
    out = _empty(len(close), "sma_fast", "sma_slow")
    means = FastSlowMeans(fast, slow)
    for i, x in enumerate(close.tolist()):
        f, s = means.update(x)
        if means.ready:
            out["sma_fast"][i], out["sma_slow"][i] = f, s
    return out


def ema_crossover(bars: Bars, fast: int = 12, slow: int = 26, **_: Any) -> dict[str, np.ndarray]:
    """``ema_fast``, ``ema_slow``: both averages, from the bar the slow one is ready."""
    close = bars["close"]
    out = _empty(len(close), "ema_fast", "ema_slow")
    f_ema, s_ema = EMA(fast), EMA(slow)
    for i, x in enumerate(close.tolist()):
        f, s = f_ema.update(x), s_ema.update(x)
        if s_ema.ready:
            out["ema_fast"][i], out["ema_slow"][i] = f, s
    return out


def donchian_breakout(bars: Bars, window: int = 20, exit_window: int = 10,
                      **_: Any) -> dict[str, np.ndarray]:
    """``upper``, ``lower`` (the entry channel of the previous ``window`` bars' highs and
    lows, which the close is compared with) and, with an exit channel, ``exit_upper``,
    ``exit_lower``."""
    high, low, close = bars["high"].tolist(), bars["low"].tolist(), bars["close"]
    names = ("upper", "lower", *(("exit_upper", "exit_lower") if exit_window else ()))
    out = _empty(len(close), *names)
    hi, lo = RollingMax(window), RollingMin(window)
    ehi = RollingMax(exit_window) if exit_window else None
    elo = RollingMin(exit_window) if exit_window else None
    count = 0
    for i in range(len(close)):
        if count >= window:  # the channels hold the previous bars only
            out["upper"][i], out["lower"][i] = hi.value, lo.value
            if ehi is not None and elo is not None:
                out["exit_upper"][i], out["exit_lower"][i] = ehi.value, elo.value
        else:
            count += 1
        hi.update(high[i])
        lo.update(low[i])
        if ehi is not None and elo is not None:
            ehi.update(high[i])
            elo.update(low[i])
    return out


def bollinger_reversion(bars: Bars, window: int = 20, width: float = 2.0,
                        **_: Any) -> dict[str, np.ndarray]:
    """``mid``, ``upper``, ``lower``: the bands over the last ``window`` closes."""
    close = bars["close"]
    out = _empty(len(close), "mid", "upper", "lower")
    bands = RollingMeanStd(window)
    for i, x in enumerate(close.tolist()):
        bands.update(x)
        if bands.ready:
            mid, band = bands.mean, width * bands.std
            out["mid"][i], out["upper"][i], out["lower"][i] = mid, mid + band, mid - band
    return out


def _series(bars: Bars, indicator: Any, name: str) -> dict[str, np.ndarray]:
    """One online indicator of the closes, as the column ``name`` (NaN until ready)."""
    close = bars["close"]
    out = _empty(len(close), name)
    for i, x in enumerate(close.tolist()):
        value = indicator.update(x)
        if indicator.ready:
            out[name][i] = value
    return out


def rsi(bars: Bars, period: int = 14, **_: Any) -> dict[str, np.ndarray]:
    """``rsi``: Wilder's RSI of the closes."""
    return _series(bars, WilderRSI(period), "rsi")


def momentum(bars: Bars, window: int = 20, **_: Any) -> dict[str, np.ndarray]:
    """``roc``: the rate of change over ``window`` bars."""
    return _series(bars, RateOfChange(window), "roc")


def zscore_reversion(bars: Bars, window: int = 50, **_: Any) -> dict[str, np.ndarray]:
    """``z``: the close's z-score over the last ``window`` closes."""
    return _series(bars, RollingZScore(window), "z")
