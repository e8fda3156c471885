"""The contract between the live core and a venue adapter, in one place.

An adapter (one folder per venue under ``live/``) translates and does I/O; the core
(order tracking, the write-ahead journal, reconciliation, recovery, funding booking, risk
state) asks it only what ``VenueAdapter`` lists and reads only the neutral reports of
``live.venue_types``. What an adapter's tasks report reaches the runner's single
consumer as a ``VenueMessage`` on its queue, never as a call into the desk.

What a venue pushes (an account stream) an adapter translates into the same reports and
hands to the core through the ``emit`` it is given on ``connect`` (``PushingAdapter``):
``OrdersUpdated``, ``FillsReported``, ``Reconnected``. Failures of a request are told
apart by two neutral exceptions: ``OrderNotSent`` (certainly never reached the venue)
and ``OutcomeUnknown`` (it may have landed; the cloid settles it). An adapter needs
nothing else of the core: it never holds the desk, the portfolio or the engine.

Cursors are venue times in milliseconds: ``fills(since_ms)`` and ``funding(start_ms)``
answer what happened at or after the cursor, so the core keeps the cursor (it knows what
it booked) and an adapter keeps no state about what was booked.

Modelled on an execution client of NautilusTrader's live engine (commands in, typed
status reports out); the names and shapes are this project's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeAlias, runtime_checkable

from live.venue_types import (
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim.instruments import Instrument


class PreparedOrder(Protocol):
    """An order an adapter checked and rounded for its wire (``VenueAdapter.prepare``):
    what will be sent, or why it was refused locally (then nothing is sent)."""

    @property
    def cloid(self) -> str: ...
    @property
    def size(self) -> float: ...  # absolute, rounded to the venue's lot
    @property
    def price(self) -> float: ...  # rounded to the venue's price grid
    @property
    def rejection(self) -> str | None: ...


@runtime_checkable
class VenueAdapter(Protocol):
    """One account at one venue, as the live core uses it. Every order carries the
    core's client order id (``cloid``): a request whose outcome is unknown is settled by
    looking the cloid up, never by a guess."""

    name: str

    def prepare(self, request: OrderRequest) -> PreparedOrder:
        """``request`` checked and rounded to the venue's rules; no I/O."""
        ...

    async def place(self, order: PreparedOrder) -> OrderState:
        """Send it: a definite state, or an exception (``OrderNotSent``,
        ``OutcomeUnknown``; any other counts as unknown). Called in the step that
        submitted the order and awaited in a task: an adapter may write the request
        before it returns the awaitable (a plain ``def`` returning a coroutine), so the
        order reaches the wire without a hop through the event loop."""
        ...

    async def cancel_by_cloid(self, coin: str, cloid: str) -> OrderState: ...

    async def cancel(self, coin: str, oid: int) -> OrderState:
        """Cancel an order by the venue's id (one the core did not send)."""
        ...

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        """An order looked up by cloid (or venue id); None if the venue does not know it."""
        ...

    async def open_orders(self) -> list[OpenOrder]: ...

    async def fills(self, since_ms: int = 0) -> list[VenueFill]: ...

    async def positions(self) -> list[Position]: ...

    async def account_state(self) -> AccountState:
        """Positions, account value and marks from one snapshot of the venue."""
        ...

    async def account_value(self) -> float: ...

    async def funding(self, start_ms: int, end_ms: int | None = None
                      ) -> list[FundingPayment]: ...

    def instrument(self, coin: str, venue: str, symbol: str) -> Instrument:
        """The venue's rules for ``coin`` as the simulation's instrument (price grid,
        lot, minimums, leverage cap), for ``symbol`` on scenario venue ``venue``."""
        ...

    def lot_size(self, coin: str) -> float:
        """The smallest size step of ``coin``."""
        ...


class VenueMessage:
    """Something a venue (or a request to it) reported; applied by the runner's single
    consumer, on the pipeline's thread."""

    __slots__ = ()


# What an adapter hands its pushes (and a stream's fatal error) to: the runner's queue.
Emit: TypeAlias = Callable[[VenueMessage | Exception], None]


class OrderNotSent(Exception):
    """A request certainly never reached the venue (refused before it was sent, no
    connection): the order does not exist there."""


class OutcomeUnknown(Exception):
    """A request may have reached the venue and its answer was lost: the order is
    looked up by its cloid, never sent again."""


@runtime_checkable
class PushingAdapter(Protocol):
    """An adapter whose venue pushes the account's events: between ``connect`` and
    ``disconnect`` it emits ``OrdersUpdated``, ``FillsReported`` and ``Reconnected``
    (anything may have been missed) as they come, or an exception that ends the
    session (the stream gave up)."""

    async def connect(self, emit: Emit) -> None: ...

    async def disconnect(self) -> None: ...


@runtime_checkable
class DescribingAdapter(Protocol):
    """An adapter that names the venue's order type of an order it prepared (the
    ``venue_orders.venue_type`` column; else "order", or "none" when refused locally)."""

    def venue_type(self, order: PreparedOrder) -> str: ...


@dataclass(frozen=True, slots=True)
class OrdersUpdated(VenueMessage):
    """Orders of the account changed state at the venue (pushed)."""

    states: tuple[OrderState, ...]


@dataclass(frozen=True, slots=True)
class FillsReported(VenueMessage):
    """Fills of the account (pushed); the core books each of its own once."""

    fills: tuple[VenueFill, ...]


@dataclass(frozen=True, slots=True)
class Reconnected(VenueMessage):
    """The adapter's stream came back after a gap: what it would have pushed may be lost."""


@dataclass(frozen=True, slots=True)
class Snapshot(VenueMessage):
    """The account as the venue sees it, for reconciliation (``live.reconcile``)."""

    fills: tuple[VenueFill, ...]
    positions: tuple[Position, ...]
    open_orders: tuple[OpenOrder, ...]
    generation: int  # the port's activity counter when the fetch started
    error: str | None = None
    account: AccountState | None = None  # fetched before ``funding``
    funding: tuple[FundingPayment, ...] = ()
