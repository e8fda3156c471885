"""Prometheus metrics (prometheus-client) kept from the event bus, for ``GET /metrics``.

``BusMetrics`` is one more queued subscriber: counting never runs on the trading path.
Stage latencies are event-time differences of an order's own events (submitted ->
arrived at a venue -> filled), the same in a backtest (modelled latency) and a session
(measured). A server over a stored run (no bus) exposes the store's runs by status.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from quorum.api.reads import StoreReader
from sim import bus as topics
from sim.bus import Envelope, EventBus

HEALTH_LEVELS = {"healthy": 0, "degraded": 1, "critical": 2}
_STAGES = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class BusMetrics:
    def __init__(self, bus: EventBus) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.bars = Counter("quorum_bars", "bars that entered the pipeline", ["symbol"],
                            registry=r)
        self.signals = Counter("quorum_signals", "signal changes", ["agent"], registry=r)
        self.decisions = Counter("quorum_decisions", "consensus decisions", ["symbol"],
                                 registry=r)
        self.orders = Counter("quorum_orders", "orders that reached a terminal state",
                              ["status"], registry=r)
        self.fills = Counter("quorum_fills", "fills", ["venue"], registry=r)
        self.fees = Counter("quorum_fees", "fees paid, in account currency", ["venue"],
                            registry=r)
        self.denials = Counter("quorum_denials", "orders refused by a risk check", ["check"],
                               registry=r)
        self.alerts = Counter("quorum_alerts", "alerts fired", ["severity", "kind"],
                              registry=r)
        self.agent_errors = Counter("quorum_agent_errors", "agent failures forgiven or not",
                                    ["agent", "kind"], registry=r)
        self.equity = Gauge("quorum_equity", "account equity at the last time step",
                            registry=r)
        self.drawdown = Gauge("quorum_drawdown", "drawdown from the peak equity (fraction)",
                              registry=r)
        self.agent_state = Gauge("quorum_agent_state", "1 for an agent's current state",
                                 ["agent", "state"], registry=r)
        self.health = Gauge("quorum_health", "0 healthy, 1 degraded, 2 critical",
                            ["component"], registry=r)
        self.stage = Histogram("quorum_order_stage_seconds", "event time between an "
                               "order's steps", ["stage"], buckets=_STAGES, registry=r)
        self._peak = 0.0
        self._submitted: dict[int, int] = {}
        self._arrived: dict[int, int] = {}
        self._states: dict[str, str] = {}
        self.subscription = bus.subscribe_queued(self._on_event, maxlen=100_000,
                                                 name="metrics")

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def _on_event(self, envelope: Envelope) -> None:
        kind, event = envelope.topic, envelope.event
        if kind == topics.BAR:
            self.bars.labels(event.symbol).inc()
        elif kind == topics.SIGNAL:
            self.signals.labels(event.agent).inc()
        elif kind == topics.DECISION:
            self.decisions.labels(event.symbol).inc()
        elif kind == topics.ORDER:
            self._order_step(event)
        elif kind == topics.ORDER_CLOSED:
            self.orders.labels(event.status).inc()
            self._submitted.pop(event.order_id, None)
            self._arrived.pop(event.order_id, None)
        elif kind == topics.FILL:
            self.fills.labels(event.fill.venue).inc()
            self.fees.labels(event.fill.venue).inc(max(event.fill.fee, 0.0))
        elif kind == topics.DENIAL:
            self.denials.labels(event.check).inc()
        elif kind == topics.EQUITY:
            self._peak = max(self._peak, event.equity)
            self.equity.set(event.equity)
            self.drawdown.set(1.0 - event.equity / self._peak if self._peak > 0 else 0.0)
        elif kind == topics.ALERT:
            self.alerts.labels(event.severity, event.kind).inc()
        elif kind == topics.AGENT:
            previous = self._states.get(event.agent)
            if previous is not None:
                self.agent_state.labels(event.agent, previous).set(0)
            self._states[event.agent] = event.state
            self.agent_state.labels(event.agent, event.state).set(1)
        elif kind == topics.AGENT_ERROR:
            self.agent_errors.labels(event.agent, event.kind).inc()
        elif kind == topics.HEALTH:
            self.health.labels(event.component).set(HEALTH_LEVELS.get(event.state, 2))

    def _order_step(self, event: Any) -> None:
        if event.event == "submitted":
            self._submitted.setdefault(event.order_id, event.ts)
        elif event.event == "arrived":
            sent = self._submitted.get(event.order_id)
            if sent is not None and event.order_id not in self._arrived:
                self._arrived[event.order_id] = event.ts
                self.stage.labels("to_venue").observe(max(event.ts - sent, 0) / 1e9)
        elif event.event == "filled":
            came = self._arrived.get(event.order_id, self._submitted.get(event.order_id))
            if came is not None:
                self.stage.labels("to_fill").observe(max(event.ts - came, 0) / 1e9)


class StoreMetrics:
    """A stored run store's metrics: its runs by status and mode."""

    def __init__(self, reader: StoreReader) -> None:
        self.registry = CollectorRegistry()
        self.reader = reader
        self.registry.register(self)

    def collect(self) -> Any:
        family = GaugeMetricFamily("quorum_runs", "stored runs", labels=["status", "mode"])
        for row in self.reader.rows("select status, mode, count(*) as n from runs "
                                    "group by all order by all"):
            family.add_metric([row["status"], row["mode"]], row["n"])
        yield family

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
