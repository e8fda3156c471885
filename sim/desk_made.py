"""Orders the execution desk makes itself, not a decision: brackets (take-profit and
stop-loss, one cancels the other) after an entry fills, the risk engine's kill switch and
flattening, a perpetual's liquidation, and funding payments.

Split from ``sim.execution`` along that seam: each goes through the desk's one order path
(``_submit``) or its one booking (``_book_fill``), as a decision's order does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sim.desk_state import DeskState
from sim.event_queue import PRIORITY_EVENT
from sim.messages import FundingPaid, PositionLiquidated
from sim.orders import (
    ENDED,
    FILLED,
    FLATTEN,
    LIMIT,
    LIQUIDATION,
    STOP,
    STOP_LOSS,
    TAKE_PROFIT,
    Order,
)

if TYPE_CHECKING:
    from sim.matching import Proposal


class DeskMadeOrders(DeskState):
    """``ExecutionDesk``'s desk-made orders (a mixin: the state
    and the steps it calls are the desk's, declared in ``DeskState``)."""

    # -- brackets --------------------------------------------------------------------
    def _attach_brackets(self, entry: Order, now: int) -> None:
        """Take-profit (limit) and stop-loss (stop) orders, reduce-only and one-cancels-
        the-other, for the whole position at its average price; the previous brackets of
        the symbol are cancelled first. The position is that of the entry's ledger
        (``_ledger_of``: a farm's own, in a farm run)."""
        s = entry.s
        portfolio = self._ledger_of(entry)
        self._cancel_working(s, now, "brackets replaced", reduce_only=True, ledger=portfolio)
        position = portfolio.qty[s]
        if position == 0.0:
            return
        execution = self.execution
        avg = portfolio.avg_price[s]
        long = position > 0
        legs: list[tuple[str, str, float]] = []
        if execution.take_profit is not None:
            tp = avg * (1.0 + execution.take_profit if long else 1.0 - execution.take_profit)
            legs.append((TAKE_PROFIT, LIMIT, tp))
        if execution.stop_loss is not None:
            sl = avg * (1.0 - execution.stop_loss if long else 1.0 + execution.stop_loss)
            legs.append((STOP_LOSS, STOP, sl))
        for role, kind, level in legs:
            if portfolio.qty[s] != position:
                break  # the first bracket filled at once: the second has nothing to guard
            self._order_id += 1
            order = Order(
                self._order_id, entry.decision_id, now, entry.decision_ts, entry.symbol, s,
                -position, level, kind, level if kind == LIMIT else None,
                level if kind == STOP else None, reduce_only=True, role=role,
                parent_id=entry.order_id)
            self._submit(s, order, position, portfolio.equity(), portfolio.price[s], ())

    # -- risk-made orders ------------------------------------------------------------
    def cancel_entries(self, ts: int, reason: str) -> None:
        """Cancel every working entry order (the kill switch): from then on only
        position-reducing orders may go, and a resting entry must not fill later.
        Brackets stay: they only ever reduce a position."""
        for i in range(len(self.symbols)):
            if self.n_working[i]:
                self._cancel_working(i, ts, reason, entries_only=True)

    def flatten(self, ts: int) -> None:
        """Close every open position at its latest mark (risk-made orders, decision 0)."""
        if self._flattening:
            return
        self._flattening = True
        try:
            portfolio = self.portfolio
            for i, sym in enumerate(self.symbols):
                position = portfolio.qty[i]
                if position == 0.0:
                    continue
                self._on_flatten(i)
                price = portfolio.price[i]
                if self.n_working[i]:
                    self._cancel_working(i, ts, "flattened by risk")
                self._order_id += 1
                order = Order(self._order_id, 0, ts, ts, sym, i, -position, price,
                              role=FLATTEN)
                self._obs_ts[i] = ts  # fills at the latest mark, as the breaker decides
                self._submit(i, order, position, portfolio.equity(), price, ())
        finally:
            self._flattening = False

    # -- perpetuals --------------------------------------------------------------------
    def _liquidate(self, s: int, now: int, proposal: Proposal) -> None:
        venue = proposal.venue
        position = self.portfolio.qty[s]
        self._order_id += 1
        life = Order(self._order_id, 0, now, now, self.symbols[s], s, proposal.quantity,
                     proposal.liquidation_price or proposal.price, role=LIQUIDATION,
                     reduce_only=True)
        life.venue = venue.name
        life.arrival_ts = now
        self.recorder.order_event(life.order_id, now, s, "submitted", venue.name,
                                  life.quantity, life.ref_price, LIQUIDATION)
        self._book_fill(life, s, now, venue.name, proposal.quantity, proposal.price,
                        proposal.fee, "liquidation")
        life.outcomes += ENDED[FILLED]
        self._maybe_final(life, now)
        self.recorder.liquidation(PositionLiquidated(
            now, life.symbol, venue.name, life.order_id, position,
            proposal.liquidation_price or proposal.price, proposal.price,
            venue.maintenance_margin), s)

    def schedule_funding(self, s: int, times: Sequence[int], rates: Sequence[float]) -> None:
        """Funding of symbol s at ``times`` (each before that time's bars)."""
        for ts, rate in zip(times, rates, strict=True):
            self.queue.push(int(ts), PRIORITY_EVENT, self._fund, (s, float(rate)))

    def _fund(self, item: tuple[int, float]) -> None:
        """Longs pay shorts ``rate`` x position x mark (the last price seen)."""
        s, rate = item
        self.router.observe_funding(self.symbols[s], rate)  # known from now on
        portfolio = self.portfolio
        position = portfolio.qty[s]
        if position == 0.0:
            return
        mark = portfolio.price[s]
        perp = self.perp[s]
        self.book_funding(s, self.clock.now, position, mark, rate, -rate * position * mark,
                          None if perp is None else perp.name)

    def book_funding(self, s: int, ts: int, position: float, mark: float, rate: float,
                     payment: float, venue: str | None = None) -> None:
        """Book one funding payment of symbol s (received if positive) on ``venue`` into
        the one ledger and the ``funding`` table: the simulated perpetual's settlement
        above, or one a live venue reports (its own amount, ``live.reconcile``)."""
        self.portfolio.fund(payment)
        self.recorder.funding(FundingPaid(ts, self.symbols[s], position, mark, rate, payment,
                                          venue), s)
