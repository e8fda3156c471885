"""The built-in agents' batch forms (``sim.agents.batch``), one function per agent.

Each agent's ``batch_signals`` method calls its function here, which reads the agent's
parameters and its prebuilt signals (the very objects ``on_bar`` returns) and never its
running state. Each function mirrors its ``on_bar``: the same indicator values (see
``sim.agents.batch`` for why they are identical), the same comparisons in the same order,
the same warm-up. Decision rules with memory (hysteresis, exits that depend on the held
side) run as a loop over the bars where the view can change, on precomputed arrays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sim.agents.batch import (
    SignalChanges,
    changes,
    column,
    cycled_sums,
    from_events,
    lagged,
    rolling_extreme,
    rounded_steps,
)
from sim.indicators import EMA, RollingMeanStd, WilderRSI
from sim.messages import FLAT, LONG, SHORT, Side, Signal
from sim.view import BarSource

if TYPE_CHECKING:
    from sim.agents.classic import (
        BollingerReversion,
        DonchianBreakout,
        EmaCrossover,
        Momentum,
        Rsi,
    )
    from sim.agents.sma import SmaCrossover
    from sim.agents.zscore import ZScoreReversion

_EMPTY = SignalChanges(np.empty(0, dtype=np.int64), ())


def _first_none(codes_len: int) -> np.ndarray:
    return np.full(codes_len, -1, dtype=np.int64)


def fast_slow_means(x: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """What ``FastSlowMeans.update`` returns from bar ``slow - 1`` on (full windows), bit for
    bit: two running sums over one ring of ``slow`` slots, restarted from ``fsum`` at each
    wrap (the fast one from the ring's last ``fast`` slots)."""
    slow_sum = cycled_sums(x - lagged(x, slow), x, slow)
    fast_sum = cycled_sums(x - lagged(x, fast), x, slow, block=fast)
    return fast_sum[slow - 1 :] / fast, slow_sum[slow - 1 :] / slow


def sma_crossover(agent: SmaCrossover, bars: BarSource, table: dict[Side, Signal]
                  ) -> SignalChanges:
    x = column(bars, "close")
    fast, slow = agent._means._fast, agent._slow
    n = len(x)
    if n < slow:
        return _EMPTY
    fast_mean, slow_mean = fast_slow_means(x, fast, slow)
    codes = _first_none(n)
    codes[slow - 1 :] = np.where(fast_mean > slow_mean, 0, 1)
    return changes(codes, slow - 1, (table[LONG], table[agent._down]))


def zscores(x: np.ndarray, w: int) -> np.ndarray:
    """What ``RollingZScore.update`` returns from bar ``w - 1`` on, bit for bit: running
    sum and sum of squares, restarted from ``fsum`` at each wrap."""
    old = lagged(x, w)
    total = cycled_sums(x - old, x, w)[w - 1 :]
    total_sq = cycled_sums(x * x - old * old, x, w, square=True)[w - 1 :]
    xs = x[w - 1 :]
    mean = total / w
    var = total_sq / w - mean * mean
    flat_window = var <= 1e-24 * mean * mean
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(flat_window, 0.0,
                        (xs - mean) / np.sqrt(np.where(flat_window, 1.0, var)))


def zscore_reversion(agent: ZScoreReversion, bars: BarSource) -> SignalChanges:
    """The side with hysteresis: carried forward where undecided."""
    x = column(bars, "close")
    w = agent._z.length
    n = len(x)
    if n < w:
        return _EMPTY
    z = zscores(x, w)
    entry, exit_ = agent._entry, agent._exit
    side = np.full(len(z), -1, dtype=np.int64)  # 0 FLAT, 1 LONG, 2 SHORT; -1 carried
    side[(z >= -exit_) & (z <= exit_)] = 0
    side[z <= -entry] = 1
    side[z >= entry] = 2
    if side[0] < 0:
        side[0] = 0  # no view held yet: FLAT
    where = np.where(side >= 0, np.arange(len(side)), 0)
    np.maximum.accumulate(where, out=where)
    side = side[where]
    steps = agent._steps
    k = rounded_steps(np.abs(z) * agent._scale, steps)
    codes = np.where(side == 0, 0, np.where(side == 1, k, steps + k))
    cache = agent._cache
    table = [agent._flat, *(cache[LONG, j] for j in range(1, steps + 1)),
             *(cache[SHORT, j] for j in range(1, steps + 1))]
    full = _first_none(n)
    full[w - 1 :] = codes
    return changes(full, w - 1, table)


def ema_crossover(agent: EmaCrossover, bars: BarSource) -> SignalChanges:
    """``EMA`` is a sequential recurrence: fresh ``EMA`` objects run over the column."""
    xs = column(bars, "close").tolist()
    slow_len = agent._slow.length
    n = len(xs)
    if n < slow_len:
        return _EMPTY
    fast = np.array(list(map(EMA(agent._fast.length).update, xs)))
    slow = np.array(list(map(EMA(slow_len).update, xs)))
    codes = _first_none(n)
    codes[slow_len - 1 :] = np.where(fast[slow_len - 1 :] > slow[slow_len - 1 :], 0, 1)
    return changes(codes, slow_len - 1, (agent._signals[LONG], agent._signals[agent._down]))


def momentum(agent: Momentum, bars: BarSource) -> SignalChanges:
    """``RateOfChange``: ``x_t / x_{t-window} - 1``, elementwise."""
    x = column(bars, "close")
    w = agent._roc.length
    n = len(x)
    if n <= w:
        return _EMPTY
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        roc = x[w:] / x[:-w] - 1.0
        threshold, steps, scale = agent._threshold, agent._steps, agent._scale
        up = roc > threshold
        down = roc < -threshold
        k_up = rounded_steps(np.where(up, roc * scale, 1.0), steps)
        k_down = rounded_steps(np.where(down, -roc * scale, 1.0), steps)
    long_only = agent._down[1] is agent._down[steps]
    codes = np.where(up, k_up, np.where(down, steps + (1 if long_only else k_down), 0))
    table = [agent._flat, *agent._long[1:], *agent._down[1:]]
    full = _first_none(n)
    full[w:] = codes
    return changes(full, w, table)


def donchian_breakout(agent: DonchianBreakout, bars: BarSource) -> SignalChanges:
    """Channels of the previous bars: rolling extremes ending at t - 1."""
    high, low, close = column(bars, "high"), column(bars, "low"), column(bars, "close")
    w = agent._window
    n = len(close)
    if n <= w:
        return _EMPTY
    c = close[w:]
    up = c > rolling_extreme(high, w, True)[w - 1 : -1]
    down = c < rolling_extreme(low, w, False)[w - 1 : -1]
    candidate = up | down
    candidate[0] = True
    exits = agent._exit_hi is not None
    if exits:
        e = agent._exit_hi.length  # type: ignore[union-attr]
        exit_long = c < rolling_extreme(low, e, False)[w - 1 : -1]
        exit_short = c > rolling_extreme(high, e, True)[w - 1 : -1]
        candidate |= exit_long | exit_short
    long_, short, flat, x_long, x_short = (agent._long, agent._short, agent._flat,
                                           agent._x_long, agent._x_short)
    events: list[tuple[int, Signal]] = []
    last: Signal | None = None
    up_l, down_l = up.tolist(), down.tolist()
    xl_l = exit_long.tolist() if exits else None
    xs_l = exit_short.tolist() if exits else None
    for t in np.flatnonzero(candidate).tolist():
        if up_l[t]:
            signal = long_
        elif down_l[t]:
            signal = short
        elif last is None:
            signal = flat
        elif xl_l is not None and last is long_ and xl_l[t]:
            signal = x_long
        elif xs_l is not None and last is short and xs_l[t]:
            signal = x_short
        else:
            continue
        if signal is not last:
            last = signal
            events.append((t + w, signal))
    return from_events(events)


def bollinger_reversion(agent: BollingerReversion, bars: BarSource) -> SignalChanges:
    """``RollingMeanStd`` (Welford, sequential): a fresh one runs over the column."""
    close = column(bars, "close")
    window = agent._bands.length
    n = len(close)
    if n < window:
        return _EMPTY
    bands = RollingMeanStd(window)
    update = bands.update
    mids, sds = [], []
    for x in close.tolist():
        update(x)
        mids.append(bands.mean)
        sds.append(bands.std)
    mid = np.array(mids[window - 1 :])
    band = agent._width * np.array(sds[window - 1 :])
    dev = close[window - 1 :] - mid
    outside = (band > 0.0) & ((dev > band) | (-dev > band))
    with np.errstate(invalid="ignore", divide="ignore"):
        k = rounded_steps(np.where(outside, np.abs(dev) / band * agent._scale, 1.0),
                          agent._steps).tolist()
    return _held_until_exit(outside.tolist(), (dev > 0.0).tolist(),
                            (dev > 0.0).tolist(), (dev < 0.0).tolist(), k, k,
                            agent._short, agent._long, agent._inside, agent._flat,
                            window - 1)


def rsi(agent: Rsi, bars: BarSource) -> SignalChanges:
    """``WilderRSI`` (sequential smoothing): a fresh one runs over the column."""
    close = column(bars, "close").tolist()
    period = agent._rsi.length
    n = len(close)
    if n <= period:
        return _EMPTY
    values = np.array(list(map(WilderRSI(period).update, close))[period:])
    steps = agent._steps
    oversold, overbought = agent._oversold, agent._overbought
    low = values < oversold
    high = values > overbought
    k_long = rounded_steps(np.where(low, 0.5 * steps + (oversold - values)
                                    * agent._long_scale, 1.0), steps).tolist()
    k_short = rounded_steps(np.where(high, 0.5 * steps + (values - overbought)
                                     * agent._short_scale, 1.0), steps).tolist()
    exit_ = agent._exit
    return _held_until_exit((low | high).tolist(), high.tolist(),
                            (values > exit_).tolist(), (values < exit_).tolist(),
                            k_short, k_long, agent._short, agent._long, agent._inside,
                            agent._flat, period)


def _held_until_exit(
    beyond: list[bool], is_short: list[bool],
    keeps_short: list[bool], keeps_long: list[bool], k_short: list[int], k_long: list[int],
    short: list[Signal], long_: list[Signal], inside: Signal, flat: Signal, start: int,
) -> SignalChanges:
    """The rule Bollinger and RSI share: beyond a threshold, the ladder signal of that side
    (``is_short`` picks which); back inside, the first view is ``inside``, a held LONG
    stays while ``keeps_long`` (a SHORT while ``keeps_short``) and then turns ``flat``."""
    events: list[tuple[int, Signal]] = []
    last: Signal | None = None
    held = None
    for t, out in enumerate(beyond):
        if out:
            signal = short[k_short[t]] if is_short[t] else long_[k_long[t]]
        elif last is None:
            signal = inside
        elif held is FLAT or (held is LONG and keeps_long[t]) or (
            held is SHORT and keeps_short[t]
        ):
            continue
        else:
            signal = flat
        if signal is not last:
            last = signal
            held = signal.side
            events.append((t + start, signal))
    return from_events(events)
