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

Split off along their seams, as mixins of ``OstiumVenue``: what each order sent became
and finding it again (``live.ostium.placements``, with ``PreparedOrder``), and the
account's reads: open orders, fills, funding, positions, value (``live.ostium.account``).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from live.ostium.account import OstiumAccount
from live.ostium.gateway import (
    ENV_RPC_URL,
    OstiumConfig,
    OstiumGateway,
    OstiumUnavailable,
    SdkTrader,
    TradeRefused,
)
from live.ostium.placements import Kind, OstiumLookups, PreparedOrder, _list, _Placement
from live.ostium.wire import (
    ORDERS_RECENT,
    ORDERS_SINCE,
    PAGE,
    PAIRS,
    OstiumOrder,
    OstiumPair,
    OstiumPrice,
    OstiumTrade,
    limit_ref,
    parse_order,
    parse_pairs,
    parse_prices,
)
from live.port import PreparedOrder as AnyPrepared
from live.venue_types import (
    CANCELED,
    REJECTED,
    RESTING,
    OrderRequest,
    OrderState,
    Position,
)
from sim.instruments import OSTIUM_MIN_NOTIONAL, Instrument

# The neutral report types it answers with are bound here too (as before the split), so
# ``live.ostium.venue.Position`` is ``live.venue_types.Position``.
__all__ = ["RESTING", "OstiumUnavailable", "OstiumVenue", "Position", "PreparedOrder"]

LOT = 1e-9  # no lot at Ostium (sizes follow 6-decimal collateral): reconciliation's step
_REST = 1e-4  # of an order's size: what closing by percentage (2 decimals) may leave


class OstiumVenue(OstiumLookups, OstiumAccount):
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

    # -- executions, every page (``fills`` and ``funding`` read them) ----------------------

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



def _with_message(state: OrderState, message: str) -> OrderState:
    return OrderState(state.cloid, state.coin, state.status, state.size, state.oid,
                      state.filled_size, state.avg_price, message, state.venue_status)


