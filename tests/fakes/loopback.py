"""A venue account in memory that answers only the live core's contract
(``live.port.VenueAdapter``): no stream, no order-type names, nothing of any real venue.

Its order model is small and exact: a market order fills at once at the current price
(taker fee); a limit order fills at once if the price is at or through it (taker), else
an IOC expires and a GTC rests until ``move`` takes the price through it (filled at its
limit, maker fee) or it is cancelled by cloid. While ``down`` every place request fails
with ``OrderNotSent``. It keeps an independent ledger (cash and positions from its own
trades) for tests to compare the store with, and counts what the core asked of it.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace

from live.port import OrderNotSent
from live.venue_types import (
    CANCELED,
    EXPIRED,
    FILLED,
    RESTING,
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim.instruments import Instrument


@dataclass(frozen=True, slots=True)
class LoopbackOrder:
    """An order as the loopback venue prepared it."""

    cloid: str
    coin: str
    is_buy: bool
    size: float
    price: float
    kind: str
    tif: str
    rejection: str | None = None


@dataclass
class LoopbackVenue:
    """One account; ``price`` is each coin's current price, set by the test (``move``)."""

    lot: float = 0.001
    taker_fee: float = 0.0005
    maker_fee: float = 0.0001
    cash: float = 10_000.0
    name: str = "loopback"
    down: bool = False
    price: dict[str, float] = field(default_factory=dict)
    states: dict[str, OrderState] = field(default_factory=dict)
    resting: dict[str, LoopbackOrder] = field(default_factory=dict)
    trades: list[VenueFill] = field(default_factory=list)
    held: dict[str, float] = field(default_factory=dict)
    placed: Counter[str] = field(default_factory=Counter)  # place requests that ran, by cloid
    cancels: list[str] = field(default_factory=list)  # cloids cancelled while resting
    lookups: Counter[str] = field(default_factory=Counter)  # order_state by cloid
    snapshots: int = 0  # funding fetches: the last request of a reconciliation's snapshot
    now_ms: int = 1_000

    # -- the test's side -------------------------------------------------------------------

    def move(self, coin: str, price: float) -> None:
        """The price moves to ``price``: resting limits it reaches fill at their limit."""
        self.price[coin] = price
        self.now_ms += 1
        for order in list(self.resting.values()):
            if order.coin == coin and _reached(order, price):
                del self.resting[order.cloid]
                self._trade(order, order.price, maker=True)

    # -- the contract ----------------------------------------------------------------------

    def prepare(self, request: OrderRequest) -> LoopbackOrder:
        size = math.floor(request.size / self.lot + 1e-9) * self.lot
        if request.kind == "trigger":
            return LoopbackOrder(request.cloid, request.coin, request.is_buy, size,
                                 request.price, "trigger", "gtc",
                                 "loopback: no trigger orders")
        return LoopbackOrder(request.cloid, request.coin, request.is_buy, size, request.price,
                             request.kind, request.tif,
                             None if size > 0 else f"loopback: size {request.size} rounds to 0")

    async def place(self, order: LoopbackOrder) -> OrderState:
        if self.down:
            raise OrderNotSent("loopback: the venue is down")
        self.placed[order.cloid] += 1
        price = self.price[order.coin]
        if order.kind == "market" or _reached(order, price):
            return self._trade(order, price, maker=False)
        if order.tif == "ioc":
            state = OrderState(order.cloid, order.coin, EXPIRED, order.size, oid=self._oid(),
                               message="loopback: nothing to match")
        else:
            state = OrderState(order.cloid, order.coin, RESTING, order.size, oid=self._oid())
            self.resting[order.cloid] = order
        self.states[order.cloid] = state
        return state

    async def cancel_by_cloid(self, coin: str, cloid: str) -> OrderState:
        if self.resting.pop(cloid, None) is not None:
            self.cancels.append(cloid)
            self.states[cloid] = replace(self.states[cloid], status=CANCELED)
        return self.states[cloid]

    async def cancel(self, coin: str, oid: int) -> OrderState:
        for cloid, state in self.states.items():
            if state.oid == oid:
                return await self.cancel_by_cloid(coin, cloid)
        raise KeyError(oid)

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        self.lookups[str(ref)] += 1
        return self.states.get(str(ref))

    async def open_orders(self) -> list[OpenOrder]:
        return [OpenOrder(o.coin, self.states[o.cloid].oid or 0, o.cloid,
                          o.size if o.is_buy else -o.size) for o in self.resting.values()]

    async def fills(self, since_ms: int = 0) -> list[VenueFill]:
        return [f for f in self.trades if f.time_ms >= since_ms]

    async def positions(self) -> list[Position]:
        return [Position(coin, size, None, 0.0, None, None)
                for coin, size in self.held.items() if size]

    async def account_state(self) -> AccountState:
        positions = tuple(await self.positions())
        value = self.cash + sum(p.size * self.price[p.coin] for p in positions)
        return AccountState(positions, value, {p.coin: self.price[p.coin] for p in positions},
                            self.now_ms)

    async def account_value(self) -> float:
        return (await self.account_state()).account_value

    async def funding(self, start_ms: int, end_ms: int | None = None
                      ) -> list[FundingPayment]:
        self.snapshots += 1
        return []

    def instrument(self, coin: str, venue: str, symbol: str) -> Instrument:
        return Instrument(venue, symbol, lot=self.lot)

    def lot_size(self, coin: str) -> float:
        return self.lot

    # -- the venue's own books -------------------------------------------------------------

    def _oid(self) -> int:
        return len(self.states) + 1

    def _trade(self, order: LoopbackOrder, price: float, *, maker: bool) -> OrderState:
        state = self.states.get(order.cloid)
        oid = state.oid if state is not None and state.oid else self._oid()
        signed = order.size if order.is_buy else -order.size
        fee = abs(signed) * price * (self.maker_fee if maker else self.taker_fee)
        self.cash -= signed * price + fee
        self.held[order.coin] = self.held.get(order.coin, 0.0) + signed
        self.trades.append(VenueFill(len(self.trades) + 1, oid, order.coin, signed, price, fee,
                                     self.now_ms, 0.0, order.cloid, crossed=not maker))
        filled = OrderState(order.cloid, order.coin, FILLED, order.size, oid=oid,
                            filled_size=order.size, avg_price=price)
        self.states[order.cloid] = filled
        return filled


def _reached(order: LoopbackOrder, price: float) -> bool:
    """A limit order the price is at or through."""
    return order.kind == "limit" and (price <= order.price if order.is_buy
                                      else price >= order.price)
