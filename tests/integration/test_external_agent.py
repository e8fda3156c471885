"""The external agent against a real HTTP decision service on 127.0.0.1, started here.

A record run asks the service and stores every exchange in ``agent_calls``; with the
service stopped, a replay run answers from those rows and stores the same rows in every
table. Timeouts, 5xx and malformed answers are recorded errors and the run completes; a
request holding data from after the current bar is refused before it is sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from sim.agents.external import (
    CallLogMissing,
    ExternalAgent,
    LookaheadError,
    MemoryCallLog,
    ReplayMissError,
    canonical_json,
    request_hash,
)
from sim.config import parse_scenario
from sim.data import gbm_bars
from sim.messages import HOLD
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore
from sim.view import MarketView
from tests.property import _support as sup

LOOKBACK, EVERY, BARS = 20, 10, 200
CALLS = (BARS - LOOKBACK) // EVERY + 1


@dataclass
class Service:
    """What the test server has seen, and how it answers."""

    hits: list[tuple[str, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    flipped: bool = False  # answer the opposite way (a "newer model")
    seen: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _decide(body: dict[str, Any], flipped: bool) -> dict[str, Any]:
    close = body["bars"]["close"]
    up = (close[-1] > close[0]) != flipped
    move = abs(close[-1] / close[0] - 1)
    return {"side": "long" if up else "short", "confidence": round(min(1.0, move * 50), 3),
            "target": 0.5, "reason": f"{len(close)}-bar move"}


class _Quiet(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that timed out and left
        pass


def _handler(service: Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            raw = self.rfile.read(int(self.headers["content-length"]))
            body = json.loads(raw)
            with service.lock:
                service.hits.append((self.path, body, dict(self.headers)))
                first_try = raw not in service.seen
                service.seen.add(raw)
            if self.path == "/slow":
                time.sleep(0.3)
                return self._send(200, _decide(body, False))
            if self.path == "/error":
                return self._send(500, {"error": "model crashed"})
            if self.path == "/bad":
                return self._send(200, {"side": "up", "confidence": 0.5})
            if self.path == "/flaky" and first_try:
                return self._send(503, {"error": "warming up"})
            return self._send(200, _decide(body, service.flipped))

        def _send(self, code: int, obj: dict[str, Any]) -> None:
            data = json.dumps(obj).encode()
            try:
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                pass

    return Handler


@pytest.fixture
def server() -> Iterator[tuple[str, Service, ThreadingHTTPServer]]:
    service = Service()
    httpd = _Quiet(("127.0.0.1", 0), _handler(service))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", service, httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def scenario(url: str, mode: str, max_error_rate: float = 0.1, **params: Any
             ) -> dict[str, Any]:
    return {
        "name": "external",
        "seed": 5,
        "data": [{"kind": "gbm", "symbol": "BTC", "bars": BARS, "interval": "1m",
                  "volatility": 1.5}],
        "agents": [
            {"name": "service", "kind": "external",
             "params": {"url": url, "mode": mode, "lookback": LOOKBACK, "every": EVERY,
                        "timeout": 2.0, **params}, "max_error_rate": max_error_rate},
            {"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}},
        ],
        "consensus": {"method": "confidence_weighted"},
        "venues": [{"name": "v", "symbols": ["BTC"], "fee_bps": 5.0}],
    }


def run(store: DuckDBStore, raw: dict[str, Any]) -> str:
    return run_scenario(parse_scenario(raw), store).run_id


def snapshot(store: DuckDBStore, run_id: str) -> dict[str, list[tuple]]:
    # every column, agent_calls.elapsed_ms included: replay copies the recorded one
    return {t: sup.table_rows(store.con, t, run_id, sort=False) for t in TABLES}


def calls(store: DuckDBStore, run_id: str) -> list[dict[str, Any]]:
    return sup.records(store.con, "agent_calls", run_id)


def test_record_then_replay_offline_gives_identical_rows(server, tmp_path):
    url, service, httpd = server
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        recorded = run(store, scenario(url + "/decide", "record"))
        assert len(service.hits) == CALLS
        rows = calls(store, recorded)
        assert len(rows) == CALLS and all(r["error"] is None for r in rows)
        for r, (_, body, _) in zip(rows, service.hits, strict=True):
            assert json.loads(r["request"]) == body
            assert r["request_hash"] == request_hash(canonical_json(body))
            assert json.loads(r["response"]) == _decide(body, False)
            assert max(body["bars"]["ts"]) == body["ts"] == r["ts"]  # nothing after now
            assert len(body["bars"]["close"]) == LOOKBACK
        assert store.con.execute("SELECT count(*) FROM signals WHERE run_id = ? AND"
                                 " agent = 'service'", [recorded]).fetchone()[0] > 0

        httpd.shutdown()  # the service is gone: replay must not need it
        httpd.server_close()
        replayed = run(store, scenario(url + "/decide", "replay"))
        assert len(service.hits) == CALLS
        a, b = snapshot(store, recorded), snapshot(store, replayed)
        for table in TABLES:
            if table == "agent_events":  # the agents' specs say "record" and "replay"
                strip = [(*r[:6], *r[8:]) for r in a[table]]
                assert strip == [(*r[:6], *r[8:]) for r in b[table]] and strip
                continue
            assert a[table] == b[table], table
        assert a["signals"] and a["decisions"] and a["fills"]


def test_replay_answers_with_the_latest_recording(server, tmp_path):
    url, service, _ = server
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        first = run(store, scenario(url + "/decide", "record"))
        service.flipped = True
        second = run(store, scenario(url + "/decide", "record"))
        replayed = run(store, scenario(url + "/decide", "replay"))
        sig = {r: sup.table_rows(store.con, "signals", r, sort=False)
               for r in (first, second, replayed)}
    assert sig[first] != sig[second]
    assert sig[replayed] == sig[second]


def test_replay_without_a_recording_is_a_clear_error(tmp_path):
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(ReplayMissError, match='no recorded call for BTC at 2024-01-01T00:19'
                           r'.*mode = "record"') as info:
            run(store, scenario("http://127.0.0.1:9/decide", "replay"))
        assert "\n" not in str(info.value)
        status, error = store.con.execute("SELECT status, error FROM runs").fetchone()
    assert status == "failed" and "ReplayMissError" in error


@pytest.mark.parametrize(("path", "params", "error"), [
    ("/slow", {"timeout": 0.05, "retries": 1}, "timeout after 0.05 s (2 attempts)"),
    ("/error", {"retries": 2}, 'HTTP 500: {"error": "model crashed"} (3 attempts)'),
    ("/bad", {}, "bad response: side must be long, short, flat or hold, got 'up'"),
])
def test_service_errors_are_recorded_and_the_agent_abstains(server, tmp_path, path, params,
                                                            error):
    url, _, _ = server
    # 4 calls: 20, 80, 140, 200, all failing: allowed here (a lower max_error_rate fails
    # the run: tests/integration/test_agent_errors.py)
    raw = scenario(url + path, "record", every=60, max_error_rate=1.0, **params)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run(store, raw)
        rows = calls(store, run_id)
        status = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                   [run_id]).fetchone()[0]
        signals = store.con.execute(
            "SELECT side, confidence, reason FROM signals WHERE run_id = ? AND agent = 'service'",
            [run_id]).fetchall()
        replayed = run(store, {**raw, "agents": [
            {**raw["agents"][0], "params": {**raw["agents"][0]["params"], "mode": "replay"}},
            raw["agents"][1]]})
        assert calls(store, replayed) == rows  # the errors replay too
    assert status == "completed"
    assert len(rows) == 4 and all(r["error"] == error for r in rows)
    assert all(r["elapsed_ms"] > 0 for r in rows)
    # one HOLD: the agent withdrew its view, and kept it withdrawn
    assert signals == [("HOLD", 0.0, "external: no usable answer (see agent_calls)")]
    if path == "/bad":
        assert json.loads(rows[0]["response"]) == {"side": "up", "confidence": 0.5}
    else:
        assert rows[0]["response"] is None


def test_on_error_keep_sends_no_signal(server, tmp_path):
    url, _, _ = server
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run(store, scenario(url + "/error", "record", every=90, retries=0,
                                     on_error="keep", max_error_rate=1.0))
        n = store.con.execute("SELECT count(*) FROM signals WHERE run_id = ? AND"
                              " agent = 'service'", [run_id]).fetchone()[0]
        assert n == 0 and len(calls(store, run_id)) == 3


def test_a_5xx_is_retried(server, tmp_path):
    url, service, _ = server
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run(store, scenario(url + "/flaky", "record", every=90, retries=1))
        rows = calls(store, run_id)
    assert len(rows) == 3 and all(r["error"] is None for r in rows)
    assert len(service.hits) == 6  # each request: a 503, then the answer


def test_secret_headers_come_from_the_environment_and_are_never_stored(server, tmp_path,
                                                                      monkeypatch):
    url, service, _ = server
    monkeypatch.setenv("QUORUM_TEST_TOKEN", "s3cret-value")
    raw = scenario(url + "/decide", "record", every=90,
                   headers_env={"Authorization": "QUORUM_TEST_TOKEN"})
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run(store, raw)
        dump = repr([store.con.execute(f"SELECT * FROM {t}").fetchall()
                     for t in ("runs", *TABLES)])
    assert all(headers.get("Authorization") == "s3cret-value"
               for _, _, headers in service.hits)
    assert "s3cret-value" not in dump
    monkeypatch.delenv("QUORUM_TEST_TOKEN")
    with pytest.raises(ValueError, match="QUORUM_TEST_TOKEN not set"):
        parse_scenario(raw)


class LeakyView(MarketView):
    """A buggy view whose history runs one bar past now (an off-by-one)."""

    def history(self, column: str, length: int | None = None) -> np.ndarray:
        data = self._bars.column(column)[: self.n + 1]
        return data if length is None else data[max(0, self.n + 1 - length) :]


def test_a_request_with_data_after_now_is_refused_before_sending(server):
    url, service, _ = server
    bars = gbm_bars("BTC", 50, np.random.default_rng(0), start_ns=0, interval_ns=60 * 10**9)
    log = MemoryCallLog()
    agent = ExternalAgent(url + "/decide", mode="record", lookback=10, call_log=log)
    view = LeakyView(bars)
    view.n, view.ts, view.close = 10, int(bars.ts[9]), float(bars.close[9])
    with pytest.raises(LookaheadError, match="after the current bar: refused"):
        agent.on_bar(view)
    assert service.hits == [] and log.records == []
    good = MarketView(bars)  # the same bar through the real view is sent
    good.n, good.ts, good.close = 10, int(bars.ts[9]), float(bars.close[9])
    assert agent.on_bar(good) is not None
    assert len(service.hits) == 1 and len(log.records) == 1


def test_record_and_replay_need_a_log_but_live_does_not(server):
    url, service, _ = server
    bars = gbm_bars("BTC", 30, np.random.default_rng(1), start_ns=0, interval_ns=60 * 10**9)
    view = MarketView(bars)
    view.n, view.ts = 10, int(bars.ts[9])
    for mode in ("record", "replay"):
        with pytest.raises(CallLogMissing, match=f"{mode} mode needs a call log"):
            ExternalAgent(url + "/decide", mode=mode, lookback=10).on_bar(view)
    signal = ExternalAgent(url + "/decide", mode="live", lookback=10).on_bar(view)
    assert signal is not None and signal.side is not HOLD and len(service.hits) == 1


@pytest.mark.parametrize(("path", "degraded"), [("/error", True), ("/decide", False)])
def test_a_failing_service_degrades_its_agent_in_a_watched_run(server, tmp_path, path,
                                                                degraded):
    """Tool feedback: each call the agent makes is published (topic ``call``); the monitor
    judges the service's success rate over its last calls and degrades the agent."""
    url, _, _ = server
    raw = {**scenario(url + path, "record", every=20, retries=0, max_error_rate=1.0),
           "monitor": {"tool_min_calls": 3, "tool_window": 5}}
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run(store, raw)
        alerts = store.con.execute(
            "SELECT source, kind, severity, message FROM alerts WHERE run_id = ? AND"
            " kind = 'tool_degraded'", [run_id]).fetchall()
        health = store.con.execute(
            "SELECT epoch_ns(ts), state, reason FROM health WHERE run_id = ? AND"
            " component = 'agent:service' ORDER BY seq", [run_id]).fetchall()
        third = store.con.execute(
            "SELECT epoch_ns(ts) FROM agent_calls WHERE run_id = ? ORDER BY ts LIMIT 1"
            " OFFSET 2", [run_id]).fetchone()[0]
    if not degraded:
        assert alerts == [] and not [h for h in health if h[2].startswith("tool")]
        return
    assert alerts == [("agent:service", "tool_degraded", "warning",
                       "agent:service: 3 of its last 3 calls failed (success 0%, below 80%)")]
    # degraded at the third failed call (the first the monitor judges), not before
    assert health[0][:2] == (third, "degraded") and health[0][2].startswith("tool: ")
