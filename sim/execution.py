"""The execution desk: takes an order from submission to its one terminal state.

The engine decides (agents, consensus, sizing) and hands the desk an order; the desk does
everything after that, on the engine's clock and through the engine's event queue:

* submit: risk check, route, send each leg to its venue (after latency, or timing out);
* arrival: a venue refuses a leg (down, random reject: the router falls back to a venue
  not tried yet) or accepts it into its book; a market order meeting the price shown now
  fills at once;
* matching (``sim.matching``, the one fill path; the desk's side is
  ``sim.desk_matching``) of the working legs against each market event the engine shows
  it (a bar's open and path, or a trade), and the commit of what matched: fills into the
  one ledger (``Portfolio``), leg states, the order's terminal state, recorded once;
* cancel/replace and time-in-force expiry;
* the orders the desk makes itself (``sim.desk_made``): brackets (take-profit and
  stop-loss, one cancels the other), risk-made flattening, perpetual liquidation and
  funding.

A venue is either simulated (its legs rest in ``SimVenue.book`` and ``sim.matching``
fills them) or external (``sim.desk_external``: a live venue behind an ``ExternalPort``,
whose legs the port reports on; fills go through the same booking, ``_book_fill``).

The engine reads ``watch[s]`` on every bar (one list lookup): it is set only while symbol
s needs the venue on every bar (working legs, or a perpetual position to watch for
liquidation), so the default path pays nothing else for any of this.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sim.clock import SimClock
from sim.desk_external import ExternalLegs, ExternalPort
from sim.desk_made import DeskMadeOrders
from sim.desk_matching import MarketEvents
from sim.event_queue import PRIORITY_ARRIVAL, PRIORITY_VENUE, EventQueue
from sim.messages import (
    OrderDenied,
)
from sim.orders import (
    BRACKET_ROLES,
    CANCELLED,
    DENIED,
    ENDED,
    ENTRY,
    EXPIRED,
    FILLED,
    MARKET,
    REJECTED,
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


class ExecutionDesk(MarketEvents, ExternalLegs, DeskMadeOrders):
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

    # -- booking what matched --------------------------------------------------------
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

    def _gross_exposure(self) -> float:
        portfolio = self.portfolio
        qty, price = portfolio.qty, portfolio.price
        return sum(abs(qty[i] * price[i]) for i in range(len(qty)) if qty[i] != 0.0)
