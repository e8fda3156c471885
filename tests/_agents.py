"""Drive an agent directly, bar by bar, as the engine does (no pipeline, no store)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim.agents.base import Agent
from sim.data import SymbolBars
from sim.messages import Signal
from sim.view import MarketView

MINUTE = 60 * 10**9


def symbol_bars(
    open_: Sequence[float] | np.ndarray,
    high: Sequence[float] | np.ndarray,
    low: Sequence[float] | np.ndarray,
    close: Sequence[float] | np.ndarray,
    symbol: str = "T",
) -> SymbolBars:
    """Bars from columns, unvalidated (tests build them to be valid), one a minute."""
    cols = [np.asarray(c, dtype=np.float64) for c in (open_, high, low, close)]
    n = len(cols[0])
    ts = np.arange(n, dtype=np.int64) * MINUTE
    return SymbolBars(symbol, "test", ts, *cols, np.ones(n))


def bars_from_rows(rows: Sequence[tuple[float, float, float, float]]) -> SymbolBars:
    """Bars from ``(open, high, low, close)`` rows."""
    o, h, lo, c = zip(*rows, strict=True) if rows else ((), (), (), ())
    return symbol_bars(o, h, lo, c)


def closes_only(closes: Sequence[float]) -> SymbolBars:
    """Bars whose open, high and low all equal the close (for close-only indicators)."""
    return symbol_bars(closes, closes, closes, closes)


def bar_rows(bars: SymbolBars, upto: int | None = None) -> list[tuple[float, ...]]:
    """(ts, open, high, low, close, volume) per bar, as the engine hands them over."""
    n = len(bars) if upto is None else upto
    cols = [bars.column(c)[:n].tolist() for c in ("ts", "open", "high", "low", "close", "volume")]
    return list(zip(*cols, strict=True))


def replay(agent: Agent, view: MarketView, rows: Sequence[tuple[float, ...]]
           ) -> list[Signal | None]:
    """Advance ``view`` bar by bar exactly as ``Engine.on_bar`` does and collect what
    ``agent.on_bar`` returned at each bar. The one such loop in the tests."""
    on_bar = agent.on_bar
    out: list[Signal | None] = []
    append = out.append
    for n, (ts, o, h, lo, c, v) in enumerate(rows, 1):
        view.n = n
        view.ts = ts
        view.open = o
        view.high = h
        view.low = lo
        view.close = c
        view.volume = v
        append(on_bar(view))
    return out


def drive(agent: Agent, bars: SymbolBars, upto: int | None = None) -> list[Signal | None]:
    """What ``agent.on_bar`` returned at each bar (the first ``upto`` bars, or all)."""
    return replay(agent, MarketView(bars), bar_rows(bars, upto))


def compact(signals: Sequence[Signal | None]) -> list[tuple[int, float] | None]:
    """Signals as ``(side, confidence)`` pairs (None stays None), for readable asserts."""
    return [None if s is None else (int(s.side), s.confidence) for s in signals]
