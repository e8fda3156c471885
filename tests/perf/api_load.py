"""Load on the control API of a paper session (issue 17 "Done when"), same-run A/B.

    .venv/bin/python -m tests.perf.api_load --seconds 60 --clients 50 --rps 20

Two paper sessions on the fake Hyperliquid (loopback, in a process of its own, as an
exchange is), one after the other, each fed a candle every ``--every`` seconds for
``--seconds``, both built as `quorum live` builds
them (``quorum.live.watched_runner``: the session's bus, logs, alerts and health): A
without the API, B with what `--api` adds (``SessionApi``: the stream and the metrics on
the bus, the server in the session's process) while another process holds ``--clients``
WebSocket clients subscribed to every topic and makes ``--rps`` REST reads a second
(agents, orders, fills, market, positions, alerts, logs, equity, metrics/agents).

Figures: API read latency (p50/p99, measured by the client), stream delivery (from the
moment the fake pushed the candle to the moment a client received that bar's
``market:update``, wall clock shared by both processes), events lost by clients that kept
up (each client's sequence numbers against every message the hub published), clients
dropped, and the session's market-event-to-order latency (tick-to-trade: from the
moment the exchange pushed the candle that closes a bar to the moment the order it led
to was booked) with and without the API. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

MIN_MS = 60_000
TRADING_PRIORITY = 20  # SCHED_FIFO, with --realtime: the trading loop's thread, the exchange
T0 = 1_704_067_200_000
SCENARIO = {
    "name": "api-load", "seed": 3, "initial_cash": 100_000.0,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 10, "interval": "1m"}],
    "agents": [{"name": "fast", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}},
               {"name": "mom", "kind": "momentum", "params": {"window": 3}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "paper", "symbols": ["ETH"], "fee_bps": 4.5, "slippage_bps": 1.0}],
}
TOPICS = ["market:update", "agent:update", "trades:all", "trade:alert", "logs:all", "health",
          "equity", "system:event"]
READS = ["/api/agents", "/api/orders?limit=50", "/api/fills?limit=50", "/api/market",
         "/api/positions", "/api/alerts", "/api/logs?limit=50", "/api/equity?limit=100",
         "/api/metrics/agents"]


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    data = sorted(values)
    return data[int(q * (len(data) - 1))]


# -- the exchange (a process of its own) -----------------------------------------------
def _exchange(conn: Any) -> None:
    """The fake Hyperliquid, in its own process as an exchange is: in the session's
    process its thread would share the session's interpreter lock (with the API's threads
    too), and the time it waited for it would count as the session's. It pushes the
    candles the session's driver asks for and notes when it pushed each (the clock both
    processes share: ``perf_counter_ns``, and the wall clock for the stream's delivery)."""
    from live.hyperliquid.stream import candle
    from tests.fakes.hyperliquid import FakeHyperliquid

    fake = FakeHyperliquid().start()
    pushed: dict[int, int] = {}
    pushed_wall: dict[int, int] = {}
    try:
        conn.send((fake.base_url, fake.ws_url))
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] == "subscribed":
                conn.send(fake.subscribed(candle("ETH", "1m")))
            elif message[0] == "push":
                _, closes_bar, (t, o, h, low, c) = message
                if closes_bar is not None:
                    pushed[closes_bar] = time.perf_counter_ns()
                    pushed_wall[closes_bar] = time.time_ns()
                fake.push_bar("ETH", "1m", MIN_MS, t, o, h, low, c, 1.0)
            else:
                conn.send((pushed, pushed_wall))
                return
    finally:
        fake.stop()


# -- the clients (another process) ------------------------------------------------------
def _clients(url: str, n: int, rps: float, ready: Any, stop: Any, out: str,
             batch: bool) -> None:
    if os.sched_getscheduler(0) == os.SCHED_FIFO:  # --realtime: remote machines, normal
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    asyncio.run(_load(url, n, rps, ready, stop, out, batch))


async def _load(url: str, n: int, rps: float, ready: Any, stop: Any, out: str,
                batch: bool) -> None:
    import httpx
    import websockets

    got: list[list[tuple[int, str, int, int | None]]] = [[] for _ in range(n)]
    closed: list[int | None] = [None] * n
    connected = 0

    async def client(i: int) -> None:
        nonlocal connected
        async with websockets.connect(url.replace("http", "ws") + "/ws",
                                      max_queue=None) as ws:
            await ws.send(json.dumps({"subscribe": TOPICS, "since": 0, "batch": batch}))
            connected += 1
            try:
                async for frame in ws:
                    now = time.time_ns()
                    for text in str(frame).split("\n"):
                        m = json.loads(text)
                        bar = (m["data"].get("ts") if m.get("topic") == "market:update"
                               else None)
                        got[i].append((m.get("seq", -1), m.get("topic", ""), now, bar))
            except websockets.ConnectionClosed as exc:
                closed[i] = exc.rcvd.code if exc.rcvd else -1

    reads: list[float] = []
    failed = 0

    async def reader() -> None:
        nonlocal failed
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            k = 0
            start = time.perf_counter()
            while not stop.is_set():
                t = time.perf_counter()
                reply = await http.get(READS[k % len(READS)])
                reads.append((time.perf_counter() - t) * 1e3)
                failed += reply.status_code != 200
                k += 1
                await asyncio.sleep(max(0.0, start + k / rps - time.perf_counter()))

    tasks = [asyncio.create_task(client(i)) for i in range(n)]
    while connected < n:
        await asyncio.sleep(0.01)
    ready.set()
    http_task = asyncio.create_task(reader())
    while not stop.is_set():
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # what is in flight arrives
    for task in [*tasks, http_task]:
        task.cancel()
    await asyncio.gather(*tasks, http_task, return_exceptions=True)
    Path(out).write_text(json.dumps({"got": got, "closed": closed, "reads_ms": reads,
                                     "failed_reads": failed}))


# -- the session ----------------------------------------------------------------------
class ObserversAtNormalPriority:
    """With ``--realtime`` only the trading loop's thread (this process's main thread, which
    runs the session's loop) and the exchange's process are real-time, as a deployment
    would pin them. Threads inherit their creator's policy, so the session's other threads
    (the bus's observers, the store writer, the API's server and workers, DuckDB's own)
    would start real-time too; threads of one real-time priority are not time-sliced, and
    on two cores two of them busy keep the trading loop off a CPU until one blocks (the
    market event then waited for an observer: 1.2 ms at p90, where the same session at
    normal priority showed nothing of it). This thread moves every other thread of the
    process back to normal priority (SCHED_OTHER) as it appears."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self.trading = threading.get_native_id()
        threading.Thread(target=self._run, name="normal-priority", daemon=True).start()

    def sweep(self) -> None:
        for name in os.listdir("/proc/self/task"):
            tid = int(name)
            with contextlib.suppress(ProcessLookupError):  # ended meanwhile
                if tid != self.trading and os.sched_getscheduler(tid) != os.SCHED_OTHER:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))

    def _run(self) -> None:
        while True:
            self.sweep()  # this thread first
            time.sleep(self.every_s)


def session(tmp: Path, seconds: float, every: float, api: bool, clients: int, rps: float,
            batch: bool = False) -> dict[str, Any]:
    from fastapi import FastAPI  # noqa: F401 (imported before timing, as in a session)

    from live.hyperliquid.candles import HyperliquidCandleFeed
    from quorum.api.server import SessionApi
    from quorum.live import watched_runner
    from sim.config import parse_scenario
    from sim.store import DuckDBStore
    from tests.fakes.clock import ManualClock
    from tests.integration.hyperliquid.conftest import make_config
    from tests.integration.hyperliquid.test_faults import wait_for

    tmp.mkdir(parents=True, exist_ok=True)
    n_bars = int(seconds / every)
    rng = np.random.default_rng(1)
    closes = 2000.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n_bars + 1)))
    booked: list[tuple[int, int]] = []  # (the bar's time, when its order was booked)
    seen = [0]
    ctx = mp.get_context("spawn")
    exchange, its_end = ctx.Pipe()
    venue = ctx.Process(target=_exchange, args=(its_end,), daemon=True)
    venue.start()
    result: dict[str, Any] = {"api": api, "bars": n_bars, "batch": batch}
    try:
        config = parse_scenario(SCENARIO)
        clock = ManualClock(T0 * 1_000_000)
        base_url, ws_url = exchange.recv()
        feed = HyperliquidCandleFeed(make_config(SimpleNamespace(base_url=base_url,
                                                                 ws_url=ws_url)),
                                     {"ETH": "ETH"}, MIN_MS * 1_000_000, clock=clock,
                                     max_bars=n_bars)
        db = tmp / f"load-{int(api)}.duckdb"
        with DuckDBStore(db) as store:
            # Both arms are the session `quorum live` builds (``watched_runner``: its bus,
            # logs, alerts, health); B adds what `--api` adds (``SessionApi``: the stream
            # and the metrics on that bus before the engine is built, then the server).
            session_api = None
            if api:
                session_api = SessionApi(argparse.Namespace(
                    api="127.0.0.1:0", keys=str(tmp / "no-keys.toml"), api_rate=None,
                    db=str(db)), stream_buffer=1_000_000)
                runner = watched_runner(config, store, session_api.bus)
            else:
                runner = watched_runner(config, store)
            hub = session_api.hub if session_api is not None else None
            engine_on_bar, record_order = runner.engine.on_bar, runner.recorder.order
            current = [0]

            def on_bar(s: int, n: int, ts: int, *ohlcv: float) -> None:
                current[0] = ts
                seen[0] += 1
                engine_on_bar(s, n, ts, *ohlcv)

            def order(o: Any) -> None:
                booked.append((current[0], time.perf_counter_ns()))
                record_order(o)

            runner.engine.on_bar = on_bar  # type: ignore[method-assign]
            runner.recorder.order = order  # type: ignore[method-assign]
            proc = None
            ready, stop = ctx.Event(), ctx.Event()
            out = str(tmp / "clients.json")
            if session_api is not None:
                session_api.attach(runner)
                assert session_api.url is not None
                proc = ctx.Process(target=_clients, args=(
                    session_api.url, clients, rps, ready, stop, out, batch))
                proc.start()
                assert ready.wait(60), "the clients did not connect"

            def subscribed() -> bool:
                exchange.send(("subscribed",))
                return bool(exchange.recv() == 1)

            async def drive() -> None:
                await wait_for(subscribed)
                start = time.perf_counter()
                for k in range(n_bars + 1):
                    c = float(closes[k])
                    t = T0 + k * MIN_MS
                    clock.set(t * 1_000_000)
                    # Bar k closes bar k-1: the exchange notes when it pushed it.
                    exchange.send(("push", (t - MIN_MS) * 1_000_000 if k else None,
                                   (t, c, c * 1.001, c * 0.999, c)))
                    await asyncio.sleep(max(0.0, start + (k + 1) * every
                                            - time.perf_counter()))

            async def run() -> None:
                driver = asyncio.create_task(drive())
                await asyncio.wait_for(runner.run([feed]), seconds * 3 + 60)
                await driver

            asyncio.run(run())
            exchange.send(("done",))
            pushed, pushed_wall = exchange.recv()
            to_order = [at - pushed[bar] for bar, at in booked]
            if proc is not None:
                stop.set()
                proc.join(60)
            if session_api is not None:
                session_api.close()
            result["bars_taken"] = seen[0]
            result["orders"] = len(to_order)
            result["_tick_to_trade_us"] = [x / 1e3 for x in to_order]
            for q in (0.5, 0.99):
                value = _pct([float(x) for x in to_order], q)
                result[f"tick_to_trade_p{round(q * 100)}_us"] = (
                    None if value is None else round(value / 1e3, 1))
            if api:
                assert hub is not None
                result.update(_client_figures(json.loads(Path(out).read_text()),
                                              [s for s, _, _ in hub._buffer], pushed_wall))
    finally:
        exchange.close()
        venue.join(10)
    return result


def _client_figures(data: dict[str, Any], published: list[int],
                    pushed_wall: dict[int, int]) -> dict[str, Any]:
    delivery: list[float] = []
    lost = 0
    kept_up = 0
    expected = set(published)
    for got, closed in zip(data["got"], data["closed"], strict=True):
        if closed is not None and closed != 1000:
            continue  # dropped (too slow) or failed: it did not keep up
        kept_up += 1
        lost += len(expected - {seq for seq, _, _, _ in got})
        for _, topic, wall, bar in got:
            if topic == "market:update" and bar in pushed_wall:
                delivery.append((wall - pushed_wall[bar]) / 1e6)
    reads = data["reads_ms"]
    out: dict[str, Any] = {"_reads_ms": reads, "_delivery_ms": delivery,
        "stream_messages": len(published), "clients_kept_up": kept_up,
        "clients_dropped": sum(c is not None and c != 1000 for c in data["closed"]),
        "events_lost": lost, "reads": len(reads), "failed_reads": data["failed_reads"]}
    for q in (0.5, 0.99):
        r, d = _pct(reads, q), _pct(delivery, q)
        out[f"api_read_p{round(q * 100)}_ms"] = None if r is None else round(r, 2)
        out[f"stream_delivery_p{round(q * 100)}_ms"] = None if d is None else round(d, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--every", type=float, default=0.05,
                        help="seconds between candles (default 0.05: 20 bars a second)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--batch", action="store_true",
                        help='clients ask for batched frames ({"batch": true}: JSON lines)')
    parser.add_argument("--rounds", type=int, default=1,
                        help="A/B pairs, alternating; the figures are also pooled")
    parser.add_argument("--switch-ms", type=float,
                        help="the interpreter's thread switch interval in ms for both "
                             "sessions (default: Python's, 5 ms)")
    parser.add_argument("--realtime", action="store_true",
                        help="run the session's trading loop and the exchange at real-time "
                             f"priority (SCHED_FIFO {TRADING_PRIORITY}), the session's other "
                             "threads and the clients at normal priority: other work on "
                             "the machine delays neither the market nor the trading loop; "
                             "needs root")
    args = parser.parse_args()
    if args.realtime:  # before any thread starts; the others go back to normal priority
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(TRADING_PRIORITY))
        ObserversAtNormalPriority()
    if args.switch_ms is not None:
        sys.setswitchinterval(args.switch_ms / 1e3)
    rounds: list[dict[str, Any]] = []
    # The session says where its API is on stdout (for scripts); the figures are stdout's.
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(sys.stderr):
        for k in range(args.rounds):  # A then B, alternating: drift hits both alike
            a = session(Path(tmp) / f"a{k}", args.seconds, args.every, False, args.clients,
                        args.rps)
            b = session(Path(tmp) / f"b{k}", args.seconds, args.every, True, args.clients,
                        args.rps, args.batch)
            rounds.append({"without_api": a, "with_api": b,
                           "tick_to_trade_p99_ratio": _ratio(a, b)})
    pooled = {arm: _pooled([r[arm] for r in rounds]) for arm in ("without_api", "with_api")}
    print(json.dumps({"rounds": rounds, "pooled": pooled,
                      "tick_to_trade_p99_ratio": _ratio(*pooled.values())}, indent=2))


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    if a.get("tick_to_trade_p99_us") and b.get("tick_to_trade_p99_us"):
        return round(b["tick_to_trade_p99_us"] / a["tick_to_trade_p99_us"], 3)
    return None


def _pooled(arms: list[dict[str, Any]]) -> dict[str, Any]:
    """Every round's samples together: tick-to-trade, reads and deliveries; losses and
    drops summed."""
    out: dict[str, Any] = {"orders": sum(a["orders"] for a in arms)}
    samples = {"tick_to_trade": ([x for a in arms for x in a.pop("_tick_to_trade_us")], "us"),
               "api_read": ([x for a in arms for x in a.pop("_reads_ms", [])], "ms"),
               "stream_delivery": ([x for a in arms for x in a.pop("_delivery_ms", [])],
                                   "ms")}
    for name, (values, unit) in samples.items():
        for q in (0.5, 0.99):
            value = _pct(values, q)
            if value is not None:
                out[f"{name}_p{round(q * 100)}_{unit}"] = round(value, 2)
    for key in ("events_lost", "clients_dropped", "failed_reads"):
        if key in arms[0]:
            out[key] = sum(a[key] for a in arms)
    return out

if __name__ == "__main__":
    main()
