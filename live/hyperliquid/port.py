"""Hyperliquid as the live core's venue adapter (``live.port``): it translates and does I/O.

The order tracking, write-ahead, booking and settling are the live core's
(``live.orders.OrderManager``, which uses this through the contract only); this adds
what is Hyperliquid's own to the REST adapter (``HyperliquidVenue``): the account's
pushes (``orderUpdates``, ``userFills``) translated into the neutral ``OrdersUpdated`` /
``FillsReported`` / ``Reconnected`` (``PushingAdapter``), a signed order request written
in the step that submitted it (``place``), which transport errors leave the outcome
unknown (``OrderNotSent`` / ``OutcomeUnknown``), an IOC that matched nothing reported
``expired``, the order-path rehearsal, and the order shapes below. It holds no desk,
portfolio or engine.

Order types (what a scenario's order becomes at Hyperliquid):

* market: an IOC limit at the last close moved ``market_slippage`` (config, default 5%)
  against us, rounded inward: the bound on how far it may fill. Risk-made flattening
  orders go reduce-only;
* limit: GTC, or IOC with ``time_in_force = "ioc"``, or ALO (add-liquidity-only) with
  ``post_only``; the price rounded toward the passive side (never worse than asked);
* stop (a stop entry, or a bracket's stop-loss): a market trigger "sl" (a buy triggers as
  the mark rises to it, a sell as it falls); a bracket's take-profit: a market trigger
  "tp" (a sell triggers as the mark rises, a buy as it falls). Bracket legs go
  reduce-only. The trigger price is rounded like a limit price (buys down, sells up: never
  triggered at a worse price than asked); the limit price a market trigger carries bounds
  its slippage by ``market_slippage`` (``HyperliquidVenue.prepare_trigger``). A fired
  trigger stays the same order at the venue (oid and cloid: "open" -> "triggered" ->
  "filled"), so its fills are booked to its leg like any other, through the one fill
  path; the desk's one-cancels-the-other then asks here to cancel the sibling, which is
  cancelled at the venue by cloid. A take-profit is a limit order in a backtest (filled at
  its level, as a maker) and a market trigger here (filled at the book, as a taker).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from live.hyperliquid.errors import SubmissionUnresolved, TransportFailed
from live.hyperliquid.lane import LaneError
from live.hyperliquid.rest import Dispatched, HyperliquidRest
from live.hyperliquid.stream import HyperliquidStream, order_updates, user_fills
from live.hyperliquid.venue import (
    HyperliquidVenue,
    PreparedOrder,
    parse_fill,
    state_from_update,
)
from live.port import (
    Emit,
    FillsReported,
    OrderNotSent,
    OrdersUpdated,
    OutcomeUnknown,
    Reconnected,
    VenueMessage,
)
from live.venue_types import (
    EXPIRED,
    REJECTED,
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim.instruments import Instrument

_NO_MATCH = "could not immediately match"


class HyperliquidPort:
    """One Hyperliquid account as a live run's venue adapter (``live.port.VenueAdapter``,
    ``PushingAdapter``, ``DescribingAdapter``) over the REST adapter ``venue``.
    ``rehearse_every_s``: a dry run of the order path this often between market events,
    on ``rehearse_coin`` (``rehearse``)."""

    name = "hyperliquid"

    def __init__(self, venue: HyperliquidVenue, *, stream: HyperliquidStream | None = None,
                 rehearse_coin: str | None = None,
                 rehearse_every_s: float | None = None) -> None:
        self.venue = venue
        self.stream = stream
        self.rehearse_coin = rehearse_coin
        self.rehearse_every_s = rehearse_every_s
        self.rehearsals = 0  # dry runs of the order path made (``rehearse``)
        self._rehearsal: asyncio.TimerHandle | None = None
        self._pump: asyncio.Task[None] | None = None
        self._connected = False

    @property
    def rest(self) -> HyperliquidRest:
        return self.venue.rest

    # -- the contract (``live.port.VenueAdapter``) -----------------------------------------

    def prepare(self, request: OrderRequest) -> PreparedOrder:
        return self.venue.prepare(request)

    def place(self, order: PreparedOrder) -> Coroutine[Any, Any, OrderState]:
        """Sign the order and write its request now, in the step that submitted it (no
        hop through the loop before it reaches the exchange); the coroutine awaits the
        reply."""
        dispatched = None
        if order.rejection is None:
            try:
                dispatched = self.venue.rest.dispatch(order.action)
            except Exception:  # e.g. it cannot be signed: the awaited place fails the same way
                dispatched = None
        return self._placed(order, dispatched)

    async def _placed(self, order: PreparedOrder, dispatched: Dispatched | None) -> OrderState:
        try:
            return _expired_if_unmatched(await self.venue.place(order, dispatched))
        except SubmissionUnresolved as exc:
            raise OutcomeUnknown(str(exc)) from exc
        except TransportFailed as exc:
            if exc.ambiguous:
                raise OutcomeUnknown(str(exc)) from exc
            raise OrderNotSent(str(exc)) from exc

    async def cancel_by_cloid(self, coin: str, cloid: str) -> OrderState:
        return await self.venue.cancel_by_cloid(coin, cloid)

    async def cancel(self, coin: str, oid: int) -> OrderState:
        return await self.venue.cancel(coin, oid)

    async def order_state(self, ref: str | int, coin: str = "", size: float = 0.0
                          ) -> OrderState | None:
        state = await self.venue.order_state(ref, coin, size)
        return None if state is None else _expired_if_unmatched(state)

    async def open_orders(self) -> list[OpenOrder]:
        return await self.venue.open_orders()

    async def fills(self, since_ms: int = 0) -> list[VenueFill]:
        return await self.venue.fills(since_ms)

    async def positions(self) -> list[Position]:
        return await self.venue.positions()

    async def account_state(self) -> AccountState:
        return await self.venue.account_state()

    async def account_value(self) -> float:
        return await self.venue.account_value()

    async def funding(self, start_ms: int, end_ms: int | None = None
                      ) -> list[FundingPayment]:
        return await self.venue.funding(start_ms, end_ms)

    def instrument(self, coin: str, venue: str, symbol: str) -> Instrument:
        return self.venue.instrument(coin, venue, symbol)

    def lot_size(self, coin: str) -> float:
        return self.venue.lot_size(coin)

    def venue_type(self, order: PreparedOrder) -> str:
        """The ``venue_orders.venue_type`` of ``order``: "gtc", "ioc", "alo",
        "trigger_tp", "trigger_sl", or "none" when refused locally."""
        if not order.action:
            return "none"
        kind = order.action["orders"][0]["t"]
        if "trigger" in kind:
            return f"trigger_{kind['trigger']['tpsl']}"
        return str(kind["limit"]["tif"]).lower()

    # -- pushes (``live.port.PushingAdapter``) ---------------------------------------------

    async def connect(self, emit: Emit) -> None:
        """Open the REST connection and the account's streams; their messages go to
        ``emit`` translated, a stream that gives up as its error."""
        with contextlib.suppress(TransportFailed, LaneError):  # else the first order opens it
            await self.venue.rest.warm()
        if self.stream is None:
            cfg = self.venue.config
            self.stream = HyperliquidStream(
                cfg.stream_url, [order_updates(self.venue.account),
                                 user_fills(self.venue.account)],
                ping_s=cfg.ws_ping_s, backoff_s=min(0.5, cfg.backoff_s),
                max_backoff_s=cfg.max_backoff_s, give_up_s=cfg.ws_give_up_s)
        self._connected = True
        self._pump = asyncio.ensure_future(self._pump_stream(emit))
        if self.rehearse_every_s:
            self._rehearse_later()

    async def disconnect(self) -> None:
        self._connected = False
        if self._rehearsal is not None:
            self._rehearsal.cancel()
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
        if self.stream is not None:
            await self.stream.close()

    async def _pump_stream(self, emit: Emit) -> None:
        """The account's pushes, translated; if the stream gives up (no connection for
        its ``give_up_s``), its error is emitted and fails the session."""
        assert self.stream is not None
        try:
            async for msg in self.stream:
                translated = translate_push(msg)
                if translated is not None:
                    emit(translated)
        except Exception as exc:
            emit(exc)

    # -- the order path's rehearsal --------------------------------------------------------

    def rehearse(self) -> bytes:
        """A dry run of an order's way from preparation to the request's bytes: nothing is
        tracked, journalled, charged to the rate limit or sent, and no nonce is used up.
        Run every ``live.rehearse_every`` between market events, it keeps that code and
        its data in the CPU caches: on a shared machine what has not run for a few
        milliseconds runs several times slower (BENCHMARKS.md)."""
        coin = self.rehearse_coin or next(iter(self.venue.assets))
        prepared = self.venue.prepare_market(coin, True, 1.0, 1000.0, cloid=_REHEARSAL_CLOID)
        self.rehearsals += 1
        return self.venue.rest.rehearse(prepared.action)

    def _rehearse_later(self) -> None:
        assert self.rehearse_every_s is not None
        self._rehearsal = asyncio.get_running_loop().call_later(self.rehearse_every_s,
                                                                self._rehearse_now)

    def _rehearse_now(self) -> None:
        if not self._connected:
            return
        try:
            self.rehearse()
        except Exception:  # a dry run must never stop the session; the real path will tell
            log.exception("order path rehearsal failed; rehearsals stop")
            return
        self._rehearse_later()


def translate_push(msg: dict[str, Any]) -> VenueMessage | None:
    """A stream message as the core's neutral message (None: nothing the core needs)."""
    channel = msg.get("channel")
    if channel == "userFills":
        return FillsReported(tuple(parse_fill(raw) for raw in msg["data"].get("fills", ())))
    if channel == "orderUpdates":
        return OrdersUpdated(tuple(_expired_if_unmatched(state_from_update(update))
                                   for update in msg["data"]))
    if channel == "reconnected":  # anything may have been missed
        return Reconnected()
    return None


def _expired_if_unmatched(state: OrderState) -> OrderState:
    """Hyperliquid refuses an IOC that found nothing to match ("Order could not
    immediately match ..."): to the core that order expired, it was not refused."""
    if state.status == REJECTED and _NO_MATCH in (state.message or state.venue_status or ""):
        return replace(state, status=EXPIRED)
    return state


log = logging.getLogger(__name__)
_REHEARSAL_CLOID = "0x" + "00" * 16  # never submitted: rehearsals send nothing
