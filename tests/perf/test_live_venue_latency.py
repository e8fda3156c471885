"""Market event to order sent, ``--venue hyperliquid``, against the fake exchange running in
its own process on loopback (target p99 <= 1 ms), under pytest-benchmark.

Disabled by default (a short smoke run then). Measure with
``pytest tests/perf/test_live_venue_latency.py --benchmark-enable -s``; figures in
BENCHMARKS.md.

The fake runs as a separate process (``python -m tests.fakes.hyperliquid``), so it does
not share the GIL with the client. Both ends of the figure are stamped there with the
system-wide monotonic clock: the event is the push of the candle that closes bar k, and
"order sent" is the arrival of the signed ``/exchange`` request it caused. Between them:
server JSON, loopback WebSocket, ``HyperliquidStream``, ``HyperliquidCandleFeed``
(closure rule), the runner's queue, ``Engine.on_bar`` (agents, consensus, policy, risk,
router), the desk's external leg, the write-ahead journal row, order preparation and
signing, and the request on the order lane. The fake plays the bars itself (``play``),
one every 20 ms, so nothing but the live session runs in the client's process, and each
bar's order has been answered, filled and committed before the next candle (latency on
an idle pipeline, not throughput).

Two figures come out of one run:

* **event to order sent, end to end**: as above, stamped by the fake. It includes the
  fake's own work on both ends (uvicorn, starlette, its JSON and WebSocket framing).
* **tick to trade, in Quorum's process**: from the candle's WebSocket frame reaching the
  client's protocol (``data_received``) to the signed request's bytes handed to the
  kernel (the socket transport's ``write``). Stamped in the client by hooks this
  benchmark installs on those two library calls; BENCHMARKS.md cross-checks them against
  packet timestamps on the loopback interface (tcpdump).
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from asyncio import selector_events
from pathlib import Path

import httpx
import numpy as np
import pytest
from websockets.asyncio import connection as ws_connection

from live.hyperliquid.stream import candle
from quorum.live import open_venue_session
from sim.config import parse_scenario
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.integration.hyperliquid.conftest import make_config
from tests.integration.hyperliquid.venue_session import CREDENTIALS, VERDICT

ROOT = Path(__file__).resolve().parents[2]
MIN_MS = 60_000
GAP_S = 0.02  # between candles: each bar's order is answered, filled and committed first
T0 = 1_704_067_200_000
SCENARIO = {
    "name": "venue-latency", "seed": 3, "initial_cash": 100_000.0,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 10, "interval": "1m"}],
    "agents": [{"name": "fast", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "hl", "symbols": ["ETH"], "fee_bps": 4.5, "lot_size": 0.0001}],
    "live": {"reconcile_every": "1h"},
}


class _Remote:
    """The address of a fake in another process, shaped as ``make_config`` takes it."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws"


_CANDLE = re.compile(rb'"channel":\s*"candle"')


class _ClientStamps:
    """Monotonic stamps of candle frames received and order requests written."""

    def __init__(self) -> None:
        self.frames: list[int] = []
        self.writes: list[int] = []

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        received = ws_connection.Connection.data_received
        write = selector_events._SelectorSocketTransport.write

        def data_received(conn: object, data: bytes) -> None:
            if _CANDLE.search(data):
                self.frames.append(time.monotonic_ns())
            received(conn, data)

        def transport_write(transport: object, data: bytes) -> None:
            if bytes(data[:14]) == b"POST /exchange":
                self.writes.append(time.monotonic_ns())
            write(transport, data)

        monkeypatch.setattr(ws_connection.Connection, "data_received", data_received)
        monkeypatch.setattr(selector_events._SelectorSocketTransport, "write",
                            transport_write)


def _first_after(events: list[int], answers: list[int]) -> list[int]:
    """For each event, the time to the first answer after it and before the next event."""
    out = []
    for i, at in enumerate(events):
        following = events[i + 1] if i + 1 < len(events) else None
        first = next((ns for ns in answers if ns > at), None)
        if first is not None and (following is None or first < following):
            out.append(first - at)
    return out


def measure(tmp_path: Path, n_bars: int, rehearse_every_s: float | None = None) -> list[int]:
    """Event -> order sent, in ns, for every bar that made an order."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.hyperliquid"], cwd=ROOT,
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        remote = _Remote(int(proc.stdout.readline()))  # type: ignore[union-attr]
        rng = np.random.default_rng(1)
        closes = np.round(2000.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n_bars + 1))), 1)

        async def session() -> dict[str, list]:
            async with httpx.AsyncClient(base_url=remote.base_url) as control:
                async def do(op: str, **args: object) -> object:
                    reply = await control.post("/_control", json={"op": op, "args": args})
                    reply.raise_for_status()
                    return reply.json()

                await do("open_account", address=CREDENTIALS.account,  # initial_cash
                         usdc=SCENARIO["initial_cash"])
                await do("quote", coin="ETH", bid=float(closes[0]) - 0.1,
                         ask=float(closes[0]) + 0.1, size=1e6)
                clock = ManualClock(T0 * 1_000_000)
                with DuckDBStore(tmp_path / "lat.duckdb") as store:
                    live = await open_venue_session(
                        parse_scenario(SCENARIO), store, make_config(remote), VERDICT,
                        override_reason=None, kill_file=tmp_path / "k.kill",
                        credentials=CREDENTIALS, max_bars=n_bars, clock=clock,
                        settle_s=5.0, refresh_s=0.05, rehearse_every_s=rehearse_every_s)
                    task = asyncio.create_task(live.run())
                    sub = candle("ETH", "1m")

                    async def subscribed() -> bool:
                        return (await do("subscribed", subscription=sub))["result"] == 1

                    while not await subscribed():
                        await asyncio.sleep(0.01)
                    # the fake plays the market in its own process; this one only trades
                    bars = [[T0 + k * MIN_MS, float(closes[k])] for k in range(n_bars + 1)]
                    await do("play", coin="ETH", interval="1m", interval_ms=MIN_MS,
                             bars=bars, gap_s=GAP_S)
                    await asyncio.wait_for(task, 60 + n_bars * GAP_S * 2)
                return (await do("logs"))  # type: ignore[return-value]

        logs = asyncio.run(session())
    finally:
        proc.communicate("", timeout=10)
    pushes = [ns for _, ns in logs["pushes"]]
    return _first_after(pushes[1:], sorted(logs["exchange"]))  # push i closes bar i - 1


def _pct(values: list[int], q: float) -> float:
    data = sorted(values)
    return data[int(q * (len(data) - 1))] / 1e3  # us


@pytest.mark.parametrize("rehearse_every_s", [None, 0.001], ids=["plain", "rehearsed-1ms"])
def test_market_event_to_order_sent(benchmark, tmp_path, monkeypatch, rehearse_every_s) -> None:
    """``rehearsed-1ms``: the session as ``quorum live --rehearse-every 1ms`` runs it."""
    n_bars = 30 if benchmark.disabled else int(os.environ.get("QUORUM_BENCH_BARS", "1500"))
    stamps = _ClientStamps()
    stamps.install(monkeypatch)
    result: list[list[int]] = []
    benchmark.pedantic(lambda: result.append(measure(tmp_path, n_bars, rehearse_every_s)),
                       rounds=1, iterations=1)
    latencies = result[0]
    tick_to_trade = _first_after(stamps.frames, stamps.writes)
    assert latencies, "the scenario sent orders"
    # every order was caused by a candle, and is seen from both ends
    assert len(tick_to_trade) == len(latencies) and min(tick_to_trade) > 0
    assert min(latencies) > 0
    if not benchmark.disabled:
        for name, values in (("event_to_order_sent", latencies),
                             ("tick_to_trade_in_process", tick_to_trade)):
            benchmark.extra_info[f"{name}_n"] = len(values)
            for q in (0.5, 0.9, 0.99):
                benchmark.extra_info[f"{name}_p{round(q * 100)}_us"] = round(
                    _pct(values, q), 1)
        print(benchmark.extra_info)
