"""The Hyperliquid venue adapter: market data, orders, cancels, leverage, account state.

This is the surface the live runner's venue port (``live.hyperliquid.port``) calls. Every
order gets a client order id (cloid); placing returns a
definite ``OrderState`` (resting, filled, canceled, rejected or triggered) or raises
``SubmissionUnresolved`` carrying the cloid, never a guess. Orders are checked and rounded
here before anything is signed: size to ``szDecimals`` (toward zero), price to the tick
rules, the $10 minimum value for orders that are not reduce-only, leverage within the
asset's maximum. A refusal found here is a rejection with a message starting "quorum:";
one from the venue carries the venue's own message.

A market order is an IOC limit order priced ``market_slippage`` through the mid (or a
reference price given): the bound on how far it may fill from there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx

from live.hyperliquid.config import Credentials, HyperliquidConfig
from live.hyperliquid.errors import SubmissionUnresolved, TransportFailed, VenueRejected
from live.hyperliquid.rest import Dispatched, HyperliquidRest
from live.hyperliquid.wire import (
    MIN_NOTIONAL,
    AssetInfo,
    Tif,
    Tpsl,
    cancel_action,
    cancel_by_cloid_action,
    check_cloid,
    float_to_wire,
    limit_type,
    new_cloid,
    order_action,
    order_wire,
    round_price,
    round_size,
    trigger_type,
    update_leverage_action,
)
from live.venue_types import (
    CANCELED,
    FILLED,
    REJECTED,
    RESTING,
    TRIGGERED,
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim.instruments import Instrument
from sim.messages import Bar

_PAGE = 500  # entries a time-range /info reply holds at most
_TIF: dict[str, Tif] = {"gtc": "Gtc", "ioc": "Ioc", "alo": "Alo"}


@dataclass(frozen=True, slots=True)
class PreparedOrder:
    """An order checked, rounded and shaped for the wire; ``action`` is what is signed."""

    coin: str
    cloid: str
    size: float
    price: float
    action: dict[str, Any]
    rejection: str | None = None  # set when a local check refused it (nothing is sent)


class HyperliquidVenue:
    """An async adapter over one account. ``await venue.load_markets()`` before trading."""

    name = "hyperliquid"

    def __init__(self, config: HyperliquidConfig, credentials: Credentials | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 rest: HyperliquidRest | None = None) -> None:
        self.config = config
        self.credentials = credentials
        self.rest = rest or HyperliquidRest(config, credentials, transport=transport)
        self.assets: dict[str, AssetInfo] = {}

    def __repr__(self) -> str:
        return f"HyperliquidVenue({self.config.network}, {self.credentials!r})"

    async def aclose(self) -> None:
        await self.rest.aclose()

    async def __aenter__(self) -> HyperliquidVenue:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def account(self) -> str:
        if self.credentials is None:
            raise ValueError("no credentials: market data only")
        return self.credentials.account

    # -- market data -----------------------------------------------------------------------

    async def load_markets(self) -> dict[str, AssetInfo]:
        """The perpetuals universe: names, szDecimals, max leverage (asset = list index)."""
        meta = await self.rest.info({"type": "meta"})
        self.assets = {
            a["name"]: AssetInfo(a["name"], i, int(a["szDecimals"]), int(a["maxLeverage"]))
            for i, a in enumerate(meta["universe"])
        }
        return self.assets

    def asset(self, coin: str) -> AssetInfo:
        try:
            return self.assets[coin]
        except KeyError:
            hint = "" if self.assets else " (call load_markets first)"
            raise ValueError(f"unknown coin {coin!r}{hint}") from None

    async def mids(self) -> dict[str, float]:
        return {k: float(v) for k, v in (await self.rest.info({"type": "allMids"})).items()}

    async def l2_book(self, coin: str) -> tuple[list[tuple[float, float]],
                                                list[tuple[float, float]]]:
        """(bids best first, asks best first) as (price, size)."""
        book = await self.rest.info({"type": "l2Book", "coin": coin})
        bids, asks = book["levels"]
        return ([(float(x["px"]), float(x["sz"])) for x in bids],
                [(float(x["px"]), float(x["sz"])) for x in asks])

    async def candles(self, coin: str, interval: str, start_ms: int, end_ms: int) -> list[Bar]:
        """Bars labelled by open time (ns), as the engine takes them."""
        rows = await self.rest.info({"type": "candleSnapshot", "req": {
            "coin": coin, "interval": interval, "startTime": start_ms, "endTime": end_ms}})
        return [Bar(coin, int(r["t"]) * 1_000_000, float(r["o"]), float(r["h"]),
                    float(r["l"]), float(r["c"]), float(r["v"])) for r in rows]

    # -- account state ---------------------------------------------------------------------

    async def positions(self) -> list[Position]:
        return list((await self.account_state()).positions)

    async def account_state(self) -> AccountState:
        """Positions, account value and marks from one ``clearinghouseState`` (shape:
        https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/
        perpetuals, "Retrieve user's perpetuals account summary": ``marginSummary`` with
        ``accountValue``, ``totalNtlPos``, ``totalRawUsd``; ``assetPositions[].position``
        with ``szi``, ``positionValue``, ...; ``time``)."""
        state = await self.rest.info({"type": "clearinghouseState", "user": self.account})
        out = []
        marks = {}
        for item in state.get("assetPositions", []):
            p = item["position"]
            lev = p.get("leverage") or {}
            size = float(p["szi"])
            out.append(Position(p["coin"], size, _opt_float(p.get("entryPx")),
                                float(p.get("unrealizedPnl") or 0.0),
                                _opt_float(lev.get("value")), _opt_float(p.get("liquidationPx"))))
            value = _opt_float(p.get("positionValue"))
            if value is not None and size:
                marks[p["coin"]] = value / abs(size)
        summary = state.get("marginSummary") or {}
        return AccountState(tuple(out), float(summary.get("accountValue") or 0.0), marks,
                            int(state.get("time") or 0))

    async def account_value(self) -> float:
        """The account's equity as the venue reports it (``marginSummary.accountValue``):
        what a new session trades (``live.capital``)."""
        return (await self.account_state()).account_value

    async def funding(self, start_ms: int, end_ms: int | None = None) -> list[FundingPayment]:
        """The account's funding payments from ``start_ms`` on (inclusive), oldest first.

        Request ``{"type": "userFunding", "user", "startTime", "endTime"?}`` (ms); reply a
        list of ``{"time", "hash", "delta": {"type": "funding", "coin", "usdc", "szi",
        "fundingRate", "nSamples"}}`` (Hyperliquid docs, info endpoint / perpetuals,
        "Retrieve a user's funding history or non-funding ledger updates"; the same
        shape in the nktkas/hyperliquid SDK's ``userFunding`` schema). A reply holds at
        most 500 entries ("use the last returned timestamp as the next startTime", info
        endpoint, Pagination): pages are walked so, the overlap dropped by (coin, time)."""
        out: dict[tuple[str, int], FundingPayment] = {}
        start = int(start_ms)
        while True:
            req: dict[str, Any] = {"type": "userFunding", "user": self.account,
                                   "startTime": start}
            if end_ms is not None:
                req["endTime"] = int(end_ms)
            rows = await self.rest.info(req)
            for r in rows:
                delta = r.get("delta") or {}
                if delta.get("type", "funding") != "funding":
                    continue
                pay = FundingPayment(int(r["time"]), delta["coin"], float(delta["usdc"]),
                                     float(delta.get("szi") or 0.0),
                                     float(delta.get("fundingRate") or 0.0),
                                     str(r.get("hash") or ""))
                out[(pay.coin, pay.time_ms)] = pay
            last = max((int(r["time"]) for r in rows), default=start)
            if len(rows) < _PAGE or last <= start:
                break
            start = last
        return sorted(out.values(), key=lambda p: (p.time_ms, p.coin))

    async def fills(self, since_ms: int = 0) -> list[VenueFill]:
        """The account's recent fills (``userFills``: the venue's latest 2000) at or after
        ``since_ms``."""
        rows = await self.rest.info({"type": "userFills", "user": self.account})
        return [f for f in map(parse_fill, rows) if f.time_ms >= since_ms]

    async def open_orders(self) -> list[OpenOrder]:
        rows = await self.rest.info({"type": "openOrders", "user": self.account})
        return [parse_open_order(r) for r in rows]

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        """The venue's view of an order by cloid or oid; None when it never got one."""
        reply = await self.rest.info({"type": "orderStatus", "user": self.account, "oid": ref})
        if reply.get("status") != "order":
            return None
        inner = reply["order"]
        order, venue_status = inner["order"], inner["status"]
        orig = float(order.get("origSz") or order["sz"])
        filled = orig - float(order["sz"])
        avg = None
        if filled > 0:
            avg = await self._average_price(int(order["oid"]))
        return OrderState(
            cloid=order.get("cloid") or (ref if isinstance(ref, str) else ""),
            coin=order.get("coin", coin), status=_normalise(venue_status), size=orig or size,
            oid=int(order["oid"]), filled_size=filled, avg_price=avg,
            venue_status=venue_status)

    async def _average_price(self, oid: int) -> float | None:
        fills = [f for f in await self.fills() if f.oid == oid]
        size = sum(abs(f.size) for f in fills)
        return sum(abs(f.size) * f.price for f in fills) / size if size else None

    # -- orders ----------------------------------------------------------------------------

    def instrument(self, coin: str, venue: str, symbol: str) -> Instrument:
        return self.asset(coin).instrument(venue, symbol)

    def lot_size(self, coin: str) -> float:
        return 10.0 ** -self.asset(coin).sz_decimals

    def prepare(self, request: OrderRequest) -> PreparedOrder:
        """A neutral request as a Hyperliquid order: a market order an IOC bounded by
        ``market_slippage`` from its reference price, a limit GTC/IOC/ALO rounded toward
        the passive side, a trigger a market trigger ("tp"/"sl")."""
        r = request
        if r.kind == "market":
            return self.prepare_market(r.coin, r.is_buy, r.size, r.price,
                                       reduce_only=r.reduce_only, cloid=r.cloid)
        if r.kind == "trigger":
            assert r.trigger is not None
            return self.prepare_trigger(r.coin, r.is_buy, r.size, r.price, r.trigger,
                                        reduce_only=r.reduce_only, cloid=r.cloid)
        return self.prepare_limit(r.coin, r.is_buy, r.size, r.price, tif=_TIF[r.tif],
                                  reduce_only=r.reduce_only, cloid=r.cloid,
                                  rounding="down" if r.is_buy else "up")

    def prepare_limit(self, coin: str, is_buy: bool, size: float, price: float, *,
                      tif: Tif = "Gtc", reduce_only: bool = False, cloid: str | None = None,
                      rounding: str = "nearest") -> PreparedOrder:
        """Check, round and shape a limit order (no I/O)."""
        return self._prepare(coin, is_buy, size, price, limit_type(tif), reduce_only, cloid,
                             rounding)

    def prepare_trigger(self, coin: str, is_buy: bool, size: float, trigger_px: float,
                        tpsl: Tpsl, *, limit_px: float | None = None, reduce_only: bool = True,
                        cloid: str | None = None, slippage: float | None = None
                        ) -> PreparedOrder:
        """A take-profit or stop-loss, placed once the mark crosses ``trigger_px``: a
        market order when ``limit_px`` is None (``isMarket``), else a limit order at
        ``limit_px``.

        The trigger price is rounded to the grid the way a limit price is: a buy's down,
        a sell's up, so the order is never triggered at a worse price than asked (a
        protective sell stop fires a tick early rather than late, a take-profit never
        takes less). A market trigger still carries a limit price (``p``): the worst price
        it may fill at, ``slippage`` (default ``market_slippage``) beyond the trigger,
        rounded inward; Hyperliquid refuses a sell whose ``p`` is above its trigger (a buy
        below) as "Invalid TP/SL price"."""
        asset = self.asset(coin)
        side: Literal["down", "up"] = "down" if is_buy else "up"
        trig = round_price(trigger_px, asset, side)
        if limit_px is None:
            slip = self.config.market_slippage if slippage is None else slippage
            px = trig * (1 + slip if is_buy else 1 - slip)
            order_type = trigger_type(float_to_wire(trig), True, tpsl)
        else:
            px = limit_px
            order_type = trigger_type(float_to_wire(trig), False, tpsl)
        return self._prepare(coin, is_buy, size, px, order_type, reduce_only, cloid, side)

    def prepare_market(self, coin: str, is_buy: bool, size: float, reference_px: float, *,
                       slippage: float | None = None, reduce_only: bool = False,
                       cloid: str | None = None) -> PreparedOrder:
        """IOC at ``reference_px`` moved ``slippage`` against us, rounded inward so the
        bound holds after rounding."""
        slip = self.config.market_slippage if slippage is None else slippage
        px = reference_px * (1 + slip if is_buy else 1 - slip)
        return self._prepare(coin, is_buy, size, px, limit_type("Ioc"), reduce_only, cloid,
                             "down" if is_buy else "up")

    def _prepare(self, coin: str, is_buy: bool, size: float, price: float,
                 order_type: dict[str, Any], reduce_only: bool, cloid: str | None,
                 rounding: str) -> PreparedOrder:
        asset = self.asset(coin)
        cloid = check_cloid(cloid) if cloid is not None else new_cloid()
        sz = round_size(size, asset)
        px = round_price(price, asset, rounding)  # type: ignore[arg-type]
        rejection = None
        if sz <= 0:
            rejection = (f"quorum: size {size} rounds to 0 at {asset.sz_decimals} decimals "
                         f"({coin})")
        elif not reduce_only and sz * px < MIN_NOTIONAL:
            rejection = f"quorum: order value {sz * px:.2f} is below the ${MIN_NOTIONAL:g} minimum"
        wire = order_wire(asset.index, is_buy, float_to_wire(px), float_to_wire(sz), reduce_only,
                          order_type, cloid) if rejection is None else {}
        return PreparedOrder(coin, cloid, sz, px, order_action([wire]) if wire else {},
                             rejection)

    async def place(self, order: PreparedOrder, dispatched: Dispatched | None = None
                    ) -> OrderState:
        """Send a prepared order; a definite state, or ``SubmissionUnresolved``.
        ``dispatched``: its action signed, maybe sent, by ``rest.dispatch``."""
        if order.rejection is not None:
            return OrderState(order.cloid, order.coin, REJECTED, order.size,
                              message=order.rejection)

        async def landed() -> bool:
            return await self.order_state(order.cloid) is not None

        try:
            reply = await self.rest.exchange(order.action, landed=landed, dispatched=dispatched)
        except VenueRejected as exc:
            return OrderState(order.cloid, order.coin, REJECTED, order.size, message=exc.message)
        except TransportFailed as exc:
            if exc.ambiguous:
                raise SubmissionUnresolved(order.cloid, str(exc)) from exc
            raise
        if reply is None:  # an earlier attempt landed; its reply was lost
            return await self._settled_state(order)
        status = reply["response"]["data"]["statuses"][0]
        return await self._state_from_status(order, status)

    async def _settled_state(self, order: PreparedOrder) -> OrderState:
        state = await self.order_state(order.cloid, order.coin, order.size)
        if state is None:
            raise SubmissionUnresolved(order.cloid, "landed but not found by cloid")
        return state

    async def _state_from_status(self, order: PreparedOrder, status: Any) -> OrderState:
        if isinstance(status, dict) and "error" in status:
            return OrderState(order.cloid, order.coin, REJECTED, order.size,
                              message=str(status["error"]), venue_status="error")
        if isinstance(status, dict) and "resting" in status:
            return OrderState(order.cloid, order.coin, RESTING, order.size,
                              oid=int(status["resting"]["oid"]), venue_status="resting")
        if isinstance(status, dict) and "filled" in status:
            f = status["filled"]
            filled = float(f["totalSz"])
            st = FILLED if filled >= order.size else CANCELED  # an IOC's rest is canceled
            return OrderState(order.cloid, order.coin, st, order.size, oid=int(f["oid"]),
                              filled_size=filled, avg_price=float(f["avgPx"]),
                              message=None if st == FILLED else "unfilled rest canceled (IOC)",
                              venue_status="filled")
        # "waitingForTrigger" / "waitingForFill" and anything new: ask by cloid
        return await self._settled_state(order)

    async def limit(self, coin: str, is_buy: bool, size: float, price: float, **kw: Any
                    ) -> OrderState:
        return await self.place(self.prepare_limit(coin, is_buy, size, price, **kw))

    async def trigger(self, coin: str, is_buy: bool, size: float, trigger_px: float,
                      tpsl: Tpsl, **kw: Any) -> OrderState:
        return await self.place(self.prepare_trigger(coin, is_buy, size, trigger_px, tpsl, **kw))

    async def market(self, coin: str, is_buy: bool, size: float, *,
                     reference_px: float | None = None, **kw: Any) -> OrderState:
        if reference_px is None:
            reference_px = (await self.mids())[coin]
        return await self.place(self.prepare_market(coin, is_buy, size, reference_px, **kw))

    async def cancel(self, coin: str, oid: int) -> OrderState:
        """Cancel by exchange order id; returns the order's state after the attempt."""
        asset = self.asset(coin)

        async def landed() -> bool:
            state = await self.order_state(oid, coin)
            return state is not None and state.done

        return await self._cancel(cancel_action([(asset.index, oid)]), oid, coin, landed)

    async def cancel_by_cloid(self, coin: str, cloid: str) -> OrderState:
        asset = self.asset(coin)
        cloid = check_cloid(cloid)

        async def landed() -> bool:
            state = await self.order_state(cloid, coin)
            return state is not None and state.done

        return await self._cancel(cancel_by_cloid_action([(asset.index, cloid)]), cloid, coin,
                                  landed)

    async def _cancel(self, action: dict[str, Any], ref: str | int, coin: str,
                      landed: Any) -> OrderState:
        message: str | None
        try:
            reply = await self.rest.exchange(action, landed=landed)
        except VenueRejected as exc:
            message = exc.message
        else:
            status = None if reply is None else reply["response"]["data"]["statuses"][0]
            message = status["error"] if isinstance(status, dict) else None
        state = await self.order_state(ref, coin)
        if state is None:
            return OrderState(ref if isinstance(ref, str) else "", coin, REJECTED, 0.0,
                              oid=ref if isinstance(ref, int) else None,
                              message=message or "unknown order")
        return state if message is None else replace(state, message=message)

    async def set_leverage(self, coin: str, leverage: int, *, cross: bool = True) -> None:
        asset = self.asset(coin)
        if not 1 <= leverage <= asset.max_leverage:
            raise VenueRejected(f"quorum: leverage {leverage} outside 1..{asset.max_leverage} "
                                f"for {coin}")
        await self.rest.exchange(update_leverage_action(asset.index, leverage, cross),
                                 resign=True)


def state_from_update(update: dict[str, Any]) -> OrderState:
    """An ``orderUpdates`` item (``{"order": ..., "status": ...}``, also the inner part of
    an ``orderStatus`` answer) as an ``OrderState``."""
    order, venue_status = update["order"], update["status"]
    orig = float(order.get("origSz") or order["sz"])
    return OrderState(cloid=order.get("cloid") or "", coin=order.get("coin", ""),
                      status=_normalise(venue_status), size=orig, oid=int(order["oid"]),
                      filled_size=orig - float(order["sz"]), venue_status=venue_status)


def parse_open_order(r: dict[str, Any]) -> OpenOrder:
    """An ``openOrders`` entry as the neutral ``OpenOrder``."""
    cloid = r.get("cloid")
    size = float(r["sz"]) * (1 if r.get("side") == "B" else -1)
    return OpenOrder(r["coin"], int(r["oid"]), str(cloid).lower() if cloid else None, size)


def parse_fill(r: dict[str, Any]) -> VenueFill:
    size = float(r["sz"])
    return VenueFill(int(r["tid"]), int(r["oid"]), r["coin"], size if r["side"] == "B" else -size,
                     float(r["px"]), float(r.get("fee") or 0.0), int(r["time"]),
                     float(r.get("closedPnl") or 0.0), r.get("cloid"),
                     bool(r.get("crossed", True)))


def _normalise(venue_status: str) -> str:
    if venue_status == "open":
        return RESTING
    if venue_status in (FILLED, TRIGGERED, REJECTED):
        return venue_status
    if venue_status.endswith("Rejected"):
        return REJECTED
    return CANCELED  # "canceled", "marginCanceled", "reduceOnlyCanceled", ...


def _opt_float(x: Any) -> float | None:
    return None if x in (None, "") else float(x)

