"""Hyperliquid behind the engine's venue port (``sim.execution.ExternalPort``).

The order tracking, write-ahead, booking and settling are the live core's
(``live.orders.OrderManager``); this adds what is Hyperliquid's own: the account's pushes
(``orderUpdates``, ``userFills``, on the queue as ``Pushed``), a signed order request
written in the step that submitted it (``_dispatch``), which transport errors leave the
outcome unknown, the order-path rehearsal, and the order shapes below.

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
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from live.hyperliquid.errors import SubmissionUnresolved, TransportFailed
from live.hyperliquid.lane import LaneError
from live.hyperliquid.rest import Dispatched
from live.hyperliquid.stream import HyperliquidStream, order_updates, user_fills
from live.hyperliquid.venue import (
    HyperliquidVenue,
    PreparedOrder,
    parse_fill,
    state_from_update,
)
from live.journal import OrderJournal
from live.orders import OrderManager, Placed, Tracked
from live.port import VenueMessage
from sim.execution import ExecutionDesk

_NO_MATCH = "could not immediately match"


@dataclass(frozen=True, slots=True)
class Pushed(VenueMessage):
    """A stream message (``orderUpdates``, ``userFills``, ``reconnected``)."""

    message: dict[str, Any]


class HyperliquidPort(OrderManager):
    """One account at Hyperliquid as the external venue of one live run."""

    def __init__(self, venue: HyperliquidVenue, desk: ExecutionDesk, run_id: str,
                 coins: Mapping[str, str], *,
                 now_ns: Callable[[], int] = time.time_ns, refresh_s: float = 0.5,
                 stream: HyperliquidStream | None = None,
                 journal: OrderJournal | None = None,
                 rehearse_every_s: float | None = None) -> None:
        super().__init__(venue, desk, run_id, coins, now_ns=now_ns, refresh_s=refresh_s,
                         journal=journal)
        self.venue: HyperliquidVenue = venue
        self.stream = stream
        self.rehearse_every_s = rehearse_every_s
        self.rehearsals = 0  # dry runs of the order path made (``rehearse``)
        self._rehearsal: asyncio.TimerHandle | None = None

    def rehearse(self) -> bytes:
        """A dry run of an order's way from preparation to the request's bytes: nothing is
        tracked, journalled, charged to the rate limit or sent, and no nonce is used up.
        Run every ``live.rehearse_every`` between market events, it keeps that code and
        its data in the CPU caches: on a shared machine what has not run for a few
        milliseconds runs several times slower (BENCHMARKS.md)."""
        prepared = self.venue.prepare_market(next(iter(self.coins.values())), True, 1.0,
                                             1000.0, cloid=_REHEARSAL_CLOID)
        self.rehearsals += 1
        return self.venue.rest.rehearse(prepared.action)

    def _rehearse_later(self) -> None:
        assert self.rehearse_every_s is not None
        self._rehearsal = asyncio.get_running_loop().call_later(self.rehearse_every_s,
                                                                self._rehearse_now)

    def _rehearse_now(self) -> None:
        if self._closed:
            return
        try:
            self.rehearse()
        except Exception:  # a dry run must never stop the session; the real path will tell
            log.exception("order path rehearsal failed; rehearsals stop")
            return
        self._rehearse_later()

    async def start(self, queue: asyncio.Queue[object]) -> None:
        """Deliver messages to ``queue`` from now on; subscribe to the account's streams."""
        self.queue = queue
        with contextlib.suppress(TransportFailed, LaneError):  # else the first order opens it
            await self.venue.rest.warm()
        if self.stream is None:
            cfg = self.venue.config
            self.stream = HyperliquidStream(
                cfg.stream_url, [order_updates(self.venue.account),
                                 user_fills(self.venue.account)],
                ping_s=cfg.ws_ping_s, backoff_s=min(0.5, cfg.backoff_s),
                max_backoff_s=cfg.max_backoff_s, give_up_s=cfg.ws_give_up_s)
        self._spawn(self._pump_stream())
        if self.rehearse_every_s:
            self._rehearse_later()
        self._look_up_adopted()

    async def close(self) -> None:
        if self._rehearsal is not None:
            self._rehearsal.cancel()
        await super().close()
        if self.stream is not None:
            await self.stream.close()

    def apply(self, msg: VenueMessage) -> None:
        if isinstance(msg, Pushed):
            self._pushed(msg.message)
        else:
            super().apply(msg)

    def _pushed(self, msg: dict[str, Any]) -> None:
        channel = msg.get("channel")
        if channel == "userFills":
            for raw in msg["data"].get("fills", ()):
                self.book(parse_fill(raw))
        elif channel == "orderUpdates":
            for update in msg["data"]:
                state = state_from_update(update)
                t = self.by_cloid.get(state.cloid) or self.by_oid.get(state.oid or -1)
                if t is not None and not t.placing:
                    self._apply_state(t, state)
        elif channel == "reconnected":  # anything may have been missed: look everything up
            for t in list(self.by_cloid.values()):
                if not t.placing:
                    self.refresh(t)

    def _dispatch(self, t: Tracked, prepared: PreparedOrder) -> Coroutine[Any, Any, None]:
        """Sign the order and write its request now, in the step that submitted it (no
        hop through the loop before it reaches the kernel); the task awaits the reply."""
        try:
            dispatched = self.venue.rest.dispatch(prepared.action)
        except Exception:  # e.g. it cannot be signed: ``place`` fails the same way, in turn
            dispatched = None
        return self._place(t, prepared, dispatched)

    async def _place(self, t: Tracked, prepared: PreparedOrder,
                     dispatched: Dispatched | None = None) -> None:
        try:
            state = await self.venue.place(prepared, dispatched)
        except SubmissionUnresolved as exc:
            msg = Placed(t.cloid, None, str(exc), unresolved=True)
        except TransportFailed as exc:
            msg = Placed(t.cloid, None, str(exc), unresolved=exc.ambiguous)
        except Exception as exc:  # anything else: it may have landed; the cloid settles it
            msg = self.place_failed(t.cloid, exc)
        else:
            msg = Placed(t.cloid, state)
        await self._deliver(msg)

    async def _pump_stream(self) -> None:
        """The account's pushes to the queue; if the stream gives up (no connection for
        its ``give_up_s``), its error goes to the queue and fails the session."""
        assert self.stream is not None
        try:
            async for msg in self.stream:
                await self._deliver(Pushed(msg))
        except Exception as exc:
            assert self.queue is not None
            self.queue.put_nowait(exc)

    def venue_type(self, prepared: PreparedOrder) -> str:
        return _venue_type(prepared)

    def matched_nothing(self, message: str) -> bool:
        return _NO_MATCH in message


log = logging.getLogger(__name__)
_REHEARSAL_CLOID = "0x" + "00" * 16  # never submitted: rehearsals send nothing


def _venue_type(prepared: PreparedOrder) -> str:
    if not prepared.action:
        return "none"
    kind = prepared.action["orders"][0]["t"]
    if "trigger" in kind:
        return f"trigger_{kind['trigger']['tpsl']}"
    return str(kind["limit"]["tif"]).lower()
