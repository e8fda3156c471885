"""Scenario configuration: pydantic v2 models, loaded from TOML.

Every model is frozen and forbids unknown fields, so a typo is an error that names the
field, not a silently ignored setting. ``ConfigError`` carries one line per problem.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from sim.agents.base import AgentError, build_agent, resolve_agent
from sim.consensus import CONSENSUS_METHODS
from sim.data import time_zone
from sim.farm_config import AllocatorConfig, FarmConfig, SpawnFarmConfig, check_farms
from sim.monitor.config import MonitorConfig

if TYPE_CHECKING:
    from sim.orders import ExecutionSettings

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


# How far a generated log price may wander (e^700 ~ 1e304, the float limit ~ e^709): a
# drift over the whole span plus this many standard deviations of its noise.
_LOG_PRICE_LIMIT = 700.0
_NOISE_SDS = 10.0


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


class FileSourceConfig(_Model):
    """Recorded data for one symbol from a CSV or Parquet file (``sim.loaders.load_file``).

    ``format``: "ohlcv" bars, or "trades" ticks (timestamp_ms, trade_id, side, price,
    amount) aggregated into bars of ``interval``. ``interval``: the bar spacing the file
    should have (required for trades: the bar size); when set, missing bars are handled by
    ``gaps``: "fail" (an error naming the line), "skip" (accept them) or "ffill" (insert
    flat bars flagged as filled). ``timezone``: the zone of timestamps written without
    one. ``resample``: aggregate to this coarser interval (a multiple of ``interval``; bars
    labelled by their open time). ``funding``: a perpetual's funding-rate file, carried
    with the bars (``SymbolBars.funding``).
    """

    kind: Literal["file"] = "file"
    symbol: str = Field(min_length=1)
    path: str
    format: Literal["ohlcv", "trades"] = "ohlcv"
    interval: str | None = Field(default=None, validate_default=True)
    gaps: Literal["fail", "skip", "ffill"] = "fail"
    timezone: str = "UTC"
    resample: str | None = None
    funding: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "allow_gaps" in data:
            raise ValueError('allow_gaps is replaced by gaps = "fail", "skip" or "ffill"')
        return data

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None:
            parse_duration(v)
        elif info.data.get("format") == "trades":
            raise ValueError("required for format = 'trades' (the bar size)")
        return v

    @field_validator("gaps")
    @classmethod
    def _gaps(cls, v: str, info: ValidationInfo) -> str:
        if v != "fail" and "interval" in info.data and info.data["interval"] is None:
            raise ValueError(f"{v!r} needs interval (the spacing the bars should have)")
        return v

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, v: str, info: ValidationInfo) -> str:
        time_zone(v)
        if v != "UTC" and info.data.get("format") == "trades":
            raise ValueError("does not apply to trades (epoch milliseconds are UTC)")
        return v

    @field_validator("resample")
    @classmethod
    def _resample(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        target = parse_duration(v)
        if "interval" not in info.data:  # interval itself was invalid
            return v
        if info.data["interval"] is None:
            raise ValueError("needs interval (the source bars' spacing)")
        interval = parse_duration(info.data["interval"])
        if target % interval != 0:
            raise ValueError(f"{v!r} is not a multiple of interval {info.data['interval']!r}")
        return v


class _GeneratedSource(_Model):
    """What every generated source shares: a bar grid and a starting price."""

    bars: int = Field(gt=0)
    interval: str = "1m"
    start: str = "2024-01-01T00:00:00Z"
    price: PositiveFloat = 100.0

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

    @model_validator(mode="after")
    def _times_fit(self) -> _GeneratedSource:
        """The last bar's time must be a time too (int64 nanoseconds would wrap)."""
        last = parse_timestamp(self.start) + parse_duration(self.interval) * (self.bars - 1)
        if last > pd.Timestamp.max.value:
            raise ValueError(
                f"start, interval, bars: {self.bars} bars of {self.interval} from "
                f"{self.start} end past {TIME_RANGE}; use fewer bars, a shorter interval "
                "or an earlier start")
        return self

    def span_years(self) -> float:
        """The series' span in years of 365 days."""
        return parse_duration(self.interval) * self.bars / (365 * 86_400 * 10**9)


class GbmSourceConfig(_GeneratedSource):
    """A seeded geometric Brownian motion series (annualised drift and volatility).

    Drift, volatility, interval and bars together must keep the price a float: the log
    price after the whole span, drift plus ten standard deviations of the noise, within
    e^+-700 (past that the series is inf or 0, and the run would fail halfway)."""

    kind: Literal["gbm"]
    symbol: str = Field(min_length=1)
    drift: float = 0.0
    volatility: NonNegativeFloat = 0.8

    @model_validator(mode="after")
    def _price_stays_finite(self) -> GbmSourceConfig:
        span = self.span_years()
        mu = self.drift - 0.5 * self.volatility**2  # drift of the log price, per year
        reach = (abs(np.log(self.price)) + abs(mu) * span
                 + _NOISE_SDS * self.volatility * np.sqrt(span))
        if not reach <= _LOG_PRICE_LIMIT:
            raise ValueError(
                f"drift, volatility, interval: over {self.bars} bars of {self.interval} the "
                f"price could reach e^{reach:.3g}, past what a float holds "
                f"(e^{_LOG_PRICE_LIMIT:g}); use a smaller drift or volatility, or fewer or "
                "shorter bars")
        return self


STORED_GENERATOR_VERSION = 1  # a regime source stored without generator_version ran this


def _regime_sources(raw: Mapping[str, Any], change: Any) -> dict[str, Any]:
    out = dict(raw)
    data = out.get("data")
    if isinstance(data, list):
        out["data"] = [change(d) if isinstance(d, dict) and d.get("kind") == "regime" else d
                       for d in data]
    return out


def as_stored(dump: Mapping[str, Any]) -> dict[str, Any]:
    """A scenario's dump as ``runs.config`` and the run identity keep it: a regime source
    at generator version 1 without the field, as every run stored before version 2 was
    (so such a run keeps its stored config and config id). Read back with
    ``stored_scenario``."""
    return _regime_sources(dump, lambda d: {k: v for k, v in d.items()
                                            if k != "generator_version"}
                           if d.get("generator_version") == STORED_GENERATOR_VERSION else d)


def stored_scenario(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored ``runs.config`` as the scenario it ran: its regime sources stored without
    ``generator_version`` ran version 1 (the default for a scenario file is 2), so it is
    filled in before the config is parsed again."""
    return _regime_sources(raw, lambda d: d if "generator_version" in d
                           else {**d, "generator_version": STORED_GENERATOR_VERSION})


def stored_config(config: ScenarioConfig) -> dict[str, Any]:
    """``config`` as ``runs.config`` stores it (``as_stored``)."""
    return as_stored(config.model_dump(mode="json"))


class RegimeSourceConfig(_GeneratedSource):
    """A named, seeded market regime (``sim.regimes``) for one or more correlated symbols,
    optionally with scripted shocks layered on top."""

    kind: Literal["regime"]
    regime: str
    symbols: list[str] = Field(default_factory=lambda: ["SYN"], min_length=1)
    substeps: int = Field(default=8, ge=1, le=256)
    params: dict[str, Any] = Field(default_factory=dict)
    correlation: list[list[float]] | None = None
    shocks: list[dict[str, Any]] = Field(default_factory=list)
    # 2 (the default): with stylized facts (sim.regimes.stylized); 1: the textbook models
    # every run stored before version 2 used. Always dumped, so a dump parses back to the
    # same version; runs.config and the run identity leave version 1 out (``as_stored``).
    generator_version: Literal[1, 2] = 2  # sim.regimes.stylized.DEFAULT_GENERATOR_VERSION

    @model_serializer(mode="wrap")
    def _with_version(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The version even where defaults are left out: a dump without it means 1."""
        dumped: dict[str, Any] = handler(self)
        dumped["generator_version"] = self.generator_version
        return dumped

    @model_validator(mode="after")
    def _generator_inputs(self) -> RegimeSourceConfig:
        """Regime parameters, correlation and shocks are checked here, not mid-run."""
        from sim.regimes.generators import (
            check_generator_version,
            validate_correlation,
            validate_params,
        )
        from sim.regimes.shocks import parse_shock

        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols: a symbol is listed twice in {self.symbols}")
        check_generator_version(validate_params(self.regime, self.params),
                                self.generator_version)
        if self.correlation is not None:
            validate_correlation(self.correlation, len(self.symbols))
        for i, shock in enumerate(self.shocks):
            parse_shock(shock, i)
        return self


class CalibratedSourceConfig(_Model):
    """Bars from a calibrated market model (``quorum data calibrate``; see
    ``sim.regimes.calibrated``): one symbol per symbol of the model, named ``symbols``
    (default the model's), at the model's bar interval."""

    kind: Literal["calibrated"]
    model: str
    bars: int = Field(gt=0)
    symbols: list[str] | None = None
    start: str = "2024-01-01T00:00:00Z"
    prices: list[PositiveFloat] | None = None  # default: each source's first close

    @field_validator("start")
    @classmethod
    def _start(cls, v: str) -> str:
        parse_timestamp(v)
        return v

    @model_validator(mode="after")
    def _model_file(self) -> CalibratedSourceConfig:
        """The model is read and checked here, not mid-run."""
        from sim.regimes.calibrated import load_model

        model = load_model(self.model)
        k = len(model.symbols)
        for name, given in (("symbols", self.symbols), ("prices", self.prices)):
            if given is not None and len(given) != k:
                raise ValueError(f"{name}: the model has {k} symbol(s), {len(given)} given")
        if self.symbols is not None and len(set(self.symbols)) != k:
            raise ValueError(f"symbols: a symbol is listed twice in {self.symbols}")
        return self

    def symbol_names(self) -> list[str]:
        from sim.regimes.calibrated import load_model

        return self.symbols or [s.name for s in load_model(self.model).symbols]


def _source_kind(value: Any) -> str:
    kind = value.get("kind", "file") if isinstance(value, dict) else getattr(value, "kind", "")
    return kind if kind in ("file", "gbm", "regime", "calibrated") else "unknown"


SourceConfig = Annotated[
    Annotated[FileSourceConfig, Tag("file")]
    | Annotated[GbmSourceConfig, Tag("gbm")]
    | Annotated[RegimeSourceConfig, Tag("regime")]
    | Annotated[CalibratedSourceConfig, Tag("calibrated")],
    Discriminator(
        _source_kind,
        custom_error_type="unknown_source",
        custom_error_message="kind must be 'file' (the default), 'gbm', 'regime' or "
                             "'calibrated'",
    ),
]


def source_symbols(source: FileSourceConfig | GbmSourceConfig | RegimeSourceConfig
                   | CalibratedSourceConfig) -> list[str]:
    if isinstance(source, CalibratedSourceConfig):
        return source.symbol_names()
    return list(source.symbols) if isinstance(source, RegimeSourceConfig) else [source.symbol]


def source_interval(source: FileSourceConfig | GbmSourceConfig | RegimeSourceConfig
                    | CalibratedSourceConfig) -> str | None:
    """A source's bar interval: a file's resample target or declared interval (None: known
    after loading), a generator's setting, a calibrated model's fitted interval."""
    if isinstance(source, FileSourceConfig):
        return source.resample or source.interval
    if isinstance(source, CalibratedSourceConfig):
        from sim.regimes.calibrated import load_model

        return load_model(source.model).interval
    return source.interval


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


class InstrumentConfig(_Model):
    """One symbol's price and size rules on a venue (``[venues.instruments.SYMBOL]``,
    ``sim.instruments``): a fixed ``tick_size`` or a decimal rule (``sig_figs``
    significant figures, ``price_decimals`` decimals); a fixed ``lot_size`` or
    ``size_decimals``; ``min_size`` (units), ``min_notional`` (quote currency),
    ``max_leverage`` (caps the venue's). Unset fields come from the venue's rule."""

    tick_size: PositiveFloat | None = None
    sig_figs: int | None = Field(default=None, ge=1, le=15)
    price_decimals: int | None = Field(default=None, ge=0, le=12)
    lot_size: PositiveFloat | None = None
    size_decimals: int | None = Field(default=None, ge=0, le=12)
    min_size: NonNegativeFloat | None = None
    min_notional: NonNegativeFloat | None = None
    max_leverage: PositiveFloat | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> InstrumentConfig:
        if self.tick_size is not None and (self.sig_figs is not None
                                           or self.price_decimals is not None):
            raise ValueError("tick_size: a fixed tick or sig_figs/price_decimals, not both")
        if self.lot_size is not None and self.size_decimals is not None:
            raise ValueError("lot_size: a fixed lot or size_decimals, not both")
        return self


class VenueConfig(_Model):
    """A simulated venue. ``preset`` ("hyperliquid", "ostium": ``sim.venue.PRESETS``)
    fills every setting not given explicitly. ``health``: its state at the start;
    ``max_order_notional`` caps what the ``split`` router policy sends it per order.

    Execution realism (all off by default; docs/concepts/execution.md): ``maker_fee_bps``
    may be negative (a rebate); ``volatility_slippage`` x the previous bar's range and
    ``impact_bps`` x sqrt(participation) add to ``slippage_bps`` for takers;
    ``max_participation`` caps each fill at that share of the bar's (or trade's) volume.
    ``latency_ms`` (one way; ``latency_dist`` fixed, exponential or lognormal with
    ``latency_sigma``) applies when ``execution.latency`` is on; ``timeout_ms``: an order
    longer in flight times out; ``reject_rate``: probability an arriving order is refused.
    ``kind = "perp"``: margin (``max_leverage``, ``maintenance_margin``), liquidation and
    funding (the data's funding file, else ``funding_rate`` every ``funding_interval``).

    Price and size rules are per symbol (``sim.instruments``): ``instruments`` (symbol ->
    ``InstrumentConfig``) over the venue-wide ``tick_size``/``lot_size``/``min_size``
    over the preset's rule (Hyperliquid: 5 significant figures, 6 - szDecimals decimals,
    8 for spot, $10 minimum notional; Ostium: no tick, 7 USDC minimum)."""

    name: str = Field(min_length=1)
    symbols: list[str] = Field(min_length=1)
    preset: Literal["hyperliquid", "ostium"] | None = None
    # Fees and slippage below 100% (10,000 bps): at 100% a sale receives nothing or less
    # (negative prices, fees past the notional: equity below zero from one fill).
    fee_bps: float = Field(default=0.0, ge=0, lt=10_000)  # taker
    maker_fee_bps: float = Field(default=0.0, gt=-100, lt=100)  # negative: a rebate
    slippage_bps: float = Field(default=0.0, ge=0, lt=10_000)
    volatility_slippage: NonNegativeFloat = 0.0
    impact_bps: float = Field(default=0.0, ge=0, lt=10_000)
    max_participation: float | None = Field(default=None, gt=0, le=1)
    min_size: NonNegativeFloat = 0.0
    tick_size: NonNegativeFloat = 0.0
    lot_size: NonNegativeFloat = 0.0
    latency_ms: NonNegativeFloat = 0.0
    latency_dist: Literal["fixed", "exponential", "lognormal"] = "fixed"
    latency_sigma: NonNegativeFloat = 0.0
    timeout_ms: PositiveFloat | None = None
    reject_rate: float = Field(default=0.0, ge=0, le=1)
    health: Literal["up", "degraded", "down"] = "up"
    max_order_notional: PositiveFloat | None = None
    kind: Literal["spot", "perp"] = "spot"
    max_leverage: PositiveFloat = 1.0
    maintenance_margin: float = Field(default=0.0, ge=0, lt=1)
    funding_rate: float | None = Field(default=None, gt=-1, lt=1)
    funding_interval: str = "8h"
    instruments: dict[str, InstrumentConfig] = Field(default_factory=dict)

    @field_validator("funding_interval")
    @classmethod
    def _funding_interval(cls, v: str) -> str:
        parse_duration(v)
        return v

    @model_validator(mode="after")
    def _perp_fields(self) -> VenueConfig:
        if self.kind == "spot":
            for name in ("funding_rate",):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: applies to kind = 'perp' venues only")
            if self.max_leverage != 1.0 or self.maintenance_margin != 0.0:
                raise ValueError("max_leverage, maintenance_margin: apply to kind = 'perp' "
                                 "venues only")
        elif self.maintenance_margin >= 1.0 / self.max_leverage:
            raise ValueError(
                f"maintenance_margin {self.maintenance_margin:g} must be below the initial "
                f"margin 1 / max_leverage = {1.0 / self.max_leverage:g}")
        if self.latency_dist == "lognormal" and self.latency_sigma <= 0.0:
            raise ValueError("latency_sigma: must be > 0 for latency_dist = 'lognormal'")
        for symbol in self.instruments:
            if symbol not in self.symbols:
                raise ValueError(f"instruments.{symbol}: not one of the venue's symbols")
        return self

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        from sim.venue import PRESETS

        return with_preset(data, PRESETS)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without an instruments table the stored config (and so every hash of it) is
        what it was before the table existed."""
        data: dict[str, Any] = handler(self)
        if not self.instruments:
            data.pop("instruments", None)
        return data


class RouterConfig(_Model):
    """``policy``: "cheapest" (lowest taker fee), "preference" (the order of
    ``preference``, falling back to the next venue that is up), "cost" (fee + slippage
    estimate + the funding a position would pay over ``funding_horizon`` intervals) or
    "split" (by cost, up to each venue's ``max_order_notional``). See ``sim.router``."""

    policy: Literal["cheapest", "preference", "cost", "split"] = "cheapest"
    preference: list[str] = Field(default_factory=list)
    funding_horizon: float = Field(default=1.0, ge=0, le=10_000)  # funding intervals


class EventConfig(_Model):
    """A scheduled scenario event (``[[events]]``), run before the bars at ``at``.
    Faults: ``venue_latency`` adds ``latency_ms`` to the venue's network latency from
    then on (0 removes it); ``venue_reject_rate`` sets its reject probability to
    ``rate``."""

    at: str
    kind: Literal["kill_switch", "venue_down", "venue_up", "venue_degraded", "venue_latency",
                  "venue_reject_rate", "agent_spawn", "agent_pause", "agent_resume",
                  "agent_stop", "agent_update"]
    venue: str | None = None
    latency_ms: NonNegativeFloat | None = None
    rate: float | None = Field(default=None, ge=0, le=1)
    # agent_* events (sim.lifecycle): the agent; for agent_spawn its kind, params and
    # symbols; for agent_update the params to change and/or its new symbols.
    agent: str | None = None
    agent_kind: str | None = None
    params: dict[str, Any] | None = None
    symbols: list[str] | None = None
    reason: str = ""
    # agent_* events with the same ``batch`` label (and the same ``at``) are applied
    # together, all or none, like ``quorum agent`` given several names.
    batch: str | None = Field(default=None, min_length=1)  # agent_* events: one batch
    # agent_spawn with [[farms]]: the farm the agent joins (its name), or a farm of its
    # own (sim.farm_config.SpawnFarmConfig: capital from the reserve, risk, policy).
    farm: str | SpawnFarmConfig | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The agent fields only when set (older scenarios hash as before)."""
        out = handler(self)
        for name in ("agent", "agent_kind", "params", "symbols", "batch", "farm"):
            if out.get(name) is None:
                out.pop(name, None)
        if not out.get("reason"):
            out.pop("reason", None)
        return out

    @field_validator("at")
    @classmethod
    def _at(cls, v: str) -> str:
        parse_timestamp(v)
        return v

    @model_validator(mode="after")
    def _venue(self) -> EventConfig:
        if self.kind.startswith("agent_"):
            return self._agent_event()
        for name in ("agent", "agent_kind", "params", "symbols", "batch", "farm"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: only for agent_* events")
        if self.kind == "kill_switch" and self.venue is not None:
            raise ValueError("venue: a kill_switch event names no venue")
        if self.kind != "kill_switch" and self.venue is None:
            raise ValueError(f"venue: required for a {self.kind} event")
        if (self.kind == "venue_latency") != (self.latency_ms is not None):
            raise ValueError("latency_ms: required for, and only for, a venue_latency event")
        if (self.kind == "venue_reject_rate") != (self.rate is not None):
            raise ValueError("rate: required for, and only for, a venue_reject_rate event")
        return self

    def _agent_event(self) -> EventConfig:
        for name in ("venue", "latency_ms", "rate"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: not for a {self.kind} event")
        if self.agent is None:
            raise ValueError(f"agent: required for a {self.kind} event")
        spawn, update = self.kind == "agent_spawn", self.kind == "agent_update"
        if spawn != (self.agent_kind is not None):
            raise ValueError("agent_kind: required for, and only for, an agent_spawn event")
        if not (spawn or update) and (self.params is not None or self.symbols is not None):
            raise ValueError(f"params: not for a {self.kind} event")
        if update and self.params is None and self.symbols is None:
            raise ValueError("params: an agent_update changes params and/or symbols")
        if spawn:
            try:
                build_agent(self.agent_kind or "", self.params or {}, np.random.default_rng(0))
            except AgentError as exc:
                raise ValueError(f"agent_kind: {exc}") from None
        return self


class ProcessingConfig(_Model):
    """Processing latency of each pipeline step, milliseconds (``execution.latency``)."""

    agent_ms: NonNegativeFloat = 0.0
    consensus_ms: NonNegativeFloat = 0.0
    risk_ms: NonNegativeFloat = 0.0
    router_ms: NonNegativeFloat = 0.0

    @property
    def total_ns(self) -> int:
        return round((self.agent_ms + self.consensus_ms + self.risk_ms + self.router_ms)
                     * 1_000_000)


class ExecutionConfig(_Model):
    """How decisions become orders and how the simulated venues treat them
    (docs/concepts/execution.md). Every default is today's instant market-order model."""

    fill_at: Literal["next_open", "close"] = "next_open"
    order_type: Literal["market", "limit", "stop"] = "market"
    offset_bps: NonNegativeFloat = 0.0  # limit: below a buy's price; stop: above it
    time_in_force: Literal["gtc", "ioc"] = "gtc"
    post_only: bool = False
    order_ttl: str | None = None
    take_profit: float | None = Field(default=None, gt=0, lt=1)
    stop_loss: float | None = Field(default=None, gt=0, lt=1)
    intrabar: Literal["worst_case", "ohlc", "olhc"] = "worst_case"
    limit_fill: Literal["through", "touch"] = "through"
    latency: bool = False
    processing: ProcessingConfig = ProcessingConfig()
    replay: Literal["bars", "ticks"] = "bars"

    @field_validator("order_ttl")
    @classmethod
    def _ttl(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExecutionConfig:
        if self.post_only and self.order_type != "limit":
            raise ValueError("post_only: needs order_type = 'limit'")
        if self.replay == "ticks" and self.fill_at != "next_open":
            raise ValueError("replay: tick replay fills at the first trade after a decision "
                             "(fill_at = 'next_open')")
        return self

    def settings(self) -> ExecutionSettings:
        from sim.orders import ExecutionSettings

        return ExecutionSettings(
            order_type=self.order_type, offset=self.offset_bps / 10_000.0,
            tif=self.time_in_force, post_only=self.post_only,
            ttl_ns=parse_duration(self.order_ttl) if self.order_ttl else None,
            take_profit=self.take_profit, stop_loss=self.stop_loss, intrabar=self.intrabar,
            limit_touch=self.limit_fill == "touch", latency=self.latency,
            processing_ns=self.processing.total_ns, ticks=self.replay == "ticks")


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
    """What the promotion gate requires of this scenario (``sim.validation``): the suite
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
