"""Watching a run: health, anomaly detectors and alerts, structured logs, live per-agent
figures and tool feedback (issue 16 §3-§6). Everything here subscribes to the event bus
(``sim.bus``); nothing here is on the trading path or writes the pipeline's own rows."""
