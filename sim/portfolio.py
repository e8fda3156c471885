"""Portfolio: the one ledger. Cash, positions, average cost, realized and unrealized PnL.

Amounts are IEEE doubles; every booking is a single add or multiply, so the books balance
to within 1e-9 relative of an exact (math.fsum) recomputation from the fills. The tests
hold it to that tolerance.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Sequence

from sim.messages import OrderFilled

# (ts, equity, first row not yet seen, now): ``sim.risk.RiskEngine.observe_equity``.
EquityFollower = Callable[[Sequence[int], Sequence[float], int, int], None]


class EquityBook:
    """The account at the end of each time step, as the engine books it (one row per time
    step: ts, cash, equity, realized and unrealized PnL), until the rows are written.

    The columns are ``array.array``s (int64 times, float64 amounts): a bar's row is 40
    bytes in them, where Python lists held five objects of about 30 bytes each besides
    their pointers, so the rows buffered between flushes (up to ``flush_rows``) take a
    quarter of the memory, and the recorder copies each column out in one block.

    One way: the engine appends (bound ``list.append``s on the per-bar path); the recorder
    writes the rows and the risk engine follows them (``follow``: its drawdown peak and
    start-of-day equity). Rows leave only through ``drain``, which first shows the
    follower those it has not seen, whoever drains: a backtest's flush or a live
    session's hand-over to its store writer. What risk knows never depends on when, or
    by whom, the rows are written; risk never reads the output sink."""

    __slots__ = ("_follower", "_seen", "cash", "equity", "realized", "ts", "unrealized")

    def __init__(self) -> None:
        self.ts = array("q")
        self.cash = array("d")
        self.equity = array("d")
        self.realized = array("d")
        self.unrealized = array("d")
        self._follower: EquityFollower | None = None
        self._seen = 0  # rows the follower has seen

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def followed(self) -> bool:
        """Whether a follower reads the rows as they are booked (``follow``)."""
        return self._follower is not None

    def follow(self, follower: EquityFollower) -> None:
        self._follower = follower
        self._seen = 0

    def catch_up(self, now: int) -> None:
        """Show the follower the rows booked since it last looked (before a check)."""
        if self._follower is not None:
            self._follower(self.ts, self.equity, self._seen, now)
            self._seen = len(self.ts)

    def drain(self) -> None:
        """The rows are written: the follower sees the unseen ones, then they go."""
        if self._follower is not None and self._seen < len(self.ts):
            self._follower(self.ts, self.equity, self._seen, self.ts[-1])
        self.discard()

    def discard(self) -> None:
        """Drop the rows unseen (a resumed live session's warm-up: they were booked, and
        followed, by the session that first saw those bars)."""
        for column in (self.ts, self.cash, self.equity, self.realized, self.unrealized):
            del column[:]
        self._seen = 0


class Portfolio:
    """Cash, positions and PnL now; ``book`` keeps the equity of each time step the engine
    has booked and not yet written."""

    __slots__ = (
        "_held", "avg_price", "book", "cash", "cost_basis", "fees_paid", "funding_total",
        "initial_cash", "price", "qty", "realized", "realized_total",
    )

    def __init__(self, symbols: Sequence[str], initial_cash: float) -> None:
        n = len(symbols)
        self.initial_cash = initial_cash
        self.cash = initial_cash
        self.qty = [0.0] * n
        self.avg_price = [0.0] * n
        self.price = [float("nan")] * n  # last mark per symbol
        self.realized = [0.0] * n
        self.realized_total = 0.0
        self.fees_paid = 0.0
        self.funding_total = 0.0  # perpetual funding received (negative: paid)
        self._held: list[int] = []  # symbols with a position: equity sums only these
        self.cost_basis = 0.0  # sum of quantity x average price over open positions
        self.book = EquityBook()

    def apply(self, symbol_index: int, fill: OrderFilled) -> None:
        self.book_fill(symbol_index, fill.quantity, fill.price, fill.fee)

    def book_fill(self, i: int, q: float, p: float, fee: float) -> None:
        """Book a fill of signed quantity ``q`` of symbol ``i`` at ``p`` paying ``fee``
        (``apply``'s fields: the desk books a fill from them, without a message)."""
        self.cash -= q * p + fee
        self.fees_paid += fee
        qty, avg, held = self.qty, self.avg_price, self._held
        old = qty[i]
        new = old + q
        if old == 0.0 or (old > 0.0) == (q > 0.0):  # opening or adding: average in
            avg[i] = (old * avg[i] + q * p) / new
        else:  # reducing, closing, or flipping through zero
            closed = min(abs(q), abs(old))
            direction = 1.0 if old > 0.0 else -1.0
            pnl = (p - avg[i]) * closed * direction
            self.realized[i] += pnl
            self.realized_total += pnl
            if abs(q) > abs(old):
                avg[i] = p
        qty[i] = new
        if new == 0.0:
            avg[i] = 0.0
            if i in held:
                held.remove(i)
        elif i not in held:
            held.append(i)
            held.sort()  # a fixed summation order keeps equity reproducible
        # Recomputed, not adjusted: exactly 0 when flat. The sum of ``sum()`` (from 0, in
        # held order), without a generator per fill.
        basis: float = 0  # an int 0, as sum() starts
        for j in held:
            basis += qty[j] * avg[j]
        self.cost_basis = basis

    def fund(self, payment: float) -> None:
        """Book a funding payment (received if positive) in cash: one add."""
        self.cash += payment
        self.funding_total += payment

    def equity(self) -> float:
        total = self.cash
        qty, price = self.qty, self.price
        for i in self._held:
            total += qty[i] * price[i]
        return total

    def unrealized(self, equity: float | None = None) -> float:
        """Open positions at their latest marks against their average cost; given the
        ``equity`` just computed, it is one subtraction (the per-bar path uses that)."""
        if equity is not None:
            return equity - self.cash - self.cost_basis if self._held else 0.0
        total = 0.0
        qty, price, avg = self.qty, self.price, self.avg_price
        for i in self._held:
            total += (price[i] - avg[i]) * qty[i]
        return total
