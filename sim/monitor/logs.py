"""Structured logs: the bus's events as leveled, categorised records, and a JSON-lines
file for them.

``EventLogger`` turns domain events (fills, order outcomes, denials, agent state and
errors, alerts, health changes) into ``LogRecord``s published on the ``log`` topic, so
everything that reads logs (the store's ``logs`` table, the file, the next issue's
stream) reads one topic. ``LogFile`` writes that topic as JSON lines to a size-rotated
file (``logging.handlers.RotatingFileHandler``) beside the store.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim.bus import (
    AGENT,
    AGENT_ERROR,
    ALERT,
    DECISION,
    DENIAL,
    FILL,
    HEALTH,
    LOG,
    ORDER,
    ORDER_CLOSED,
    SIGNAL,
    Envelope,
    EventBus,
    Subscription,
)
from sim.bus_events import LogRecord

LEVELS = {"debug": 10, "info": 20, "trade": 25, "warning": 30, "error": 40}
CATEGORIES = ("agent", "order", "risk", "venue", "system")
_SEVERITY_LEVEL = {"info": "info", "warning": "warning", "critical": "error"}
_HEALTH_LEVEL = {"healthy": "info", "degraded": "warning", "critical": "error"}
# The topics each level needs: below ``info`` the chatty ones come in too.
_DEBUG_TOPICS = (SIGNAL, DECISION, ORDER)
_TOPICS = (FILL, ORDER_CLOSED, DENIAL, AGENT, AGENT_ERROR, ALERT, HEALTH)


def category_of(source: str) -> str:
    """An alert's or a health component's category from its name."""
    kind = source.split(":", 1)[0]
    return {"agent": "agent", "venue": "venue", "risk": "risk", "account": "risk",
            "feed": "system"}.get(kind, "system")


def agent_of(source: str) -> str | None:
    return source.split(":", 1)[1] if source.startswith("agent:") else None


def to_record(envelope: Envelope) -> LogRecord | None:
    """The log record for one bus event (None: nothing worth a line)."""
    e, topic, ts = envelope.event, envelope.topic, envelope.ts
    if topic == FILL:
        f = e.fill
        return LogRecord(ts, "trade", "order",
                         f"filled {f.symbol} {f.quantity:+.8g} @ {f.price:.8g} on {f.venue}"
                         f" (fee {f.fee:.6g}; position {e.position:+.8g})",
                         data={"order_id": f.order_id, "fill_id": f.fill_id,
                               "symbol": f.symbol, "venue": f.venue})
    if topic == ORDER_CLOSED:
        if e.status == "denied":  # the denial's own line says why
            return None
        level = "info" if e.status in ("filled", "cancelled") else "warning"
        return LogRecord(ts, level, "order",
                         f"order {e.order_id} {e.symbol} {e.status}: {e.filled:+.8g} of "
                         f"{e.quantity:+.8g}" + (f" ({e.reason})" if e.reason else ""),
                         data={"order_id": e.order_id, "decision_id": e.decision_id,
                               "symbol": e.symbol, "venue": e.venue, "role": e.role})
    if topic == ORDER:
        venue_trouble = e.event.startswith("venue_")
        return LogRecord(ts, "warning" if venue_trouble else "debug",
                         "venue" if venue_trouble else "order",
                         f"order {e.order_id} {e.symbol} {e.event}"
                         + (f" at {e.venue}" if e.venue else "")
                         + (f": {e.reason}" if e.reason else ""),
                         data={"order_id": e.order_id, "symbol": e.symbol, "venue": e.venue})
    if topic == DENIAL:
        return LogRecord(ts, "warning", "risk",
                         f"order {e.order_id} {e.symbol} denied by {e.check}: {e.reason}",
                         data={"order_id": e.order_id, "check": e.check, "symbol": e.symbol})
    if topic == SIGNAL:
        s = e.signal
        return LogRecord(ts, "debug", "agent",
                         f"{e.symbol} {s.side.name} ({s.confidence:.2f})"
                         + (f": {s.reason}" if s.reason else ""), agent=e.agent,
                         data={"symbol": e.symbol})
    if topic == DECISION:
        return LogRecord(ts, "debug", "order",
                         f"decision {e.decision_id} {e.symbol} {e.side.name} "
                         f"({e.confidence:.2f}, {e.rule})",
                         data={"decision_id": e.decision_id, "symbol": e.symbol})
    if topic == AGENT:
        applied = e.outcome == "applied"
        return LogRecord(ts, "info" if applied else "warning", "agent",
                         f"{e.command} by {e.actor}: {e.previous} -> {e.state}"
                         + (f" ({e.reason})" if e.reason else "")
                         + ("" if applied else f"; {e.outcome}"), agent=e.agent,
                         data={"command": e.command, "actor": e.actor, "outcome": e.outcome})
    if topic == AGENT_ERROR:
        return LogRecord(ts, "error", "agent",
                         f"{e.kind} on {e.symbol} bar {e.bar}: {e.error_type}: {e.message}",
                         agent=e.agent, data={"symbol": e.symbol, "bar": e.bar,
                                              "digest": e.traceback_digest})
    if topic == ALERT:
        return LogRecord(ts, _SEVERITY_LEVEL.get(e.severity, "warning"),
                         category_of(e.source), f"alert {e.kind} ({e.severity}) from "
                         f"{e.source}: {e.message}", agent=agent_of(e.source),
                         data={"alert_id": e.alert_id, "kind": e.kind})
    if topic == HEALTH:
        return LogRecord(ts, _HEALTH_LEVEL.get(e.state, "info"), category_of(e.component),
                         f"{e.component} {e.previous or 'unknown'} -> {e.state}"
                         + (f": {e.reason}" if e.reason else ""),
                         agent=agent_of(e.component))
    return None


class EventLogger:
    """Publishes a ``LogRecord`` on the ``log`` topic for each event at or above
    ``level``; subscribes to the chatty topics (signals, decisions, order steps) only
    when ``level`` is debug."""

    def __init__(self, bus: EventBus, level: str = "info") -> None:
        if level not in LEVELS:
            raise ValueError(f"unknown log level {level!r}; one of {tuple(LEVELS)}")
        self.bus = bus
        self.threshold = LEVELS[level]
        self.subscription: Subscription | None = None

    def topics(self) -> tuple[str, ...]:
        return _TOPICS + (_DEBUG_TOPICS if self.threshold <= LEVELS["debug"] else ())

    def attach(self, *, queued: bool = False) -> Subscription:
        if queued:
            self.subscription = self.bus.subscribe_queued(self.on_event, self.topics(),
                                                          name="logger")
        else:
            self.subscription = self.bus.subscribe(self.on_event, self.topics())
        return self.subscription

    def on_event(self, envelope: Envelope) -> None:
        record = to_record(envelope)
        if record is not None and LEVELS[record.level] >= self.threshold:
            self.bus.publish(LOG, record.ts, record)

    def log(self, ts: int, level: str, category: str, message: str, *,
            agent: str | None = None, data: dict[str, Any] | None = None) -> None:
        """A line of the session's own (started, resumed, stopping, ...)."""
        if LEVELS[level] >= self.threshold:
            self.bus.publish(LOG, ts, LogRecord(ts, level, category, message, agent, data))


def iso(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1e9, UTC).isoformat(timespec="milliseconds"
                                                           ).replace("+00:00", "Z")


def to_json(record: LogRecord, seq: int = 0) -> str:
    return json.dumps({"ts": iso(record.ts), "ts_ns": record.ts, "seq": seq,
                       "level": record.level, "category": record.category,
                       "agent": record.agent, "message": record.message,
                       "data": record.data}, default=str, separators=(",", ":"))


def log_path(db: str | Path, run_id: str) -> Path:
    """Where a session's log file goes: ``<store>.logs/<run_id>.jsonl`` beside it."""
    db = Path(db)
    return db.with_name(db.name + ".logs") / f"{run_id}.jsonl"


class LogFile:
    """The ``log`` topic as JSON lines in a size-rotated file (``path``, ``path.1``, ...).
    Subscribe it queued in a session: the file is written off the trading path."""

    def __init__(self, bus: EventBus, path: Path, max_bytes: int = 10_000_000,
                 backups: int = 5) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.bus = bus
        self._handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self.subscription: Subscription | None = None

    def attach(self, *, queued: bool = True) -> Subscription:
        if queued:
            self.subscription = self.bus.subscribe_queued(self.on_event, (LOG,),
                                                          name="logfile")
        else:
            self.subscription = self.bus.subscribe(self.on_event, (LOG,))
        return self.subscription

    def on_event(self, envelope: Envelope) -> None:
        line = to_json(envelope.event, envelope.seq)
        self._handler.emit(logging.LogRecord("quorum", logging.INFO, "", 0, line, None, None))
        self._handler.flush()

    def close(self) -> None:
        if self.subscription is not None:
            self.bus.unsubscribe(self.subscription)
        self._handler.close()


def read_lines(path: Path) -> Iterable[dict[str, Any]]:
    """Every record of a log file and its rotated backups, oldest first."""
    backups = sorted(path.parent.glob(path.name + ".*"),
                     key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
                     reverse=True)
    for file in [*backups, path]:
        if file.exists():
            with file.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)
