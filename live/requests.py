"""The I/O half of the live core's order manager: what it asks a venue adapter, in tasks.

Every request runs in an asyncio task that only delivers what it learnt, as a
``VenueMessage`` handed to ``emit`` (the runner's queue), to be applied by the runner's
single consumer on the pipeline's thread (``live.orders.OrderManager.apply``): nothing
here touches the legs, the desk or the store. ``Placed`` answers a place request,
``Refreshed`` a lookup by cloid (with the leg's fills), ``live.port.Snapshot`` a fetch
of the account for reconciliation.

A failed place request is told apart by the adapter's exception (``live.port``):
``OrderNotSent`` -> the order does not exist at the venue; ``OutcomeUnknown`` or any
other exception -> it may have landed, and the cloid settles it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from live.port import (
    Emit,
    OrderNotSent,
    OutcomeUnknown,
    PreparedOrder,
    Snapshot,
    VenueAdapter,
    VenueMessage,
)
from live.venue_types import OrderState, VenueFill


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


def place_failed(cloid: str, exc: BaseException) -> Placed:
    """What a place request that raised ``exc`` says of the order."""
    if isinstance(exc, OrderNotSent):
        return Placed(cloid, None, str(exc))
    if isinstance(exc, OutcomeUnknown):
        return Placed(cloid, None, str(exc), unresolved=True)
    return Placed(cloid, None, f"{type(exc).__name__}: {exc}", unresolved=True)


# Told of every answered request: (what was asked, whether it went through, ms taken,
# the error). The session's tool feedback (``LiveRunner``: the venue's health).
OnCall = Callable[[str, bool, float, str | None], None]


class VenueRequests:
    """The requests of one live run to one venue adapter, as tasks."""

    def __init__(self, venue: VenueAdapter) -> None:
        self.venue = venue
        self.on_call: OnCall | None = None
        self.emit: Emit | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._snapshotting = False

    def bind(self, emit: Emit) -> None:
        """Deliver what the requests learn to ``emit`` from now on."""
        self.emit = emit

    def deliver(self, msg: VenueMessage) -> None:
        assert self.emit is not None, "requests before the manager started"
        self.emit(msg)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel what is under way (what is left is resolved by the next session)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _called(self, what: str, started: float, error: BaseException | None) -> None:
        if self.on_call is not None:
            self.on_call(what, error is None, (time.perf_counter() - started) * 1e3,
                         None if error is None else type(error).__name__)

    def place(self, order: PreparedOrder) -> None:
        """Place ``order`` now: the adapter may write the request before this returns;
        its answer comes in a task."""
        started = time.perf_counter()
        try:
            reply = self.venue.place(order)
        except Exception as exc:  # a request that could not even start
            self._called("place", started, exc)
            self.spawn(self._later(place_failed(order.cloid, exc)))
            return
        self.spawn(self._placed(order.cloid, reply, started))

    async def _placed(self, cloid: str, reply: Awaitable[OrderState],
                      started: float) -> None:
        try:
            state = await reply
        except Exception as exc:  # it may have landed (unless the adapter says it did not)
            self._called("place", started, exc)
            msg = place_failed(cloid, exc)
        else:
            self._called("place", started, None)
            msg = Placed(cloid, state)
        self.deliver(msg)

    def deliver_later(self, msg: VenueMessage) -> None:
        """``msg`` from a task, like any request's answer (a leg refused locally)."""
        self.spawn(self._later(msg))

    async def _later(self, msg: VenueMessage) -> None:
        self.deliver(msg)

    async def look_up(self, cloid: str, coin: str, delay: float,
                      wanted: Callable[[str], bool], oid: int | None = None) -> None:
        """The leg's state by cloid and its fills, after ``delay`` seconds, unless it is no
        longer ``wanted`` by then (settled meanwhile: nothing asked, no weight spent).
        A venue that knows no client ids (its adapter keeps them in memory) may not know
        the cloid after a restart: then the venue's id ``oid``, if the previous
        process stored it, finds the order."""
        if delay:
            await asyncio.sleep(delay)
            if not wanted(cloid):
                return
        venue = self.venue
        started = time.perf_counter()
        try:
            state = await venue.order_state(cloid, coin)
            if state is None and oid is not None:
                state = await venue.order_state(oid, coin)
            oid = state.oid if state is not None else None
            fills = tuple(f for f in await venue.fills()
                          if f.cloid == cloid or (oid is not None and f.oid == oid))
        except Exception as exc:
            self._called("lookup", started, exc)
            self.deliver(Refreshed(cloid, None, (), f"{type(exc).__name__}: {exc}"))
            return
        self._called("lookup", started, None)
        self.deliver(Refreshed(cloid, state, fills))

    async def cancel(self, coin: str, cloid: str) -> None:
        """Cancel by cloid; whatever happened, a lookup says (errors are not answers)."""
        with contextlib.suppress(Exception):
            await self.venue.cancel_by_cloid(coin, cloid)

    async def cancel_foreign(self, coin: str, oid: int) -> None:
        """Cancel an order by the venue's id (one the run did not send)."""
        with contextlib.suppress(Exception):
            await self.venue.cancel(coin, oid)

    def snapshot(self, generation: int, funding_start_ms: int) -> None:
        """Fetch the account for reconciliation (one fetch at a time: a round asked for
        while one is under way is that one)."""
        if self._snapshotting:
            return
        self._snapshotting = True
        self.spawn(self._snapshot(generation, funding_start_ms))

    async def _snapshot(self, generation: int, funding_start_ms: int) -> None:
        venue = self.venue
        started = time.perf_counter()
        try:
            fills = tuple(await venue.fills())
            account = await venue.account_state()
            open_orders = tuple(await venue.open_orders())
            # after the account: what settled since its time is told apart (rule 5)
            funding = tuple(await venue.funding(funding_start_ms))
        except Exception as exc:
            self._called("snapshot", started, exc)
            msg = Snapshot((), (), (), generation, f"{type(exc).__name__}: {exc}")
        else:
            self._called("snapshot", started, None)
            msg = Snapshot(fills, account.positions, open_orders, generation,
                           account=account, funding=funding)
        finally:
            self._snapshotting = False
        self.deliver(msg)
