"""The execution desk's side of matching: working legs meet each market event the engine
shows them (a bar's open and path, a trade in tick replay), and what ``sim.matching``
decided is committed: fills into the one ledger, leg states, orders' terminal states.

Split from ``sim.execution`` along that seam: an order that fills at once on arrival
never comes here; resting, triggered and partially filled ones do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sim.desk_state import DeskState
from sim.matching import Account, Matcher
from sim.orders import Leg, Order
from sim.venue import DOWN

if TYPE_CHECKING:
    pass


class MarketEvents(DeskState):
    """``ExecutionDesk``'s matching of working legs (a mixin: the state
    and the steps it calls are the desk's, declared in ``DeskState``)."""

    # -- market events: matching -------------------------------------------------------
    def venue_open(self, s: int, ts: int, o: float, v: float) -> None:
        """Working orders meet a bar's open (the first price observed at or after their
        arrival; a resting order the open gapped through)."""
        portfolio = self.portfolio
        previous = portfolio.price[s]
        portfolio.price[s] = o
        self._obs_ts[s] = ts
        self._match(s, ts, o, None, v)
        portfolio.price[s] = previous  # the release's price band still sees the last close

    def venue_path(self, s: int, ts: int, o: float, h: float, lo: float, c: float,
                   v: float) -> None:
        """Working orders along the bar's path after the open, by the intrabar convention;
        ``worst_case`` tries both orders of the extremes and keeps the one that leaves the
        account worth less at the close (a tie: open-high-low-close)."""
        legs = self._legs(s)
        if not legs and self.perp[s] is None:
            return
        up = (o, h, lo, c)
        down = (o, lo, h, c)
        convention = self.execution.intrabar
        if convention == "worst_case":
            first = self._matcher(s, ts, legs, v)
            first.path(legs, up)
            second = self._matcher(s, ts, legs, v)
            second.path(legs, down)
            chosen = second if second.value(c) < first.value(c) else first
        else:
            chosen = self._matcher(s, ts, legs, v)
            chosen.path(legs, up if convention == "ohlc" else down)
        self._obs_ts[s] = -1  # orders made now (brackets) wait for the next observation
        self._commit(s, ts, chosen)

    def trade(self, s: int, ts: int, price: float, amount: float) -> None:
        """A trade (tick replay) while symbol s has orders working: they meet its price."""
        self.portfolio.price[s] = price
        self._obs_ts[s] = ts
        self._match(s, ts, price, None, amount)

    def _bar_volume(self, s: int, now: int) -> float:
        """Volume of the market event at ``now``: the bar's, or the trade's in tick replay
        (participation and impact are measured against it)."""
        if self.execution.ticks:
            return self.tick_volume[s] if self._obs_ts[s] == now else 0.0
        view = self.views[s]
        return view.volume if view.ts == now else 0.0

    def _legs(self, s: int) -> list[Leg]:
        """Working legs of symbol s on venues that are not down, oldest first."""
        legs = [leg for v in self._venues_of[s] if v.health != DOWN
                for leg in v.book.get(s, ())]
        if len(legs) > 1:
            legs.sort(key=lambda leg: leg.seq)
        return legs

    def _account(self, s: int) -> Account:
        portfolio = self.portfolio
        qty, price = portfolio.qty, portfolio.price
        symbols = self.symbols
        other = other_im = other_mm = 0.0
        for j in portfolio._held:
            if j == s:
                continue
            value = qty[j] * price[j]
            other += value
            perp = self.perp[j]
            if perp is not None:
                other_im += abs(value) / perp.leverage.get(symbols[j], perp.max_leverage)
                other_mm += abs(value) * perp.maintenance_margin
        perp = self.perp[s]
        leverage = 1.0 if perp is None else perp.leverage.get(symbols[s], perp.max_leverage)
        return Account(qty[s], portfolio.cash, other, other_im, other_mm, perp, leverage)

    def _bar_range(self, s: int) -> float:
        """The previous completed bar's (high - low) / close: volatility-scaled slippage
        uses only what is known before the fill."""
        if not self._vol_slippage:
            return 0.0
        view = self.views[s]
        i = view.n - (1 if self.execution.ticks else 2)
        if i < 0:
            return 0.0
        high, low, close = (view._bars.column(c)[i] for c in ("high", "low", "close"))
        return float((high - low) / close)

    def _matcher(self, s: int, now: int, legs: list[Leg], volume: float) -> Matcher:
        budget_ts, budget = self._budget[s]
        return Matcher(legs, self._account(s), volume, self._bar_range(s),
                       self.execution.limit_touch, budget if budget_ts == now else None)

    def _match(self, s: int, now: int, price: float, subset: list[Leg] | None,
               volume: float) -> None:
        """One observation of ``price`` for symbol s's legs (``subset``: only those)."""
        legs = self._legs(s)
        matcher = self._matcher(s, now, legs, volume)
        matcher.observe(legs if subset is None else subset, price)
        self._commit(s, now, matcher)

    def _commit(self, s: int, now: int, matcher: Matcher) -> None:
        """Book what a matcher decided: fills into the one ledger, leg states, closures."""
        finished: list[Order] = []
        for proposal in matcher.fills:
            if proposal.leg is None:
                self._liquidate(s, now, proposal)
                continue
            leg = proposal.leg
            life = leg.order
            leg.remaining = matcher.remaining[id(leg)]
            self._book_fill(life, s, now, proposal.venue.name, proposal.quantity,
                            proposal.price, proposal.fee, proposal.liquidity)
        for leg in matcher._others.values():
            key = id(leg)
            leg.rested = leg.rested or key in matcher.rested
            leg.triggered = leg.triggered or key in matcher.triggered
            if key in matcher.remaining:
                leg.remaining = matcher.remaining[key]
        for leg, code, reason in matcher.closed.values():
            self._close_leg(leg, code, reason)
            finished.append(leg.order)
        self._budget[s] = (now, matcher.budget)
        for life in finished:
            self._maybe_final(life, now)
        self._rewatch(s)
