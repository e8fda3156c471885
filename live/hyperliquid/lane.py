"""The order lane: kept-alive HTTP/1.1 connections for signed ``/exchange`` requests.

Why orders do not go through httpx like every read: measured on loopback, an httpx
``AsyncClient.post`` takes 0.6-0.8 ms from the call to the request's bytes reaching the
socket (client, connection pool and anyio layers), more than the whole 1 ms budget from
market event to order sent. Writing the request on a connection that is already open,
with h11 (the HTTP/1.1 state machine under httpx itself), takes about 15 us: the bytes
are handed to the kernel before the first ``await``. BENCHMARKS.md has the figures.
``send`` is that first part alone, synchronous: an order is written in the very step that
decided it (``HyperliquidRest.dispatch``), and ``receive`` awaits the reply later.

Connections are opened on demand (``connect`` opens one ahead of the first order) and
kept while the server keeps them; an idle one the server has closed is dropped before
use. Each request has a connection of its own, so concurrent orders never queue behind
one another. After any failure the connection is closed: a late reply can never be read
as the answer to the next request.

Failures are ``LaneError``; ``sent`` tells whether bytes of the request may have reached
the server (so it may have run): the caller's retry policy (``HyperliquidRest.exchange``)
decides from that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11


class LaneError(Exception):
    """A request on the lane failed; ``sent``: it may have reached the server."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


@dataclass(frozen=True, slots=True)
class LaneResponse:
    status_code: int
    headers: dict[str, str]  # names lower-case
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Connection:
    """One kept-alive connection; as ``Sent``, one with a request written, its reply
    not yet read."""

    __slots__ = ("http", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT)

    @property
    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing())

    def close(self) -> None:
        self.writer.close()


Sent = _Connection


class OrderLane:
    """POSTs to ``base_url`` on kept-alive connections; at most ``max_idle`` kept."""

    def __init__(self, base_url: str, timeout_s: float, *, max_idle: int = 4) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"order lane: not an http(s) URL: {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.authority = parts.netloc
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.timeout_s = timeout_s
        self.max_idle = max_idle
        self._idle: list[_Connection] = []
        self.opened = 0  # connections opened over the lane's life (for tests and ops)

    @property
    def idle(self) -> bool:
        """A kept connection is open: ``send`` can write now."""
        return any(c.usable for c in self._idle)

    async def connect(self) -> None:
        """Open a connection ahead of need, so the first order pays no handshake."""
        if not self.idle:
            self._keep(await self._open())

    async def post(self, path: str, body: bytes) -> LaneResponse:
        sent = self.send(path, body)
        if sent is None:
            sent = await self._open()
            self._write(sent, path, body)
        return await self.receive(sent)

    def send(self, path: str, body: bytes) -> Sent | None:
        """Write the request now, on a kept connection, without yielding to the loop (so
        the bytes reach the kernel in the caller's step); None when no connection is
        open (``post`` opens one). ``receive`` reads the reply."""
        conn = self._take()
        if conn is not None:
            self._write(conn, path, body)
        return conn

    async def receive(self, sent: Sent) -> LaneResponse:
        """The reply to the request ``send`` wrote on ``sent``; the connection is kept
        for the next request if both sides finished cleanly, else closed."""
        try:
            async with asyncio.timeout(self.timeout_s):
                response = await self._response(sent)
        except BaseException as exc:
            sent.close()
            if isinstance(exc, TimeoutError):
                raise LaneError(f"no reply within {self.timeout_s:g} s", sent=True) from None
            if isinstance(exc, OSError | h11.ProtocolError):
                raise LaneError(f"{type(exc).__name__}: {exc}", sent=True) from None
            raise
        if sent.http.our_state is h11.DONE and sent.http.their_state is h11.DONE:
            sent.http.start_next_cycle()
            self._keep(sent)
        else:
            sent.close()
        return response

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    # -- internals -------------------------------------------------------------------------

    async def _open(self) -> _Connection:
        try:
            async with asyncio.timeout(self.timeout_s):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl,
                    server_hostname=self.host if self.ssl else None)
        except (OSError, TimeoutError) as exc:
            raise LaneError(f"cannot connect to {self.authority}: {type(exc).__name__}",
                            sent=False) from None
        self.opened += 1
        return _Connection(reader, writer)

    def encode(self, path: str, body: bytes) -> bytes:
        """The bytes ``send`` would write for this request, written nowhere (a dry run:
        ``HyperliquidRest.rehearse``)."""
        return self._encode(h11.Connection(h11.CLIENT), path, body)

    def _encode(self, http: h11.Connection, path: str, body: bytes) -> bytes:
        request = h11.Request(method="POST", target=self.prefix + path, headers=[
            ("host", self.authority), ("content-type", "application/json"),
            ("content-length", str(len(body)))])
        return (http.send(request) + http.send(h11.Data(data=body))  # type: ignore[operator]
                + http.send(h11.EndOfMessage()))

    def _write(self, conn: _Connection, path: str, body: bytes) -> None:
        try:
            conn.writer.write(self._encode(conn.http, path, body))
        except BaseException as exc:
            conn.close()
            if isinstance(exc, OSError | h11.ProtocolError):
                raise LaneError(f"{type(exc).__name__}: {exc}", sent=True) from None
            raise

    def _take(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable:
                return conn
            conn.close()
        return None

    def _keep(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def _response(self, conn: _Connection) -> LaneResponse:
        http = conn.http
        status = 0
        headers: dict[str, str] = {}
        chunks: list[bytes] = []
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA:
                http.receive_data(await conn.reader.read(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return LaneResponse(status, headers, b"".join(chunks))
            elif isinstance(event, h11.ConnectionClosed):
                raise OSError("the server closed the connection before replying")
