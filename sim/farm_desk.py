"""The execution desk of a farm run: the one desk of ``sim.execution`` (one account, one
order and fill numbering, the same venues), with each order tagged with its farm.

What a farm adds to the desk: its risk limits and wallet judge its orders first
(``sim.farms.FarmRisk``, ``FarmRouter``); a fill books into the account as before and
into the ledger of the order's farm; cancel/replace touches only the farm's own orders;
risk-made flattening closes each farm's positions with orders of that farm (the account
position is their sum, so the account ends flat too).

Orders that are not filled at once (limit and stop orders resting on a venue, orders in
flight under ``execution.latency``, brackets) stay the farm's until they end:

* a buy reserves its cost at its price bound (``unit_cost``) from the farm's cash while
  it is in flight or working (``Farm.reserved``): the farm's next buys are sized on, and
  checked against, its free cash; the reservation shrinks as the order fills and is
  released when it is cancelled, expires or is rejected;
* matching treats each farm as a book of its own (``sim.matching.Book``): a buy's part
  that adds to the farm's long is trimmed to its free cash plus what that order reserved,
  at the actual fill price and fee (the bound is not a promise for a stop or a market
  order that gaps; this trim is the guarantee), and a reduce-only order (a bracket)
  reduces the farm's own position and is cancelled when that position is gone;
* brackets are attached for the farm's position at the farm's average price and belong to
  the entry's farm; a refused leg is re-routed within its farm's wallet.

Perpetuals: each farm's margin is its own (``Farm.free_collateral``: its orders are
trimmed and judged on it, ``FarmRisk``); the venue still judges the account's margin as
a whole (cross margin), so a farm that lost into its initial margin can get another
farm's opening order trimmed there. Funding is paid per farm on the farm's own
position at the funding time (-rate x its position x the mark), the account paying the
venue's amount on the netted position; the two agree to float rounding, checked on every
step. When the venue liquidates the account's position in a symbol (cross margin: the
account's equity fell to its maintenance margin), the one liquidation fill books into
the account, and every farm holding the symbol has its position closed at the same
price, paying the liquidation fee in proportion to the size it lost (a
``farm_liquidations`` row each). A farm whose own equity falls below the maintenance
margin of its own perpetual positions (checked at each time step's close) has them
closed at the marks with orders of that farm (a ``farm_liquidations`` row each, cause
"farm margin"): its loss stops there and never reaches the other farms' capital.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from sim.clock import SimClock
from sim.event_queue import EventQueue
from sim.execution import ExecutionDesk
from sim.farms import LEDGER_TOLERANCE, Farm, FarmRisk, FarmRouter
from sim.matching import Book, Matcher
from sim.messages import OrderFilled
from sim.orders import (
    BRACKET_ROLES,
    FLATTEN,
    LIMIT,
    LIQUIDATION,
    STOP,
    TAKER,
    TERMINAL,
    WORKING,
    ExecutionSettings,
    Leg,
    Order,
)
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import RiskEngine, Ticket
from sim.router import VenueRouter
from sim.venue import SimVenue
from sim.view import MarketView


class FarmDesk(ExecutionDesk):
    """``farm``: the farm whose order is submitted now (set by the engine before it
    submits; every order made meanwhile is that farm's)."""

    def __init__(
        self, symbols: Sequence[str], views: Sequence[MarketView], risk: RiskEngine,
        router: VenueRouter, portfolio: Portfolio, recorder: Recorder, queue: EventQueue,
        clock: SimClock, execution: ExecutionSettings, farms: Sequence[Farm], *,
        dispatch_before: Callable[[int | None, int], None],
        on_flatten: Callable[[Farm, int], None],
    ) -> None:
        venues = router.venues
        # Per venue: its dearest fee (taker or maker) and its fixed slippage and impact
        # (at full participation), as fractions; its volatility slippage factor.
        self._costs = tuple((max(v.fee_bps, v.maker_fee_bps) / 10_000.0,
                             (v.slippage_bps + v.impact_bps) / 10_000.0,
                             v.volatility_slippage) for v in venues)
        # The dearest taker fill per unit of reference price: fee on top of slipped price.
        self._margin = max((1.0 + fee) * (1.0 + slip) for fee, slip, _ in self._costs) - 1.0
        self._fee_max = max(fee for fee, _, _ in self._costs)
        self._index = {sym: i for i, sym in enumerate(symbols)}
        self.farm_risk = FarmRisk(risk, portfolio, self._index, self.unit_cost, self._margin)
        super().__init__(symbols, views, self.farm_risk,  # type: ignore[arg-type]
                         FarmRouter(router, self.farm_risk),  # type: ignore[arg-type]
                         portfolio, recorder, queue, clock, execution,
                         dispatch_before=dispatch_before,
                         on_flatten=lambda s: on_flatten(self._current(), s))
        self.farms = farms if isinstance(farms, list) else list(farms)  # the engine's
        self._farm_of: dict[int, Farm] = {}
        # What a live session books to no farm: a reconciliation adjustment that no one
        # farm's ledger can be told to owe (``adjust``), and its share of funding.
        self.unattributed = Portfolio(symbols, 0.0)
        self.unattributed.price = portfolio.price
        self.booked_unattributed = False  # anything ever booked there (never in a backtest)
        self._funding_farms = False  # inside _fund: each farm funded on its own position
        self._on_farm_flatten = on_flatten
        # Every fill goes through matching, where each farm is a book of its own (the
        # immediate path trims a buy to the account's cash only).
        self._fast = False
        self.sizes = [0.0] * len(self.symbols)  # the largest fill of each symbol so far
        for farm in self.farms:
            self.add_farm(farm)

    def add_farm(self, farm: Farm) -> None:
        """A farm trades through this desk: its breakers follow its own equity, and its
        margin rates are the perpetual venues' (capped by its own ``max_leverage``)."""
        farm.ledger.book.follow(farm.risk.observe_equity)
        cap = farm.risk.limits.max_leverage
        farm.leverage = []
        farm.maintenance = []
        for sym, perp in zip(self.symbols, self.perp, strict=True):
            if perp is None:
                farm.leverage.append(None)
                farm.maintenance.append(0.0)
                continue
            lev = perp.leverage.get(sym, perp.max_leverage)
            farm.leverage.append(lev if cap is None else min(lev, cap))
            farm.maintenance.append(perp.maintenance_margin)
        if all(lev is None for lev in farm.leverage):
            farm.leverage = []  # spot only: nothing to look up per order

    @property
    def farm(self) -> Farm | None:
        return self.farm_risk.farm

    @farm.setter
    def farm(self, farm: Farm) -> None:
        self.farm_risk.farm = farm

    def _current(self) -> Farm:
        farm = self.farm_risk.farm
        assert farm is not None, "an order made with no farm set"
        return farm

    def farm_of(self, order_id: int) -> Farm:
        return self._farm_of[order_id]

    # -- what a buy may cost: its price bound -------------------------------------------
    def unit_cost(self, order: Ticket) -> float:
        """The most one unit of buy ``order`` may cost, fees included, at its price bound:
        a limit order never fills above its limit (a taker at its arrival, a maker at the
        limit), at the dearest fee; a market order at its reference price and a stop at
        its stop price, moved by the dearest venue's fixed slippage, impact at full
        participation and volatility slippage on the bar range the fill would use now
        (the previous completed bar's: known before the fill). A stop or a market order
        filled later (latency, a gap) may cost more: matching trims it then."""
        return self._unit(self._index[order.symbol], order.kind, order.ref_price,
                          order.limit_price, order.stop_price)

    def decision_unit(self, s: int, price: float) -> float:
        """``unit_cost`` of the buy a decision sized at ``price`` makes (its order type
        and prices from the execution settings)."""
        execution = self.execution
        limit, stop = execution.entry_prices(True, price)
        return self._unit(s, execution.order_type, price, limit, stop)

    def _unit(self, s: int, kind: str, ref: float, limit: float | None,
              stop: float | None) -> float:
        if kind == LIMIT and limit is not None:
            return limit * (1.0 + self._fee_max)
        margin = self._margin
        if self._vol_slippage:
            bar_range = self._bar_range(s)
            margin = max((1.0 + fee) * (1.0 + slip + vol * bar_range)
                         for fee, slip, vol in self._costs) - 1.0
        return (stop if kind == STOP and stop is not None else ref) * (1.0 + margin)

    def farm_name(self, order_id: int) -> str | None:
        farm = self._farm_of.get(order_id)
        return None if farm is None else farm.name

    # -- orders in: tagged, judged by the farm first ------------------------------------
    def _submit(self, s: int, order: Order, position: float, equity: float,
                last_close: float, agents: tuple[str, ...]) -> None:
        farm = self._current()
        self._farm_of[order.order_id] = farm
        self.recorder.rare_row("farm_orders", (order.order_id, order.decision_id, farm.name))
        super()._submit(s, order, position, equity, last_close, agents)
        tripped = self.farm_risk.farm_tripped
        if tripped is not None and tripped.flatten_on_trip and not self._flattening:
            self.flatten_farm(tripped, order.ts)

    def replace_working(self, s: int, ts: int) -> int:
        """Cancel the current farm's working entries on s (never another farm's)."""
        if not self.n_working[s]:
            return 0
        return self._cancel_working(s, ts, "replaced by a newer decision's order",
                                    entries_only=True, ledger=self._current().ledger)

    def _ledger_of(self, life: Order) -> Portfolio:
        return self._farm_of[life.order_id].ledger

    def _refused(self, life: Order, venue: SimVenue, qty: float, reason: str,
                 code: str) -> None:
        """A leg refused or timed out (in flight, any farm's turn): the fallback stays in
        the order's farm's wallet."""
        with self._as(self._farm_of[life.order_id]):
            super()._refused(life, venue, qty, reason, code)

    @contextmanager
    def _as(self, farm: Farm) -> Iterator[None]:
        """Orders made meanwhile are ``farm``'s (an order's own, in its later life)."""
        previous = self.farm_risk.farm
        self.farm_risk.farm = farm
        try:
            yield
        finally:
            self.farm_risk.farm = previous

    # -- matching: each farm a book of its own ------------------------------------------
    def _matcher(self, s: int, now: int, legs: list[Leg], volume: float) -> Matcher:
        matcher = super()._matcher(s, now, legs, volume)
        books: dict[int, Book] = {}
        of_farm: dict[int, Book] = {}
        for leg in legs:
            order_id = leg.order.order_id
            farm = self._farm_of[order_id]
            book = of_farm.get(farm.index)
            if book is None:
                book = of_farm[farm.index] = Book(
                    farm.ledger.qty[s], farm.free_cash(),
                    {k: list(v) for k, v in farm.reserved.items()})
            books[order_id] = book
        matcher.books = books
        return matcher

    def venue_path(self, s: int, ts: int, o: float, h: float, lo: float, c: float,
                   v: float) -> None:
        """``worst_case`` is judged farm by farm when several farms have legs working on
        s: each farm's legs follow the order of the bar's extremes that leaves the
        account (so that farm: only its legs move) worth less at the close, farms in the
        scenario's order, so a farm's fills never depend on another farm's orders. The
        fixed conventions (``ohlc``, ``olhc``) are one path for all."""
        if self.execution.intrabar != "worst_case":
            super().venue_path(s, ts, o, h, lo, c, v)
            return
        groups: dict[int, list[Leg]] = {}
        for leg in self._legs(s):
            groups.setdefault(self._farm_of[leg.order.order_id].index, []).append(leg)
        if len(groups) < 2:
            super().venue_path(s, ts, o, h, lo, c, v)
            return
        up = (o, h, lo, c)
        down = (o, lo, h, c)
        self._obs_ts[s] = -1  # orders made now (brackets) wait for the next observation
        for index in sorted(groups):
            legs = [leg for leg in groups[index] if leg.status == WORKING]
            if not legs:  # closed meanwhile (risk flattened the farm)
                continue
            first = self._matcher(s, ts, legs, v)
            first.path(legs, up)
            second = self._matcher(s, ts, legs, v)
            second.path(legs, down)
            self._commit(s, ts, second if second.value(c) < first.value(c) else first)

    def cancel_farm_entries(self, farm: Farm, ts: int, reason: str) -> None:
        """Cancel ``farm``'s working entry orders (a farm paused or killed); its brackets
        stay (they only reduce its positions), other farms' orders are untouched."""
        for life in list(self._live.values()):
            if (life.status in TERMINAL or life.closing is not None
                    or life.role in BRACKET_ROLES
                    or self._farm_of.get(life.order_id) is not farm):
                continue
            self._stop_order(life, ts, "cancelled", reason)

    # -- fills: the account and the order's farm --------------------------------------
    def _book_fill(self, life: Order, s: int, ts: int, venue: str, quantity: float,
                   price: float, fee: float, liquidity: str = TAKER) -> None:
        super()._book_fill(life, s, ts, venue, quantity, price, fee, liquidity)
        size = abs(quantity)
        if size > self.sizes[s]:
            self.sizes[s] = size
        farm = self._farm_of.get(life.order_id)
        if farm is None:
            if life.role == LIQUIDATION:  # the venue's, of the account: every holder's
                self._split_liquidation(s, OrderFilled(
                    self._fill_id, life.order_id, ts, life.symbol, venue, quantity, price,
                    fee, life.ref_price, liquidity))
                return
            # else only an adjustment no farm owes has none (``adjust``)
            assert life.role == "adjustment", f"order {life.order_id} ({life.role}) has no farm"
            self.unattributed.book_fill(s, quantity, price, fee)
            self.booked_unattributed = True
            return
        farm.ledger.book_fill(s, quantity, price, fee)
        held = farm.reserved.get(life.order_id)
        if held is not None and quantity > 0:  # as sim.matching.Matcher._book
            held[0] -= min(held[0], quantity * held[1])

    def _maybe_final(self, life: Order, now: int) -> None:
        super()._maybe_final(life, now)
        if life.status in TERMINAL:  # what it reserved is free again
            farm = self._farm_of.get(life.order_id)
            if farm is not None:
                farm.reserved.pop(life.order_id, None)

    def _attach_brackets(self, entry: Order, now: int) -> None:
        """The entry's farm's brackets, for that farm's position."""
        with self._as(self._farm_of[entry.order_id]):
            super()._attach_brackets(entry, now)

    # -- a live session: venue truths booked to the farm they belong to ------------------
    def adopt_farm(self, order_id: int, farm: Farm) -> None:
        """A restarted session takes back order ``order_id`` of ``farm`` (``live.farms``):
        its later fills book into that farm's ledger."""
        self._farm_of[order_id] = farm

    def owner(self, s: int) -> Farm | None:
        """The one farm whose ledger a difference on symbol s belongs to: the only farm
        that trades s or holds it (None: none, or several, so no one can tell)."""
        found = [f for f in self.farms if f.columns[s] or f.ledger.qty[s] != 0.0]
        return found[0] if len(found) == 1 else None

    def holders(self, s: int) -> str:
        """Which farm ledger a position difference on symbol s is booked to, in words
        (a reconciliation alert says it)."""
        farm = self.owner(s)
        if farm is not None:
            return f"farm {farm.name} (the one farm trading {self.symbols[s]})"
        held = ", ".join(f"{f.name} {f.ledger.qty[s]:+g}" for f in self.farms
                         if f.columns[s] or f.ledger.qty[s] != 0.0)
        return (f"no farm (farms {held or 'none'} trade {self.symbols[s]}: cannot tell "
                "whose ledger disagrees)")

    def adjust(self, s: int, now: int, quantity: float, price: float, reason: str,
               venue: str = "reconciliation") -> int:
        """``ExecutionDesk.adjust``, booked to the farm that owes it (``owner``), else
        unattributed (the account's, no farm's: ``check_ledgers`` counts it)."""
        farm = self.owner(s)
        if farm is not None:
            order_id = self._order_id + 1
            self._farm_of[order_id] = farm
            self.recorder.rare_row("farm_orders", (order_id, 0, farm.name))
        return super().adjust(s, now, quantity, price, reason, venue)

    def book_funding(self, s: int, ts: int, position: float, mark: float, rate: float,
                     payment: float, venue: str | None = None) -> None:
        """A venue's funding payment on the account's position, split among the ledgers
        holding it in proportion to their positions (the unattributed part included);
        the last holder takes what rounding leaves, so the parts add up exactly."""
        super().book_funding(s, ts, position, mark, rate, payment, venue)
        if not self._funding_farms:  # a venue's payment: split (a simulated one: _fund)
            self.split_funding(s, payment)

    def split_funding(self, s: int, payment: float) -> None:
        """Book ``payment`` on symbol s into the farm ledgers (see ``book_funding``)."""
        ledgers = [f.ledger for f in self.farms if f.ledger.qty[s] != 0.0]
        if self.unattributed.qty[s] != 0.0:
            ledgers.append(self.unattributed)
        held = math.fsum(ledger.qty[s] for ledger in ledgers)
        gross = math.fsum(abs(ledger.qty[s]) for ledger in ledgers)
        # Flat: the positions cancel (to the ledgers' tolerance: float residue of netted
        # sizes is not a position). Split in proportion to a residue, the parts would be
        # the payment times gross/residue, opposite and enormous (1e-9 paid on +1e-6 and
        # -3e-6 netted with an unattributed +2e-6 gave the farms millions each way).
        if not ledgers or abs(held) <= LEDGER_TOLERANCE * gross:
            self.unattributed.fund(payment)
            self.booked_unattributed = True
            return
        left = payment
        for ledger in ledgers[:-1]:
            part = payment * ledger.qty[s] / held
            ledger.fund(part)
            left -= part
        ledgers[-1].fund(left)

    def _split_liquidation(self, s: int, fill: OrderFilled) -> None:
        """The venue liquidated the account's position in s: every farm holding s has
        its position closed at the fill's price; the fee is shared in proportion to the
        size each loses."""
        holders = [(farm, farm.ledger.qty[s]) for farm in self.farms if farm.ledger.qty[s]]
        gross = math.fsum(abs(q) for _, q in holders)
        for farm, position in holders:
            fee = fill.fee * abs(position) / gross if gross else 0.0
            farm.ledger.apply(s, OrderFilled(
                fill.fill_id, fill.order_id, fill.ts, fill.symbol, fill.venue, -position,
                fill.price, fee, fill.ref_price, fill.liquidity))
            self.recorder.rare_row("farm_liquidations", (
                fill.ts, farm.name, fill.symbol, fill.order_id, position, fill.price, fee,
                "venue liquidation of the account"))

    # -- perpetual funding and margin, farm by farm -------------------------------------
    def _fund(self, item: tuple[int, float]) -> None:
        """Longs pay shorts ``rate`` x position x mark: each farm on its own position
        (``farm_funding``), the account on the netted one (``funding``, as without
        farms)."""
        s, rate = item
        mark = self.portfolio.price[s]
        now = self.clock.now
        for farm in self.farms:
            position = farm.ledger.qty[s]
            if position:
                payment = -rate * position * mark
                farm.ledger.fund(payment)
                self.recorder.rare_row("farm_funding", (
                    now, farm.name, self.symbols[s], position, mark, rate, payment))
        self._funding_farms = True  # the account's payment is not split again
        try:
            super()._fund(item)
        finally:
            self._funding_farms = False

    def margin_calls(self, ts: int) -> None:
        """Close the perpetual positions of each farm whose equity is below their
        maintenance margin, at the latest marks, with orders of that farm."""
        for farm in self.farms:
            if not farm.has_perp_position():
                continue
            equity = farm.ledger.equity()
            required = farm.maintenance_margin()
            if equity >= required:
                continue
            cause = (f"farm margin: equity {equity:,.6g} below its maintenance margin "
                     f"{required:,.6g}")
            for order_id, sym, position, price in self.flatten_farm(farm, ts,
                                                                    perps_only=True):
                self.recorder.rare_row("farm_liquidations", (
                    ts, farm.name, sym, order_id, position, price, None, cause))

    # -- risk-made orders, farm by farm -------------------------------------------------
    def flatten(self, ts: int) -> None:
        """The account flattens: each farm closes its own positions."""
        for farm in self.farms:
            self.flatten_farm(farm, ts)

    def flatten_farm(self, farm: Farm, ts: int, perps_only: bool = False
                     ) -> list[tuple[int, str, float, float]]:
        """Close ``farm``'s open positions (``perps_only``: on perpetuals) at their latest
        marks (decision 0 orders); (order id, symbol, position, mark) of each."""
        made: list[tuple[int, str, float, float]] = []
        if self._flattening:
            return made
        self._flattening = True
        previous = self.farm_risk.farm
        try:
            ledger = farm.ledger
            self.farm = farm
            for i, sym in enumerate(self.symbols):
                position = ledger.qty[i]
                if position == 0.0 or (perps_only and self.perp[i] is None):
                    continue
                made.append((self._order_id + 1, sym, position, ledger.price[i]))
                self._on_farm_flatten(farm, i)
                price = ledger.price[i]
                if self.n_working[i]:  # its entries and brackets: it closes the position
                    self._cancel_working(i, ts, "flattened by risk", ledger=ledger)
                self._order_id += 1
                order = Order(self._order_id, 0, ts, ts, sym, i, -position, price,
                              role=FLATTEN)
                self._obs_ts[i] = ts
                self._submit(i, order, position, ledger.equity(), price, ())
        finally:
            self._flattening = False
            self.farm_risk.farm = previous
        return made
