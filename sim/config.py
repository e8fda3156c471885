"""Scenario configuration: pydantic v2 models, loaded from TOML.

Every model is frozen and forbids unknown fields, so a typo is an error that names the
field, not a silently ignored setting. ``ConfigError`` carries one line per problem.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from sim.agents.base import AgentError, build_agent, resolve_agent
from sim.consensus import CONSENSUS_METHODS

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


def parse_timestamp(text: str) -> int:
    """ISO 8601 -> ns since the epoch, UTC (a time without a zone is taken as UTC)."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise ValueError(f"{text!r} is not an ISO 8601 time like 2024-01-01T00:00:00Z") from None
    if ts is pd.NaT:
        raise ValueError(f"{text!r} is not a time")
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]


class FileSourceConfig(_Model):
    """Recorded bars for one symbol from a CSV or Parquet file."""

    kind: Literal["file"] = "file"
    symbol: str = Field(min_length=1)
    path: str
    interval: str | None = None  # when set, a gap between bars is an error...
    allow_gaps: bool = False  # ...unless gaps are expected (real exchange outages)

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class GbmSourceConfig(_Model):
    """A seeded geometric Brownian motion series (annualised drift and volatility)."""

    kind: Literal["gbm"]
    symbol: str = Field(min_length=1)
    bars: int = Field(gt=0)
    interval: str = "1m"
    start: str = "2024-01-01T00:00:00Z"
    price: PositiveFloat = 100.0
    drift: float = 0.0
    volatility: NonNegativeFloat = 0.8

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        parse_timestamp(v)
        return v


def _source_kind(value: Any) -> str:
    kind = value.get("kind", "file") if isinstance(value, dict) else getattr(value, "kind", "")
    return kind if kind in ("file", "gbm") else "unknown"


SourceConfig = Annotated[
    Annotated[FileSourceConfig, Tag("file")] | Annotated[GbmSourceConfig, Tag("gbm")],
    Discriminator(
        _source_kind,
        custom_error_type="unknown_source",
        custom_error_message="kind must be 'file' (the default) or 'gbm'",
    ),
]


class AgentConfig(_Model):
    """An agent by registered name or ``"package.module:Class"``, with its parameters."""

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str] | None = None  # default: every symbol in the data

    @field_validator("kind")
    @classmethod
    def _known(cls, v: str) -> str:
        try:
            resolve_agent(v)
        except AgentError as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _buildable(self) -> AgentConfig:
        """Bad parameters fail here, naming the agent, not halfway into a run."""
        try:
            build_agent(self.kind, self.params, np.random.default_rng(0))
        except AgentError as exc:
            raise ValueError(f"agent {self.name!r}: {exc}") from None
        return self


class ConsensusConfig(_Model):
    method: Literal["majority", "confidence_weighted"] = "majority"
    min_agreement: float = Field(default=0.0, ge=0, le=1)

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        assert v in CONSENSUS_METHODS
        return v


class PolicyConfig(_Model):
    exposure: float = Field(default=1.0, gt=0, le=10)
    allow_short: bool = False
    scale_by_confidence: bool = False
    min_notional: NonNegativeFloat = 0.0


class RiskConfig(_Model):
    max_order_notional: PositiveFloat | None = None
    max_position_notional: PositiveFloat | None = None
    max_orders_per_day: int | None = Field(default=None, gt=0)
    allowed_symbols: list[str] | None = None


class VenueConfig(_Model):
    name: str = Field(min_length=1)
    symbols: list[str] = Field(min_length=1)
    fee_bps: NonNegativeFloat = 0.0
    slippage_bps: NonNegativeFloat = 0.0


class ExecutionConfig(_Model):
    fill_at: Literal["next_open", "close"] = "next_open"


class ScenarioConfig(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(default=0, ge=0, lt=2**63)
    initial_cash: PositiveFloat = 10_000.0
    data: list[SourceConfig] = Field(default_factory=list)  # may come from code instead
    agents: list[AgentConfig] = Field(min_length=1)
    consensus: ConsensusConfig = ConsensusConfig()
    policy: PolicyConfig = PolicyConfig()
    risk: RiskConfig = RiskConfig()
    venues: list[VenueConfig] = Field(min_length=1)
    execution: ExecutionConfig = ExecutionConfig()

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioConfig:
        symbols = [d.symbol for d in self.data]
        seen: set[str] = set()
        for sym in symbols:
            if sym in seen:
                raise ValueError(f"data: symbol {sym!r} appears twice")
            seen.add(sym)
        names = [a.name for a in self.agents]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"agents: name {name!r} is used twice")
        for agent in self.agents:
            for sym in agent.symbols or ():
                # Data passed in code is checked by the runner instead.
                if self.data and sym not in seen:
                    raise ValueError(f"agents.{agent.name}.symbols: {sym!r} is not in data")
        venue_names = [v.name for v in self.venues]
        for name in venue_names:
            if venue_names.count(name) > 1:
                raise ValueError(f"venues: name {name!r} is used twice")
        return self

    def with_seed(self, seed: int) -> ScenarioConfig:
        return parse_scenario({**self.model_dump(), "seed": seed}, f"scenario {self.name!r}")


def _describe(error: ValidationError, source: str) -> str:
    parts = []
    for err in error.errors():
        where = ".".join(str(x) for x in err["loc"] if x not in ("file", "gbm")) or "scenario"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = "unknown field"
        elif err["type"] == "missing":
            message = "required field is missing"
        parts.append(f"{where}: {message}")
    return f"{source}: " + "; ".join(parts)


def parse_scenario(raw: dict[str, Any], source: str = "<scenario>") -> ScenarioConfig:
    try:
        return ScenarioConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def load_scenario(path: str | Path) -> ScenarioConfig:
    """Read and validate a TOML scenario; data paths are resolved against the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: scenario file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    for source in raw.get("data", []) if isinstance(raw.get("data"), list) else []:
        if isinstance(source, dict) and isinstance(source.get("path"), str):
            p = Path(source["path"])
            if not p.is_absolute():
                source["path"] = str((path.parent / p).resolve())
    return parse_scenario(raw, str(path))
