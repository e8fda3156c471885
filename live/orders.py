"""The venue-neutral order manager of a live run: the one OMS for any real venue.

The desk hands a routed leg to ``submit`` and a cancel to ``cancel``; both return at once.
The manager composes two halves: ``live.tracking.LegBook`` (what it knows of its legs,
their write-ahead rows and durable records) and ``live.requests.VenueRequests`` (the I/O:
placing, lookups by cloid, cancels and account snapshots through the adapter's contract,
``live.port.VenueAdapter``, in tasks that only deliver messages). What the venue reports
reaches the kernel as messages: the requests' answers and an adapter's pushes
(``OrdersUpdated``, ``FillsReported``, ``Reconnected``) go on the live runner's queue,
and its single consumer calls ``apply`` with each; only here are they applied to the
desk (``external_accepted`` / ``external_fill`` / ``external_closed``): fills are booked
by the desk's one fill path into the one ledger and recorded in the run's usual tables.
An adapter translates and does I/O; it never sees the desk.

Durability: a leg's row is written ahead (``LegBook.write_ahead``) when it is submitted,
and its request starts only after that (``start_requests``). Each booked fill's venue
trade id is written with the ``fills`` row in one transaction, and a trade id is booked
once; funding likewise, once per (coin, time), payments up to the run's start not the
run's.

Outcomes -> the desk's terminal states: filled -> filled; an IOC's (or a fired market
trigger's) unfilled rest canceled by the venue, or an IOC that matched nothing (status
``expired``) -> expired; canceled after the desk asked (replace, ``order_ttl``, run end)
-> that request's state; canceled by the venue on its own (margin, reduce-only) ->
cancelled with the venue's word; refused -> rejected with the venue's message; not found
at the venue once nothing is in flight -> rejected ("never placed"). A leg ends only when
every fill the venue reports for it is booked.

Several accounts in one session (``fallback``: the runner sets it when a second one is
attached): a leg that never reached its venue (``OrderNotSent``: unreachable) ends
rejected there, its scenario venues are marked down in the router, and the desk routes
the order again among the venues not tried (``ExecutionDesk.external_refused``: the
fallback is a ``routing_decisions`` row with the reason). The venue is up again once it
answers (a snapshot, a placement).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from live.journal import OrderJournal
from live.port import (
    DescribingAdapter,
    FillsReported,
    OrdersUpdated,
    PreparedOrder,
    PushingAdapter,
    Reconnected,
    VenueAdapter,
    VenueMessage,
)
from live.records import Durable, client_order_id
from live.requests import Placed, Refreshed, VenueRequests
from live.shapes import order_request, reduce_only
from live.tracking import LegBook, Tracked, VenueShare
from live.venue_types import (
    CANCELED,
    EXPIRED,
    FILLED,
    REJECTED,
    RESTING,
    TRIGGERED,
    FundingPayment,
    OrderState,
    VenueFill,
)
from sim import orders as lifecycle
from sim.execution import ExecutionDesk
from sim.orders import IOC, MARKET, Leg, Order
from sim.venue import DOWN, UP

__all__ = ["OrderManager", "OrderPort", "Placed", "Refreshed", "Tracked"]

_EPS = 1e-9


class Inbox(Protocol):
    """Where an order port delivers its messages: the runner's queue, or a tag per account
    in front of it (several accounts in one session)."""

    def put_nowait(self, msg: object) -> None: ...


class OrderPort(Protocol):
    """One venue account as the external venue of one live run, as the core (runner,
    reconciliation, recovery, funding) drives it: it tracks the run's legs at the venue
    (``live.tracking.Tracked``, by cloid and venue id), books what the venue reports through
    the desk's one fill and funding paths, and keeps its rows for the next commit
    (``take_records``). Its state changes only through these methods."""

    venue: VenueAdapter
    desk: ExecutionDesk
    coins: dict[str, str]  # symbol -> the venue's coin
    symbol_of: dict[str, str]  # coin -> symbol
    now_ns: Callable[[], int]
    generation: int  # bumped by every order event: reconciliation needs quiet
    booked: set[int]  # venue trade ids booked in this run (read only)
    funded: set[tuple[str, int]]  # (coin, time ms) of funding booked (read only)
    account_outside: float | None
    account_alerted: float | None
    differences: int  # reconciliation differences alerted so far
    last_difference: tuple[str, str]  # the last one's kind and what it said

    venue_name: str | None  # several accounts: the scenario venue its rows are stored under
    share: VenueShare | None  # several accounts: its part of the ledger (reconciliation)

    @property
    def by_cloid(self) -> Mapping[str, Tracked]: ...
    @property
    def by_oid(self) -> Mapping[int, Tracked]: ...
    @property
    def settled(self) -> bool: ...

    def submit(self, leg: Leg, leg_no: int) -> None: ...
    def cancel(self, leg: Leg, code: str, reason: str) -> None: ...

    async def start(self, queue: Inbox) -> None: ...
    async def close(self) -> None: ...
    def apply(self, msg: VenueMessage) -> None: ...
    def start_requests(self) -> None: ...
    def take_records(self) -> Durable: ...
    def request_snapshot(self) -> None: ...
    def refresh(self, t: Tracked, delay: float = 0.0) -> None: ...
    def cancel_foreign(self, coin: str, oid: int) -> None: ...
    def book(self, fill: VenueFill) -> bool: ...
    def book_funding(self, pay: FundingPayment) -> bool: ...
    def record_account(self, account_value: float, store_equity: float) -> None: ...
    def note_account_difference(self, diff: float | None) -> None: ...
    def know_booked(self, tids: Iterable[int]) -> None: ...
    def restore_funding(self, since_ms: int | None, booked: Iterable[tuple[str, int]],
                        outside: float | None) -> None: ...
    def adopt(self, leg: Leg, cloid: str, coin: str, size: float, ioc: bool,
              booked: float, *, oid: int | None = None,
              close: tuple[str, str] | None = None) -> Tracked: ...
    def alert(self, kind: str, symbol: str | None, coin: str | None,
              store_value: float | None, venue_value: float | None, action: str,
              detail: str) -> None: ...
    def mark_up(self) -> None: ...
    def mark_down(self, reason: str) -> None: ...


class OrderManager(LegBook):
    """The legs of one live run at one venue account (``venue``: its adapter, used only
    through the contract of ``live.port``)."""

    def __init__(self, venue: VenueAdapter, desk: ExecutionDesk, run_id: str,
                 coins: Mapping[str, str], *,
                 now_ns: Callable[[], int] = time.time_ns, refresh_s: float = 0.5,
                 poll_s: float = 1.0, journal: OrderJournal | None = None) -> None:
        super().__init__(run_id, coins, now_ns=now_ns, journal=journal)
        if poll_s <= 0:
            raise ValueError(f"poll_s must be positive, got {poll_s}")
        self.venue = venue
        self.desk = desk
        # the farm of an order, journalled with it ([[farms]]; a desk without farms, or a
        # stand-in for one, has none)
        self._farm_name: Callable[[int], str | None] = getattr(
            desk, "farm_name", lambda order_id: None)
        self.refresh_s = refresh_s
        self.poll_s = poll_s
        self.polls = 0  # lookups rounds of an adapter that does not push (see ``start``)
        self.requests = VenueRequests(venue)
        self._outbox: list[Callable[[], None]] = []  # requests of this step, not started
        self._closed = False
        self.fallback = False  # another account can take what this one cannot reach
        self.down: str | None = None  # why this account is marked down (fallback only)

    # -- the venue port (called by the desk) -----------------------------------------------

    def submit(self, leg: Leg, leg_no: int) -> None:
        life = leg.order
        cloid = client_order_id(self.run_id, life.order_id, leg_no)
        coin = self.coins[life.symbol]
        prepared = self.prepare(life, leg, cloid, coin)
        t = Tracked(leg, cloid, coin, prepared.size,
                    life.kind == MARKET or life.tif == IOC)
        self.track(t)
        now = self.now_ns()
        self.write_ahead({  # durable before the request can start
            "run_id": self.run_id, "order_id": life.order_id, "leg": leg_no, "cloid": cloid,
            "venue": leg.venue.name, "symbol": life.symbol, "coin": coin,
            "quantity": leg.quantity, "size": prepared.size, "price": prepared.price,
            "venue_type": self.venue_type(prepared), "reduce_only": reduce_only(life),
            "decision_id": life.decision_id, "ts": life.ts, "decision_ts": life.decision_ts,
            "ref_price": life.ref_price, "kind": life.kind, "tif": life.tif,
            "limit_price": life.limit_price, "stop_price": life.stop_price,
            "post_only": life.post_only, "role": life.role, "parent_id": life.parent_id,
            "replaces": life.replaces, "status": "sent", "oid": None, "filled": 0.0,
            "message": prepared.rejection, "sent_ns": now, "updated_ns": now,
            "farm": self._farm_name(life.order_id)})
        requests = self.requests
        if prepared.rejection is not None:  # refused locally: nothing is sent
            state = OrderState(cloid, coin, REJECTED, prepared.size, message=prepared.rejection)
            self._outbox.append(lambda: requests.deliver_later(Placed(cloid, state)))
        else:
            self._outbox.append(lambda: requests.place(prepared))

    def cancel(self, leg: Leg, code: str, reason: str) -> None:
        t = self.by_leg.get(id(leg))
        if t is None or t.done is not None:
            return
        if t.close is None:
            t.close = (code, reason)
        if not t.placing and not t.cancel_sent:
            self._send_cancel(t)

    # -- order shapes ----------------------------------------------------------------------

    def prepare(self, life: Order, leg: Leg, cloid: str, coin: str) -> PreparedOrder:
        """The leg as the venue's order (its adapter's ``prepare``); no I/O. A market
        order's slippage bound is taken from the symbol's last close."""
        close = self.desk.views[life.s].close if life.kind == MARKET else float("nan")
        return self.venue.prepare(order_request(life, leg, cloid, coin, close))

    def venue_type(self, prepared: PreparedOrder) -> str:
        """The venue's order type of ``prepared``, for the ``venue_orders`` row."""
        if isinstance(self.venue, DescribingAdapter):
            return self.venue.venue_type(prepared)
        return "none" if prepared.rejection is not None else "order"

    # -- the runner's side -----------------------------------------------------------------

    async def start(self, queue: Inbox) -> None:
        """Deliver messages to ``queue`` from now on (the adapter's pushes too); look up
        the legs a previous process left (a restart). An adapter that does not push is
        polled instead: every ``poll_s`` each leg that rests there is looked up, so a
        fill or a cancel at the venue is learnt within that, not at reconciliation."""
        self.requests.bind(queue.put_nowait)
        if isinstance(self.venue, PushingAdapter):
            await self.venue.connect(queue.put_nowait)
        else:
            self.requests.spawn(self._poll())
        for t in list(self.by_cloid.values()):  # legs a previous process left (a restart)
            if not t.placing:
                self.refresh(t)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            self.polls += 1
            for t in list(self.by_cloid.values()):
                if not t.placing and t.done is None:
                    self.refresh(t)

    async def close(self) -> None:
        self._closed = True
        await self.requests.close()
        if isinstance(self.venue, PushingAdapter):
            await self.venue.disconnect()

    def start_requests(self) -> None:
        """Start the requests submitted since the last call (write-ahead: their rows are
        in the journal already). An adapter may write an order's request before its
        ``place`` returns: then it is on the wire when this returns."""
        if self._closed:  # the session is over: what is left is resolved by the next one
            return
        outbox, self._outbox = self._outbox, []
        for start in outbox:
            start()

    @property
    def idle(self) -> bool:
        """Nothing of ours is working or in flight at the venue."""
        return not self.by_cloid and not self._outbox

    @property
    def settled(self) -> bool:
        """Nothing of ours is in flux at the venue: no request waits, and every leg still
        working rests there as sent (a bracket guarding a position, a stop entry), with
        no cancel asked and no outcome or fill pending."""
        return not self._outbox and all(
            t.status == "resting" and not (t.placing or t.refreshing or t.triggered)
            and t.close is None and t.done is None for t in self.by_cloid.values())

    def apply(self, msg: VenueMessage) -> None:
        """Apply one message of the venue (an answer, a push) to the legs and the desk."""
        if isinstance(msg, Placed):
            self._placed(msg)
        elif isinstance(msg, Refreshed):
            self._refreshed(msg)
        elif isinstance(msg, FillsReported):
            for fill in msg.fills:
                self.book(fill)
        elif isinstance(msg, OrdersUpdated):
            for state in msg.states:
                t = self.find(state.cloid, state.oid)
                if t is not None and not t.placing:
                    self._apply_state(t, state)
        elif isinstance(msg, Reconnected):  # anything may have been missed: look it all up
            for t in list(self.by_cloid.values()):
                if not t.placing:
                    self.refresh(t)

    # -- applying what the venue said ------------------------------------------------------

    def _placed(self, msg: Placed) -> None:
        t = self.by_cloid.get(msg.cloid)
        if t is None:
            return
        t.placing = False
        if msg.state is not None:
            self.mark_up()
            self._apply_state(t, msg.state)
        elif msg.unresolved:
            t.error = msg.error
            self.set_status(t, "unresolved", msg.error)
            self.refresh(t, delay=self.refresh_s)
        elif self.fallback and t.booked == 0.0:  # another account may take it
            self._fall_back(t, f"venue unreachable: {msg.error}")
        else:  # nothing reached the venue (refused before running, or never connected)
            t.done = (lifecycle.REJECTED, f"venue unreachable: {msg.error}")
            self._finish(t)

    def _fall_back(self, t: Tracked, reason: str) -> None:
        """The leg never reached this account's venue: it ends rejected here, the venue
        is marked down, and the desk routes the order among the others."""
        self.untrack(t)
        self.generation += 1
        self.set_status(t, lifecycle.REJECTED, reason)
        self.mark_down(reason)
        self.desk.external_refused(t.leg, reason)

    def _venues(self) -> list[str]:
        """The scenario venues whose legs come here."""
        return [name for name, port in self.desk.external.items() if port is self]

    def mark_down(self, reason: str) -> None:
        """This account cannot be reached: its scenario venues are down for the router
        (orders go to the others) until it answers again (``mark_up``)."""
        if not self.fallback or self.down is not None:
            return
        self.down = reason
        names = self._venues()
        for name in names:
            self.desk.router.set_health(name, DOWN)
        print(f"quorum live: venue {', '.join(names)} marked down ({reason}): orders go "
              "to the other venues", file=sys.stderr, flush=True)

    def mark_up(self) -> None:
        """This account answered: its scenario venues are up again."""
        if self.down is None:
            return
        self.down = None
        names = self._venues()
        for name in names:
            self.desk.router.set_health(name, UP)
        print(f"quorum live: venue {', '.join(names)} answers again: marked up",
              file=sys.stderr, flush=True)

    def _refreshed(self, msg: Refreshed) -> None:
        t = self.by_cloid.get(msg.cloid)
        if t is None:
            return
        t.refreshing = False
        if msg.error is not None:
            self.refresh(t, delay=self.refresh_s)
            return
        for fill in msg.fills:
            self.book(fill)
        if t.cloid not in self.by_cloid:
            return  # the fills finished it
        if msg.state is None:
            if not t.placing and self.fallback and t.error is not None and t.close is None \
                    and t.booked == 0.0:  # its placing failed and it never landed
                self._fall_back(t, f"venue unreachable: {t.error} (the order never "
                                   "reached it)")
            elif not t.placing:
                t.done = (lifecycle.REJECTED, f"the venue does not know order {t.cloid}: "
                                              "it was never placed")
                self._finish(t)
            return
        self._apply_state(t, msg.state)
        if t.done is not None and t.cloid in self.by_cloid:  # fills still to come
            self.refresh(t, delay=self.refresh_s)

    def _apply_state(self, t: Tracked, state: OrderState) -> None:
        if state.oid is not None:
            self.learn_oid(t, state.oid)
        if t.done is not None:
            t.venue_filled = max(t.venue_filled, state.filled_size)
            self._finish(t)
            return
        status = state.status
        if status in (REJECTED, EXPIRED):
            message = state.message or state.venue_status or status
            t.done = (lifecycle.EXPIRED if status == EXPIRED else lifecycle.REJECTED, message)
        else:
            if not t.acked:
                t.acked = True
                self.desk.external_accepted(t.leg, self.now_ns())
            if status == TRIGGERED:
                t.triggered = True
            if status in (RESTING, TRIGGERED):
                self.set_status(t, "resting", None)
                if t.close is not None and not t.cancel_sent:
                    self._send_cancel(t)
                return
            t.venue_filled = state.filled_size
            if status == FILLED:
                t.done = (lifecycle.FILLED, "")
            elif t.ioc:
                t.done = (lifecycle.EXPIRED, "IOC: the unfilled rest was canceled by the venue")
            elif t.triggered and t.close is None and state.venue_status == "canceled":
                t.done = (lifecycle.EXPIRED, "triggered: the market order's unfilled rest was "
                                             "canceled by the venue")
            elif t.close is not None:
                t.done = t.close
            else:
                assert status == CANCELED
                t.done = (lifecycle.CANCELLED, f"canceled by the venue "
                                               f"({state.venue_status or 'canceled'})")
        self._finish(t)

    def book(self, fill: VenueFill) -> bool:
        """Book one venue fill of ours, once (by trade id); False if not booked."""
        if fill.tid in self.booked:
            return False
        t = self.find(fill.cloid, fill.oid)
        if t is None:
            return False  # not this run's (an earlier session, another client): reconcile
        self.booked.add(fill.tid)
        self.generation += 1
        self.learn_oid(t, fill.oid)
        if not t.acked:
            t.acked = True
            self.desk.external_accepted(t.leg, self.now_ns())
        fill_id = self.desk.external_fill(t.leg, fill.time_ms * 1_000_000, fill.size,
                                          fill.price, fill.fee,
                                          "taker" if fill.crossed else "maker")
        if self.share is not None:
            self.share.fill(t.leg.order.symbol, fill.size, fill.price, fill.fee)
        t.booked += abs(fill.size)
        self.record_fill((fill.tid, fill_id, t.leg.order.order_id, t.cloid, fill.oid,
                          fill.coin, fill.size, fill.price, fill.fee, fill.time_ms))
        if t.done is not None:
            self._finish(t)
        return True

    def book_funding(self, pay: FundingPayment) -> bool:
        """Book one funding payment of the account, once (by coin and time), through the
        desk's funding path; False if not booked (booked already, from before the run's
        start, or on a coin the run does not trade: not the run's)."""
        key = (pay.coin, pay.time_ms)
        symbol = self.symbol_of.get(pay.coin)
        if key in self.funded or pay.time_ms <= self.funding_since_ms or symbol is None:
            return False
        desk = self.desk
        s = desk.symbols.index(symbol)
        # The price the venue charged at (its oracle price), so the stored row keeps a
        # backtest's identity payment = -rate x position x mark.
        mark = (-pay.usdc / (pay.rate * pay.szi) if pay.rate and pay.szi
                else desk.portfolio.price[s])
        self.funded.add(key)
        self.funding_cursor_ms = max(self.funding_cursor_ms, pay.time_ms)
        desk.router.observe_funding(symbol, pay.rate)
        venue = self.venue_name or next(
            (n for n in self._venues() if symbol in desk.router.venue(n).symbols), None)
        if self.share is not None:
            self.share.flow += pay.usdc
        desk.book_funding(s, pay.time_ms * 1_000_000, pay.szi, mark, pay.rate, pay.usdc,
                          venue)
        self.record_funding((pay.coin, pay.time_ms, symbol, pay.usdc, pay.szi, pay.rate,
                             pay.hash))
        return True

    def _finish(self, t: Tracked) -> None:
        """Close the leg at the desk once the venue said it ended and every fill it
        reported is booked; until then, fetch the fills."""
        if t.done is None or t.cloid not in self.by_cloid:
            return
        if t.booked + _EPS * max(1.0, t.size) < t.venue_filled:
            if not t.refreshing:  # the push normally brings them first: REST if it does not
                self.refresh(t, delay=self.refresh_s)
            return
        code, reason = t.done
        self.untrack(t)
        self.generation += 1
        self.set_status(t, code, reason or None)
        self.desk.external_closed(t.leg, self.now_ns(), code, reason)

    # -- requests (tasks that only deliver messages) ---------------------------------------

    def refresh(self, t: Tracked, delay: float = 0.0) -> None:
        """Look the leg up by cloid (state and fills), after ``delay`` seconds."""
        if t.refreshing:
            return
        t.refreshing = True
        self.requests.spawn(self.requests.look_up(t.cloid, t.coin, delay,
                                                  self.by_cloid.__contains__, t.oid))

    def _send_cancel(self, t: Tracked) -> None:
        t.cancel_sent = True
        self._outbox.append(lambda: self.requests.spawn(self._cancel(t)))

    async def _cancel(self, t: Tracked) -> None:
        await self.requests.cancel(t.coin, t.cloid)
        if not t.refreshing:  # whatever happened, the lookup says
            t.refreshing = True
            await self.requests.look_up(t.cloid, t.coin, 0.0, self.by_cloid.__contains__,
                                        t.oid)

    def cancel_foreign(self, coin: str, oid: int) -> None:
        """Cancel an open order this run does not track (reconciliation rule 3)."""
        requests = self.requests
        self._outbox.append(lambda: requests.spawn(requests.cancel_foreign(coin, oid)))

    def request_snapshot(self) -> None:
        """Fetch the account for reconciliation (one fetch at a time: a round asked for
        while one is under way is that one)."""
        self.requests.snapshot(self.generation,
                               max(self.funding_since_ms + 1, self.funding_cursor_ms))
