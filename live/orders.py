"""The venue-neutral order manager of a live run: the one OMS for any real venue.

The desk hands a routed leg to ``submit`` and a cancel to ``cancel``; both return at once.
The I/O (placing through the adapter's contract, ``live.port.VenueAdapter``; lookups by
cloid; fills) runs in asyncio tasks that only put their outcome on the live runner's queue
as a ``VenueMessage``. The runner's single consumer calls ``apply`` with each message,
which drives the desk (``external_accepted`` / ``external_fill`` / ``external_closed``):
fills are booked by the desk's one fill path into the one ledger and recorded in the run's
usual tables. A venue's adapter package subclasses ``OrderManager`` only for what is its
own wire: pushes, transport errors, a request written ahead of its task.

Each leg is a ``Tracked`` record from submission (or adoption after a restart) until the
desk closed it, keyed by the core's client order id (``cloid``, from run id, order id and
leg: ``live.records.client_order_id``) and, once the venue answers, by its order id.

Durability (``live.records``, ``live.journal``): the leg's ``venue_orders`` row is
appended to the run's journal when it is submitted, and its request starts only after
that (``start_requests``): write-ahead. Each booked fill's venue trade id is written with
the ``fills`` row in one transaction, and a trade id is booked once; funding likewise,
once per (coin, time), payments up to the run's start not the run's.

Outcomes -> the desk's terminal states: filled -> filled; an IOC's (or a fired market
trigger's) unfilled rest canceled by the venue, or an IOC that matched nothing -> expired;
canceled after the desk asked (replace, ``order_ttl``, run end) -> that request's state;
canceled by the venue on its own (margin, reduce-only) -> cancelled with the venue's word;
refused -> rejected with the venue's message; not found at the venue once nothing is in
flight -> rejected ("never placed"). A leg ends only when every fill the venue reports for
it is booked.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from live.journal import OrderJournal
from live.port import PreparedOrder, Snapshot, VenueAdapter, VenueMessage
from live.records import Durable, client_order_id
from live.venue_types import (
    CANCELED,
    FILLED,
    REJECTED,
    RESTING,
    TRIGGERED,
    FundingPayment,
    OrderRequest,
    OrderState,
    VenueFill,
)
from sim import orders as lifecycle
from sim.execution import ExecutionDesk
from sim.orders import FLATTEN, IOC, LIMIT, MARKET, TAKE_PROFIT, Leg, Order

_EPS = 1e-9


@dataclass(slots=True, eq=False)
class Tracked:
    """One leg at the venue, from submission until the desk has closed it."""

    leg: Leg
    cloid: str
    coin: str
    size: float  # absolute size sent (rounded to the venue's lot)
    ioc: bool
    placing: bool = True  # the place request has not answered yet
    acked: bool = False
    oid: int | None = None
    venue_filled: float = 0.0  # absolute, as the venue reports it
    booked: float = 0.0  # absolute, booked from fills
    done: tuple[str, str] | None = None  # the venue says it ended: (desk state, reason)
    close: tuple[str, str] | None = None  # the desk asked to cancel it: (state, reason)
    cancel_sent: bool = False
    refreshing: bool = False
    status: str = "sent"
    triggered: bool = False  # a trigger order the venue has fired (it executes now)


@dataclass(frozen=True, slots=True)
class Placed(VenueMessage):
    """The answer to placing a leg: a definite state, or an error (``unresolved``: it may
    have landed; the cloid settles it)."""

    cloid: str
    state: OrderState | None
    error: str | None = None
    unresolved: bool = False


@dataclass(frozen=True, slots=True)
class Refreshed(VenueMessage):
    """The venue's view of one leg, looked up by cloid, with its fills."""

    cloid: str
    state: OrderState | None
    fills: tuple[VenueFill, ...] = ()
    error: str | None = None


class OrderPort(Protocol):
    """One venue account as the external venue of one live run, as the core (runner,
    reconciliation, recovery, funding) drives it: it tracks the run's legs at the venue
    (``live.orders.Tracked``, by cloid and venue id), books what the venue reports through
    the desk's one fill and funding paths, and keeps its rows for the next commit
    (``take_records``). Its state changes only through these methods."""

    venue: VenueAdapter
    desk: ExecutionDesk
    coins: dict[str, str]  # symbol -> the venue's coin
    symbol_of: dict[str, str]  # coin -> symbol
    now_ns: Callable[[], int]
    generation: int  # bumped by every order event: reconciliation needs quiet
    by_cloid: Mapping[str, Tracked]
    by_oid: Mapping[int, Tracked]
    booked: set[int]  # venue trade ids booked in this run (read only)
    funded: set[tuple[str, int]]  # (coin, time ms) of funding booked (read only)
    account_outside: float | None
    account_alerted: float | None

    @property
    def settled(self) -> bool: ...

    async def start(self, queue: asyncio.Queue[object]) -> None: ...
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


class OrderManager:
    """The legs of one live run at one venue account (``venue``: its adapter)."""

    def __init__(self, venue: VenueAdapter, desk: ExecutionDesk, run_id: str,
                 coins: Mapping[str, str], *,
                 now_ns: Callable[[], int] = time.time_ns, refresh_s: float = 0.5,
                 journal: OrderJournal | None = None) -> None:
        self.venue = venue
        self.desk = desk
        self.run_id = run_id
        self.coins = dict(coins)  # symbol -> coin
        self.symbol_of = {c: s for s, c in self.coins.items()}
        self.now_ns = now_ns
        self.refresh_s = refresh_s
        self.journal = journal or OrderJournal(None, run_id)
        self.by_cloid: dict[str, Tracked] = {}
        self.by_leg: dict[int, Tracked] = {}
        self.by_oid: dict[int, Tracked] = {}
        self.booked: set[int] = set()  # venue trade ids booked in this run
        self.funded: set[tuple[str, int]] = set()  # (coin, time ms) of funding booked
        # Funding settled at or before this time (ms) is not the run's: the run's start
        # (``live.recovery`` restores it for a resumed run).
        self.funding_since_ms = now_ns() // 1_000_000
        self.funding_cursor_ms = 0  # the latest funding time booked (the next fetch's start)
        # Capital the venue account holds beyond the run's equity, fixed at the run's first
        # account comparison (``live.reconcile`` rule 5), and the last difference alerted.
        self.account_outside: float | None = None
        self.account_alerted: float | None = None
        self._snapshotting = False
        self.queue: asyncio.Queue[object] | None = None
        self.generation = 0  # bumped by every order event: reconciliation needs quiet
        self._outbox: list[Callable[[], Coroutine[Any, Any, None]]] = []
        self._durable = Durable()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- the venue port (called by the desk) -----------------------------------------------

    def submit(self, leg: Leg, leg_no: int) -> None:
        life = leg.order
        cloid = client_order_id(self.run_id, life.order_id, leg_no)
        coin = self.coins[life.symbol]
        prepared = self.prepare(life, leg, cloid, coin)
        t = Tracked(leg, cloid, coin, prepared.size,
                    life.kind == MARKET or life.tif == IOC)
        self._track(t)
        now = self.now_ns()
        row = {
            "run_id": self.run_id, "order_id": life.order_id, "leg": leg_no, "cloid": cloid,
            "venue": leg.venue.name, "symbol": life.symbol, "coin": coin,
            "quantity": leg.quantity, "size": prepared.size, "price": prepared.price,
            "venue_type": self.venue_type(prepared), "reduce_only": reduce_only(life),
            "decision_id": life.decision_id, "ts": life.ts, "decision_ts": life.decision_ts,
            "ref_price": life.ref_price, "kind": life.kind, "tif": life.tif,
            "limit_price": life.limit_price, "stop_price": life.stop_price,
            "post_only": life.post_only, "role": life.role, "parent_id": life.parent_id,
            "replaces": life.replaces, "status": "sent", "oid": None, "filled": 0.0,
            "message": prepared.rejection, "sent_ns": now, "updated_ns": now}
        self.journal.append(row)  # write-ahead: durable before the request can start
        self._durable.orders.append(row)
        if prepared.rejection is not None:
            state = OrderState(cloid, coin, REJECTED, prepared.size, message=prepared.rejection)
            self._outbox.append(lambda: self._deliver(Placed(cloid, state)))
        else:
            self._outbox.append(lambda: self._dispatch(t, prepared))

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
        """The leg as the venue's order (its adapter's ``prepare``); no I/O."""
        return self.venue.prepare(self.request(life, leg, cloid, coin))

    def request(self, life: Order, leg: Leg, cloid: str, coin: str) -> OrderRequest:
        """The leg as a neutral order request: a market order with the last close as the
        reference its slippage bound is taken from; a bracket's take-profit a "tp"
        trigger at its level (a market order once fired); a limit order with its time in
        force ("alo" when post-only); a stop (a stop entry, a stop-loss) an "sl" trigger.
        Flattening orders go reduce-only, as do the legs the scenario marked so."""
        is_buy = leg.quantity > 0
        size = abs(leg.quantity)
        only_reduce = reduce_only(life)
        if life.kind == MARKET:
            view = self.desk.views[life.s]
            ref = view.close if view.close == view.close and view.close > 0 else life.ref_price
            return OrderRequest(coin, is_buy, size, "market", ref, cloid,
                                reduce_only=only_reduce)
        if life.role == TAKE_PROFIT:  # a bracket's limit: a take-profit trigger at its level
            assert life.limit_price is not None
            return OrderRequest(coin, is_buy, size, "trigger", life.limit_price, cloid,
                                trigger="tp", reduce_only=only_reduce)
        if life.kind == LIMIT:
            tif = "alo" if life.post_only else ("ioc" if life.tif == IOC else "gtc")
            assert life.limit_price is not None
            return OrderRequest(coin, is_buy, size, "limit", life.limit_price, cloid, tif=tif,
                                reduce_only=only_reduce)
        assert life.stop_price is not None
        return OrderRequest(coin, is_buy, size, "trigger", life.stop_price, cloid,
                            trigger="sl", reduce_only=only_reduce)

    # -- the runner's side -----------------------------------------------------------------

    async def start(self, queue: asyncio.Queue[object]) -> None:
        """Deliver messages to ``queue`` from now on; look up the legs a previous process
        left (a restart)."""
        self.queue = queue
        self._look_up_adopted()

    def _look_up_adopted(self) -> None:
        for t in list(self.by_cloid.values()):  # legs a previous process left (a restart)
            if not t.placing:
                self.refresh(t)

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def take_records(self) -> Durable:
        """What waits to be written, handed over (``write_records``, on any connection)."""
        records, self._durable = self._durable, Durable()
        return records

    def start_requests(self) -> None:
        """Start the requests submitted since the last call (write-ahead: their rows are
        in the journal already). An order's request is written here, before this
        returns, when the adapter writes it at once (its ``_dispatch``)."""
        if self._closed:  # the session is over: what is left is resolved by the next one
            return
        outbox, self._outbox = self._outbox, []
        for make in outbox:
            self._spawn(make())

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
        if isinstance(msg, Placed):
            self._placed(msg)
        elif isinstance(msg, Refreshed):
            self._refreshed(msg)

    # -- applying what the venue said ------------------------------------------------------

    def _placed(self, msg: Placed) -> None:
        t = self.by_cloid.get(msg.cloid)
        if t is None:
            return
        t.placing = False
        if msg.state is not None:
            self._apply_state(t, msg.state)
        elif msg.unresolved:
            self._status(t, "unresolved", msg.error)
            self.refresh(t, delay=self.refresh_s)
        else:  # nothing reached the venue (refused before running, or never connected)
            t.done = (lifecycle.REJECTED, f"venue unreachable: {msg.error}")
            self._finish(t)

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
            if not t.placing:
                t.done = (lifecycle.REJECTED, f"the venue does not know order {t.cloid}: "
                                              "it was never placed")
                self._finish(t)
            return
        self._apply_state(t, msg.state)
        if t.done is not None and t.cloid in self.by_cloid:  # fills still to come
            self.refresh(t, delay=self.refresh_s)

    def _apply_state(self, t: Tracked, state: OrderState) -> None:
        if state.oid is not None and t.oid is None:
            t.oid = state.oid
            self.by_oid[state.oid] = t
        if t.done is not None:
            t.venue_filled = max(t.venue_filled, state.filled_size)
            self._finish(t)
            return
        status = state.status
        if status == REJECTED:
            message = state.message or state.venue_status or "rejected"
            code = lifecycle.EXPIRED if self.matched_nothing(message) else lifecycle.REJECTED
            t.done = (code, message)
        else:
            if not t.acked:
                t.acked = True
                self.desk.external_accepted(t.leg, self.now_ns())
            if status == TRIGGERED:
                t.triggered = True
            if status in (RESTING, TRIGGERED):
                self._status(t, "resting", None)
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
        t = self.by_cloid.get(fill.cloid or "") or self.by_oid.get(fill.oid)
        if t is None:
            return False  # not this run's (an earlier session, another client): reconcile
        self.booked.add(fill.tid)
        self.generation += 1
        if t.oid is None:
            t.oid = fill.oid
            self.by_oid[fill.oid] = t
        if not t.acked:
            t.acked = True
            self.desk.external_accepted(t.leg, self.now_ns())
        fill_id = self.desk.external_fill(t.leg, fill.time_ms * 1_000_000, fill.size,
                                          fill.price, fill.fee,
                                          "taker" if fill.crossed else "maker")
        t.booked += abs(fill.size)
        self._durable.fills.append((fill.tid, fill_id, t.leg.order.order_id, t.cloid,
                                    fill.oid, fill.coin, fill.size, fill.price, fill.fee,
                                    fill.time_ms))
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
        desk.book_funding(s, pay.time_ms * 1_000_000, pay.szi, mark, pay.rate, pay.usdc)
        self._durable.funding.append((pay.coin, pay.time_ms, symbol, pay.usdc, pay.szi,
                                      pay.rate, pay.hash))
        return True

    def record_account(self, account_value: float, store_equity: float) -> None:
        """Fix the capital outside the run (its first account comparison), durably."""
        self.account_outside = account_value - store_equity
        self._durable.account = (self.now_ns(), account_value, store_equity)

    def note_account_difference(self, diff: float | None) -> None:
        """The account difference last alerted (None: the account agrees again)."""
        self.account_alerted = diff

    def restore_funding(self, since_ms: int | None, booked: Iterable[tuple[str, int]],
                        outside: float | None) -> None:
        """Continue a stored run's funding (``live.funding``): payments up to ``since_ms``
        (the run's first start) are not the run's, ``booked`` (coin, time ms) are booked
        already and the next fetch starts at the latest; ``outside`` is the capital the
        account holds beyond the run (None: not fixed yet)."""
        if since_ms is not None:
            self.funding_since_ms = since_ms
        for coin, time_ms in booked:
            self.funded.add((coin, time_ms))
            self.funding_cursor_ms = max(self.funding_cursor_ms, time_ms)
        self.account_outside = outside

    def know_booked(self, tids: Iterable[int]) -> None:
        """Venue trade ids a previous process of the run booked: never booked again."""
        self.booked |= set(tids)

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
        self._untrack(t)
        self.generation += 1
        self._status(t, code, reason or None)
        self.desk.external_closed(t.leg, self.now_ns(), code, reason)

    # -- requests (tasks that only enqueue) ------------------------------------------------

    def refresh(self, t: Tracked, delay: float = 0.0) -> None:
        """Look the leg up by cloid (state and fills), after ``delay`` seconds."""
        if t.refreshing:
            return
        t.refreshing = True
        self._spawn(self._refresh(t.cloid, t.coin, delay))

    def _send_cancel(self, t: Tracked) -> None:
        t.cancel_sent = True
        self._outbox.append(lambda: self._cancel(t))

    def cancel_foreign(self, coin: str, oid: int) -> None:
        """Cancel an open order this run does not track (reconciliation rule 3)."""
        async def go() -> None:
            with contextlib.suppress(Exception):
                await self.venue.cancel(coin, oid)

        self._outbox.append(go)

    def request_snapshot(self) -> None:
        """Fetch the account for reconciliation (one fetch at a time: a round asked for
        while one is under way is that one)."""
        if self._snapshotting:
            return
        self._snapshotting = True
        self._spawn(self._snapshot(self.generation))

    async def _deliver(self, msg: VenueMessage) -> None:
        assert self.queue is not None
        self.queue.put_nowait(msg)

    def _dispatch(self, t: Tracked, prepared: PreparedOrder) -> Coroutine[Any, Any, None]:
        """The request of a submitted leg, started by ``start_requests`` (an adapter may
        write it at once: see its port)."""
        return self._place(t, prepared)

    async def _place(self, t: Tracked, prepared: PreparedOrder) -> None:
        try:
            state = await self.venue.place(prepared)
        except Exception as exc:  # it may have landed; the cloid settles it
            msg = self.place_failed(t.cloid, exc)
        else:
            msg = Placed(t.cloid, state)
        await self._deliver(msg)

    def place_failed(self, cloid: str, exc: Exception) -> Placed:
        """What placing an order that raised ``exc`` says: by default the outcome is
        unknown (it may have landed) and the cloid is looked up."""
        return Placed(cloid, None, f"{type(exc).__name__}: {exc}", unresolved=True)

    # -- what an adapter says of its own wire ----------------------------------------------

    def venue_type(self, prepared: PreparedOrder) -> str:
        """The venue's order type of ``prepared``, for the ``venue_orders`` row."""
        return "none" if prepared.rejection is not None else "order"

    def matched_nothing(self, message: str) -> bool:
        """A rejection that means an IOC found nothing to match: it expired."""
        return False

    async def _cancel(self, t: Tracked) -> None:
        with contextlib.suppress(Exception):  # whatever happened, the lookup says
            await self.venue.cancel_by_cloid(t.coin, t.cloid)
        if not t.refreshing:
            t.refreshing = True
            await self._refresh(t.cloid, t.coin, 0.0)

    async def _refresh(self, cloid: str, coin: str, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
            if cloid not in self.by_cloid:
                return  # settled meanwhile (the push came): nothing to ask, no weight spent
        try:
            state = await self.venue.order_state(cloid, coin)
            oid = state.oid if state is not None else None
            fills = tuple(f for f in await self.venue.fills()
                          if f.cloid == cloid or (oid is not None and f.oid == oid))
        except Exception as exc:
            await self._deliver(Refreshed(cloid, None, (), f"{type(exc).__name__}: {exc}"))
            return
        await self._deliver(Refreshed(cloid, state, fills))

    async def _snapshot(self, generation: int) -> None:
        venue = self.venue
        try:
            fills = tuple(await venue.fills())
            account = await venue.account_state()
            open_orders = tuple(await venue.open_orders())
            # after the account: what settled since its time is told apart (rule 5)
            start = max(self.funding_since_ms + 1, self.funding_cursor_ms)
            funding = tuple(await venue.funding(start))
        except Exception as exc:
            msg = Snapshot((), (), (), generation, f"{type(exc).__name__}: {exc}")
        else:
            msg = Snapshot(fills, account.positions, open_orders, generation,
                           account=account, funding=funding)
        finally:
            self._snapshotting = False
        await self._deliver(msg)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- bookkeeping -----------------------------------------------------------------------

    def _track(self, t: Tracked) -> None:
        self.by_cloid[t.cloid] = t
        self.by_leg[id(t.leg)] = t
        if t.oid is not None:
            self.by_oid[t.oid] = t

    def _untrack(self, t: Tracked) -> None:
        self.by_cloid.pop(t.cloid, None)
        self.by_leg.pop(id(t.leg), None)
        if t.oid is not None:
            self.by_oid.pop(t.oid, None)

    def adopt(self, leg: Leg, cloid: str, coin: str, size: float, ioc: bool,
              booked: float, *, oid: int | None = None,
              close: tuple[str, str] | None = None) -> Tracked:
        """Track a leg a previous process sent (a restart); it is looked up by cloid.
        ``oid``: the venue's id, if the previous process learnt it; ``close``: (state,
        reason) to cancel it with once the venue's answer is in (it does not stand)."""
        t = Tracked(leg, cloid, coin, size, ioc, placing=False, booked=booked,
                    status="unresolved", oid=oid, close=close)
        self._track(t)
        return t

    def _status(self, t: Tracked, status: str, message: str | None) -> None:
        t.status = status
        self._durable.updates.append({
            "cloid": t.cloid, "status": status, "oid": t.oid, "filled": t.booked,
            "message": message, "updated_ns": self.now_ns()})

    def alert(self, kind: str, symbol: str | None, coin: str | None,
              store_value: float | None, venue_value: float | None, action: str,
              detail: str) -> None:
        """A difference between the venue and the store: stderr now, a stored row with
        the next commit."""
        print(f"quorum live: RECONCILIATION ALERT {kind} {coin or ''}: {detail}; {action}",
              file=sys.stderr, flush=True)
        self._durable.alerts.append((self.now_ns(), kind, symbol, coin, store_value,
                                     venue_value, action, detail))


def reduce_only(life: Order) -> bool:
    """Whether the leg may only reduce a position at the venue (risk's flattening too)."""
    return life.reduce_only or life.role == FLATTEN
