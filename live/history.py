"""Growing per-symbol bar history for live mode.

``MarketView`` reads ``bars.symbol`` and ``bars.column(name)[: n]``; ``BarHistory`` offers
the same interface over numpy columns that double their capacity as bars arrive. Slices
handed out are read-only views; a view taken before a regrow keeps pointing at the old
(unchanged) buffer, so nothing an agent holds is ever mutated under it.
"""

from __future__ import annotations

import numpy as np

from sim.data import BAR_COLUMNS

_DTYPES = {"ts": np.int64, **{name: np.float64 for name in BAR_COLUMNS}}


class BarHistory:
    __slots__ = ("_cols", "_n", "source", "symbol")

    def __init__(self, symbol: str, capacity: int = 1024, source: str = "live") -> None:
        self.symbol = symbol
        self.source = source
        self._n = 0
        self._cols = {name: np.empty(max(1, capacity), dtype=dt) for name, dt in _DTYPES.items()}

    def __len__(self) -> int:
        return self._n

    def column(self, name: str) -> np.ndarray:
        view = self._cols[name][: self._n]
        view.flags.writeable = False
        return view

    def append(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> int:
        """Add one bar; return the new length (the bar's 1-based number)."""
        n = self._n
        cols = self._cols
        if n == len(cols["ts"]):
            for name, old in cols.items():
                grown = np.empty(2 * n, dtype=old.dtype)
                grown[:n] = old
                cols[name] = grown
        cols["ts"][n] = ts
        cols["open"][n] = o
        cols["high"][n] = h
        cols["low"][n] = lo
        cols["close"][n] = c
        cols["volume"][n] = v
        self._n = n + 1
        return n + 1
