"""What every scenario model shares: the one error (``ConfigError``), the frozen base
model, positive numbers, durations and timestamps."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+)\s*(ns|us|ms|s|m|h|d)\s*$")
_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9, "d": 86_400 * 10**9}


class ConfigError(ValueError):
    """A scenario that cannot be used; the message names the file and field."""


def parse_duration(text: str) -> int:
    """'5m' -> nanoseconds. Units: ns, us, ms, s, m, h, d."""
    match = _DURATION.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a positive duration like '1m', '5m', '1h' or '1d'")
    return int(match.group(1)) * _UNIT_NS[match.group(2)]


# Nanosecond timestamps (int64) hold 1677-09-21T00:12:43Z .. 2262-04-11T23:47:16Z.
TIME_RANGE = "1677-09-22 .. 2262-04-11 (what nanosecond timestamps hold)"


def parse_timestamp(text: str) -> int:
    """ISO 8601 -> ns since the epoch, UTC (a time without a zone is taken as UTC). A time
    nanoseconds cannot hold is an error (pandas would wrap it around to 1677)."""
    import pandas as pd  # here: a command that parses no time (``quorum runs``) skips it

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not an ISO 8601 time like 2024-01-01T00:00:00Z") from None
    if ts is pd.NaT:
        raise ValueError(f"{text!r} is not a time")
    try:
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).value
    except (OverflowError, pd.errors.OutOfBoundsDatetime):
        raise ValueError(f"{text!r} is outside {TIME_RANGE}") from None


def with_preset(data: Any, presets: Mapping[str, Mapping[str, Any]]) -> Any:
    """A section's raw settings with its named ``preset`` filling every setting not given
    explicitly (an unknown name is left for the field's own validation to reject)."""
    if isinstance(data, dict) and isinstance(data.get("preset"), str):
        preset = presets.get(data["preset"])
        if preset is not None:
            return {**preset, **data}
    return data


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
