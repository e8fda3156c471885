"""The venue-neutral order manager (``live.orders.OrderManager``) with an adapter that
is not Hyperliquid: an in-memory venue answering only the contract of ``live.port``.
The core settles a leg from the adapter's neutral reports alone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from live.orders import OrderManager, OrderPort
from live.port import FillsReported, OrdersUpdated, PushingAdapter, Reconnected, VenueAdapter
from live.venue_types import (
    FILLED,
    REJECTED,
    RESTING,
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim import orders as lifecycle
from sim.orders import LIMIT, Leg, Order


@dataclass(frozen=True, slots=True)
class Prepared:
    cloid: str
    coin: str
    size: float
    price: float
    is_buy: bool
    rejection: str | None = None


@dataclass
class MemoryVenue:
    """Fills every order at its price at once; knows its orders and fills by cloid."""

    name: str = "memory"
    states: dict[str, OrderState] = field(default_factory=dict)
    trades: list[VenueFill] = field(default_factory=list)

    def prepare(self, request: OrderRequest) -> Prepared:
        size = round(request.size, 2)
        return Prepared(request.cloid, request.coin, size, request.price, request.is_buy,
                        None if size > 0 else "size rounds to 0")

    async def place(self, order: Prepared) -> OrderState:
        state = OrderState(order.cloid, order.coin, FILLED, order.size, oid=len(self.states) + 1,
                           filled_size=order.size, avg_price=order.price)
        self.states[order.cloid] = state
        # the trade comes in two parts; the answer to placing carries no fills
        sign = 1.0 if order.is_buy else -1.0
        for k, part in enumerate((sign * order.size / 2, sign * order.size / 2)):
            self.trades.append(VenueFill(100 * state.oid + k, state.oid, order.coin, part,
                                         order.price, 0.01, 1_000 + k, 0.0, order.cloid))
        return state

    async def cancel_by_cloid(self, coin: str, cloid: str) -> OrderState:
        return self.states[cloid]

    async def cancel(self, coin: str, oid: int) -> OrderState:
        return OrderState("", coin, REJECTED, 0.0, oid=oid)

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        return self.states.get(str(ref))

    async def open_orders(self) -> list[OpenOrder]:
        return []

    async def fills(self, since_ms: int = 0) -> list[VenueFill]:
        return [f for f in self.trades if f.time_ms >= since_ms]

    async def positions(self) -> list[Position]:
        return []

    async def account_state(self) -> AccountState:
        return AccountState((), 0.0, {}, 0)

    async def account_value(self) -> float:
        return 0.0

    async def funding(self, start_ms: int, end_ms: int | None = None
                      ) -> list[FundingPayment]:
        return []

    def instrument(self, coin: str, venue: str, symbol: str) -> Any:
        raise NotImplementedError

    def lot_size(self, coin: str) -> float:
        return 0.01


class RecordingDesk:
    """The desk's side of an external venue, recorded."""

    symbols = ["X-PERP"]

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def external_accepted(self, leg: Leg, now: int) -> None:
        self.events.append(("accepted",))

    def external_fill(self, leg: Leg, ts: int, size: float, price: float, fee: float,
                      liquidity: str) -> int:
        self.events.append(("fill", size, price, fee, liquidity))
        return len(self.events)

    def external_closed(self, leg: Leg, now: int, code: str, reason: str) -> None:
        self.events.append(("closed", code))


def run_leg(quantity: float) -> tuple[MemoryVenue, RecordingDesk, OrderManager]:
    """One limit leg of ``quantity`` through the manager until nothing of it works."""
    venue = MemoryVenue()
    assert isinstance(venue, VenueAdapter)
    desk = RecordingDesk()
    port = OrderManager(venue, desk, "run-1", {"X-PERP": "X"},  # type: ignore[arg-type]
                        now_ns=lambda: 5_000_000_000, refresh_s=0.0)
    _: OrderPort = port  # the core drives it through the same protocol
    life = Order(1, 1, 0, 0, "X-PERP", 0, quantity, 10.0, kind=LIMIT, limit_price=10.0)
    leg = Leg(life, SimpleNamespace(name="memory"), quantity, quantity, 0, 0)

    async def go() -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        await port.start(queue)
        port.submit(leg, 0)
        port.start_requests()
        while not port.idle:
            port.apply(await asyncio.wait_for(queue.get(), 5))
        await port.close()

    asyncio.run(go())
    return venue, desk, port


def test_the_core_settles_a_leg_from_any_adapter_neutral_reports() -> None:
    _, desk, port = run_leg(-1.5)
    # placed as a sell of 1.5, filled in two trades fetched by cloid, booked once each,
    # then closed filled: nothing the adapter did not report
    assert desk.events == [("accepted",), ("fill", -0.75, 10.0, 0.01, "taker"),
                           ("fill", -0.75, 10.0, 0.01, "taker"), ("closed", lifecycle.FILLED)]
    records = port.take_records()
    (row,) = records.orders  # write-ahead row of the leg
    assert (row["size"], row["price"], row["status"]) == (1.5, 10.0, "sent")
    assert [row[0] for row in records.fills] == [100, 101]
    assert records.updates[-1]["status"] == lifecycle.FILLED


def test_an_order_the_adapter_refuses_locally_is_never_sent_and_ends_rejected() -> None:
    venue, desk, port = run_leg(0.001)  # rounds to size 0 at this venue
    assert venue.states == {} and venue.trades == []
    assert desk.events == [("closed", lifecycle.REJECTED)]
    (row,) = port.take_records().orders
    assert row["message"] == "size rounds to 0"


@dataclass
class PushingVenue(MemoryVenue):
    """Answers a place with "resting", then pushes its fills and its filled state (as a
    venue's stream does); counts lookups, which the pushes make unnecessary."""

    emit: Any = None
    lookups: int = 0
    pushed: bool = False

    async def connect(self, emit: Any) -> None:
        self.emit = emit

    async def disconnect(self) -> None:
        self.emit = None

    async def place(self, order: Prepared) -> OrderState:
        filled = await super().place(order)

        def push() -> None:  # after the answer: the order rested, then traded
            self.emit(FillsReported(tuple(f for f in self.trades if f.cloid == order.cloid)))
            self.emit(OrdersUpdated((filled,)))
            self.pushed = True

        asyncio.get_running_loop().call_soon(push)
        return OrderState(order.cloid, order.coin, RESTING, order.size, oid=filled.oid)

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        self.lookups += 1
        return await super().order_state(ref, coin, size)


def test_a_pushing_adapter_settles_legs_by_its_messages_alone() -> None:
    venue = PushingVenue()
    assert isinstance(venue, PushingAdapter)
    desk = RecordingDesk()
    port = OrderManager(venue, desk, "run-1", {"X-PERP": "X"},  # type: ignore[arg-type]
                        now_ns=lambda: 5_000_000_000, refresh_s=0.0)
    life = Order(1, 1, 0, 0, "X-PERP", 0, 2.0, 10.0, kind=LIMIT, limit_price=10.0)
    leg = Leg(life, SimpleNamespace(name="memory"), 2.0, 2.0, 0, 0)

    async def go() -> None:
        queue: asyncio.Queue[object] = asyncio.Queue()
        await port.start(queue)
        assert venue.emit is not None  # connected: its pushes go to the runner's queue
        port.submit(leg, 0)
        port.start_requests()
        while not port.idle:
            port.apply(await asyncio.wait_for(queue.get(), 5))
        port.apply(Reconnected())  # nothing is tracked any more: nothing to look up
        await asyncio.sleep(0)
        await port.close()
        assert venue.emit is None  # disconnected

    asyncio.run(go())
    assert venue.pushed and venue.lookups == 0
    assert desk.events == [("accepted",), ("fill", 1.0, 10.0, 0.01, "taker"),
                           ("fill", 1.0, 10.0, 0.01, "taker"), ("closed", lifecycle.FILLED)]
