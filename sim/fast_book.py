"""The equity rows of a one-symbol fast walk, booked in blocks instead of row by row.

On one symbol every bar is a new time, so the per-bar loop books one equity row per bar:
bar ``r``'s row, ``cash + qty x close[r]`` at the account's state when bar ``r`` is done,
booked as bar ``r + 1`` starts. Between two event bars the state does not move, so the
rows are fixed by the states the walk leaves after each event bar it hands ``on_bar``
and by the closes. ``DeferredBook`` keeps those states (a tuple per event bar) and books
the rows into the ledger's ``EquityBook`` only where someone reads them: at a flush
point (the walk's chunk boundaries), at the end (before ``Engine.finish`` books the last
bar) and on a failure (the rows the per-bar loop had booked by then). The values are the
same IEEE operations as ``Portfolio.equity`` and ``Portfolio.unrealized``: ``qty x close``
plus cash (one add: the order of its operands does not change it), then minus cash minus
the cost basis; cash and 0.0 where no position is held.

Used only where nothing reads the book between flushes: votes in bulk (no agent is
called; the plain recorder, so no bus and no monitor probing the book) and no equity
follower (risk limits that watch equity follow it at each order). The walk keeps the
marks and views the skipped bars leave where they are read (``sim.fast_path``).
"""

from __future__ import annotations

import numpy as np

from sim.fast_skip import put_block
from sim.portfolio import Portfolio

# (row, cash, qty, cost basis, realized PnL) after an event bar: the state its row, and
# the rows of the quiet bars after it, are booked at.
State = tuple[int, float, float, float, float]


class DeferredBook:
    """The account's state after each event bar of a one-symbol walk, booked as equity
    rows (one per bar) on ``book_upto``."""

    __slots__ = ("booked", "close", "portfolio", "states", "ts", "upto")

    def __init__(self, portfolio: Portfolio, ts: np.ndarray, close: np.ndarray) -> None:
        self.portfolio = portfolio
        self.ts = ts
        self.close = close
        # The state before the first bar (row -1), then one per event bar in row order.
        self.states: list[State] = [self.state(-1)]
        self.booked = 0  # rows [0, booked) are in the book
        self.upto = 0  # rows [0, upto) the per-bar loop would have booked by now

    def state(self, row: int) -> State:
        p = self.portfolio
        return (row, p.cash, p.qty[0], p.cost_basis, p.realized_total)

    def book_upto(self, upto: int) -> None:
        """Book the rows of bars ``[booked, upto)`` (each bar's state: the last event
        bar's at or before it)."""
        a = self.booked
        if upto <= a:
            return
        states = np.array(self.states, dtype=np.float64)
        at = np.searchsorted(states[:, 0], np.arange(a, upto, dtype=np.float64),
                             side="right") - 1
        cash, qty, basis, realized = (states[at, j] for j in range(1, 5))
        held = qty != 0.0  # one symbol: held exactly while its quantity is not 0
        equity = qty * self.close[a:upto]
        equity += cash  # cash + qty x close, as Portfolio.equity adds them
        unrealized = equity - cash
        unrealized -= basis
        book = self.portfolio.book
        put_block(book.ts, self.ts[a:upto])
        put_block(book.cash, cash)
        put_block(book.equity, np.where(held, equity, cash))
        put_block(book.realized, realized)
        put_block(book.unrealized, np.where(held, unrealized, 0.0))
        self.booked = upto
        # Keep the state the next rows start from (the last at or before upto - 1).
        keep = int(np.searchsorted(states[:, 0], upto - 1, side="right")) - 1
        del self.states[:keep]


__all__ = ["DeferredBook"]
