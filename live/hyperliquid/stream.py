"""WebSocket streams from Hyperliquid (``websockets``): subscriptions, keep-alive,
reconnect with resubscribe and backoff.

The server drops a connection that has sent nothing for 60 s, so a ``{"method": "ping"}``
goes out every ``ping_s`` (default 30 s); the answer (``{"channel": "pong"}``) is not
passed on. When the connection drops, the stream reconnects with exponential backoff,
resends every subscription, and yields ``{"channel": "reconnected", "data": {"attempt":
n}}`` first: anything may have been missed in between, so the consumer reconciles (REST
``userFills`` / ``openOrders``). The ``userFills`` channel opens with a snapshot
(``isSnapshot``) of recent fills, so fills are repeated after every reconnect:
``FillDeduper`` passes each trade id once.

Reconnecting is bounded: once connecting has failed for ``give_up_s`` seconds in a row
(default 60: no network, a wrong URL, the server refusing), the stream ends with
``StreamUnavailable`` naming the last error, and the session fails on it (stored
``failed``, exit 1) instead of retrying for ever.

No per-message compression is offered: inflating every frame costs tens of microseconds
between a market event and the order it causes, and the messages are small.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed

from live.hyperliquid.errors import StreamUnavailable

log = logging.getLogger(__name__)


def candle(coin: str, interval: str) -> dict[str, Any]:
    return {"type": "candle", "coin": coin, "interval": interval}


def trades(coin: str) -> dict[str, Any]:
    return {"type": "trades", "coin": coin}


def l2_book(coin: str) -> dict[str, Any]:
    return {"type": "l2Book", "coin": coin}


def user_fills(user: str) -> dict[str, Any]:
    return {"type": "userFills", "user": user}


def order_updates(user: str) -> dict[str, Any]:
    return {"type": "orderUpdates", "user": user}


class HyperliquidStream:
    """``async for msg in stream`` yields ``{"channel": ..., "data": ...}`` until ``close``.

    ``max_reconnects`` (None: no limit) bounds consecutive failed connects, ``give_up_s``
    (None: no limit) how long they may go on, before giving up (``StreamUnavailable``).
    """

    def __init__(self, url: str, subscriptions: Iterable[dict[str, Any]] = (), *,
                 ping_s: float = 30.0, backoff_s: float = 0.5, max_backoff_s: float = 10.0,
                 max_reconnects: int | None = None, give_up_s: float | None = 60.0,
                 connect: Callable[..., Any] = websockets.connect) -> None:
        self.url = url
        self._ws: Any = None
        self.subscriptions: list[dict[str, Any]] = []
        for sub in subscriptions:
            self.subscribe(sub)
        self.ping_s = ping_s
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_reconnects = max_reconnects
        self.give_up_s = give_up_s
        self._connect = connect
        self._closed = False
        self._pending: set[asyncio.Future[None]] = set()
        self.connects = 0  # successful connections so far (1 + reconnects)

    def subscribe(self, subscription: dict[str, Any]) -> None:
        """Add a subscription (sent now if connected, and after every reconnect)."""
        if subscription not in self.subscriptions:
            self.subscriptions.append(subscription)
            if self._ws is not None:
                task = asyncio.ensure_future(self._send_sub(self._ws, subscription))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    async def _send_sub(self, ws: Any, subscription: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"method": "subscribe", "subscription": subscription}))

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        failures = 0
        loop = asyncio.get_running_loop()
        failing_since = 0.0
        while not self._closed:
            try:
                ws = await self._connect(self.url, ping_interval=None, open_timeout=10,
                                         compression=None)
            except (TimeoutError, OSError, websockets.InvalidHandshake) as exc:
                failures += 1
                if failures == 1:
                    failing_since = loop.time()
                if self.max_reconnects is not None and failures > self.max_reconnects:
                    raise
                delay = self._delay(failures)
                if self.give_up_s is not None and (
                        loop.time() + delay - failing_since > self.give_up_s):
                    raise StreamUnavailable(
                        f"no WebSocket connection to {self.url} within {self.give_up_s:g} s "
                        f"({failures} attempts; last: {type(exc).__name__}: {exc})") from exc
                log.warning("ws connect failed (%s); retry %d", type(exc).__name__, failures)
                await asyncio.sleep(delay)
                continue
            failures = 0
            self._ws = ws
            self.connects += 1
            pinger = asyncio.create_task(self._ping(ws))
            try:
                for sub in self.subscriptions:
                    await self._send_sub(ws, sub)
                if self.connects > 1:
                    yield {"channel": "reconnected", "data": {"attempt": self.connects - 1}}
                async for raw in ws:
                    msg = json.loads(raw)
                    if msg.get("channel") in ("pong", "subscriptionResponse"):
                        continue
                    yield msg
            except ConnectionClosed:
                pass
            finally:
                pinger.cancel()
                self._ws = None
                with contextlib.suppress(Exception):
                    await ws.close()
            if not self._closed:
                log.warning("ws dropped; reconnecting")
                await asyncio.sleep(self._delay(1))

    async def _ping(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.sleep(self.ping_s)
                await ws.send(json.dumps({"method": "ping"}))

    def _delay(self, failures: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (failures - 1))


class FillDeduper:
    """Passes each fill (by trade id ``tid``) once, across snapshots and reconnects."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def new(self, fills: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for fill in fills:
            tid = int(fill["tid"])
            if tid not in self._seen:
                self._seen.add(tid)
                out.append(fill)
        return out
