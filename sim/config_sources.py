"""A scenario's market data sources: recorded files, generated series (GBM, named
regimes), calibrated models; and a config as ``runs.config`` stores it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import (
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    Tag,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from sim.config_base import (
    TIME_RANGE,
    NonNegativeFloat,
    PositiveFloat,
    _Model,
    parse_duration,
    parse_timestamp,
)
from sim.data import time_zone

if TYPE_CHECKING:
    from sim.config import ScenarioConfig

# How far a generated log price may wander (e^700 ~ 1e304, the float limit ~ e^709): a
# drift over the whole span plus this many standard deviations of its noise.
_LOG_PRICE_LIMIT = 700.0
_NOISE_SDS = 10.0

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
