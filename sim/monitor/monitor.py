"""The monitor: runs the detectors over the bus's events and keeps component health.

It subscribes to event-level topics only (signal, fill, denial, order, agent,
agent_error): never to ``bar`` or ``equity``, which come every bar. What needs time to
pass (stale data, silent agents, drawdown velocity, venue and risk state) is checked at
a heartbeat instead: on sim time through the engine's event queue in a backtest
(``schedule_heartbeats``), on a wall-clock timer in a session. A heartbeat reads the
engine's own state (the equity book, each view's last bar, venue health, the risk
engine) through a ``Probe``, so it adds no work to the bar path.

Alerts are edge-triggered: a condition raises one alert when it begins and re-arms when
it clears, so a burst that lasts an hour is one alert, not one per denial.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

from sim.bus import (
    AGENT,
    AGENT_ERROR,
    ALERT,
    CALL,
    COMPONENT,
    DENIAL,
    FILL,
    ORDER,
    SIGNAL,
    Envelope,
    EventBus,
    Subscription,
)
from sim.bus_events import (
    AgentFailed,
    AgentStateChanged,
    AlertRaised,
    ComponentReported,
    FillBooked,
    OrderEvent,
    SignalChanged,
    ToolCalled,
)
from sim.messages import LONG, SHORT, OrderDenied
from sim.monitor import detectors as d
from sim.monitor.config import MonitorConfig
from sim.monitor.health import CRITICAL, DEGRADED, HEALTHY, HealthBoard

TOPICS = (SIGNAL, FILL, DENIAL, ORDER, AGENT, AGENT_ERROR, COMPONENT, CALL)
BREAKER_CHECKS = frozenset(("daily_loss_limit", "max_drawdown", "circuit_breaker"))
_VENUE_HEALTH = {"up": HEALTHY, "degraded": DEGRADED, "down": CRITICAL}


class Probe(Protocol):
    """What a heartbeat reads of the running pipeline."""

    def equity(self) -> tuple[Sequence[int], Sequence[float]]: ...
    def last_bars(self) -> Mapping[str, int | None]: ...  # symbol -> last bar ts (None: none)
    def venues(self) -> Mapping[str, str]: ...  # venue -> "up" | "degraded" | "down"
    def risk(self) -> tuple[bool, str | None]: ...  # (kill switch pulled, breaker check)


class EngineProbe:
    """A ``Probe`` over an ``sim.engine.Engine`` (backtest or session: the same engine)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def equity(self) -> tuple[Sequence[int], Sequence[float]]:
        book = self.engine.portfolio.book
        return book.ts, book.equity

    def last_bars(self) -> Mapping[str, int | None]:
        return {symbol: (view.ts if view.n else None)
                for symbol, view in zip(self.engine.symbols, self.engine.views, strict=True)}

    def venues(self) -> Mapping[str, str]:
        return {v.name: v.health for v in self.engine.router.venues}

    def risk(self) -> tuple[bool, str | None]:
        return bool(self.engine.risk.killed), self.engine.risk.breaker


@dataclass(frozen=True, slots=True)
class MonitorContext:
    """What the monitor knows of the run: its agents, venues with their modelled
    slippage (bps), each symbol's bar interval (ns) and when it started (ns)."""

    agents: tuple[str, ...]
    slippage_bps: Mapping[str, float]
    intervals: Mapping[str, int]
    start_ts: int


class Monitor:
    """Detectors and health for one run; see the module docstring."""

    def __init__(self, bus: EventBus, config: MonitorConfig, context: MonitorContext,
                 probe: Probe | None = None) -> None:
        from sim.config_base import parse_duration

        self.bus = bus
        self.config = config
        self.context = context
        self.probe = probe
        self.health = HealthBoard(bus)
        self.alert_id = 0
        self._active: set[tuple[str, str]] = set()  # (source, kind + scope) raised
        self._lock = threading.RLock()  # events (a worker) and heartbeats (a timer)
        self._sides: dict[tuple[str, str], int] = {}
        self._flips: dict[tuple[str, str], deque[int]] = {}
        self._last_signal = dict.fromkeys(context.agents, context.start_ts)
        self._agent_state: dict[str, str] = {}
        self._denials: deque[int] = deque()
        self._rejects: dict[str, deque[int]] = {}
        self._submitted: dict[int, int] = {}
        self._fallback: dict[str, str] = {}  # symbol -> why its feed is degraded (REST)
        self._calls: dict[str, deque[tuple[bool, float]]] = {}  # tool -> its last calls
        # A session on a real venue stamps an order with its bar's time (the bar's open)
        # but sends it when the bar has closed, an interval later, and stamps the
        # venue's answer on the wall clock: its latency counts from the close.
        self.sent_at_close = False
        self.subscription: Subscription | None = None
        self._peak = d.WindowPeak(parse_duration(config.drawdown_window))
        # durations parsed once: detectors run on every event
        self._flap_ns = parse_duration(config.flap_window)
        self._burst_ns = parse_duration(config.burst_window)
        self._silent_ns = parse_duration(config.silent_after) if config.silent_after else 0
        for agent in context.agents:
            self.health.set(context.start_ts, f"agent:{agent}", HEALTHY)
        self.health.set(context.start_ts, "risk", HEALTHY)

    # -- wiring --------------------------------------------------------------------------
    def attach(self, *, queued: bool = False) -> Subscription:
        """Subscribe to the bus: synchronously (a backtest: deterministic) or through a
        queue (a session: never on the trading path)."""
        if queued:
            self.subscription = self.bus.subscribe_queued(self.on_event, TOPICS,
                                                          name="monitor")
        else:
            self.subscription = self.bus.subscribe(self.on_event, TOPICS)
        return self.subscription

    # -- raising -------------------------------------------------------------------------
    def alert(self, ts: int, severity: str, source: str, kind: str, message: str,
              data: Mapping[str, Any] | None = None) -> AlertRaised:
        """Raise an alert now (also the API for sessions' own findings)."""
        with self._lock:
            self.alert_id += 1
            event = AlertRaised(self.alert_id, ts, severity, source, kind, message,
                                dict(data or {}))
        self.bus.publish(ALERT, ts, event)
        return event

    def _edge(self, ts: int, found: d.Finding | None, severity: str, source: str,
              kind: str, scope: str = "") -> None:
        """Raise when a condition begins; re-arm when it clears (per ``scope`` within a
        source and kind: a symbol, say)."""
        key = (source, kind + scope)
        if found is None:
            self._active.discard(key)
        elif key not in self._active:
            self._active.add(key)
            self.alert(ts, severity, source, kind, found.message, found.data)

    # -- events --------------------------------------------------------------------------
    def on_event(self, envelope: Envelope) -> None:
        with self._lock:
            topic, event = envelope.topic, envelope.event
            if topic == SIGNAL:
                self._on_signal(event)
            elif topic == FILL:
                self._on_fill(event)
            elif topic == DENIAL:
                self._on_denial(event)
            elif topic == ORDER:
                self._on_order(event)
            elif topic == AGENT:
                self._on_agent(event)
            elif topic == AGENT_ERROR:
                self._on_agent_error(event)
            elif topic == COMPONENT:
                self._on_component(event)
            elif topic == CALL:
                self._on_call(event)

    def _on_signal(self, e: SignalChanged) -> None:
        self._last_signal[e.agent] = e.ts
        source = f"agent:{e.agent}"
        if self._agent_state.get(e.agent, "active") == "active" \
                and (h := self.health.get(source)) is not None and h.reason.startswith("no "):
            self.health.set(e.ts, source, HEALTHY, "signalling again")
        limit = self.config.flap_changes
        side = e.signal.side
        if limit is None or (side is not LONG and side is not SHORT):
            return
        key = (e.agent, e.symbol)
        previous = self._sides.get(key)
        self._sides[key] = side
        if previous is None or previous == side:
            return
        window = self.config.flap_window
        count = d.in_window(self._flips.setdefault(key, deque()), e.ts, self._flap_ns)
        found = d.flapping(count, limit, window)
        if found is not None:
            found = d.Finding(f"{e.agent} on {e.symbol}: {found.message}",
                              {**found.data, "symbol": e.symbol})
        self._edge(e.ts, found, "warning", source, "signal_flapping", e.symbol)

    def _on_fill(self, e: FillBooked) -> None:
        factor = self.config.slippage_factor
        fill = e.fill
        if factor is None or fill.liquidity == "liquidation":
            return
        expected = self.context.slippage_bps.get(fill.venue, 0.0)
        found = d.slippage_excess(fill.price, fill.ref_price, expected, factor,
                                  self.config.slippage_min_bps)
        if found is not None:
            found = d.Finding(f"{fill.symbol} on {fill.venue}: {found.message}",
                              {**found.data, "symbol": fill.symbol, "order_id": fill.order_id})
        self._edge(fill.ts, found, "warning", f"venue:{fill.venue}", "slippage")

    def _on_denial(self, e: OrderDenied) -> None:
        if e.check == "kill_switch":
            self._risk_state(e.ts, True, None)
        elif e.check in BREAKER_CHECKS:
            self._risk_state(e.ts, False, e.check, e.reason)
        limit = self.config.burst_count
        if limit is None:
            return
        window = self.config.burst_window
        count = d.in_window(self._denials, e.ts, self._burst_ns)
        self._edge(e.ts, d.burst(count, limit, window, "risk denials"), "warning", "risk",
                   "denial_burst")

    def _on_order(self, e: OrderEvent) -> None:
        event = e.event
        if event == "submitted":
            self._submitted[e.order_id] = e.ts + (
                self.context.intervals.get(e.symbol, 0) if self.sent_at_close else 0)
        elif event == "arrived":
            sent = self._submitted.pop(e.order_id, None)
            limit = self.config.latency_ms
            if sent is not None and limit is not None and e.venue is not None:
                found = d.latency_spike(e.ts - sent, limit)
                self._edge(e.ts, found, "warning", f"venue:{e.venue}", "latency_spike")
                self._venue_state(e.ts, e.venue, "latency", found)
        elif event.startswith("venue_") and e.venue is not None:
            limit = self.config.burst_count
            if limit is not None:
                window = self.config.burst_window
                count = d.in_window(self._rejects.setdefault(e.venue, deque()), e.ts,
                                    self._burst_ns)
                found = d.burst(count, limit, window, "venue rejects or timeouts")
                self._edge(e.ts, found, "warning", f"venue:{e.venue}", "reject_burst")
                self._venue_state(e.ts, e.venue, "rejects", found)
        elif event in ("filled", "cancelled", "expired", "rejected", "denied"):
            self._submitted.pop(e.order_id, None)

    def _on_agent(self, e: AgentStateChanged) -> None:
        source = f"agent:{e.agent}"
        if e.outcome != "applied":
            self.alert(e.ts, "info", source, "command_rejected",
                       f"{e.command} by {e.actor}: {e.outcome}",
                       {"command": e.command, "actor": e.actor, "reason": e.reason})
            return
        self._agent_state[e.agent] = e.state
        if e.state == "errored":
            self.health.set(e.ts, source, CRITICAL, f"errored: {e.reason}")
            self.alert(e.ts, "critical", source, "agent_breaker",
                       f"{e.agent} errored ({e.reason}); it no longer votes",
                       {"actor": e.actor, "command": e.command})
        elif e.state == "paused":
            self.health.set(e.ts, source, DEGRADED, f"paused by {e.actor}: {e.reason}")
        elif e.state == "stopped":
            self.health.set(e.ts, source, HEALTHY, f"stopped by {e.actor}")
        else:
            self.health.set(e.ts, source, HEALTHY, f"{e.command} by {e.actor}")
            self._last_signal[e.agent] = e.ts  # silence counts from here
            self._agent_state[e.agent] = "active"

    def _on_agent_error(self, e: AgentFailed) -> None:
        source = f"agent:{e.agent}"
        kind = "agent_latency" if e.kind == "latency" else "agent_error"
        self.alert(e.ts, "warning", source, kind,
                   f"{e.agent} on {e.symbol} (bar {e.bar}): {e.error_type}: {e.message}",
                   {"symbol": e.symbol, "bar": e.bar, "error_type": e.error_type,
                    "digest": e.traceback_digest})
        h = self.health.get(source)
        if h is None or h.state == HEALTHY:
            self.health.set(e.ts, source, DEGRADED, f"{kind.replace('_', ' ')}: "
                                                    f"{e.error_type}")

    def _on_component(self, e: ComponentReported) -> None:
        if e.component.startswith("feed:"):  # judged with staleness (``_check_feeds``)
            symbol = e.component.removeprefix("feed:")
            if e.state == HEALTHY:
                self._fallback.pop(symbol, None)
            else:
                self._fallback[symbol] = e.reason
            h = self.health.get(e.component)
            if h is None or h.state != CRITICAL:  # stale data outranks a fallback
                self.health.set(e.ts, e.component, e.state, e.reason)
            if e.alert_kind is not None:
                found = d.Finding(e.reason, {"symbol": symbol}) if e.state != HEALTHY else None
                self._edge(e.ts, found, "warning", e.component, e.alert_kind)
            return
        self.component(e.ts, e.component, e.state, e.reason, e.alert_kind)

    def _on_call(self, e: ToolCalled) -> None:
        cfg = self.config
        calls = self._calls.get(e.tool)
        if calls is None:
            calls = self._calls[e.tool] = deque(maxlen=cfg.tool_window)
        calls.append((e.ok, e.latency_ms))
        found = d.tool_trouble(calls, cfg.tool_min_calls, cfg.tool_min_success,
                               cfg.tool_p99_ms)
        if found is not None:
            found = d.Finding(f"{e.tool}: {found.message}", {**found.data, "tool": e.tool})
        self._edge(e.ts, found, "warning", e.tool, "tool_degraded")
        h = self.health.get(e.tool)
        if found is not None:
            if h is None or h.state == HEALTHY:
                self.health.set(e.ts, e.tool, DEGRADED, f"tool: {found.message}")
        elif h is not None and h.state == DEGRADED and h.reason.startswith("tool"):
            self.health.set(e.ts, e.tool, HEALTHY, "tool calls back to normal")

    # -- state changes -------------------------------------------------------------------
    def _risk_state(self, ts: int, killed: bool, breaker: str | None,
                    reason: str = "") -> None:
        if killed:
            self.health.set(ts, "risk", CRITICAL, "kill switch engaged")
            self._edge(ts, d.Finding("kill switch engaged: only position-reducing orders "
                                     "may go", {}), "critical", "risk", "kill_switch")
        if breaker is not None:
            self._edge(ts, d.Finding(reason or f"circuit breaker tripped by {breaker}",
                                     {"check": breaker}),
                       "critical", "risk", "breaker_trip")
            if not killed:
                self.health.set(ts, "risk", CRITICAL, f"circuit breaker tripped ({breaker})")

    def _venue_state(self, ts: int, venue: str, why: str, found: d.Finding | None) -> None:
        source = f"venue:{venue}"
        h = self.health.get(source)
        if found is not None:
            if h is None or h.state == HEALTHY:
                self.health.set(ts, source, DEGRADED, f"{why}: {found.message}")
        elif h is not None and h.state == DEGRADED and h.reason.startswith(why):
            self.health.set(ts, source, HEALTHY, f"{why} back to normal")

    def component(self, ts: int, component: str, state: str, reason: str = "",
                  alert_kind: str | None = None) -> None:
        """Set a component's health from outside (a session's store writer,
        reconciliation); with ``alert_kind``, entering ``degraded`` raises that alert as
        a warning, entering ``critical`` as critical (each once), and coming back to
        ``healthy`` re-arms both."""
        with self._lock:
            self.health.set(ts, component, state, reason)
            if alert_kind is None:
                return
            if state == HEALTHY:
                for scope in (DEGRADED, CRITICAL):
                    self._edge(ts, None, "", component, alert_kind, scope)
            else:
                self._edge(ts, d.Finding(reason, {}),
                           "critical" if state == CRITICAL else "warning", component,
                           alert_kind, state)

    # -- heartbeat -----------------------------------------------------------------------
    def heartbeat(self, now: int) -> None:
        """Re-check what needs time to pass: staleness, silence, drawdown velocity,
        venue and risk state (read through the probe)."""
        with self._lock:
            cfg = self.config
            probe = self.probe
            if probe is not None:
                self._check_feeds(now, probe.last_bars())
                self._check_venues(now, probe.venues())
                killed, breaker = probe.risk()
                if killed or breaker is not None:
                    self._risk_state(now, killed, breaker)
                if cfg.drawdown_velocity is not None:
                    ts, equity = probe.equity()
                    found = self._peak.check(ts, equity, now, cfg.drawdown_velocity)
                    self._edge(now, found, "critical", "account", "drawdown_velocity")
            if cfg.silent_after is not None:
                after = self._silent_ns
                for agent, last in self._last_signal.items():
                    if self._agent_state.get(agent, "active") != "active":
                        continue
                    found = d.silent(last, now, after)
                    source = f"agent:{agent}"
                    self._edge(now, found, "warning", source, "agent_silent")
                    if found is not None:
                        h = self.health.get(source)
                        if h is None or h.state == HEALTHY:
                            self.health.set(now, source, DEGRADED,
                                            f"no signal: {found.message}")

    def _check_feeds(self, now: int, last_bars: Mapping[str, int | None]) -> None:
        bars = self.config.stale_bars
        if bars is None:
            return
        for symbol, last in last_bars.items():
            interval = self.context.intervals.get(symbol, 0)
            if last is None or not interval:
                continue
            found = d.stale(last, now, interval, bars)
            source = f"feed:{symbol}"
            self._edge(now, found, "critical", source, "stale_data")
            if found is not None:
                self.health.set(now, source, CRITICAL, f"stale: {found.message}")
            elif symbol in self._fallback:
                self.health.set(now, source, DEGRADED, self._fallback[symbol])
            else:
                self.health.set(now, source, HEALTHY)

    def _check_venues(self, now: int, venues: Mapping[str, str]) -> None:
        for venue, modelled in venues.items():
            state = _VENUE_HEALTH.get(modelled, DEGRADED)
            source = f"venue:{venue}"
            h = self.health.get(source)
            if state != HEALTHY:
                self.health.set(now, source, state, f"venue {modelled}")
                if state == CRITICAL:
                    self._edge(now, d.Finding(f"venue {venue} is down", {}), "critical",
                               source, "venue_down")
            elif h is not None and h.reason.startswith("venue "):
                self.health.set(now, source, HEALTHY, "venue up")
                self._active.discard((source, "venue_down"))


def schedule_heartbeats(engine: Any, monitor: Monitor, first: int, last: int,
                        every_ns: int) -> None:
    """Backtest heartbeats on sim time: one on the engine's event queue at ``first``,
    each pushing the next, up to ``last`` (the last bar's time: the queue drains fully at
    the end of a run, so a heartbeat must not reschedule itself forever)."""
    from sim.event_queue import PRIORITY_EVENT

    def beat(ts: int) -> None:
        monitor.heartbeat(ts)
        following = ts + every_ns
        if following <= last:
            engine.queue.push(following, PRIORITY_EVENT, beat, following)

    engine.queue.push(first, PRIORITY_EVENT, beat, first)


def intervals_of(symbols: Iterable[str], timestamps: Callable[[str], Sequence[int]]
                 ) -> dict[str, int]:
    """Each symbol's bar interval: the smallest step between its first bars."""
    out: dict[str, int] = {}
    for symbol in symbols:
        ts = timestamps(symbol)
        steps = [b - a for a, b in pairwise(ts[:65]) if b > a]
        out[symbol] = int(min(steps)) if steps else 0
    return out
