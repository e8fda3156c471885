"""The scenario's ``[monitor]`` section: detector thresholds, heartbeat and sinks.

Every threshold has a default chosen for hourly-to-minute bars on a crypto book; a
scenario tunes them per regime. Durations are strings (``"15m"``, ``"1d"``). A detector
whose threshold is ``None`` is off. Secrets (the webhook URL, its token) are never in the
file: it names the environment variables that hold them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SEVERITIES = ("info", "warning", "critical")
Severity = Literal["info", "warning", "critical"]


def _duration(value: str | None) -> str | None:
    from sim.config_base import parse_duration

    if value is not None:
        parse_duration(value)
    return value


class MonitorConfig(BaseModel):
    """Thresholds of the detectors (``sim.monitor.detectors``) and where alerts go."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    # Heartbeat: health is re-checked every ``heartbeat`` of sim time in a backtest and
    # every ``heartbeat_s`` seconds of wall time in a session.
    heartbeat: str = "1h"
    heartbeat_s: float = Field(default=5.0, gt=0)
    # Drawdown velocity: equity fell by more than ``drawdown_velocity`` (a fraction of its
    # peak within the window) within ``drawdown_window``.
    drawdown_velocity: float | None = Field(default=0.05, gt=0, lt=1)
    drawdown_window: str = "1d"
    # Slippage: a fill further from its reference price than ``slippage_factor`` times
    # the venue's modelled slippage, and at least ``slippage_min_bps``.
    slippage_factor: float | None = Field(default=3.0, gt=0)
    slippage_min_bps: float = Field(default=25.0, ge=0)
    # Flapping: an agent changing side more than ``flap_changes`` times within
    # ``flap_window`` on one symbol.
    flap_changes: int | None = Field(default=6, ge=1)
    flap_window: str = "1d"
    # Silence: an agent that gave no signal for ``silent_after``.
    silent_after: str | None = "7d"
    # Burst: more than ``burst_count`` risk denials or venue rejects within
    # ``burst_window``.
    burst_count: int | None = Field(default=5, ge=1)
    burst_window: str = "1h"
    # Latency spike: an order took longer than ``latency_ms`` to reach its venue.
    latency_ms: float | None = Field(default=2_000.0, gt=0)
    # Stale data: no bar of a symbol for ``stale_bars`` bar intervals.
    stale_bars: float | None = Field(default=3.0, gt=0)
    # Tool feedback: over an outside tool's last ``tool_window`` calls (an external
    # agent's service, a venue client's requests; judged once ``tool_min_calls`` were
    # made), a success rate below ``tool_min_success`` or a p99 latency above
    # ``tool_p99_ms`` degrades that agent's or venue's health, with a warning.
    tool_window: int = Field(default=20, ge=2)
    tool_min_calls: int = Field(default=5, ge=1)
    tool_min_success: float | None = Field(default=0.8, gt=0, le=1)
    tool_p99_ms: float | None = Field(default=5_000.0, gt=0)
    # Sinks. The webhook's URL (and an optional bearer token) come from the environment
    # variables named here; no variable set, no webhook.
    webhook_url_env: str = "QUORUM_ALERT_WEBHOOK"
    webhook_token_env: str = "QUORUM_ALERT_TOKEN"
    webhook_min_severity: Severity = "critical"
    webhook_timeout_s: float = Field(default=2.0, gt=0)
    webhook_retries: int = Field(default=3, ge=0)
    # The session's JSON-lines log file beside the store: rotated past this size.
    log_max_bytes: int = Field(default=10_000_000, ge=1_000)
    log_backups: int = Field(default=5, ge=0)
    log_level: Literal["debug", "info", "warning", "error", "trade"] = "info"

    @field_validator("heartbeat", "drawdown_window", "flap_window", "silent_after",
                     "burst_window")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        return _duration(value)
