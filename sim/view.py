"""What an agent sees: one symbol's bars up to now, and nothing after.

The engine moves the view forward one bar at a time. The latest bar's fields are plain
attributes (cheap to read on every bar); ``history`` hands out read-only numpy slices that
end at the current bar, so the future is unreachable through the public API.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class BarSource(Protocol):
    """One symbol's bars as columns: fixed arrays in a backtest, a growing buffer live."""

    @property
    def symbol(self) -> str: ...

    def column(self, name: str) -> np.ndarray: ...


class MarketView:
    __slots__ = ("_bars", "close", "high", "low", "n", "open", "symbol", "ts", "volume")

    def __init__(self, bars: BarSource) -> None:
        self._bars = bars
        self.symbol = bars.symbol
        self.n = 0  # bars seen so far, the current one included
        self.ts = 0
        self.open = self.high = self.low = self.close = self.volume = float("nan")

    def history(self, column: str, length: int | None = None) -> np.ndarray:
        """The last ``length`` values of ``column`` (all so far if None), ending now."""
        data = self._bars.column(column)[: self.n]
        return data if length is None else data[max(0, self.n - length) :]
