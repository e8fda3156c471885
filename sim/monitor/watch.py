"""Wiring the monitor, the event logger and the stored rows onto a backtest.

A watched backtest delivers everything synchronously on the engine's thread, so its
alerts, health changes and log lines are the same, at the same sim times, on every
replay. Heartbeats run on the engine's event queue every ``[monitor] heartbeat`` of sim
time; nothing is added to the bar path beyond the queue test the engine makes anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sim.bus import EventBus
from sim.monitor.config import MonitorConfig
from sim.monitor.logs import EventLogger
from sim.monitor.monitor import (
    EngineProbe,
    Monitor,
    MonitorContext,
    intervals_of,
    schedule_heartbeats,
)
from sim.monitor.sinks import MonitorRows


@dataclass(slots=True)
class Watch:
    """The observers of one run; ``finish`` stores their rows."""

    bus: EventBus
    monitor: Monitor
    logger: EventLogger
    rows: MonitorRows

    def finish(self, store: Any, run_id: str) -> None:
        self.rows.write(store, run_id)


def monitor_context(config: Any, symbols: Any, timestamps: Any, start_ts: int
                    ) -> MonitorContext:
    return MonitorContext(tuple(a.name for a in config.agents),
                          {v.name: v.slippage_bps for v in config.venues},
                          intervals_of(symbols, timestamps), start_ts)


def watch_backtest(config: Any, engine: Any, data: Any, bus: EventBus,
                   monitor_config: MonitorConfig | None = None) -> Watch:
    """Attach a monitor (with sim-time heartbeats), an event logger and the rows sink to
    a backtest's ``bus``; ``monitor_config`` defaults to the scenario's ``[monitor]``."""
    from sim.config_base import parse_duration

    cfg = monitor_config or config.monitor or MonitorConfig()
    by_symbol = {b.symbol: b.ts for b in data.bars}
    starts = [int(ts[0]) for ts in by_symbol.values() if len(ts)]
    ends = [int(ts[-1]) for ts in by_symbol.values() if len(ts)]
    first = min(starts) if starts else 0
    rows = MonitorRows(bus)
    rows.attach()
    logger = EventLogger(bus, cfg.log_level)
    logger.attach()
    monitor = Monitor(bus, cfg, monitor_context(config, data.symbols,
                                                lambda s: by_symbol[s], first),
                      EngineProbe(engine))
    monitor.attach()
    if ends:
        every = parse_duration(cfg.heartbeat)
        schedule_heartbeats(engine, monitor, first + every, max(ends), every)
    return Watch(bus, monitor, logger, rows)
