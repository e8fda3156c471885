"""The Ostium venue adapter: the live core's contract (``live.port.VenueAdapter``) over
Ostium's wire (``live.ostium.wire``) and I/O (``live.ostium.gateway``).

Where Ostium's model differs from an order book, what a neutral order becomes:

* market: a MARKET open at the reference price with the configured slippage bound
  (``OstiumConfig.slippage_pct``), executed by Ostium's keeper at the oracle price.
  A market order against the account's net position first *closes* open trades on the
  other side (oldest first, the last one partly: ``closeTradeMarket`` by percentage),
  and only what is left opens a trade; a reduce-only order never opens one. One neutral
  order may so be several keeper orders; it is filled once all are executed;
* limit (gtc/alo): a LIMIT open; ioc: a MARKET open bounded at its limit price
  (slippage 0 from it: the keeper cancels it rather than fill worse);
* stop entry ("sl" trigger that is not reduce-only): a STOP open; a take-profit entry
  ("tp", not reduce-only): a LIMIT open;
* reduce-only triggers (a bracket's legs) and reduce-only limits are refused locally:
  Ostium sets take-profit and stop-loss on the trade itself (``updateTp``/``updateSl``),
  not as orders, and a limit only opens.

Ostium fixes a trade's USD notional (collateral x leverage), not its units: the units
filled are notional / execution price, so they differ from the request by the move
between the reference and the oracle's price. The fills report what was executed.

Ostium has no client order ids: the cloid of each order sent is kept here (in memory)
with the keeper orders and limit it became; a placement whose transaction's outcome is
unknown is found by its fields (pair, direction, collateral, leverage) among the
account's orders initiated since it was sent. After a restart the map is empty: fills
of an earlier process come without cloid (the core reconciles them as foreign).

Funding and rollover fees accrue on each open trade and are settled when it is closed:
``funding`` reports each close's settled funding + rollover as one payment (at its
execution time, on the position it closed; ``rate`` = charge / (size x price) so that
payment = -rate x size x price holds); what open trades accrued counts in the account
value only once settled (``account_state``; ``accrued`` has the rest). Unrealized PnL
is at the price service's mid.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from live.ostium.gateway import (
    ENV_RPC_URL,
    OstiumConfig,
    OstiumGateway,
    OstiumUnavailable,
    SdkTrader,
    TradeRefused,
)
from live.ostium.wire import (
    LIMITS,
    ORDER_BY_ID,
    ORDERS_INITIATED,
    ORDERS_OF_LIMIT,
    ORDERS_RECENT,
    ORDERS_SINCE,
    PAGE,
    PAIRS,
    TRADES,
    OstiumLimit,
    OstiumOrder,
    OstiumPair,
    OstiumPrice,
    OstiumTrade,
    OstiumWireError,
    balance_of_call,
    limit_oid,
    limit_ref,
    parse_balance,
    parse_limit,
    parse_order,
    parse_pairs,
    parse_prices,
    parse_trade,
)
from live.port import PreparedOrder as AnyPrepared
from live.venue_types import (
    CANCELED,
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
from sim.instruments import OSTIUM_MIN_NOTIONAL, Instrument

__all__ = ["OstiumUnavailable", "OstiumVenue", "PreparedOrder"]

LOT = 1e-9  # no lot at Ostium (sizes follow 6-decimal collateral): reconciliation's step
_EPS = 1e-9
_REST = 1e-4  # of an order's size: what closing by percentage (2 decimals) may leave

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


class OstiumVenue:
    """One Ostium account as the live core uses it. ``await load_markets()`` first."""

    name = "ostium"

    def __init__(self, gateway: OstiumGateway, *,
                 now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.gateway = gateway
        self.config: OstiumConfig = gateway.config
        self.now_ms = now_ms
        self.pairs: dict[str, OstiumPair] = {}
        self._coin_of: dict[int, str] = {}
        self._placements: dict[str, _Placement] = {}
        self._cloid_of_order: dict[int, str] = {}
        self._cloid_of_limit: dict[tuple[int, int], str] = {}
        self._cloid_of_limit_id: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"OstiumVenue({self.gateway!r})"

    @classmethod
    def from_env(cls, network: Literal["mainnet", "testnet"], *,
                 environ: Mapping[str, str] | None = None, **config: Any) -> OstiumVenue:
        """A trading adapter: the SDK signs (``QUORUM_OSTIUM_PRIVATE_KEY``, over
        ``QUORUM_OSTIUM_RPC_URL``); reads go to the network's public endpoints."""
        trader = SdkTrader.from_env(network, environ=environ)
        rpc = (os.environ if environ is None else environ)[ENV_RPC_URL].strip()
        cfg = OstiumConfig.for_network(network, rpc_url=rpc, **config)
        return cls(OstiumGateway(cfg, trader.address, trader))

    @property
    def account(self) -> str:
        return self.gateway.address

    async def aclose(self) -> None:
        await self.gateway.aclose()

    # -- markets ---------------------------------------------------------------------------

    async def load_markets(self) -> dict[str, OstiumPair]:
        """Pairs quoted in USD, by base asset (BTC, ETH, EUR, XAU, ...)."""
        self.pairs = parse_pairs(await self.gateway.query(PAIRS))
        self._coin_of = {p.pair_id: p.coin for p in self.pairs.values()}
        return self.pairs

    def pair(self, coin: str) -> OstiumPair:
        try:
            return self.pairs[coin]
        except KeyError:
            hint = "" if self.pairs else " (call load_markets first)"
            raise ValueError(f"unknown Ostium pair {coin!r}{hint}") from None

    async def prices(self) -> dict[str, OstiumPrice]:
        return parse_prices(await self.gateway.latest_prices())

    async def mids(self) -> dict[str, float]:
        return {c: p.mid for c, p in (await self.prices()).items() if c in self.pairs}

    def instrument(self, coin: str, venue: str, symbol: str) -> Instrument:
        """No price tick (oracle prices), no lot; the pair's minimum leveraged position
        (``fee.minLevPos``; else the documented 7 USDC) and maximum leverage."""
        p = self.pair(coin)
        return Instrument(venue, symbol, min_notional=p.min_notional or OSTIUM_MIN_NOTIONAL,
                          max_leverage=p.max_leverage, source="ostium pairs")

    def venue_type(self, prepared: AnyPrepared) -> str:
        """What an order became at Ostium (the ``venue_orders.venue_type`` column:
        market, limit, stop), or "none" when it was refused here (``DescribingAdapter``)."""
        if prepared.rejection is not None or not isinstance(prepared, PreparedOrder):
            return "none"
        return prepared.kind.lower()

    def lot_size(self, coin: str) -> float:
        self.pair(coin)
        return LOT

    # -- orders ----------------------------------------------------------------------------

    def prepare(self, request: OrderRequest) -> PreparedOrder:
        r = request
        kind: Kind = "MARKET"
        slip = self.config.slippage_pct
        refusal = None
        if r.kind == "limit":
            kind, slip = ("MARKET", 0.0) if r.tif == "ioc" else ("LIMIT", 0.0)
        elif r.kind == "trigger":
            kind, slip = ("STOP" if r.trigger == "sl" else "LIMIT"), 0.0
            if r.reduce_only:
                refusal = ("quorum: Ostium sets take-profit and stop-loss on the trade "
                           "(updateTp/updateSl), not as orders: a reduce-only trigger is "
                           "not supported")
        if kind != "MARKET" and r.reduce_only and refusal is None:
            refusal = "quorum: an Ostium limit or stop only opens a trade: not reduce-only"
        pair = self.pairs.get(r.coin)
        if pair is None:
            refusal = f"quorum: unknown Ostium pair {r.coin!r}"
        elif not (r.size > 0 and math.isfinite(r.size) and r.price > 0
                  and math.isfinite(r.price)):
            refusal = f"quorum: size {r.size} at price {r.price} is not tradable"
        elif refusal is None and not r.reduce_only:
            least = pair.min_notional or OSTIUM_MIN_NOTIONAL
            if r.size * r.price < least:
                refusal = (f"quorum: order value {r.size * r.price:.2f} is below Ostium's "
                           f"{least:g} USDC minimum position ({r.coin})")
            elif pair.max_leverage is not None and self.config.leverage > pair.max_leverage:
                refusal = (f"quorum: leverage {self.config.leverage:g} is above {r.coin}'s "
                           f"maximum {pair.max_leverage:g}")
        return PreparedOrder(r.coin, r.cloid, r.size, r.price, r.is_buy, kind, slip,
                             r.reduce_only, refusal)

    async def place(self, order: AnyPrepared) -> OrderState:
        """Send it; a definite state (``resting`` while the keeper has not executed it),
        or the exception of a send whose outcome is unknown (the cloid settles it)."""
        if not isinstance(order, PreparedOrder):
            raise TypeError(f"not an Ostium order (prepare it here): {order!r}")
        if order.rejection is not None:
            return OrderState(order.cloid, order.coin, REJECTED, order.size,
                              message=order.rejection)
        p = _Placement(order, self.now_ms())
        self._placements[order.cloid] = p
        try:
            if order.kind == "MARKET":
                await self._market(p)
            else:
                await self._open(p, order.size, order.kind)
        except TradeRefused as exc:
            if p.oid is None:
                return OrderState(order.cloid, order.coin, REJECTED, order.size,
                                  message=str(exc), venue_status="reverted")
            p.message = str(exc)  # a later part refused: what was sent stands
            p.short = True
        except Exception:
            p.unresolved = True
            raise
        if p.oid is None:  # nothing to send (a reduce-only order with nothing to reduce)
            return OrderState(order.cloid, order.coin, REJECTED, order.size,
                              message=p.message or "quorum: nothing to reduce")
        state = await self._state(p)
        assert state is not None
        return state

    async def _market(self, p: _Placement) -> None:
        """Close trades against the order (oldest first), then open what is left. The
        plan is made before anything is sent: a step whose answer is lost ends the
        order there (``short`` unless it was the last), the cloid's lookup finds it."""
        order = p.order
        pair = self.pair(order.coin)
        left = order.size
        closes: list[tuple[OstiumTrade, float]] = []
        against = [t for t in await self._trades() if t.coin == order.coin
                   and t.is_long != order.is_buy]
        for t in sorted(against, key=lambda t: (t.time_ms, t.index)):
            if left <= _REST * order.size:
                break
            pct = min(100.0, round(100.0 * left / t.units, 2))
            if pct <= 0:
                break
            closes.append((t, pct))
            left -= t.units * pct / 100.0
        opens = False
        if left > _REST * order.size:
            if order.reduce_only:
                p.message = (f"quorum: reduce-only: no {order.coin} position to reduce"
                             if not closes else
                             f"reduce-only: the rest ({left:g}) would open a trade")
                p.short = True
            elif left * order.price < (pair.min_notional or OSTIUM_MIN_NOTIONAL):
                p.message = f"the rest ({left:g}) is below Ostium's minimum position"
                p.short = True
            else:
                opens = True
        steps = len(closes) + opens
        for n, (t, pct) in enumerate(closes):
            p.in_flight = "close"
            try:
                reply = await self.gateway.trade("close_trade", pair.pair_id, t.index,
                                                 order.price, pct, order.slippage_pct)
            except TradeRefused:
                p.in_flight = None
                raise
            except Exception:
                p.short = p.short or n < steps - 1
                raise
            p.in_flight = None
            self._sent_order(p, reply)
        if opens:
            await self._open(p, left, "MARKET")

    async def _open(self, p: _Placement, size: float, kind: Kind) -> None:
        order = p.order
        pair = self.pair(order.coin)
        leverage = self.config.leverage
        collateral = math.floor(size * order.price / leverage * 1e6) / 1e6
        p.collateral, p.leverage = collateral, leverage
        p.in_flight = "open"
        try:
            reply = await self.gateway.trade("open_trade", pair.pair_id, order.is_buy,
                                             collateral, leverage, kind, order.price,
                                             order.slippage_pct)
        except TradeRefused:
            p.in_flight = None
            raise
        p.in_flight = None
        if kind == "MARKET":
            self._sent_order(p, reply)
            return
        index = reply.get("limit_index") if isinstance(reply, dict) else None
        if index is None:  # the receipt did not say: find it among the account's limits
            p.unresolved = True
            await self._find_landed(p)
            return
        self._sent_limit(p, pair.pair_id, int(index))

    def _sent_order(self, p: _Placement, reply: Any) -> None:
        order_id = reply.get("order_id") if isinstance(reply, dict) else None
        if order_id is None:
            p.unresolved = True
            return
        p.orders.append(int(order_id))
        self._cloid_of_order[int(order_id)] = p.order.cloid

    def _sent_limit(self, p: _Placement, pair_id: int, index: int) -> None:
        p.limit = (pair_id, index)
        self._cloid_of_limit[p.limit] = p.order.cloid

    async def cancel_by_cloid(self, coin: str, cloid: str) -> OrderState:
        """Cancel what of the order still rests (a limit or stop). A market order pending
        at the keeper cannot be canceled: its state says so."""
        p = self._placements.get(cloid)
        if p is None:
            return OrderState(cloid, coin, REJECTED, 0.0, message="unknown order")
        message = None
        if p.limit is not None and p.limit in {(lim.pair_id, lim.index)
                                               for lim in await self._limits()}:
            try:
                await self.gateway.trade("cancel_limit", *p.limit)
                p.canceled = True
            except TradeRefused as exc:
                message = str(exc)
        elif p.limit is None:
            message = "a market order pending at Ostium's keeper cannot be canceled"
        state = await self._state(p)
        if state is None:
            return OrderState(cloid, coin, REJECTED, p.order.size, message="unknown order")
        return state if message is None or state.done else _with_message(state, message)

    async def cancel(self, coin: str, oid: int) -> OrderState:
        """Cancel a limit or stop by its neutral id (one the core did not send)."""
        ref = limit_ref(oid)
        if ref is None:
            return OrderState("", coin, REJECTED, 0.0, oid=oid,
                              message="only limit and stop orders can be canceled at Ostium")
        cloid = self._cloid_of_limit.get(ref)
        if cloid is not None:
            return await self.cancel_by_cloid(coin, cloid)
        try:
            await self.gateway.trade("cancel_limit", *ref)
        except TradeRefused as exc:
            return OrderState("", coin, REJECTED, 0.0, oid=oid, message=str(exc))
        return OrderState("", coin, CANCELED, 0.0, oid=oid, venue_status="canceled")

    # -- lookups ---------------------------------------------------------------------------

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

    async def _executed(self, since_ms: int) -> list[OstiumOrder]:
        """Executed orders from ``since_ms`` on (inclusive), oldest first, every page;
        ``since_ms`` <= 0: the latest ``PAGE`` (a bounded read, like a venue's "recent
        fills", for lookups that name no cursor)."""
        if since_ms <= 0:
            data = await self.gateway.query(ORDERS_RECENT, {"trader": self.account})
            return sorted((o for o in (parse_order(r, self._coin_of)
                                       for r in _list(data, "orders"))
                           if o.executed_ms is not None),
                          key=lambda o: (o.executed_ms or 0, o.order_id))
        out: list[OstiumOrder] = []
        skip = 0
        while True:
            data = await self.gateway.query(ORDERS_SINCE, {
                "trader": self.account, "since": str(max(0, since_ms) // 1000), "skip": skip})
            rows = _list(data, "orders")
            out += [o for o in (parse_order(r, self._coin_of) for r in rows)
                    if o.executed_ms is not None and o.executed_ms >= since_ms]
            if len(rows) < PAGE:
                return out
            skip += len(rows)

    # -- the account -----------------------------------------------------------------------

    async def open_orders(self) -> list[OpenOrder]:
        """Resting limits and stops, and the market orders of this process last seen
        pending at the keeper (they work until it executes or cancels them; a lookup of
        their cloid tells which)."""
        limits = [OpenOrder(x.coin, x.oid, self._cloid_of_limit.get((x.pair_id, x.index)),
                            x.units if x.is_long else -x.units) for x in await self._limits()]
        pending = [OpenOrder(p.order.coin, p.oid, cloid,
                             p.order.size if p.order.is_buy else -p.order.size)
                   for cloid, p in self._placements.items()
                   if p.at_keeper and p.oid is not None]
        return limits + pending

    async def fills(self, since_ms: int = 0) -> list[VenueFill]:
        """Each executed keeper order is one fill (Ostium fills an order whole, at one
        price); its trade id is the order id. ``since_ms`` 0: the latest 1000."""
        out = []
        for o in await self._executed(since_ms):
            assert o.price is not None and o.executed_ms is not None
            cloid = self._cloid_of_order.get(o.order_id) or (
                self._cloid_of_limit_id.get(o.limit_id) if o.limit_id else None)
            p = self._placements.get(cloid) if cloid else None
            oid = p.oid if p is not None and p.oid is not None else o.order_id
            out.append(VenueFill(o.order_id, oid, o.coin, o.signed_units, o.price, o.fee,
                                 o.executed_ms, 0.0, cloid, True))
        return out

    async def funding(self, start_ms: int, end_ms: int | None = None) -> list[FundingPayment]:
        """Funding + rollover settled by each close from ``start_ms`` on (inclusive)."""
        out: dict[tuple[str, int], FundingPayment] = {}
        for o in await self._executed(start_ms):
            assert o.price is not None and o.executed_ms is not None
            charge = o.funding + o.rollover
            if o.action.lower() != "close" or charge == 0 or (
                    end_ms is not None and o.executed_ms > end_ms):
                continue
            szi = o.units if o.is_long else -o.units  # the position it was charged on
            key = (o.coin, o.executed_ms)
            before = out.get(key)
            usdc = -charge + (before.usdc if before else 0.0)
            size = szi + (before.szi if before else 0.0)
            rate = -usdc / (size * o.price) if size else 0.0
            out[key] = FundingPayment(o.executed_ms, o.coin, usdc, size, rate,
                                      f"ostium-order-{o.order_id}")
        return sorted(out.values(), key=lambda f: (f.time_ms, f.coin))

    async def positions(self) -> list[Position]:
        return list((await self.account_state()).positions)

    async def account_state(self) -> AccountState:
        """Net position per coin over its open trades (entry: size-weighted open price;
        leverage: notional over collateral), and the account value: the wallet's USDC,
        plus the collateral held by open limits, plus each open trade's collateral and
        unrealized PnL at the mid. The funding and rollover an open trade has accrued are
        left out: they are not settled (``funding`` reports them when a close settles
        them), so the value agrees with what the core has booked; ``accrued`` has them."""
        trades = await self._trades()
        limits = await self._limits()
        prices = await self.prices()
        wallet = parse_balance(await self.gateway.eth_call(
            balance_of_call(self.config.usdc, self.account)))
        value = wallet + sum(x.collateral for x in limits)
        rows: dict[str, list[float]] = {}  # coin -> net, gross, entry notional, upnl, margin
        marks = {}
        for t in trades:
            price = prices.get(t.coin)
            if price is None:
                raise OstiumWireError(f"Ostium price service: no price for {t.coin}, which "
                                      "the account holds")
            marks[t.coin] = price.mid
            upnl = (price.mid - t.open_price) * t.size
            value += t.collateral + upnl
            row = rows.setdefault(t.coin, [0.0, 0.0, 0.0, 0.0, 0.0])
            row[0] += t.size
            row[1] += t.units
            row[2] += t.units * t.open_price
            row[3] += upnl
            row[4] += t.collateral
        positions = tuple(
            Position(coin, net, notional / gross if gross else None, upnl,
                     notional / margin if margin else None, None)
            for coin, (net, gross, notional, upnl, margin) in rows.items())
        return AccountState(positions, value, marks, self.now_ms())

    async def account_value(self) -> float:
        return (await self.account_state()).account_value

    async def accrued(self) -> dict[str, float]:
        """Funding + rollover the open trades have accrued and not settled, per coin
        (USDC, > 0 owed): what closing them now would charge beyond the account value."""
        out: dict[str, float] = {}
        for t in await self._trades():
            out[t.coin] = out.get(t.coin, 0.0) + t.funding + t.rollover
        return out


def _list(data: Any, key: str) -> list[Any]:
    rows = data.get(key) if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise OstiumWireError(f"Ostium subgraph: the reply has no {key!r} list")
    return rows


def _with_message(state: OrderState, message: str) -> OrderState:
    return OrderState(state.cloid, state.coin, state.status, state.size, state.oid,
                      state.filled_size, state.avg_price, message, state.venue_status)


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
