"""The order lane against a scripted HTTP/1.1 server on loopback: connections are kept
and reused, a dead one is never used, and every failure says whether the request may
have reached the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from live.hyperliquid.lane import LaneError, OrderLane

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


def reply(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


async def echo(request: bytes, writer: asyncio.StreamWriter) -> bool:
    """Answer with the request's body; keep the connection."""
    writer.write(reply(request.split(b"\r\n\r\n", 1)[1]))
    return True


class Server:
    """Reads one request at a time per connection and lets ``handler`` answer it (its
    return value: keep the connection open)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                if not await self.handler(request, writer):
                    break
        writer.close()


def run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_requests_reuse_one_kept_alive_connection() -> None:
    async def main() -> None:
        async with Server(echo) as server:
            lane = OrderLane(server.url, 2.0)
            await lane.connect()
            for n in range(5):
                resp = await lane.post("/exchange", b'{"n":%d}' % n)
                assert resp.status_code == 200 and resp.json() == {"n": n}
            await lane.aclose()
        assert (lane.opened, server.connections) == (1, 1)
        head = server.requests[0].split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"post /exchange http/1.1")
        assert b"content-type: application/json" in head and b"host: 127.0.0.1:" in head

    run(main())


def test_concurrent_requests_each_get_a_connection_and_their_own_reply() -> None:
    async def slow_echo(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.05)
        return await echo(request, writer)

    async def main() -> None:
        async with Server(slow_echo) as server:
            lane = OrderLane(server.url, 2.0)
            replies = await asyncio.gather(*(lane.post("/x", b"[%d]" % n) for n in range(3)))
            assert [r.json() for r in replies] == [[0], [1], [2]]
            assert server.connections == 3
            await lane.aclose()

    run(main())


def test_a_connection_the_server_closed_while_idle_is_not_used() -> None:
    async def answer_then_close(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(reply(b"{}", extra="connection: close\r\n"))
        return False

    async def main() -> None:
        async with Server(answer_then_close) as server:
            lane = OrderLane(server.url, 2.0)
            for _ in range(3):
                assert (await lane.post("/x", b"{}")).status_code == 200
                await asyncio.sleep(0.02)  # the close reaches us
            assert lane.opened == 3 == server.connections
            await lane.aclose()

    run(main())


def test_no_reply_in_time_may_have_landed_and_the_late_reply_is_never_read() -> None:
    calls = 0

    async def late_first(request: bytes, writer: asyncio.StreamWriter) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)
            writer.write(reply(b'"late"'))
            return True
        return await echo(request, writer)

    async def main() -> None:
        async with Server(late_first) as server:
            lane = OrderLane(server.url, 0.1)
            with pytest.raises(LaneError) as caught:
                await lane.post("/x", b'"first"')
            assert caught.value.sent  # it may have run
            await asyncio.sleep(0.35)
            assert (await lane.post("/x", b'"second"')).json() == "second"
            assert lane.opened == 2
            await lane.aclose()

    run(main())


def test_a_dropped_connection_mid_request_may_have_landed() -> None:
    async def drop(request: bytes, writer: asyncio.StreamWriter) -> bool:
        return False  # close without a reply

    async def main() -> None:
        async with Server(drop) as server:
            lane = OrderLane(server.url, 2.0)
            with pytest.raises(LaneError) as caught:
                await lane.post("/x", b"{}")
            assert caught.value.sent
            assert len(server.requests) == 1

    run(main())


def test_nothing_listening_is_a_failure_that_never_reached_the_server() -> None:
    async def main() -> None:
        async with Server(echo) as server:
            url = server.url
        await asyncio.sleep(0.01)
        lane = OrderLane(url, 1.0)
        with pytest.raises(LaneError) as caught:
            await lane.post("/x", b"{}")
        assert not caught.value.sent

    run(main())


def test_status_and_headers_are_passed_on() -> None:
    async def limited(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(reply(b"rate limited", "429 Too Many Requests", "Retry-After: 0.5\r\n"))
        return True

    async def main() -> None:
        async with Server(limited) as server:
            lane = OrderLane(server.url + "/api", 1.0)
            resp = await lane.post("/exchange", b"{}")
            assert (resp.status_code, resp.headers["retry-after"], resp.text) == (
                429, "0.5", "rate limited")
            assert server.requests[0].startswith(b"POST /api/exchange ")
            await lane.aclose()

    run(main())


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        OrderLane("ws://127.0.0.1:1/ws", 1.0)


def test_send_writes_before_yielding_and_receive_reads_the_reply() -> None:
    async def main() -> None:
        async with Server(echo) as server:
            lane = OrderLane(server.url, 2.0)
            assert not lane.idle and lane.send("/x", b"[0]") is None  # nothing open yet
            await lane.connect()
            assert lane.idle
            sent = lane.send("/exchange", b'{"n":1}')
            assert sent is not None and not lane.idle  # taken by this request
            # the request is with the kernel already: the server sees it although this
            # coroutine has not awaited the reply yet
            for _ in range(200):
                if server.requests:
                    break
                await asyncio.sleep(0.005)
            assert server.requests and server.requests[0].endswith(b'{"n":1}')
            resp = await lane.receive(sent)
            assert resp.json() == {"n": 1} and lane.idle  # kept for the next request
            assert (await lane.post("/exchange", b"[2]")).json() == [2]
            assert lane.opened == 1
            await lane.aclose()

    run(main())


def test_receive_after_the_server_drops_the_request_is_a_sent_failure() -> None:
    async def drop(request: bytes, writer: asyncio.StreamWriter) -> bool:
        return False  # close without answering

    async def main() -> None:
        async with Server(drop) as server:
            lane = OrderLane(server.url, 2.0)
            await lane.connect()
            sent = lane.send("/exchange", b"{}")
            assert sent is not None
            with pytest.raises(LaneError) as err:
                await lane.receive(sent)
            assert err.value.sent and not lane.idle  # it may have run; never reused
            await lane.aclose()

    run(main())
