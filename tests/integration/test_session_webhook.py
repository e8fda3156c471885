"""A watched paper session with faults (a venue outage, the kill switch) and a webhook on
loopback: the receiver gets every critical alert the session stored, each exactly once,
within a second of the fault reaching the pipeline."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from quorum.live import watched_runner
from sim.config import parse_scenario
from sim.messages import Bar
from sim.store import DuckDBStore

MIN = 60 * 10**9
N_BARS = 60
DOWN_AT, KILL_AT = 20, 40  # bar numbers of the faults


class _Receiver:
    def __init__(self) -> None:
        self.got: list[tuple[float, dict, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.got.append((time.monotonic(), body, self.headers["X-Quorum-Alert"]))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class _Feed:
    """Bars one minute apart from ``start``, a few ms apart in wall time; notes when each
    bar was handed over."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.handed: dict[int, float] = {}

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for i in range(N_BARS):
            price = 100.0 + (i % 5)
            self.handed[i] = time.monotonic()
            yield Bar("BTC", self.start + i * MIN, price, price + 1, price - 1, price, 1.0)
            await asyncio.sleep(0.02)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_every_critical_alert_reaches_the_webhook_once_within_a_second(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = _Receiver()
    monkeypatch.setenv("QUORUM_ALERT_WEBHOOK", receiver.url)
    now = time.time_ns()
    start = now - now % MIN - 5 * MIN  # recent bars: the feed is not stale
    config = parse_scenario({
        "name": "webhook", "seed": 1,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": 10, "interval": "1m"}],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 2, "slow": 3}}],
        "venues": [{"name": "alpha", "symbols": ["BTC"]}],
        "events": [{"at": _iso(start + DOWN_AT * MIN), "kind": "venue_down", "venue": "alpha"},
                   {"at": _iso(start + KILL_AT * MIN), "kind": "kill_switch"}],
        "monitor": {"heartbeat_s": 0.02, "silent_after": "1d"},
    })
    feed = _Feed(start)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = watched_runner(config, store, symbols=["BTC"], mode="paper")
        asyncio.run(runner.run([feed]))
        stored = store.con.execute(
            "SELECT alert_id, kind FROM alerts WHERE run_id = ? AND severity = 'critical'"
            " ORDER BY alert_id", [runner.run_id]).fetchall()
    receiver.server.shutdown()
    kinds = {kind for _, kind in stored}
    assert {"venue_down", "kill_switch"} <= kinds
    got = sorted((body["alert_id"], body["kind"]) for _, body, _ in receiver.got)
    assert got == stored  # every critical alert, each exactly once
    assert {key for *_, key in receiver.got} == {f"{runner.run_id}:{i}" for i, _ in stored}
    arrived = {body["kind"]: t for t, body, _ in receiver.got}
    # within a second of the bar that brought the fault into the pipeline
    assert arrived["venue_down"] - feed.handed[DOWN_AT] < 1.0
    assert arrived["kill_switch"] - feed.handed[KILL_AT] < 1.0
