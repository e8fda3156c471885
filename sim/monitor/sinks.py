"""Where alerts, health changes and log records go: the store's rows, an HTTP webhook,
a Python callback. Each is a bus subscriber; in a session every one is queued, so none
of them can hold up the trading path (a dead webhook only fills its own queue)."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from sim.bus import ALERT, HEALTH, LOG, Envelope, EventBus, Subscription
from sim.bus_events import AlertRaised
from sim.monitor.config import SEVERITIES, MonitorConfig

# The store tables (sim.schema.TABLES) these rows go to.
ALERTS_SCHEMA = pa.schema([("alert_id", pa.int64()), ("ts", pa.timestamp("ns")),
                           ("severity", pa.string()), ("source", pa.string()),
                           ("kind", pa.string()), ("message", pa.string()),
                           ("data", pa.string()), ("acknowledged", pa.bool_()),
                           ("seq", pa.int64())])
HEALTH_SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("component", pa.string()),
                           ("state", pa.string()), ("previous", pa.string()),
                           ("reason", pa.string()), ("seq", pa.int64())])
LOGS_SCHEMA = pa.schema([("ts", pa.timestamp("ns")), ("level", pa.string()),
                         ("category", pa.string()), ("agent", pa.string()),
                         ("message", pa.string()), ("data", pa.string()),
                         ("seq", pa.int64())])


class MonitorRows:
    """Buffers ``alert``, ``health`` and ``log`` events as rows of the ``alerts``,
    ``health`` and ``logs`` tables; ``take`` hands them over (and empties the buffers)
    for the run's writer."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._lock = threading.Lock()
        self._rows: dict[str, list[tuple[Any, ...]]] = {"alerts": [], "health": [],
                                                        "logs": []}
        self.subscription: Subscription | None = None

    def attach(self, *, queued: bool = False) -> Subscription:
        topics = (ALERT, HEALTH, LOG)
        self.subscription = (self.bus.subscribe_queued(self.on_event, topics, name="rows")
                             if queued else self.bus.subscribe(self.on_event, topics))
        return self.subscription

    def on_event(self, env: Envelope) -> None:
        e = env.event
        if env.topic == ALERT:
            row: tuple[Any, ...] = (e.alert_id, e.ts, e.severity, e.source, e.kind, e.message,
                                    json.dumps(e.data, default=str, sort_keys=True), False,
                                    env.seq)
            table = "alerts"
        elif env.topic == HEALTH:
            row = (e.ts, e.component, e.state, e.previous, e.reason, env.seq)
            table = "health"
        else:
            row = (e.ts, e.level, e.category, e.agent, e.message,
                   None if e.data is None else json.dumps(e.data, default=str,
                                                          sort_keys=True), env.seq)
            table = "logs"
        with self._lock:
            self._rows[table].append(row)

    def take(self) -> dict[str, pa.Table]:
        with self._lock:
            rows, self._rows = self._rows, {name: [] for name in self._rows}
        schemas = {"alerts": ALERTS_SCHEMA, "health": HEALTH_SCHEMA, "logs": LOGS_SCHEMA}
        out = {}
        for name, batch in rows.items():
            if batch:
                schema = schemas[name]
                columns = list(zip(*batch, strict=True))
                out[name] = pa.table([pa.array(col, type=field.type)
                                      for col, field in zip(columns, schema, strict=True)],
                                     schema=schema)
        return out

    def write(self, store: Any, run_id: str) -> None:
        """Append what is buffered to ``store`` (a backtest's end, or a session's step)."""
        for table, batch in self.take().items():
            store.append(run_id, table, batch)


def acknowledge_alert(con: Any, run_id: str, alert_id: int) -> bool:
    """Mark a stored alert acknowledged (an operator has seen it; the control API's
    ``POST /api/alerts/{id}/ack``); idempotent. False: the run has no such alert stored
    (a session stores its alerts within a heartbeat of their firing)."""
    found = con.execute("UPDATE alerts SET acknowledged = true WHERE run_id = ? AND "
                        "alert_id = ? RETURNING alert_id", [run_id, alert_id]).fetchall()
    return bool(found)


def alert_payload(alert: AlertRaised, run_id: str) -> dict[str, Any]:
    """The JSON a webhook receives for one alert."""
    from sim.monitor.logs import iso

    return {"run_id": run_id, "alert_id": alert.alert_id, "ts": iso(alert.ts),
            "ts_ns": alert.ts, "severity": alert.severity, "source": alert.source,
            "kind": alert.kind, "message": alert.message, "data": alert.data}


class WebhookSink:
    """POSTs alerts at or above ``min_severity`` as JSON to a URL, from a queued
    subscriber's thread: the publisher never waits. A failed POST (connection error,
    timeout, 5xx, 429) is retried ``retries`` times with exponential backoff; a 4xx is
    not (the request is wrong; retrying will not fix it). Each alert carries an
    idempotency key (``X-Quorum-Alert``: run id and alert id) so a receiver can drop a
    retry of a POST it took but whose answer was lost. ``sent``/``failed`` count
    outcomes.
    """

    def __init__(self, bus: EventBus, url: str, run_id: str, *, token: str | None = None,
                 min_severity: str = "critical", timeout_s: float = 2.0, retries: int = 3,
                 backoff_s: float = 0.2, maxlen: int = 1_000,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        import httpx

        self.bus = bus
        self.url = url
        self.run_id = run_id
        self.min_rank = SEVERITIES.index(min_severity)
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = httpx.Client(timeout=timeout_s, headers=headers)
        self.sent = 0
        self.failed = 0
        self.last_error: str | None = None
        self.subscription = bus.subscribe_queued(self.on_event, (ALERT,), maxlen=maxlen,
                                                 name="webhook")

    @classmethod
    def from_env(cls, bus: EventBus, config: MonitorConfig, run_id: str
                 ) -> WebhookSink | None:
        """The webhook the environment names (``config.webhook_url_env``), or None."""
        url = os.environ.get(config.webhook_url_env, "").strip()
        if not url:
            return None
        return cls(bus, url, run_id, token=os.environ.get(config.webhook_token_env) or None,
                   min_severity=config.webhook_min_severity,
                   timeout_s=config.webhook_timeout_s, retries=config.webhook_retries)

    def on_event(self, env: Envelope) -> None:
        alert: AlertRaised = env.event
        if SEVERITIES.index(alert.severity) < self.min_rank:
            return
        self.post(alert_payload(alert, self.run_id))

    def post(self, payload: dict[str, Any]) -> bool:
        import httpx

        key = f"{payload['run_id']}:{payload['alert_id']}"
        for attempt in range(self.retries + 1):
            try:
                response = self.client.post(self.url, json=payload,
                                            headers={"X-Quorum-Alert": key})
                if response.status_code < 400:
                    self.sent += 1
                    return True
                self.last_error = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break
            except httpx.HTTPError as exc:  # secrets are in headers, never in the message
                self.last_error = f"{type(exc).__name__}"
            if attempt < self.retries:
                self.sleep(self.backoff_s * 2 ** attempt)
        self.failed += 1
        return False

    def close(self) -> None:
        self.bus.unsubscribe(self.subscription)
        self.client.close()


def on_alert(bus: EventBus, callback: Callable[[AlertRaised], None], *,
             queued: bool = False) -> Subscription:
    """Call ``callback(alert)`` for every alert (in a session, pass ``queued=True``)."""

    def handler(env: Envelope) -> None:
        callback(env.event)

    if queued:
        return bus.subscribe_queued(handler, (ALERT,), name="alert-callback")
    return bus.subscribe(handler, (ALERT,))
