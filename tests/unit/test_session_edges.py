"""What a session's edges tell the monitor (issue 16 §3): a reconciliation round's
differences, a candle feed falling back to REST, the calls to an outside tool. Each
becomes the health of its component (and an alert when it leaves healthy); hand-made
inputs, the monitor subscribed synchronously."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from live.observe import FeedFallback, VenueCalls, report_reconciliation
from sim.bus import ALERT, HEALTH, EventBus
from sim.messages import Bar
from sim.monitor import detectors as d
from sim.monitor.config import MonitorConfig
from sim.monitor.monitor import Monitor, MonitorContext

M = 60_000_000_000  # a minute in ns


class _Probe:
    """A heartbeat's view: ``last`` is each symbol's last bar."""

    def __init__(self) -> None:
        self.last: dict[str, int | None] = {"BTC": 0}

    def equity(self) -> tuple[Sequence[int], Sequence[float]]:
        return [], []

    def last_bars(self) -> Mapping[str, int | None]:
        return self.last

    def venues(self) -> Mapping[str, str]:
        return {"alpha": "up"}

    def risk(self) -> tuple[bool, str | None]:
        return False, None


def _watched(**config: object) -> tuple[EventBus, Monitor, list, list, _Probe]:
    bus = EventBus()
    health: list = []
    alerts: list = []
    bus.subscribe(lambda env: health.append(env.event), (HEALTH,))
    bus.subscribe(lambda env: alerts.append(env.event), (ALERT,))
    probe = _Probe()
    monitor = Monitor(bus, MonitorConfig(stale_bars=3, **config),
                      MonitorContext(("sma",), {"alpha": 1.0}, {"BTC": M}, 0), probe)
    monitor.attach()
    return bus, monitor, health, alerts, probe


def _bar(ts: int) -> Bar:
    return Bar("BTC", ts, 1.0, 1.0, 1.0, 1.0, 1.0)


def _feed_states(health: list) -> list[tuple[str, str]]:
    return [(h.state, h.reason.split(":")[0]) for h in health if h.component == "feed:BTC"]


def test_a_feed_on_rest_is_degraded_until_a_bar_closes_on_the_stream():
    bus, monitor, health, alerts, probe = _watched()
    seen: list[str] = []
    hook = FeedFallback(bus, lambda how, bar: seen.append(how))
    for how in ("warmup", "push", "rest", "rest"):
        hook(how, _bar(0))
    assert seen == ["warmup", "push", "rest", "rest"]  # the feed's own hook still runs
    assert _feed_states(health) == [("degraded", "REST fallback in use")]
    monitor.heartbeat(2 * M)  # fresh bars: the heartbeat keeps the fallback's state
    assert _feed_states(health) == [("degraded", "REST fallback in use")]
    monitor.heartbeat(10 * M)  # stale outranks it ...
    monitor.heartbeat(11 * M)
    probe.last["BTC"] = 10 * M
    monitor.heartbeat(11 * M)  # ... and once fresh again, the fallback shows again
    hook("push", _bar(11 * M))
    assert _feed_states(health) == [("degraded", "REST fallback in use"),
                                    ("critical", "stale"),
                                    ("degraded", "REST fallback in use"),
                                    ("healthy", "bars close on the stream again")]
    assert [(a.source, a.kind, a.severity) for a in alerts] == [
        ("feed:BTC", "rest_fallback", "warning"), ("feed:BTC", "stale_data", "critical")]


@dataclass
class _Port:
    differences: int = 0
    last_difference: tuple[str, str] = ("", "")

    def alert(self, kind: str, detail: str) -> None:
        self.differences += 1
        self.last_difference = (kind, detail)


def test_reconciliation_differences_set_its_health_and_alert_once():
    bus, _, health, alerts, _ = _watched()
    port = _Port()
    report_reconciliation(bus, port, 0, False)  # nothing found, nothing compared: no news
    report_reconciliation(bus, port, 0, True)  # all compared, all agree: healthy, no row
    assert health == []
    port.alert("fill", "trade 7 of order 3 was not booked; booked")
    report_reconciliation(bus, port, 0, False)
    before = port.differences
    port.alert("position", "the venue holds 2 ETH, the store 1; adjusted by +1")
    report_reconciliation(bus, port, before, True)
    report_reconciliation(bus, port, port.differences, True)  # a clean round
    assert [(h.component, h.state) for h in health if h.component != "overall"] == [
        ("reconciliation", "degraded"), ("reconciliation", "critical"),
        ("reconciliation", "healthy")]
    assert health[0].reason == ("1 difference(s) with the venue; the last, fill: trade 7 of "
                                "order 3 was not booked; booked")
    # one alert when a mismatch begins, one more when it turns critical; a round that
    # agrees re-arms them
    assert [(a.kind, a.severity) for a in alerts] == [
        ("reconciliation_mismatch", "warning"), ("reconciliation_mismatch", "critical")]
    port.alert("account", "the venue's account value differs")
    report_reconciliation(bus, port, port.differences - 1, True)
    assert [a.severity for a in alerts] == ["warning", "critical", "critical"]
    report_reconciliation(None, port, 0, True)  # an unwatched session: nothing to tell


def test_venue_calls_feed_the_venues_health():
    bus, _, health, alerts, _ = _watched(tool_min_calls=4, tool_window=4, tool_p99_ms=500.0)
    calls = VenueCalls(bus, ["alpha"])
    for ok, ms in ((True, 20.0), (True, 30.0), (True, 25.0), (True, 900.0)):
        calls("place", ok, ms, None)
    assert [(h.component, h.state) for h in health if h.component != "overall"] == [
        ("venue:alpha", "degraded")]
    assert health[0].reason == "tool: venue:alpha: p99 latency 900 ms over its last 4 calls, " \
                               "above 500 ms"
    for _ in range(4):
        calls("lookup", True, 10.0, None)
    assert [(h.component, h.state) for h in health if h.component != "overall"][-1] == (
        "venue:alpha", "healthy")
    calls("place", False, 5.0, "ConnectError")  # 3 of 4: 75 %, below 80 %
    calls("place", False, 5.0, "ConnectError")  # still degraded: no second alert
    assert [(a.source, a.kind) for a in alerts] == [("venue:alpha", "tool_degraded")] * 2
    assert "1 of its last 4 calls failed (success 75%" in alerts[1].message


def test_tool_trouble_on_hand_made_calls():
    fine = [(True, 10.0)] * 9 + [(False, 12.0)]
    assert d.tool_trouble(fine, 5, 0.8, 100.0) is None  # 90 % succeed, p99 12 ms
    assert d.tool_trouble(fine[:4], 5, 0.8, 100.0) is None  # too few to judge
    failing = [(True, 10.0)] * 7 + [(False, 10.0)] * 3
    found = d.tool_trouble(failing, 5, 0.8, None)
    assert found is not None and found.data["success_rate"] == 0.7
    slow = [(True, 10.0)] * 9 + [(True, 300.0)]
    found = d.tool_trouble(slow, 5, None, 100.0)
    assert found is not None and found.data["p99_ms"] == 300.0
    assert d.tool_trouble(slow, 5, None, None) is None
