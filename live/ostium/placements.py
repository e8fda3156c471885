"""What each order this process sent became at Ostium, and finding it there.

Ostium has no client order ids: a neutral order (``PreparedOrder``) becomes keeper orders
and perhaps a limit, kept per cloid (``_Placement``, in memory). ``OstiumLookups`` answers
an order's state from them (``order_state``: by cloid or neutral id, aggregated over its
keeper orders, ``_aggregate``), finds a send whose outcome is unknown by its fields among
the account's orders initiated since (``_find_landed``), and holds the subgraph's reads of
orders, trades and limits (the executions, read page by page, stay in the venue).

Split from ``live.ostium.venue`` along that seam: the venue sends, cancels and reads the
account; this is how what it sent is found again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from live.ostium.wire import (
    LIMITS,
    ORDER_BY_ID,
    ORDERS_INITIATED,
    ORDERS_OF_LIMIT,
    TRADES,
    OstiumLimit,
    OstiumOrder,
    OstiumTrade,
    OstiumWireError,
    limit_oid,
    limit_ref,
    parse_limit,
    parse_order,
    parse_trade,
)
from live.venue_types import CANCELED, FILLED, RESTING, OrderState

if TYPE_CHECKING:
    from live.ostium.gateway import OstiumGateway
    from live.ostium.wire import OstiumPair

Kind = Literal["MARKET", "LIMIT", "STOP"]


@dataclass(frozen=True, slots=True)
class PreparedOrder:
    """A neutral request as an Ostium open (or close): ``kind`` and the price it names
    (a market order's reference, a limit's or stop's level)."""

    coin: str
    cloid: str
    size: float
    price: float
    is_buy: bool
    kind: Kind
    slippage_pct: float
    reduce_only: bool = False
    rejection: str | None = None

@dataclass(slots=True)
class _Placement:
    """What one cloid became at Ostium."""

    order: PreparedOrder
    sent_ms: int
    orders: list[int] = field(default_factory=list)  # keeper order ids
    limit: tuple[int, int] | None = None  # (pair id, index) of a limit/stop open
    limit_id: str | None = None  # the subgraph's id of that limit, once seen
    canceled: bool = False
    unresolved: bool = False  # a send whose outcome is unknown: found by its fields
    short: bool = False  # not all of it was sent (refused, reduce-only, below minimum)
    in_flight: str | None = None  # "open" or "close": the call under way (or unanswered)
    collateral: float = 0.0
    leverage: float = 0.0
    message: str | None = None
    at_keeper: bool = False  # last seen pending at the keeper (a market order)

    @property
    def oid(self) -> int | None:
        if self.limit is not None:
            return limit_oid(*self.limit)
        return self.orders[0] if self.orders else None


class OstiumLookups:
    """``OstiumVenue``'s lookups (a mixin: the state is the venue's, declared below for
    the type checker only)."""

    if TYPE_CHECKING:
        gateway: OstiumGateway
        _coin_of: dict[int, str]
        _placements: dict[str, _Placement]
        _cloid_of_order: dict[int, str]
        _cloid_of_limit: dict[tuple[int, int], str]
        _cloid_of_limit_id: dict[str, str]

        @property
        def account(self) -> str: ...
        def pair(self, coin: str) -> OstiumPair: ...
        def _sent_order(self, p: _Placement, reply: Any) -> None: ...
        def _sent_limit(self, p: _Placement, pair_id: int, index: int) -> None: ...

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        """An order by cloid (or neutral id); None if Ostium never got it."""
        if isinstance(ref, str):
            p = self._placements.get(ref)
            return None if p is None else await self._state(p)
        lim = limit_ref(ref)
        if lim is not None:
            cloid = self._cloid_of_limit.get(lim)
            if cloid is not None:
                return await self._state(self._placements[cloid])
            if lim in {(x.pair_id, x.index) for x in await self._limits()}:
                return OrderState("", coin, RESTING, size, oid=ref, venue_status="open")
            return None
        cloid = self._cloid_of_order.get(ref)
        if cloid is not None:
            return await self._state(self._placements[cloid])
        order = await self._order(ref)
        if order is None:
            return None
        return _aggregate("", order.coin, size or order.units, ref, [order], None, False,
                          None)

    async def _state(self, p: _Placement) -> OrderState | None:
        if p.unresolved:
            await self._find_landed(p)
        if p.oid is None:
            return None
        orders = [o for o in [await self._order(i) for i in p.orders] if o is not None]
        pending = len(orders) < len(p.orders)  # sent, not indexed yet
        resting = False
        if p.limit is not None:
            limits = {(x.pair_id, x.index): x for x in await self._limits()}
            live = limits.get(p.limit)
            if live is not None:
                self._know_limit_id(p, live.id)
                resting = True
            elif p.limit_id is not None:
                orders += [o for o in await self._orders_of_limit(p.limit_id)
                           if o.order_id not in p.orders]
            if live is None and not p.canceled and not any(
                    not o.pending for o in orders):
                pending = True  # gone from the active limits, its execution not indexed yet
        state = _aggregate(p.order.cloid, p.order.coin, p.order.size, p.oid, orders,
                           p.message, pending or resting, "open" if resting else None,
                           canceled=p.canceled or p.short)
        # a market order the keeper has not executed: open at the venue (``open_orders``)
        p.at_keeper = p.limit is None and state.status == RESTING
        return state

    def _know_limit_id(self, p: _Placement, limit_id: str) -> None:
        p.limit_id = limit_id
        self._cloid_of_limit_id[limit_id] = p.order.cloid

    async def _find_landed(self, p: _Placement) -> None:
        """A send whose outcome is unknown: the account's orders and limits initiated
        since it was sent that match it and no other placement claims: an open by pair,
        direction, collateral and leverage; a close by pair and the closed direction."""
        order = p.order
        pair = self.pair(order.coin)
        since_s = p.sent_ms // 1000 - 5
        claimed_orders = set(self._cloid_of_order)
        claimed_limits = set(self._cloid_of_limit)

        def matches(is_long: bool, collateral: float, leverage: float, pid: int) -> bool:
            return (pid == pair.pair_id and is_long == order.is_buy
                    and abs(collateral - p.collateral) <= 1e-6
                    and abs(leverage - p.leverage) <= 1e-2)

        if order.kind == "MARKET":
            data = await self.gateway.query(ORDERS_INITIATED, {
                "trader": self.account, "since": str(max(0, since_s))})
            closing = p.in_flight == "close"
            for o in [parse_order(r, self._coin_of) for r in _list(data, "orders")]:
                if o.order_id in claimed_orders:
                    continue
                if closing:
                    found = (o.action.lower() == "close" and o.pair_id == pair.pair_id
                             and o.is_long != order.is_buy)
                else:
                    found = (o.action.lower() == "open"
                             and matches(o.is_long, o.collateral, p.leverage, o.pair_id))
                if found:
                    self._sent_order(p, {"order_id": o.order_id})
                    p.unresolved = False
                    return
        else:
            for lim in await self._limits():
                if ((lim.pair_id, lim.index) not in claimed_limits
                        and lim.time_ms >= since_s * 1000
                        and matches(lim.is_long, lim.collateral, lim.leverage, lim.pair_id)):
                    self._sent_limit(p, lim.pair_id, lim.index)
                    self._know_limit_id(p, lim.id)
                    p.unresolved = False
                    return

    async def _order(self, order_id: int) -> OstiumOrder | None:
        data = await self.gateway.query(ORDER_BY_ID, {"id": str(order_id)})
        rows = data.get("orders")
        if not isinstance(rows, list):
            raise OstiumWireError("Ostium subgraph (order): the reply has no 'orders' list")
        return parse_order(rows[0], self._coin_of) if rows else None

    async def _orders_of_limit(self, limit_id: str) -> list[OstiumOrder]:
        data = await self.gateway.query(ORDERS_OF_LIMIT, {"limit": limit_id})
        return [parse_order(r, self._coin_of) for r in _list(data, "orders")]

    async def _trades(self) -> list[OstiumTrade]:
        data = await self.gateway.query(TRADES, {"trader": self.account})
        return [parse_trade(r, self._coin_of) for r in _list(data, "trades")]

    async def _limits(self) -> list[OstiumLimit]:
        data = await self.gateway.query(LIMITS, {"trader": self.account})
        return [parse_limit(r, self._coin_of) for r in _list(data, "limits")]


def _list(data: Any, key: str) -> list[Any]:
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise OstiumWireError(f"Ostium subgraph: the reply has no {key!r} list")
    return rows


def _aggregate(cloid: str, coin: str, size: float, oid: int | None,
               orders: list[OstiumOrder], message: str | None, working: bool,
               venue_status: str | None, *, canceled: bool = False) -> OrderState:
    """One neutral state of the keeper orders a cloid became: resting while any is
    pending (or its limit rests); else filled when every one executed and all of the
    order was sent; else canceled, with the keeper's reason or why the rest was not
    sent (``message``), what did execute as its filled part."""
    executed = [o for o in orders if not o.pending and not o.cancelled]
    filled = sum((o.units for o in executed), 0.0)
    avg = (sum(o.units * (o.price or 0.0) for o in executed) / filled) if filled else None
    if working or any(o.pending for o in orders):
        return OrderState(cloid, coin, RESTING, size, oid, filled, avg, message,
                          venue_status or "pending")
    reasons = [o.cancel_reason or "cancelled" for o in orders if o.cancelled]
    if not reasons and not canceled and executed:
        return OrderState(cloid, coin, FILLED, size, oid, filled, avg, message, "executed")
    why = "; ".join(reasons) or message or "canceled"
    return OrderState(cloid, coin, CANCELED, size, oid, filled, avg, why,
                      "cancelled" if reasons else "canceled")
