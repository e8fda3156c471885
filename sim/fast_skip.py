"""The quiet bars between a fast walk's event bars (``sim.fast_path``): their equity rows
and the marks and views they leave.

A quiet bar changes nothing but its symbol's mark and books one equity row at each time
step, ``cash + sum(qty x close)`` in the ledger's order (``Portfolio.equity``), which
``Skipper.skip`` books for a whole run of such bars with array operations (row by row for
a few), leaving the engine's time, the marks and the views as ``Engine.on_bar`` would.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.data import SymbolBars
from sim.engine import Engine

_SHORT = 24  # skipped runs up to this many rows are booked row by row, not with arrays
_SHORT_SINGLE = 6  # the same for one symbol, whose array booking is cheaper


def put_block(column: array[Any], values: np.ndarray) -> None:
    """Append an array's values to a book column as one block copy (no Python number per
    value; the same values: int64 to ``q``, float64 to ``d``)."""
    dtype = np.int64 if column.typecode == "q" else np.float64
    column.frombytes(np.ascontiguousarray(values, dtype=dtype).data.cast("B"))


def _repeat(column: array[Any], value: float, k: int) -> None:
    """Append ``value`` ``k`` times to a float book column."""
    column.extend(array("d", (value,)) * k)


class Skipper:
    """Books the quiet rows of one fast walk (rows: positions in the merged bar order)."""

    def __init__(self, engine: Engine, bars: Sequence[SymbolBars], ts: np.ndarray,
                 order_symbol: np.ndarray, order_pos: np.ndarray,
                 rows_of: Sequence[np.ndarray]) -> None:
        self.engine = engine
        self.bars = bars
        self.ts = ts
        self.single = len(bars) == 1
        self.order_symbol = order_symbol
        self.order_pos = order_pos
        self.rows_of = rows_of

    def skip(self, a: int, b: int) -> None:
        """Rows ``[a, b)`` change nothing but marks: book the equity rows ``on_bar``
        would book while walking them (each time's, at its last row's state) and leave
        views, marks and the engine's time as they would be after row ``b - 1``."""
        if a >= b:
            return
        engine = self.engine
        if self.single and b - a > _SHORT_SINGLE:
            self._single(a, b)
            moved = {0: b - 1}
        elif b - a <= _SHORT:
            moved = self._rows(a, b)
        else:
            last = engine._last_ts
            seg_ts = self.ts[a:b]
            prev = np.empty(b - a, dtype=np.int64)
            prev[1:] = seg_ts[:-1]
            prev[0] = seg_ts[0] if last is None else last
            at = np.flatnonzero(seg_ts != prev)  # rows where the time moves: book prev
            if len(at):
                self._book(a, b, at, prev[at])
            engine._last_ts = int(seg_ts[-1])
            if self.single:
                moved = {0: b - 1}
            else:
                lasts = ((s, self._last_row(s, a, b)) for s in range(len(self.bars)))
                moved = {s: int(self.order_pos[r]) for s, r in lasts if r >= 0}
        for s, i in moved.items():
            self.show(s, i)

    def show(self, s: int, i: int) -> None:
        """Symbol ``s``'s view and mark as ``on_bar`` leaves them at its bar ``i``."""
        bars = self.bars[s]
        view = self.engine.views[s]
        view.n = i + 1
        view.ts = int(bars.ts[i])
        view.open = bars.open.item(i)
        view.high = bars.high.item(i)
        view.low = bars.low.item(i)
        view.close = close = bars.close.item(i)
        view.volume = bars.volume.item(i)
        self.engine.portfolio.price[s] = close

    def _single(self, a: int, b: int) -> None:
        """``skip``'s booking for one symbol, whose every row is a new time: the row
        before the segment at the portfolio's state now, each later one at its close."""
        engine = self.engine
        portfolio = engine.portfolio
        book = portfolio.book
        last = engine._last_ts
        bars = self.bars[0]
        times = self.ts[a : b - 1]  # int64, contiguous
        cash, realized = portfolio.cash, portfolio.realized_total
        k = len(times)
        if last is not None:
            now = portfolio.equity()
            book.ts.append(last)
            book.cash.append(cash)
            book.equity.append(now)
            book.realized.append(realized)
            book.unrealized.append(portfolio.unrealized(now))
        # Block copies, no Python number per row (put_block)
        book.ts.frombytes(times.data.cast("B"))
        cashes = array("d", (cash,)) * k
        book.cash.extend(cashes)
        if portfolio._held:
            equity = portfolio.qty[0] * bars.close[a : b - 1]
            equity += cash  # cash + qty x close, as Portfolio.equity adds them
            unrealized = equity - cash
            unrealized -= portfolio.cost_basis
            put_block(book.equity, equity)
            put_block(book.unrealized, unrealized)
        else:
            book.equity.extend(cashes)
            book.unrealized.extend(array("d", (0.0,)) * k)
        book.realized.extend(array("d", (realized,)) * k)
        engine._last_ts = bars.ts.item(b - 1)

    def _rows(self, a: int, b: int) -> dict[int, int]:
        """``skip``'s booking row by row, as ``on_bar`` does it (cheaper than arrays for
        a few rows): at each time change the state so far, then the row's mark. Returns
        each symbol seen's last bar (its position in the symbol's bars)."""
        engine = self.engine
        portfolio = engine.portfolio
        price = portfolio.price
        last = engine._last_ts
        ts = self.ts
        single = self.single
        close = self.bars[0].close
        moved: dict[int, int] = {}
        order_symbol, order_pos = self.order_symbol, self.order_pos
        for r in range(a, b):
            t = ts.item(r)
            if t != last:
                if last is not None:
                    equity = portfolio.equity()
                    engine._book_ts(last)
                    engine._book_cash(portfolio.cash)
                    engine._book_equity(equity)
                    engine._book_realized(portfolio.realized_total)
                    engine._book_unrealized(portfolio.unrealized(equity))
                last = t
            if single:
                price[0] = close.item(r)
            else:
                s = order_symbol.item(r)
                moved[s] = i = order_pos.item(r)
                price[s] = self.bars[s].close.item(i)
        engine._last_ts = last
        if single:
            moved[0] = b - 1
        return moved

    def _last_row(self, s: int, a: int, b: int) -> int:
        rows = self.rows_of[s]
        i = int(np.searchsorted(rows, b)) - 1
        return int(rows[i]) if i >= 0 and rows[i] >= a else -1

    def _book(self, a: int, b: int, at: np.ndarray, booked_ts: np.ndarray) -> None:
        """Equity rows at times ``booked_ts``, each at the state after row ``a + at - 1``
        (-1: before the segment, the portfolio as it is now)."""
        portfolio = self.engine.portfolio
        book = portfolio.book
        k = len(at)
        cash = portfolio.cash
        equity = np.full(k, cash)
        qty, price = portfolio.qty, portfolio.price
        before = at - 1  # segment position of each row's state
        for s in portfolio._held:  # the ledger's order, as Portfolio.equity sums
            marks = self._marks(s, a, b, before, price[s])
            equity += qty[s] * marks
        put_block(book.ts, booked_ts)
        _repeat(book.cash, cash, k)
        put_block(book.equity, equity)
        _repeat(book.realized, portfolio.realized_total, k)
        if portfolio._held:
            put_block(book.unrealized, equity - cash - portfolio.cost_basis)
        else:
            _repeat(book.unrealized, 0.0, k)

    def _marks(self, s: int, a: int, b: int, before: np.ndarray, now: float) -> np.ndarray:
        """Symbol ``s``'s mark after each segment position in ``before`` (-1: ``now``)."""
        close = self.bars[s].close
        if self.single:
            return np.where(before >= 0, close[a:b][np.maximum(before, 0)], now)
        mine = self.order_symbol[a:b] == s
        last = np.where(mine, np.arange(b - a), -1)  # s's latest row at each position
        np.maximum.accumulate(last, out=last)
        last = np.where(before >= 0, last[np.maximum(before, 0)], -1)
        pos = np.where(last >= 0, self.order_pos[a:b][np.maximum(last, 0)], 0)
        return np.where(last >= 0, close[pos], now)


__all__ = ["Skipper", "put_block"]
