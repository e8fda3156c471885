"""The floor under tick to trade on this machine: the least a Python process does per
market event, measured the way ``test_live_venue_latency`` measures the session.

A sender in another process writes a candle frame (one line) to a loopback socket every
20 ms (the benchmark's pace). The receiver is a bare asyncio protocol: no WebSocket, no pipeline, no
journal, no store. From ``data_received`` to its ``transport.write`` returning it does:

* ``write``: nothing but write fixed bytes back (the event loop and the system call);
* ``order``: decode the frame's JSON, prepare an order at its close (``prepare_market``),
  sign it with a fresh nonce and encode the request (``signed_body``, ``lane.encode``),
  then write it: the venue-facing work of one order, without the decision;
* ``order-rehearsed-1ms``: the same, with ``HyperliquidRest.rehearse`` run every 1 ms
  in between, as ``quorum live --rehearse-every 1ms`` does.

The same ``order`` work measured back to back in a loop is ``test_hyperliquid_signing``
(p99 85 us). The difference is the cost of running it once every 20 ms on a machine
whose caches the code does not keep: BENCHMARKS.md has the figures. Disabled by default (a
short smoke run then); measure with
``pytest tests/perf/test_latency_floor.py --benchmark-enable -s``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import pytest

from live.hyperliquid.config import Credentials, HyperliquidConfig
from live.hyperliquid.signing import Signature, Signer, recover_l1_signer
from live.hyperliquid.venue import HyperliquidVenue
from live.hyperliquid.wire import AssetInfo

KEY = "0x" + "44" * 32
GAP_S = 0.02
FRAME = json.dumps({"channel": "candle", "data": {
    "t": 1_704_067_200_000, "T": 1_704_067_259_999, "s": "ETH", "i": "1m", "o": "2000.1",
    "c": "2001.7", "h": "2003.0", "l": "1999.2", "v": "12.5", "n": 10}}).encode()
# Writes one frame every gap_s to the port it is given, drains what comes back, then exits.
SENDER = """
import socket, sys, time
port, n, gap, frame = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setblocking(False)
for _ in range(n):
    s.send(frame.encode() + b"\\n")
    time.sleep(gap)
    try:
        while s.recv(1 << 16):
            pass
    except BlockingIOError:
        pass
s.close()
"""


def _venue() -> HyperliquidVenue:
    venue = HyperliquidVenue(HyperliquidConfig(network="testnet", base_url="http://127.0.0.1:9"),
                             Credentials(Signer(KEY, mainnet=False)))
    venue.assets = {"ETH": AssetInfo("ETH", 1, 4, 25)}
    return venue


class _Receiver(asyncio.Protocol):
    def __init__(self, mode: str, venue: HyperliquidVenue, done: asyncio.Future[None]) -> None:
        self.mode = mode
        self.venue = venue
        self.done = done
        self.latencies: list[int] = []  # one per data_received that completed a frame
        self.answered = 0  # frames answered, one write each
        self.pending = b""  # a frame's start, until its end comes
        self.last: bytes = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        start = time.perf_counter_ns()
        # Frames may coalesce on the socket when this process is starved (two in one
        # data_received) or split: each complete line is one frame, answered once.
        *frames, self.pending = (self.pending + data).split(b"\n")
        if not frames:
            return
        assert self.transport is not None
        for frame in frames:
            if self.mode == "write":
                out = b"x" * 400
            else:
                close = float(json.loads(frame)["data"]["c"])
                prepared = self.venue.prepare_market("ETH", True, 0.5, close)
                rest = self.venue.rest
                out = rest.lane.encode("/exchange", rest.signed_body(prepared.action))
            self.transport.write(out)
            self.last = out
        self.latencies.append(time.perf_counter_ns() - start)
        self.answered += len(frames)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _measure(mode: str, n: int) -> _Receiver:
    loop = asyncio.get_running_loop()
    venue = _venue()
    done: asyncio.Future[None] = loop.create_future()
    receiver = _Receiver(mode.removesuffix("-rehearsed-1ms"), venue, done)
    server = await loop.create_server(lambda: receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rehearsal: list[asyncio.TimerHandle] = []
    if mode.endswith("rehearsed-1ms"):
        action = venue.prepare_market("ETH", True, 1.0, 1000.0).action

        def rehearse() -> None:
            venue.rest.rehearse(action)
            rehearsal[:] = [loop.call_later(0.001, rehearse)]

        rehearse()
    sender = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SENDER, str(port), str(n), str(GAP_S), FRAME.decode(),
        env={**os.environ}, stdout=subprocess.DEVNULL)
    try:
        await asyncio.wait_for(done, 30 + n * GAP_S * 2)
        assert await sender.wait() == 0
    finally:
        for handle in rehearsal:
            handle.cancel()
        server.close()
        await venue.aclose()
    return receiver


def _pct(values: list[int], q: float) -> float:
    data = sorted(values)
    return data[int(q * (len(data) - 1))] / 1e3  # us


@pytest.mark.parametrize("mode", ["write", "order", "order-rehearsed-1ms"])
def test_latency_floor(benchmark, mode: str) -> None:
    n = 20 if benchmark.disabled else int(os.environ.get("QUORUM_BENCH_EVENTS", "1000"))
    result: list[_Receiver] = []
    benchmark.pedantic(lambda: result.append(asyncio.run(_measure(mode, n))), rounds=1,
                       iterations=1)
    receiver = result[0]
    # every frame answered once, whether or not frames coalesced on the socket
    assert receiver.answered == n and receiver.pending == b""
    assert 0 < len(receiver.latencies) <= n and min(receiver.latencies) > 0
    if mode != "write":  # what was written is a signed order request at the frame's close
        body = json.loads(receiver.last.split(b"\r\n\r\n", 1)[1])
        assert body["action"]["orders"][0]["p"] == "2101.7"  # close + 5% slippage bound
        assert recover_l1_signer(body["action"], Signature.from_wire(body["signature"]),
                                 body["nonce"], mainnet=False) == Signer(KEY, mainnet=False).address
    if not benchmark.disabled:
        benchmark.extra_info["n"] = len(receiver.latencies)
        for q in (0.5, 0.9, 0.99):
            benchmark.extra_info[f"p{round(q * 100)}_us"] = round(
                _pct(receiver.latencies, q), 1)
        print(mode, benchmark.extra_info)
