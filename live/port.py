"""The contract between the live core and a venue adapter, in one place.

An adapter (one folder per venue under ``live/``) translates and does I/O; the core
(order tracking, the write-ahead journal, reconciliation, recovery, funding booking, risk
state) asks it only what ``VenueAdapter`` lists and reads only the neutral reports of
``live.venue_types``. What an adapter's tasks report reaches the runner's single
consumer as a ``VenueMessage`` on its queue, never as a call into the desk.

Cursors are venue times in milliseconds: ``fills(since_ms)`` and ``funding(start_ms)``
answer what happened at or after the cursor, so the core keeps the cursor (it knows what
it booked) and an adapter keeps no state about what was booked.

Modelled on an execution client of NautilusTrader's live engine (commands in, typed
status reports out); the names and shapes are this project's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from live.orders import Tracked
from live.records import Durable
from live.venue_types import (
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim.execution import ExecutionDesk
from sim.instruments import Instrument
from sim.orders import Leg


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
        """Send it: a definite state, or an exception when the outcome is unknown."""
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
