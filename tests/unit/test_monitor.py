"""The detectors on hand-made numbers, the health board, the monitor's handling of
lifecycle events, the webhook sink (loopback: every critical alert exactly once; a stuck
receiver never holds up the publisher) and the rotated JSON-lines log file."""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from sim.bus import AGENT, AGENT_ERROR, ALERT, HEALTH, LOG, EventBus
from sim.bus_events import AgentFailed, AgentStateChanged, AlertRaised, LogRecord
from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.monitor import detectors as d
from sim.monitor.config import MonitorConfig
from sim.monitor.health import HealthBoard
from sim.monitor.logs import LogFile, read_lines
from sim.monitor.monitor import Monitor, MonitorContext
from sim.monitor.sinks import WebhookSink

H = 3_600_000_000_000  # an hour in ns


def test_detectors_on_hand_made_numbers():
    ts = [0, H, 2 * H, 3 * H]
    assert d.drawdown_velocity(ts, [100.0, 110.0, 104.0, 103.0], 3 * H, 2 * H, 0.05) is not None
    assert d.drawdown_velocity(ts, [100.0, 110.0, 104.0, 106.0], 3 * H, 2 * H, 0.05) is None
    # the peak of 110 is outside a 1 h window: 104 -> 103 is under 5 %
    assert d.drawdown_velocity(ts, [100.0, 110.0, 104.0, 103.0], 3 * H, H, 0.05) is None
    found = d.slippage_excess(101.0, 100.0, 10.0, 3.0, 25.0)  # 100 bps > max(30, 25)
    assert found is not None and found.data["bound_bps"] == 30.0
    assert d.slippage_excess(99.8, 100.0, 10.0, 3.0, 25.0) is None  # 20 bps
    times: deque[int] = deque()
    counts = [d.in_window(times, t, 3 * H) for t in (0, H, 2 * H, 3 * H, 7 * H)]
    assert counts == [1, 2, 3, 3, 1]
    assert d.flapping(3, 2, "1d") is not None and d.flapping(2, 2, "1d") is None
    assert d.burst(6, 5, "1h", "denials") is not None
    assert d.silent(0, 5 * H, 4 * H) is not None and d.silent(0, 4 * H, 4 * H) is None
    assert d.latency_spike(2_500_000_000, 2_000.0) is not None
    assert d.latency_spike(1_000_000_000, 2_000.0) is None
    # a 15m bar opened at 0 closed at 15m; 4 intervals later is 75m: stale past that
    q = H // 4
    assert d.stale(0, 5 * q + 1, q, 4) is not None and d.stale(0, 5 * q, q, 4) is None


def test_window_peak_finds_what_the_pure_detector_finds():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        ts = np.cumsum(rng.integers(1, 4, n) * (H // 4)).tolist()
        equity = (100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))).tolist()
        window = int(rng.integers(1, 40)) * H // 4
        peak = d.WindowPeak(window)
        looks = sorted(set(rng.integers(1, n + 1, 10).tolist()) | {n})
        drained = d.WindowPeak(window)  # a session's book: emptied when rows are written
        written = 0
        for k in looks:  # heartbeats at the time of row k, each seeing rows [0, k)
            now = ts[k - 1]
            expected = d.drawdown_velocity(ts[:k], equity[:k], now, window, 0.01)
            assert peak.check(ts[:k], equity[:k], now, 0.01) == expected
            # the peak of rows already written may come from a block a little older
            # than the window's edge: never lower than the exact one
            found = drained.check(ts[written:k], equity[written:k], now, 0.01)
            if expected is not None:
                assert found is not None and found.data["peak"] >= expected.data["peak"]
            written = k if rng.random() < 0.5 else written


def test_health_board_publishes_changes_and_the_overall_state():
    bus = EventBus()
    seen = []
    bus.subscribe(lambda env: seen.append(env.event), (HEALTH,))
    board = HealthBoard(bus)
    assert not board.set(1, "venue:a", "healthy")  # first sight, healthy: no row
    assert board.set(2, "venue:a", "degraded", "rejects")
    assert not board.set(3, "venue:a", "degraded", "rejects again")  # no change
    assert board.set(4, "risk", "critical", "kill switch")
    assert board.overall() == ("critical", "risk: kill switch")
    assert [(e.component, e.state) for e in seen] == [
        ("venue:a", "degraded"), ("overall", "degraded"), ("risk", "critical"),
        ("overall", "critical")]
    with pytest.raises(ValueError):
        board.set(5, "risk", "fine")


def _monitor(bus: EventBus) -> Monitor:
    context = MonitorContext(("sma", "ml"), {"alpha": 1.0}, {"BTC": H}, 0)
    monitor = Monitor(bus, MonitorConfig(), context)
    monitor.attach()
    return monitor


def test_lifecycle_and_agent_errors_become_alerts_and_agent_health():
    bus = EventBus()
    alerts = []
    bus.subscribe(lambda env: alerts.append(env.event), (ALERT,))
    monitor = _monitor(bus)
    bus.publish(AGENT_ERROR, 5, AgentFailed(5, "ml", "BTC", 50, "exception", "ValueError",
                                            "bad input", "abc123"))
    assert monitor.health.get("agent:ml").state == "degraded"
    bus.publish(AGENT, 6, AgentStateChanged(6, "ml", "errored", "active", "breaker",
                                            "kernel", "3 errors in 10 bars", "applied"))
    bus.publish(AGENT, 7, AgentStateChanged(7, "sma", "paused", "active", "pause", "ops",
                                            "check", "applied"))
    bus.publish(AGENT, 8, AgentStateChanged(8, "nope", "active", None, "resume", "ops", "",
                                            "rejected: unknown agent 'nope'"))
    assert [(a.severity, a.source, a.kind) for a in alerts] == [
        ("warning", "agent:ml", "agent_error"), ("critical", "agent:ml", "agent_breaker"),
        ("info", "agent:nope", "command_rejected")]
    assert monitor.health.get("agent:ml").state == "critical"
    assert monitor.health.get("agent:sma").state == "degraded"
    assert monitor.health.overall()[0] == "critical"
    # a paused agent is not "silent"; the other checks still run at a heartbeat
    monitor.heartbeat(30 * 24 * H)
    assert not any(a.kind == "agent_silent" and a.source == "agent:sma" for a in alerts)


def test_monitor_config_is_strict_and_off_by_default_in_the_dump():
    base = {"name": "t", "agents": [{"name": "a", "kind": "sma_crossover"}],
            "venues": [{"name": "v", "symbols": ["X"]}]}
    assert "monitor" not in parse_scenario(base, "t").model_dump()
    with pytest.raises(ConfigError, match="monitor"):
        parse_scenario({**base, "monitor": {"flap_changes": 0}}, "t")
    with pytest.raises(ConfigError, match="monitor"):
        parse_scenario({**base, "monitor": {"no_such_threshold": 1}}, "t")
    with pytest.raises(ConfigError, match="monitor"):
        parse_scenario({**base, "monitor": {"heartbeat": "soon"}}, "t")


class _Receiver:
    """A loopback HTTP server that records POSTed alerts; ``gate`` holds every request
    until set (a stuck receiver); the first ``fail`` requests get a 503."""

    def __init__(self, fail: int = 0) -> None:
        self.bodies: list[dict] = []
        self.keys: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.arrived = threading.Event()
        self.fail = fail
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.arrived.set()
                receiver.gate.wait()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.fail > 0:
                    receiver.fail -= 1
                    self.send_response(503)
                else:
                    receiver.bodies.append(body)
                    receiver.keys.append(self.headers["X-Quorum-Alert"])
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


def _alert(i: int, severity: str) -> AlertRaised:
    return AlertRaised(i, i, severity, "risk", "kill_switch", f"alert {i}", {"i": i})


def test_webhook_gets_every_critical_alert_exactly_once_despite_failures():
    receiver = _Receiver(fail=2)  # the first two POSTs fail: retried, delivered once
    bus = EventBus()
    sink = WebhookSink(bus, receiver.url, "run1", min_severity="critical", retries=3,
                       sleep=lambda s: None)
    severities = ["critical", "warning", "info", "critical", "critical", "warning"]
    for i, severity in enumerate(severities, 1):
        bus.publish(ALERT, i, _alert(i, severity))
    sink.close()  # delivers what is queued
    receiver.close()
    assert [b["alert_id"] for b in receiver.bodies] == [1, 4, 5]
    assert receiver.keys == ["run1:1", "run1:4", "run1:5"]
    assert all(b["severity"] == "critical" and b["run_id"] == "run1" for b in receiver.bodies)
    assert (sink.sent, sink.failed) == (3, 0)


def test_a_stuck_webhook_never_holds_up_the_publisher():
    receiver = _Receiver()
    receiver.gate.clear()  # every request hangs until the test lets go
    bus = EventBus()
    sink = WebhookSink(bus, receiver.url, "run1", timeout_s=30.0, retries=0, maxlen=10)
    for i in range(1, 201):
        bus.publish(ALERT, i, _alert(i, "critical"))
    # every publish returned while the sink's first POST is still stuck at the receiver
    assert receiver.arrived.wait(10)
    assert not receiver.bodies and sink.sent == 0
    assert sink.subscription.missed >= 200 - 10 - 1  # the bounded queue dropped, counted
    receiver.close()
    sink.close()


def test_webhook_from_env_only(monkeypatch: pytest.MonkeyPatch):
    bus = EventBus()
    monkeypatch.delenv("QUORUM_ALERT_WEBHOOK", raising=False)
    assert WebhookSink.from_env(bus, MonitorConfig(), "r") is None
    monkeypatch.setenv("QUORUM_ALERT_WEBHOOK", "http://127.0.0.1:9/x")
    monkeypatch.setenv("QUORUM_ALERT_TOKEN", "s3cret")
    sink = WebhookSink.from_env(bus, MonitorConfig(), "r")
    assert sink is not None and sink.client.headers["Authorization"] == "Bearer s3cret"
    sink.close()


def test_log_file_rotates_by_size_and_reads_back_in_order(tmp_path: Path):
    bus = EventBus()
    path = tmp_path / "runs.duckdb.logs" / "r1.jsonl"
    log = LogFile(bus, path, max_bytes=2_000, backups=50)
    log.attach(queued=False)
    for i in range(100):
        bus.publish(LOG, i, LogRecord(i, "info", "system", f"line {i}", None, {"i": i}))
    log.close()
    assert len(list(path.parent.glob("r1.jsonl.*"))) >= 2  # rotated
    records = list(read_lines(path))
    assert [r["data"]["i"] for r in records] == list(range(100))
    assert records[0]["level"] == "info" and records[0]["category"] == "system"
