"""Scenario configuration: pydantic v2 models, loaded from TOML.

Every model is frozen and forbids unknown fields, so a typo is an error that names the
field, not a silently ignored setting. ``ConfigError`` carries one line per problem.

Here: the scenario (``ScenarioConfig``, ``parse_scenario``, ``load_scenario``) and its
decision-side sections (agents, consensus, policy, risk) and live and gate settings.
Beside it: ``sim.config_base`` (the error, the base model, durations, timestamps),
``sim.config_sources`` (market data sources; a config as ``runs.config`` stores it) and
``sim.config_venues`` (instruments, venues, router, events, execution).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from sim.agents.base import AgentError, build_agent, resolve_agent
from sim.config_base import (
    ConfigError,
    NonNegativeFloat,
    PositiveFloat,
    _Model,
    parse_duration,
    parse_timestamp,
    with_preset,
)
from sim.config_sources import FileSourceConfig, SourceConfig, source_symbols
from sim.config_venues import EventConfig, ExecutionConfig, RouterConfig, VenueConfig
from sim.consensus import CONSENSUS_METHODS
from sim.data import time_zone
from sim.farm_config import AllocatorConfig, FarmConfig, SpawnFarmConfig, check_farms
from sim.monitor.config import MonitorConfig


class AgentConfig(_Model):
    """An agent by registered name or ``"package.module:Class"``, with its parameters."""

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: list[str] | None = None  # default: every symbol in the data
    # An agent that calls a service (CallStats): the run fails when errors / calls passes it.
    max_error_rate: float = Field(default=0.1, ge=0, le=1)
    # An exception from the agent (sim.lifecycle): "fail" the run, or "abstain" (stored in
    # agent_errors, its signal withdrawn) until max_errors within error_window put it in
    # "errored". None: fail in backtests, abstain in paper and venue sessions.
    on_error: Literal["fail", "abstain"] | None = None
    max_errors: int = Field(default=5, ge=0)  # 0: the breaker never trips
    error_window: str | None = "1h"  # None: errors since it last started or resumed
    latency_budget_ms: PositiveFloat | None = None  # sessions: slower bars are flagged

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Failure-tolerance fields only when set: a scenario that sets none dumps (and
        so hashes into run ids) exactly as before they existed."""
        out = handler(self)
        for name, default in _AGENT_TOLERANCE_DEFAULTS.items():
            if out.get(name, default) == default:
                out.pop(name, None)
        return out

    @field_validator("error_window")
    @classmethod
    def _window(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

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


_AGENT_TOLERANCE_DEFAULTS: dict[str, Any] = {
    "on_error": None, "max_errors": 5, "error_window": "1h", "latency_budget_ms": None}


class ConsensusConfig(_Model):
    """How agents' signals become a decision; the rules are in ``sim.consensus``."""

    method: Literal["majority", "confidence_weighted", "unanimous",
                    "performance_weighted"] = "majority"
    min_agreement: float = Field(default=0.0, ge=0, le=1)
    conflict: Literal["hold", "highest_confidence", "conservative", "risk_override",
                      "weighted_target"] = "hold"
    quorum: int = Field(default=0, ge=0)  # fewer agents with an opinion -> HOLD
    max_signal_age: str | None = None  # a duration ('30m'); older signals do not vote
    decay: float = Field(default=1.0, gt=0, le=1)  # performance weights, per episode

    @field_validator("method")
    @classmethod
    def _method(cls, v: str) -> str:
        assert v in CONSENSUS_METHODS
        return v

    @field_validator("max_signal_age")
    @classmethod
    def _max_signal_age(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class PolicyConfig(_Model):
    """Sizing (``sim.policy``): ``sizing`` picks the method; ``preset``
    ("conservative", "balanced", "aggressive": ``sim.policy.PRESETS``) fills every
    setting not given explicitly. ``max_leverage`` caps |target exposure|."""

    preset: Literal["conservative", "balanced", "aggressive"] | None = None
    sizing: Literal["fixed_fraction", "confidence_exponential", "volatility_target",
                    "kelly"] = "fixed_fraction"
    exposure: float = Field(default=1.0, gt=0, le=10)
    allow_short: bool = False
    scale_by_confidence: bool = False
    min_notional: NonNegativeFloat = 0.0
    min_quantity: NonNegativeFloat = 0.0
    max_leverage: float | None = Field(default=None, gt=0, le=100)
    exp_k: float = Field(default=3.0, gt=0, le=50)
    target_volatility: float = Field(default=0.15, gt=0, le=5)
    vol_lookback: int = Field(default=60, ge=2, le=100_000)
    kelly_fraction: float = Field(default=0.5, gt=0, le=1)
    kelly_cap: float = Field(default=1.0, gt=0, le=10)
    payoff_ratio: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        from sim.policy import PRESETS

        return with_preset(data, PRESETS)


class AgentPermissionsConfig(_Model):
    """What one agent may do (``[risk.agents.NAME]``); see ``sim.risk`` for how the
    permissions of the agents behind an order combine (every voter's must hold)."""

    max_trade_notional: PositiveFloat | None = None
    max_position_notional: PositiveFloat | None = None
    max_trades_per_day: int | None = Field(default=None, gt=0)
    allowed_symbols: list[str] | None = None
    risk_level: Literal["low", "medium", "high"] | None = None


class RiskConfig(_Model):
    """Account limits (``sim.risk``). Fractions: ``daily_loss_limit`` of start-of-day
    equity, ``max_drawdown`` of peak equity, ``price_band`` of the last close;
    ``max_leverage`` is gross exposure / equity; ``max_orders_per_window`` orders per
    ``order_window`` (a duration like "1m"). Days follow ``timezone`` (IANA name)."""

    max_order_notional: PositiveFloat | None = None
    max_position_notional: PositiveFloat | None = None
    max_orders_per_day: int | None = Field(default=None, gt=0)
    allowed_symbols: list[str] | None = None
    daily_loss_limit: float | None = Field(default=None, gt=0, le=1)
    max_drawdown: float | None = Field(default=None, gt=0, le=1)
    flatten_on_trip: bool = False
    max_leverage: PositiveFloat | None = None
    price_band: PositiveFloat | None = None
    max_orders_per_window: int | None = Field(default=None, gt=0)
    order_window: str = "1m"
    timezone: str = "UTC"
    agents: dict[str, AgentPermissionsConfig] = Field(default_factory=dict)

    @field_validator("order_window")
    @classmethod
    def _window(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str) -> str:
        time_zone(v)
        return v


class LiveVenueConfig(_Model):
    """The real venue account a scenario venue trades on in ``quorum live --venues``
    (``[live.venues.NAME]``, NAME a venue of ``[[venues]]``): ``kind`` a venue kind
    (``live.venues``: "hyperliquid", "ostium"), its ``testnet`` or main network,
    ``url`` another base URL (a fake or sandbox), ``key_env`` the environment variable
    holding this account's key (default: the kind's own, e.g. ``QUORUM_HL_SECRET_KEY``;
    two accounts of one kind need two). Keys never come from the file."""

    kind: str = Field(min_length=1)
    testnet: bool = False
    url: str | None = Field(default=None, min_length=1)
    key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")


class LiveConfig(_Model):
    """How ``quorum live`` feeds this scenario (not part of the validated trading config).

    ``interval``: the candle interval subscribed to (default: the data sources' common
    interval). ``warmup_bars``: closed candles fetched at start, per symbol, and passed
    through the pipeline like every later bar (so agents are warm on the first live bar;
    the paper account trades them too, as a backtest of that window would).
    ``coins``: venue coin per symbol where they differ (default: the symbol itself).
    ``close_grace``: how long after a candle's close time the feed waits for the next
    candle before asking the venue's REST history for it. ``reconcile_every``: with a
    real venue, how often positions, open orders and the account value are compared
    with the store and the account's funding is fetched (also at start). ``capital``: with
    a real venue, the most of the account's equity the session trades (default: all of
    it; ``live.capital``). ``venues``: the account each scenario venue trades on with
    ``quorum live --venues`` (one session, several accounts; the first one's market data
    feeds it).
    """

    interval: str | None = None
    warmup_bars: int = Field(default=0, ge=0, le=5000)
    coins: dict[str, str] = Field(default_factory=dict)
    close_grace: str = "2s"
    reconcile_every: str = "1m"
    capital: PositiveFloat | None = None
    venues: dict[str, LiveVenueConfig] = Field(default_factory=dict)

    @field_validator("interval", "close_grace", "reconcile_every")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v


class GateConfig(_Model):
    """What the promotion gate requires of this scenario (``research.validation``): the suite
    ``quorum validate`` runs and the thresholds it must pass, as TOML files (paths
    relative to the scenario). Unset: the default suite and thresholds. Not part of the
    validated trading configuration."""

    suite: str | None = Field(default=None, min_length=1)
    thresholds: str | None = Field(default=None, min_length=1)


# The farm models name these two; resolved now that both exist.
FarmConfig.model_rebuild(_types_namespace={"ConsensusConfig": ConsensusConfig,
                                           "PolicyConfig": PolicyConfig})
SpawnFarmConfig.model_rebuild(_types_namespace={"ConsensusConfig": ConsensusConfig,
                                                "PolicyConfig": PolicyConfig})
EventConfig.model_rebuild()


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
    router: RouterConfig = RouterConfig()
    events: list[EventConfig] = Field(default_factory=list)
    execution: ExecutionConfig = ExecutionConfig()
    live: LiveConfig = LiveConfig()
    validation: GateConfig | None = None
    monitor: MonitorConfig | None = None  # health, detectors, alerts (sim.monitor)
    farms: list[FarmConfig] = Field(default_factory=list)  # sim.farm_config
    allocator: AllocatorConfig | None = None  # capital between farms (sim.allocator)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without ``validation`` when unset, so a scenario that names no gate dumps (and
        so hashes into run ids and stored configs) exactly as before the field existed."""
        out = handler(self)
        if self.validation is None:
            out.pop("validation", None)
        if self.monitor is None:  # likewise for a scenario without ``[monitor]``
            out.pop("monitor", None)
        if not self.farms:  # and without ``[[farms]]``
            out.pop("farms", None)
        if self.allocator is None:
            out.pop("allocator", None)
        return out

    @model_validator(mode="after")
    def _consistent(self) -> ScenarioConfig:
        symbols = [sym for d in self.data for sym in source_symbols(d)]
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
        if self.data:  # data passed in code is checked by the runner instead
            check_venue_symbols(self.venues, seen)
        for name in self.router.preference:
            if name not in venue_names:
                raise ValueError(f"router.preference: {name!r} is not a venue")
        for name in self.live.venues:
            if name not in venue_names:
                raise ValueError(f"live.venues.{name}: {name!r} is not a venue of [[venues]]")
        unbound = [n for n in venue_names if self.live.venues and n not in self.live.venues]
        if unbound:
            raise ValueError(f"live.venues: venue {unbound[0]!r} is not bound to an account "
                             "(every venue of a several-account session is)")
        for i, ev in enumerate(self.events):
            if ev.venue is not None and ev.venue not in venue_names:
                raise ValueError(f"events.{i}.venue: {ev.venue!r} is not a venue")
        spawned = {ev.agent for ev in self.events if ev.kind == "agent_spawn"}
        for i, ev in enumerate(self.events):
            if ev.kind == "agent_spawn" and ev.agent in names:
                raise ValueError(f"events.{i}.agent: {ev.agent!r} is an agent already")
            if (ev.kind.startswith("agent_") and ev.kind != "agent_spawn"
                    and ev.agent not in names and ev.agent not in spawned):
                raise ValueError(f"events.{i}.agent: no agent is named {ev.agent!r}")
            for sym in ev.symbols or ():
                if self.data and sym not in seen:
                    raise ValueError(f"events.{i}.symbols: {sym!r} is not in data")
        batches: dict[str, tuple[int, str]] = {}
        for i, ev in enumerate(self.events):
            if ev.batch is None:
                continue
            at, first = batches.setdefault(ev.batch, (parse_timestamp(ev.at), ev.at))
            if parse_timestamp(ev.at) != at:
                raise ValueError(f"events.{i}.at: batch {ev.batch!r} is applied at {first};"
                                 " every command of a batch shares it")
        for name in self.risk.agents:
            if name not in names:
                raise ValueError(f"risk.agents.{name}: no agent has this name")
        kinds: dict[str, tuple[str, str]] = {}
        for v in self.venues:
            for sym in v.symbols:
                seen_kind = kinds.setdefault(sym, (v.kind, v.name))
                if seen_kind[0] != v.kind:
                    raise ValueError(
                        f"venues.{v.name}: {sym!r} is {v.kind} here but {seen_kind[0]} on "
                        f"{seen_kind[1]!r}; a symbol trades as spot or as a perpetual")
        if self.execution.replay == "ticks" and self.data and (
                len(self.data) != 1 or not isinstance(self.data[0], FileSourceConfig)
                or self.data[0].format != "trades"):
            raise ValueError("execution.replay: tick replay needs exactly one data source "
                                 "with format = 'trades'")
        check_farms(self)
        return self

    def with_seed(self, seed: int) -> ScenarioConfig:
        return parse_scenario({**self.model_dump(), "seed": seed}, f"scenario {self.name!r}")


def check_venue_symbols(venues: list[VenueConfig], symbols: set[str]) -> None:
    """A venue that lists none of the data's symbols can take no order: a typo (every
    order would be denied as unroutable, the run would complete with nothing traded)."""
    for v in venues:
        if not set(v.symbols) & symbols:
            raise ValueError(f"venues.{v.name}.symbols: lists none of the data's symbols "
                             f"({', '.join(sorted(symbols))})")


def _describe(error: ValidationError, source: str) -> str:
    parts = []
    for err in error.errors():
        tags = ("file", "gbm", "regime", "calibrated")
        where = ".".join(str(x) for x in err["loc"] if x not in tags) or "scenario"
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
    """Read and validate a TOML scenario; data paths (and an agent's ``params.path``) are
    resolved against the file."""
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
        for key in ("path", "funding", "model"):
            if isinstance(source, dict) and isinstance(source.get(key), str):
                p = Path(source[key])
                if not p.is_absolute():
                    source[key] = str((path.parent / p).resolve())
    gate = raw.get("validation")
    for key in ("suite", "thresholds") if isinstance(gate, dict) else ():
        assert gate is not None  # narrowed by the isinstance above, for the type checker
        if isinstance(gate.get(key), str) and not Path(gate[key]).is_absolute():
            gate[key] = str((path.parent / gate[key]).resolve())
    agents = raw.get("agents")
    for agent in agents if isinstance(agents, list) else []:
        params = agent.get("params") if isinstance(agent, dict) else None
        if isinstance(params, dict) and isinstance(params.get("path"), str):
            p = Path(params["path"])  # a file an agent reads (e.g. a signal feed)
            if not p.is_absolute():
                params["path"] = str((path.parent / p).resolve())
    return parse_scenario(raw, str(path))
