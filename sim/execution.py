"""The execution desk: takes an order from submission to its one terminal state.

The engine decides (agents, consensus, sizing) and hands the desk an order; the desk does
everything after that, on the engine's clock and through the engine's event queue:

* submit: risk check, route, send each leg to its venue (after latency, or timing out);
* arrival: a venue refuses a leg (down, random reject: the router falls back to a venue
  not tried yet) or accepts it into its book; a market order meeting the price shown now
  fills at once;
* matching (``sim.matching``, the one fill path) of the working legs against each market
  event the engine shows it (a bar's open and path, or a trade), and the commit of what
  matched: fills into the one ledger (``Portfolio``), leg states, the order's terminal
  state, recorded once;
* cancel/replace, time-in-force expiry, brackets (take-profit and stop-loss, one cancels
  the other), risk-made flattening, perpetual liquidation and funding.

A venue is either simulated (its legs rest in ``SimVenue.book`` and ``sim.matching``
fills them) or external (``attach_external``: a live venue behind an ``ExternalPort``).
An external leg is handed to its port when routed; the port does the I/O elsewhere and
reports back through ``external_accepted`` / ``external_fill`` / ``external_closed``, on
this same single thread. Fills go through the same booking (``_book_fill``) into the one
ledger; a cancel of an external leg is a request, and the leg ends when the venue says so.

The engine reads ``watch[s]`` on every bar (one list lookup): it is set only while symbol
s needs the venue on every bar (working legs, or a perpetual position to watch for
liquidation), so the default path pays nothing else for any of this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from sim.clock import SimClock
from sim.event_queue import PRIORITY_ARRIVAL, PRIORITY_EVENT, PRIORITY_VENUE, EventQueue
from sim.matching import Account, Matcher, Proposal
from sim.messages import (
    FundingPaid,
    OrderDenied,
    PositionLiquidated,
)
from sim.orders import (
    BRACKET_ROLES,
    CANCELLED,
    DENIED,
    ENDED,
    ENTRY,
    EXPIRED,
    FILLED,
    FLATTEN,
    LIMIT,
    LIQUIDATION,
    MARKET,
    REJECTED,
    STOP,
    STOP_LOSS,
    TAKE_PROFIT,
    TAKER,
    TERMINAL,
    WORKING,
    ExecutionSettings,
    Leg,
    Order,
    final_status,
)
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import RiskEngine
from sim.router import VenueRouter
from sim.venue import DOWN, SimVenue
from sim.view import MarketView


class ExternalPort(Protocol):
    """A venue whose orders are handled outside the simulation (a live exchange). Both
    calls only start work and return at once; outcomes come back through the desk's
    ``external_*`` methods."""

    def submit(self, leg: Leg, leg_no: int) -> None: ...

    def cancel(self, leg: Leg, code: str, reason: str) -> None: ...


class ExecutionDesk:
    """Order management for one engine: owns the live orders, the order and fill ids, and
    every step of an order's life after the decision that made it."""

    def __init__(
        self,
        symbols: Sequence[str],
        views: Sequence[MarketView],
        risk: RiskEngine,
        router: VenueRouter,
        portfolio: Portfolio,
        recorder: Recorder,
        queue: EventQueue,
        clock: SimClock,
        execution: ExecutionSettings,
        *,
        dispatch_before: Callable[[int | None, int], None],
        on_flatten: Callable[[int], None],
    ) -> None:
        """``dispatch_before(ts, priority)``: the engine's dispatch of queued events due
        before that key (legs that reach a venue now are delivered through it);
        ``on_flatten(s)``: called as risk flattens symbol s (the engine forgets its
        decision there)."""
        self.symbols = tuple(symbols)
        self.views = views
        self.risk = risk
        self.router = router
        self.portfolio = portfolio
        self.recorder = recorder
        self.queue = queue
        self.clock = clock
        self.execution = execution
        self._dispatch_before = dispatch_before
        self._on_flatten = on_flatten
        n = len(self.symbols)
        self._order_id = 0
        self._fill_id = 0
        # Risk follows the ledger's equity book: shown its rows when an order is checked
        # and before they are written (never per bar), never through the recorder.
        self._track_equity = risk.limits.needs_equity_history
        if self._track_equity:
            portfolio.book.follow(risk.observe_equity)
        self._flattening = False
        # Working orders live in their venue's book (sim.orders, sim.matching).
        self._live: dict[int, Order] = {}  # orders not yet terminal
        self.watch = [False] * n  # read by the engine on every bar
        self.n_working = [0] * n
        self._leg_seq = 0
        self._obs_ts = [-1] * n  # time of the price last shown to symbol s's orders
        self._budget: list[tuple[int, dict[str, float]]] = [(-1, {})] * n
        venues = getattr(router, "venues", ())
        self._venue_named = {v.name: v for v in venues}  # router.venue's, without the call
        self._venues_of: list[tuple[SimVenue, ...]] = [
            tuple(v for v in venues if sym in v.symbols) for sym in self.symbols]
        self.perp: list[SimVenue | None] = [
            next((v for v in vs if v.kind == "perp"), None) for vs in self._venues_of]
        self._vol_slippage = any(v.volatility_slippage for v in venues)
        self.tick_volume = [0.0] * n  # the last trade's amount (tick replay), by symbol
        self._ending = False
        self._brackets = execution.brackets
        # The immediate market fill needs no matcher while no venue prices volume or
        # volatility or keeps margin (SimVenue.execute: the same price and cash rules).
        self._fast = not any(v.max_participation is not None or v.kind == "perp"
                             or v.impact_bps or v.volatility_slippage for v in venues)
        # Venues bound to an outside port (live): never matched here (attach_external).
        self.external: dict[str, ExternalPort] = {}
        # While set, every order is denied before routing with this reason (check "hold"):
        # a live session's warm-up must not send orders to a real venue.
        self.hold: str | None = None

    # -- orders in -------------------------------------------------------------------
    def submit_decision(
        self, s: int, ts: int, price: float, qty: float, decision_id: int, decision_ts: int,
        position: float, equity: float, last_close: float, agents: tuple[str, ...],
        replaces: int,
    ) -> None:
        """A decision's order of ``qty``, sized at ``price`` (shown to the symbol now):
        the order type and its prices come from the execution settings."""
        self._order_id = order_id = self._order_id + 1
        execution = self.execution
        if execution.order_type == MARKET:
            life = Order(order_id, decision_id, ts, decision_ts, self.symbols[s], s, qty,
                         price, MARKET, None, None, execution.tif, False, False, ENTRY, 0,
                         replaces)
        else:
            limit, stop = execution.entry_prices(qty > 0, price)
            life = Order(order_id, decision_id, ts, decision_ts, self.symbols[s], s, qty,
                         price, execution.order_type, limit, stop, execution.tif,
                         execution.post_only, False, ENTRY, 0, replaces)
        self._obs_ts[s] = ts
        self._submit(s, life, position, equity, last_close, agents)

    def replace_working(self, s: int, ts: int) -> int:
        """Cancel symbol s's working entry orders for a newer decision's order (cancel/
        replace); the id of the last one cancelled, 0 if none."""
        if not self.n_working[s]:
            return 0
        return self._cancel_working(s, ts, "replaced by a newer decision's order",
                                    entries_only=True)

    def _submit(
        self, s: int, life: Order, position: float, equity: float, last_close: float,
        agents: tuple[str, ...],
    ) -> None:
        """Risk-check, route and send one order (decision-, risk- or bracket-made), new
        (``life``: the one object that carries it from here to its terminal state).

        While the desk holds (``hold``: a live session's warm-up) an order is denied
        before risk judges it: the held bars are history, and judging them would move the
        risk engine's day, peak and breaker with stale prices (a resumed run's restored
        state among them)."""
        risk = self.risk
        ts = life.ts
        if self.hold is None:
            if self._track_equity:
                self.portfolio.book.catch_up(ts)
            gross = self._gross_exposure() if risk.needs_account else 0.0
            denial = risk.check(life, position, equity=equity, gross_exposure=gross,
                                last_close=last_close, agents=agents)
            tripped = risk.tripped_now
        else:
            denial = OrderDenied(life.order_id, ts, life.symbol, "hold", self.hold)
            tripped = False
        ttl = self.execution.ttl_ns
        if ttl is not None and life.role not in BRACKET_ROLES:
            life.expires_at = ts + ttl
        rec = self.recorder
        rec.order_event_row((life.order_id, ts, s, "submitted", None, life.quantity,
                             life.ref_price, life.role))
        if denial is None:
            route = self.router.legs(life.symbol, life.quantity, life.ref_price,
                                     life.reduce_only)
            if route is not None:
                risk.on_order_sent(life, agents)
                candidates, elapsed, legs = route
                route_row = rec.route_row
                for venue, qty, reason in legs:
                    route_row((life, ts, s, venue.name, candidates, qty, reason, elapsed))
                self._live[life.order_id] = life
                if life.expires_at is not None:
                    self.queue.push(life.expires_at, PRIORITY_ARRIVAL, self._expire_order, life)
                self._send(life, legs, ts)
            else:
                denial = OrderDenied(life.order_id, ts, life.symbol, "route",
                                     self.router.why_not(life.symbol))
        if denial is not None:
            life.status = DENIED
            life.reason = denial.reason
            rec.order(life)
            rec.order_event(life.order_id, ts, s, DENIED, None, life.quantity, None,
                            denial.reason)
            rec.denial(denial, s)
        if tripped and risk.limits.flatten_on_trip:
            self.flatten(ts)

    # -- the order's way to the venue ------------------------------------------------
    def _send(self, life: Order, legs: Sequence[tuple[SimVenue, float, str]],
              now: int) -> None:
        """Send routed legs: each reaches its venue after the processing and network
        latency (zero unless ``execution.latency``), or times out on the way."""
        latency = self.execution.latency
        if not latency and len(legs) == 1 and not self.external:
            heap = self.queue.heap
            if not heap or (heap[0].ts, heap[0].priority) > (now, PRIORITY_VENUE):
                # The leg would be the next event dispatched (nothing queued is due before
                # it): deliver it without the queue's round trip, then what is due after.
                life.in_flight += 1
                clock = self.clock
                if clock.now != now:
                    clock.advance_to(now)
                venue, qty, _ = legs[0]
                self._reach(life, venue, qty)
                if heap:
                    self._dispatch_before(now, PRIORITY_VENUE + 1)
                return
        immediate = False
        external = self.external
        for venue, qty, _ in legs:
            if external and venue.name in external:
                self._send_external(life, venue, qty, now)
                continue
            life.in_flight += 1
            if not latency:
                immediate = True
                self.queue.push(now, PRIORITY_VENUE, self._arrive, (life, venue, qty))
                continue
            delay = self.execution.processing_ns + venue.network_latency_ns()
            timeout = venue.timeout_ms
            if timeout is not None and delay > timeout * 1_000_000:
                self.queue.push(now + round(timeout * 1_000_000), PRIORITY_ARRIVAL,
                                self._timed_out, (life, venue, qty))
                continue
            arrival = now + delay
            if arrival == now:
                immediate = True
            self.queue.push(arrival, PRIORITY_VENUE if arrival == now else PRIORITY_ARRIVAL,
                            self._arrive, (life, venue, qty))
        if immediate:
            self._dispatch_before(now, PRIORITY_VENUE + 1)

    def _arrive(self, message: tuple[Order, SimVenue, float]) -> None:
        """A queued leg reaches its venue (``_reach``)."""
        self._reach(*message)

    def _reach(self, life: Order, venue: SimVenue, qty: float) -> None:
        """A leg reaches its venue: refused (down, random reject: the router falls back),
        dropped (its order was cancelled meanwhile) or accepted into the book. Arriving
        at the moment the engine shows the symbol's price, it meets that price at once;
        otherwise it waits for the first price observed after it (the next open)."""
        life.in_flight -= 1
        now = self.clock.now
        s = life.s
        rec = self.recorder
        if life.closing is not None:
            code, reason = life.closing
            life.outcomes += ENDED[code]
            life.reason = reason
            self._maybe_final(life, now)
            return
        if venue.health == DOWN:
            self._refused(life, venue, qty, "venue down at arrival", REJECTED)
            return
        if venue.reject_rate > 0.0 and venue.rejects():  # no call while it cannot
            self._refused(life, venue, qty, "rejected by the venue (reject rate)", REJECTED)
            return
        if life.arrival_ts is None:
            life.arrival_ts = now
        life.venue = venue.name
        rec.order_event_row((life.order_id, now, s, "arrived", venue.name, qty, None, ""))
        portfolio = self.portfolio
        if (self._fast and life.kind == MARKET and not life.reduce_only
                and now == self._obs_ts[s]):
            # The immediate case of matching: a market order meeting the price now.
            taken = venue.take(life.order_id, life.symbol, qty, portfolio.price[s],
                               portfolio.cash)
            if taken is None:
                life.outcomes += ENDED[REJECTED]
                life.reason = "insufficient cash"
            else:
                self._book_fill(life, s, now, venue.name, *taken)
                life.outcomes += ENDED[FILLED]
            self._maybe_final(life, now)
            return
        self._leg_seq += 1
        leg = Leg(life, venue, qty, qty, now, self._leg_seq)
        life.add_leg(leg)
        venue.book.setdefault(s, []).append(leg)
        self.n_working[s] += 1
        self.watch[s] = True
        if now == self._obs_ts[s]:
            self._match(s, now, portfolio.price[s], [leg], self._bar_volume(s, now))

    def _refused(self, life: Order, venue: SimVenue, qty: float, reason: str,
                 code: str) -> None:
        """A venue refused a leg of ``qty`` or it timed out: the router tries the venues
        not tried yet; with none left the leg ends ``code``. Nothing is sent twice."""
        now = self.clock.now
        s = life.s
        life.tried += (venue.name,)
        self.recorder.order_event(life.order_id, now, s, "venue_" + code, venue.name,
                                  qty, None, reason)
        route = self.router.legs(life.symbol, qty, life.ref_price, life.reduce_only,
                                 exclude=frozenset(life.tried))
        if route is not None:
            candidates, elapsed, found = route
            legs = tuple((v, q, f"fallback: {venue.name} {reason}; {why}")
                         for v, q, why in found)
            for v, q, why in legs:
                self.recorder.route_row((life, now, s, v.name, candidates, q, why, elapsed))
            self._send(life, legs, now)
            return
        life.outcomes += ENDED[code]
        life.reason = f"{reason}; no other venue could take it"
        self._maybe_final(life, now)

    def _timed_out(self, message: tuple[Order, SimVenue, float]) -> None:
        life, venue, qty = message
        life.in_flight -= 1
        if life.closing is not None:
            life.outcomes += ENDED[life.closing[0]]
            self._maybe_final(life, self.clock.now)
            return
        self._refused(life, venue, qty,
                      f"timed out after {venue.timeout_ms:g} ms in flight", EXPIRED)

    # -- external venues (live) ----------------------------------------------------------
    def attach_external(self, name: str, port: ExternalPort) -> None:
        """Send the legs routed to venue ``name`` to ``port`` instead of matching them
        here (the venue keeps its routing settings: fees, lot, tick, health)."""
        venue = self.router.venue(name)
        self.external[name] = port
        self._venues_of = [tuple(v for v in vs if v is not venue) for vs in self._venues_of]
        self.perp = [None if p is venue else p for p in self.perp]

    def _send_external(self, life: Order, venue: SimVenue, qty: float, now: int) -> None:
        """A leg of ``qty`` goes to an external venue: it works (in the venue's book,
        which nothing here matches) until the port reports it closed."""
        s = life.s
        self._leg_seq += 1
        leg = Leg(life, venue, qty, qty, now, self._leg_seq)
        life.add_leg(leg)
        life.venue = venue.name
        venue.book.setdefault(s, []).append(leg)
        self.n_working[s] += 1
        self.watch[s] = True
        self.recorder.order_event(life.order_id, now, s, "sent", venue.name, qty, None, "")
        self.external[venue.name].submit(leg, len(life.legs))

    def external_accepted(self, leg: Leg, now: int) -> None:
        """The venue took the leg (it rests, or filled at once)."""
        life = leg.order
        if life.arrival_ts is None:
            life.arrival_ts = now
        self.recorder.order_event(life.order_id, now, life.s, "arrived", leg.venue.name,
                                  leg.quantity, None, "")

    def external_fill(self, leg: Leg, now: int, quantity: float, price: float, fee: float,
                      liquidity: str) -> int:
        """Book a fill the venue reported (signed ``quantity``); returns its fill id."""
        life = leg.order
        leg.remaining -= quantity
        self._book_fill(life, life.s, now, leg.venue.name, quantity, price, fee, liquidity)
        return self._fill_id

    def external_closed(self, leg: Leg, now: int, code: str, reason: str) -> None:
        """The venue says the leg is done (``code``: filled, cancelled, expired, rejected)."""
        self._close_leg(leg, code, reason, confirmed=True)
        self._maybe_final(leg.order, now)
        self._rewatch(leg.order.s)

    def external_refused(self, leg: Leg, reason: str) -> None:
        """The external venue of ``leg`` never got it (unreachable, nothing filled): the
        leg ends rejected and the router tries the venues not tried yet, as after a simulated
        venue's refusal (``_refused``: a fallback is a routing decision with its reason;
        with none left the order ends rejected)."""
        life = leg.order
        if leg.status != WORKING:
            return
        s = life.s
        leg.status = REJECTED
        leg.venue.book[s].remove(leg)
        self.n_working[s] -= 1  # it stays among the order's legs, numbered, never working
        self._refused(life, leg.venue, leg.quantity, reason, REJECTED)  # the engine's clock
        self._rewatch(s)

    def adopt_external(self, life: Order, venue: str, quantity: float) -> Leg:
        """Take back an order a previous process sent to external venue ``venue`` (a
        restart): it works again here until its port reports it closed."""
        s = life.s
        self._live[life.order_id] = life
        self._leg_seq += 1
        leg = Leg(life, self.router.venue(venue), quantity, quantity, life.ts, self._leg_seq)
        life.add_leg(leg)
        life.venue = venue
        leg.venue.book.setdefault(s, []).append(leg)
        self.n_working[s] += 1
        self.watch[s] = True
        return leg

    def working_external(self) -> list[Leg]:
        """External legs still working, oldest first."""
        return [leg for life in self._live.values() for leg in life.legs
                if leg.status == WORKING and leg.venue.name in self.external]

    def holders(self, s: int) -> str | None:
        """Which ledger a reconciliation adjustment on symbol s is booked to, in words
        (None: the one ledger there is; farms name theirs)."""
        return None

    def farm_name(self, order_id: int) -> str | None:
        """The farm whose order ``order_id`` is (None: a run without ``[[farms]]``)."""
        return None

    def restore_ids(self, order_id: int, fill_id: int) -> None:
        """Continue a stored run: new orders and fills number after these."""
        self._order_id = max(self._order_id, order_id)
        self._fill_id = max(self._fill_id, fill_id)

    def adjust(self, s: int, now: int, quantity: float, price: float, reason: str,
               venue: str = "reconciliation") -> int:
        """Book a position adjustment (reconciliation with a venue: the venue is the truth)
        as a filled order of role "adjustment" at ``price`` without fee, through the one
        fill path (its fill's ``venue``: the account's, when a session has several);
        returns its order id."""
        self._order_id += 1
        life = Order(self._order_id, 0, now, now, self.symbols[s], s, quantity, price,
                     role="adjustment", reason=reason)
        life.arrival_ts = now
        self.recorder.order_event(life.order_id, now, s, "submitted", None, quantity, price,
                                  "adjustment")
        self._book_fill(life, s, now, venue, quantity, price, 0.0, "adjustment")
        life.outcomes += ENDED[FILLED]
        self._maybe_final(life, now)
        return life.order_id

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

    # -- booking what matched --------------------------------------------------------
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

    def _book_fill(self, life: Order, s: int, ts: int, venue: str, quantity: float,
                   price: float, fee: float, liquidity: str = TAKER) -> None:
        """Book one fill of ``life`` (signed ``quantity`` at ``price``, on ``venue``) into
        the one ledger, the order and the ``fills`` rows: from its fields (an
        ``OrderFilled`` is made only where the bus publishes it, ``sim.observed``)."""
        self._fill_id = fill_id = self._fill_id + 1
        portfolio = self.portfolio
        portfolio.book_fill(s, quantity, price, fee)
        life.filled += quantity
        life.filled_notional += abs(quantity) * price
        life.fees += fee
        life.fill_ts = ts
        self.recorder.fill_row((fill_id, life.order_id, ts, s, venue, quantity, price, fee,
                                life.ref_price, liquidity, portfolio.cash, portfolio.qty[s],
                                portfolio.realized[s]))

    def _close_leg(self, leg: Leg, code: str, reason: str, confirmed: bool = False) -> None:
        if leg.status != WORKING:
            return
        if not confirmed and self.external and leg.venue.name in self.external:
            self.external[leg.venue.name].cancel(leg, code, reason)  # ends when confirmed
            return
        leg.status = code
        book = leg.venue.book[leg.order.s]
        book.remove(leg)
        self.n_working[leg.order.s] -= 1
        life = leg.order
        life.outcomes += ENDED[code]
        if reason:
            life.reason = reason

    def _maybe_final(self, life: Order, now: int) -> None:
        """Record the order's one terminal state once nothing of it is left anywhere."""
        if life.status in TERMINAL or life.in_flight or (life.legs and any(
                leg.status == WORKING for leg in life.legs)):
            return
        life.status = final_status(life)
        self._live.pop(life.order_id, None)
        rec = self.recorder
        rec.order(life)
        filled = life.filled  # Order.avg_fill_price, without the property's call
        rec.order_event_row((life.order_id, now, life.s, life.status, life.venue, filled,
                             life.filled_notional / abs(filled) if filled else None,
                             life.reason))
        if (life.filled and self._brackets and life.role not in BRACKET_ROLES
                and not self._ending):
            self._attach_brackets(life, now)
        elif self.n_working[life.s]:
            ledger = self._ledger_of(life)
            if ledger.qty[life.s] == 0.0:
                self._cancel_working(life.s, now, "position closed", reduce_only=True,
                                     ledger=ledger)

    def _ledger_of(self, life: Order) -> Portfolio:
        """The ledger an order books into besides the account (a farm's, in a farm run:
        ``sim.farm_desk``); its brackets and reduce-only orders follow that position."""
        return self.portfolio

    def _rewatch(self, s: int) -> None:
        self.watch[s] = bool(self.n_working[s]) or (
            self.perp[s] is not None and self.portfolio.qty[s] != 0.0)

    # -- cancels, expiry, brackets ---------------------------------------------------
    def end_run(self) -> None:
        """Cancel the orders still working (the run ended); no new brackets from now."""
        self._ending = True
        for life in list(self._live.values()):
            if life.status not in TERMINAL and life.closing is None:
                self._stop_order(life, self.clock.now, CANCELLED, "run ended")

    def _cancel_working(self, s: int, now: int, reason: str, *, entries_only: bool = False,
                        reduce_only: bool = False, code: str = CANCELLED,
                        ledger: Portfolio | None = None) -> int:
        """Cancel symbol s's live orders (``entries_only``: not brackets; ``reduce_only``:
        only reduce-only ones; ``ledger``: only those booking into it, ``_ledger_of``).
        Returns the id of the last one cancelled (0: none)."""
        last = 0
        for life in list(self._live.values()):
            if life.s != s or life.status in TERMINAL or life.closing is not None:
                continue
            if entries_only and life.role in BRACKET_ROLES:
                continue
            if reduce_only and not life.reduce_only:
                continue
            if (ledger is not None and ledger is not self.portfolio
                    and self._ledger_of(life) is not ledger):  # the account's: all
                continue
            self._stop_order(life, now, code, reason)
            last = life.order_id
        return last

    def _stop_order(self, life: Order, now: int, code: str, reason: str) -> None:
        if life.in_flight:
            life.closing = (code, reason)  # legs still on their way drop on arrival
        for leg in list(life.legs):
            self._close_leg(leg, code, reason)
        self._maybe_final(life, now)
        self._rewatch(life.s)

    def _expire_order(self, life: Order) -> None:
        if life.status not in TERMINAL and life.closing is None:
            self._stop_order(life, self.clock.now, EXPIRED, "time in force ran out (order_ttl)")

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

    def _gross_exposure(self) -> float:
        portfolio = self.portfolio
        qty, price = portfolio.qty, portfolio.price
        return sum(abs(qty[i] * price[i]) for i in range(len(qty)) if qty[i] != 0.0)

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
