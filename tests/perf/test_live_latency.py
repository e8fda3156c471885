"""Market event to order, paper mode, on loopback (target p99 <= 1 ms), under
pytest-benchmark.

Disabled by default (a short smoke run then). Measure with
``pytest tests/perf/test_live_latency.py --benchmark-enable``; figures in BENCHMARKS.md.

The event is the fake Hyperliquid pushing the candle that closes bar k (stamped just
before the push, in the test process: the server runs in a thread of it, so one monotonic
clock serves both ends). The path measured: server JSON -> loopback WebSocket ->
``HyperliquidStream`` -> ``HyperliquidCandleFeed`` (closure rule) -> runner queue ->
``Engine.on_bar`` (agents, consensus, policy, risk, router) -> the order booked with the
simulated venue (``Recorder.order``). Two figures: event to bar entering the engine (every
bar) and event to order (the bars that made one). The next event is pushed 1 ms after the
previous one was processed, so each is measured on an idle pipeline (latency, not
throughput). The fake server is a thread of this process and shares its GIL: its own work
(building and sending the JSON) is inside the figure.
"""

from __future__ import annotations

import asyncio
import time

from live.hyperliquid.candles import HyperliquidCandleFeed
from live.hyperliquid.stream import candle
from live.runner import LiveRunner
from quorum.live import watched_runner
from sim.config import parse_scenario
from sim.sql import one_row
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.hyperliquid.conftest import make_config
from tests.integration.hyperliquid.test_faults import wait_for

MIN_MS = 60_000
T0 = 1_704_067_200_000

SCENARIO = {
    "name": "latency", "seed": 3, "initial_cash": 100_000.0,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 10, "interval": "1m"}],
    "agents": [{"name": "fast", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "paper", "symbols": ["ETH"], "fee_bps": 4.5, "slippage_bps": 1.0}],
}


def _pct(values: list[int], q: float) -> float:
    data = sorted(values)
    return data[int(q * (len(data) - 1))] / 1e3  # us


def measure(tmp_path, n_bars: int, scenario: dict | None = None, watched: bool = False
            ) -> tuple[list[int], list[int], list[int]]:
    """(event -> on_bar, event -> order, feed -> order) latencies in ns; "feed" is when the
    candle feed takes the decoded message (the server and the socket are behind it).
    ``watched``: the session's observers too (``quorum.live.watched_runner``: monitor,
    logs, alert rows, a webhook if the environment names one)."""
    import numpy as np

    rng = np.random.default_rng(1)
    closes = 2000.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n_bars + 1)))
    pushed: dict[int, int] = {}  # bar ts (ns) -> when the candle closing it was pushed
    to_bar: list[int] = []
    to_order: list[int] = []
    feed_to_order: list[int] = []
    handled = [0]
    fake = FakeHyperliquid().start()
    try:
        config = parse_scenario(scenario or SCENARIO)
        clock = ManualClock(T0 * 1_000_000)
        feed = HyperliquidCandleFeed(make_config(fake), {"ETH": "ETH"}, MIN_MS * 1_000_000,
                                     clock=clock, max_bars=n_bars)
        with DuckDBStore(tmp_path / "lat.duckdb") as store:
            runner = (watched_runner(config, store, flush_rows=1_000_000) if watched
                      else LiveRunner(config, store, flush_rows=1_000_000))
            engine_on_bar, record_order = runner.engine.on_bar, runner.recorder.order
            current = [0]

            def on_bar(s, n, ts, *ohlcv):
                current[0] = ts
                to_bar.append(time.perf_counter_ns() - pushed[ts])
                engine_on_bar(s, n, ts, *ohlcv)

            def order(o):  # an order in its terminal state: booked (filled) here
                now = time.perf_counter_ns()
                to_order.append(now - pushed[current[0]])
                feed_to_order.append(now - handled[0])
                record_order(o)

            feed_handle = feed._handle

            async def handle(msg):
                handled[0] = time.perf_counter_ns()
                return await feed_handle(msg)

            feed._handle = handle  # type: ignore[method-assign]
            runner.engine.on_bar = on_bar  # type: ignore[method-assign]
            runner.recorder.order = order  # type: ignore[method-assign]

            async def drive() -> None:
                await wait_for(lambda: fake.subscribed(candle("ETH", "1m")) == 1)
                for k in range(n_bars + 1):
                    c = float(closes[k])
                    t = T0 + k * MIN_MS
                    clock.set(t * 1_000_000)
                    if k:
                        pushed[(t - MIN_MS) * 1_000_000] = time.perf_counter_ns()
                    fake.push_bar("ETH", "1m", MIN_MS, t, c, c * 1.001, c * 0.999, c, 1.0)
                    while k and len(to_bar) < k:  # until this event has been processed
                        await asyncio.sleep(0.0002)
                    await asyncio.sleep(0.001)

            async def session() -> None:
                driver = asyncio.create_task(drive())
                await asyncio.wait_for(runner.run([feed]), 120)
                await driver

            asyncio.run(session())
    finally:
        fake.stop()
    return to_bar, to_order, feed_to_order


def test_market_event_to_order(benchmark, tmp_path) -> None:
    n_bars = 50 if benchmark.disabled else 3000
    result: list[tuple[list[int], list[int], list[int]]] = []
    benchmark.pedantic(lambda: result.append(measure(tmp_path, n_bars)), rounds=1,
                       iterations=1)
    to_bar, to_order, feed_to_order = result[0]
    assert len(to_bar) == n_bars
    assert to_order, "the scenario placed orders"
    assert min(to_bar) > 0
    if not benchmark.disabled:
        for name, values in (("event_to_bar", to_bar), ("event_to_order", to_order),
                             ("feed_to_order", feed_to_order)):
            benchmark.extra_info[f"{name}_n"] = len(values)
            for q in (0.5, 0.9, 0.99):
                benchmark.extra_info[f"{name}_p{round(q * 100)}_us"] = round(_pct(values, q), 1)
        print(benchmark.extra_info)


# The same session, watched, with every alert (severity info and up) for the webhook and a
# flapping threshold the SMA 2/3 crosses all the time: a steady stream of alerts.
ALERTING = {**SCENARIO, "monitor": {"webhook_min_severity": "info", "flap_changes": 1,
                                    "flap_window": "5m", "heartbeat_s": 0.05}}


def test_a_dead_webhook_never_slows_trading(benchmark, tmp_path, monkeypatch) -> None:
    """Same-run A/B, rounds alternating which arm goes first: a watched session with no
    webhook against one whose webhook is a server that accepts connections and never
    answers (each POST waits out its timeout, then retries). Event-to-order percentiles
    per arm in extra_info and BENCHMARKS.md; the figure compared is p99."""
    import socket

    from sim.store import DuckDBStore as Store

    n_bars = 40 if benchmark.disabled else 2000
    rounds = 1 if benchmark.disabled else 4
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead.listen(64)  # never accepted: connections wait in the backlog, no answer comes
    url = f"http://127.0.0.1:{dead.getsockname()[1]}/hook"
    to_order: dict[str, list[int]] = {"none": [], "dead": []}
    alerts: dict[str, int] = {"none": 0, "dead": 0}

    def arms() -> None:
        for r in range(rounds):
            for arm in (("none", "dead") if r % 2 == 0 else ("dead", "none")):
                if arm == "dead":
                    monkeypatch.setenv("QUORUM_ALERT_WEBHOOK", url)
                else:
                    monkeypatch.delenv("QUORUM_ALERT_WEBHOOK", raising=False)
                where = tmp_path / f"{arm}{r}"
                where.mkdir()
                to_order[arm] += measure(where, n_bars, ALERTING, watched=True)[1]
                with Store(where / "lat.duckdb") as store:
                    alerts[arm] += one_row(store.con, "SELECT count(*) FROM alerts")[0]

    try:
        benchmark.pedantic(arms, rounds=1, iterations=1)
    finally:
        dead.close()
    assert to_order["none"] and to_order["dead"]
    assert alerts["dead"] > 0  # the webhook had alerts to (fail to) deliver
    for arm, values in to_order.items():
        benchmark.extra_info[f"{arm}_alerts"] = alerts[arm]
        benchmark.extra_info[f"{arm}_orders"] = len(values)
        for q in (0.5, 0.9, 0.99):
            benchmark.extra_info[f"{arm}_p{round(q * 100)}_us"] = round(_pct(values, q), 1)
    print(benchmark.extra_info)
