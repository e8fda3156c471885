"""The fake Hyperliquid's WebSocket (``/ws``): subscriptions (candle, trades, l2Book,
userFills with a snapshot first, orderUpdates), ping/pong, and the pushes the book's
changes make, each queued to every connection that subscribed to it (``_Conn``: sent by
the connection's own task, queued from any thread).

Split from ``live.hyperliquid.fake.exchange`` along that seam: the book changes and
calls ``_broadcast``; here is who hears of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from live.hyperliquid.fake.book import Order


class FakeStreams:
    """``FakeHyperliquid``'s WebSocket side (a mixin: the state is the exchange's,
    declared below for the type checker only)."""

    if TYPE_CHECKING:
        faults: Any  # the exchange's ``Faults`` (not imported: no import circle)
        lock: threading.RLock
        pings: int
        order_log: list[tuple[int, str]]
        _conns: list[_Conn]
        _loop: asyncio.AbstractEventLoop | None

        def now_ms(self) -> int: ...
        def fills_of(self, user: str) -> list[dict[str, Any]]: ...
        def _book_wire(self, coin: str) -> dict[str, Any]: ...

    async def _ws(self, ws: WebSocket) -> None:
        if self.faults.ws_refuse:
            await ws.close(code=1013)  # before accept: the handshake is refused
            return
        await ws.accept()
        conn = _Conn(ws, asyncio.get_running_loop())
        self._conns.append(conn)
        sender = asyncio.create_task(conn.pump())
        try:
            while True:
                msg = json.loads(await ws.receive_text())
                method = msg.get("method")
                if method == "ping":
                    self.pings += 1
                    conn.put({"channel": "pong"})
                elif method == "subscribe":
                    sub = msg["subscription"]
                    if "user" in sub:
                        sub = {**sub, "user": sub["user"].lower()}
                    conn.subs.append(sub)
                    conn.put({"channel": "subscriptionResponse", "data": msg})
                    if sub["type"] == "userFills":
                        with self.lock:
                            fills = self.fills_of(sub["user"])
                        conn.put({"channel": "userFills", "data": {
                            "isSnapshot": True, "user": sub["user"], "fills": fills}})
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(ValueError):
                self._conns.remove(conn)

    def _broadcast(self, channel: str, data: Any, wants: Any) -> None:
        for conn in list(self._conns):
            if any(wants(s) for s in conn.subs):
                conn.put({"channel": channel, "data": data})

    def _push_order(self, o: Order) -> None:
        user = o.user
        self.order_log.append((o.oid, o.status))
        self._broadcast("orderUpdates", [{"order": o.wire(), "status": o.status,
                                          "statusTimestamp": self.now_ms()}],
                        lambda s: s == {"type": "orderUpdates", "user": user})

    def _push_book(self, coin: str) -> None:
        if any(s == {"type": "l2Book", "coin": coin} for c in self._conns for s in c.subs):
            self._broadcast("l2Book", self._book_wire(coin),
                            lambda s: s == {"type": "l2Book", "coin": coin})

    def _call(self, fn: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(lambda: asyncio.ensure_future(fn()))


class _Conn:
    """One WebSocket: messages are queued from any thread and sent by its own task."""

    def __init__(self, ws: WebSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.ws = ws
        self.loop = loop
        self.subs: list[dict[str, Any]] = []
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def put(self, msg: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, msg)

    async def pump(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                await self.ws.send_text(json.dumps(await self.queue.get()))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=1011)
