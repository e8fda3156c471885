"""A session's observers: the monitor, the structured log (a rotated JSON-lines file
beside the store, and the store's ``logs`` table), alerts to the store, a webhook named
by the environment, and the heartbeat.

Every observer is a queued bus subscriber: the trading loop only appends to their
queues. The heartbeat is a daemon thread ticking every ``[monitor] heartbeat_s`` on the
wall clock; it re-checks health (``sim.monitor.Monitor.heartbeat``), feeds the store
writer's state into the ``store`` component, and hands the buffered alert, health and
log rows to the session's store writer (``live.writer``), which writes them beside the
pipeline's rows, never on the loop.

What only a session sees reaches the monitor on the bus too, published from the loop
(one append each): a reconciliation round's differences (``report_reconciliation``), a
candle feed closing bars by REST (``FeedFallback``), the venue client's requests as tool
calls (``VenueCalls``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim.bus import CALL, COMPONENT, EventBus
from sim.bus_events import ComponentReported, ToolCalled
from sim.messages import Bar
from sim.monitor.config import MonitorConfig
from sim.monitor.figures import AgentFigures, LiveFigures, figures_table
from sim.monitor.health import CRITICAL, DEGRADED, HEALTHY
from sim.monitor.logs import EventLogger, LogFile, log_path
from sim.monitor.monitor import EngineProbe, Monitor, MonitorContext, intervals_of
from sim.monitor.sinks import MonitorRows, WebhookSink
from sim.store import append_batch


class SessionWatch:
    """The observers of one ``live.runner.LiveRunner`` (built with a ``bus``)."""

    def __init__(self, runner: Any, bus: EventBus, db: str | Path | None,
                 config: MonitorConfig | None = None) -> None:
        self.runner = runner
        self.bus = bus
        self.config = cfg = config or runner.config.monitor or MonitorConfig()
        self.rows = MonitorRows(bus)
        self.rows.attach(queued=True)
        self.logger = EventLogger(bus, cfg.log_level)
        self.logger.attach(queued=True)
        self.log_file = (LogFile(bus, log_path(db, runner.run_id), cfg.log_max_bytes,
                                 cfg.log_backups) if db is not None else None)
        if self.log_file is not None:
            self.log_file.attach(queued=True)
        self._intervals: dict[str, int] = {}
        context = MonitorContext(tuple(a.name for a in runner.config.agents),
                                 {v.name: v.slippage_bps for v in runner.config.venues},
                                 self._intervals, time.time_ns())
        self.monitor = Monitor(bus, cfg, context, EngineProbe(runner.engine))
        self.monitor.attach(queued=True)
        self.webhook = WebhookSink.from_env(bus, cfg, runner.run_id)
        # per-agent figures and the positions view, current for an API to read
        self._figure_rows: list[AgentFigures] = []
        self.figures = LiveFigures(bus, runner.engine, self._on_figures)
        self.figures.attach(queued=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the heartbeat (the runner calls it once its store writer exists)."""
        self.logger.log(time.time_ns(), "info", "system",
                        f"session {self.runner.run_id} started ({self.runner.mode})")
        self.monitor.sent_at_close = self.runner.port is not None
        self._learn_intervals()
        self._thread = threading.Thread(target=self._beat, name="quorum-heartbeat",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.config.heartbeat_s):
            self.tick()

    def tick(self) -> None:
        """One heartbeat: health re-checked, rows handed to the writer."""
        now = time.time_ns()
        self._learn_intervals()
        writer = self.runner.writer
        error = None if writer is None else writer.error
        self.monitor.component(now, "store", CRITICAL if error else HEALTHY,
                               f"store writer failed: {type(error).__name__}" if error
                               else "", alert_kind="store_failed")
        self.monitor.heartbeat(now)
        self.figures.refresh()
        if writer is not None and error is None:
            self._hand_over(writer)

    def _learn_intervals(self) -> None:
        """Each symbol's bar interval, from the bars the session holds (a real venue
        session knows it from the start: ``runner.interval_ns``)."""
        runner = self.runner
        if len(self._intervals) < len(runner.histories):
            if runner.interval_ns:
                self._intervals.update(dict.fromkeys(runner.symbols, runner.interval_ns))
                return
            found = intervals_of([h.symbol for h in runner.histories],
                                 lambda s: runner.histories[runner.symbols.index(s)].column("ts"))
            self._intervals.update({s: i for s, i in found.items() if i})

    def _on_figures(self, figures: list[AgentFigures], held: Any, why: str) -> None:
        if why == "close":
            self._figure_rows.extend(figures)

    def _tables(self) -> dict[str, Any]:
        tables = self.rows.take()
        rows, self._figure_rows = self._figure_rows, []
        if rows:
            tables["agent_figures"] = figures_table(rows)
        return tables

    def _hand_over(self, writer: Any) -> None:
        tables = self._tables()
        if tables:
            run_id = self.runner.run_id

            def write(con: Any) -> None:
                for table, batch in tables.items():
                    append_batch(con, run_id, table, batch)

            writer.submit(write)

    def close(self) -> None:
        """Stop the heartbeat, drain every observer and hand what is left to the store
        writer (the runner calls it before closing the writer; without a writer, the
        rows are appended here)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.monitor.heartbeat(time.time_ns())  # the state the session ends in
        self.logger.log(time.time_ns(), "info", "system",
                        f"session {self.runner.run_id} ended")
        for sub in (self.monitor.subscription, self.logger.subscription,
                    self.figures.subscription):
            if sub is not None:
                self.bus.unsubscribe(sub)
        if self.log_file is not None:
            self.log_file.close()
        if self.webhook is not None:
            self.webhook.close()
        if self.rows.subscription is not None:
            self.bus.unsubscribe(self.rows.subscription)
        self.figures.refresh("close")  # the session's last figures are stored
        writer = self.runner.writer
        if writer is None:
            for table, batch in self._tables().items():
                self.runner.store.append(self.runner.run_id, table, batch)
        elif writer.error is None:
            self._hand_over(writer)


# -- what the session's edges tell the monitor (topics ``component`` and ``call``) ----------
# Published from the loop's thread: a publish only appends to the monitor's queue.

_REPAIRED = ("fill", "missing_order", "unknown_order")  # differences fixed as found


def report_reconciliation(bus: EventBus | None, port: Any, before: int,
                          compared: bool) -> None:
    """After a reconciliation round: the differences it alerted since ``before``
    (``port.differences`` then) put ``reconciliation`` in ``degraded`` (repaired as found:
    a missed fill booked, an order looked up or cancelled) or ``critical`` (a position
    set to the venue's, an account value that differs), with an alert; a round that
    compared everything (``compared``) and found nothing makes it healthy again."""
    if bus is None or not bus.wants(COMPONENT):
        return
    found = port.differences - before
    if found:
        kind, said = port.last_difference
        state = DEGRADED if kind in _REPAIRED else CRITICAL
        reason = f"{found} difference(s) with the venue; the last, {kind}: {said}"
    elif compared:
        state, reason = HEALTHY, ""
    else:
        return
    now = time.time_ns()
    bus.publish(COMPONENT, now, ComponentReported(now, "reconciliation", state, reason,
                                                  "reconciliation_mismatch"))


class FeedFallback:
    """A candle feed's ``on_event`` hook (how each bar closed: "push", "rest",
    "warmup"): a symbol whose bars close by asking the venue's REST history, not on its
    stream, is ``degraded`` (the stream is late or gone: bars come later and cost
    requests) until a bar closes on the stream again. Only changes are published."""

    def __init__(self, bus: EventBus, then: Callable[[str, Bar], None] | None = None) -> None:
        self.bus = bus
        self.then = then  # a hook the feed had already
        self._how: dict[str, str] = {}

    def __call__(self, how: str, bar: Bar) -> None:
        if self.then is not None:
            self.then(how, bar)
        if how == "warmup":
            return
        last = self._how.get(bar.symbol, "push")
        self._how[bar.symbol] = how
        if last == how:
            return
        if how == "rest":
            state, reason = DEGRADED, ("REST fallback in use: the bar closed by asking the "
                                       "venue's history, not on the stream")
        else:
            state, reason = HEALTHY, "bars close on the stream again"
        now = time.time_ns()
        self.bus.publish(COMPONENT, now, ComponentReported(now, f"feed:{bar.symbol}", state,
                                                           reason, "rest_fallback"))

    @classmethod
    def attach(cls, feed: Any, bus: EventBus | None) -> None:
        """Hook ``feed`` if it tells how its bars close (``on_event``) and a bus is
        watched."""
        if bus is not None and hasattr(feed, "on_event"):
            feed.on_event = cls(bus, feed.on_event)


class VenueCalls:
    """A venue client's requests (``live.requests.VenueRequests.on_call``) as tool
    calls of each venue the session routes there (``venue:NAME``)."""

    def __init__(self, bus: EventBus, venues: Sequence[str]) -> None:
        self.bus = bus
        self.tools = tuple(f"venue:{name}" for name in venues)

    def __call__(self, what: str, ok: bool, latency_ms: float, error: str | None) -> None:
        if not self.bus.wants(CALL):
            return
        now = time.time_ns()
        for tool in self.tools:
            self.bus.publish(CALL, now, ToolCalled(now, tool, what, ok, latency_ms, error))
