"""Where and how orders execute: instruments, venues, the router, scenario events, the
processing latency and the execution model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import (
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from sim.agents.base import AgentError, build_agent
from sim.config_base import (
    NonNegativeFloat,
    PositiveFloat,
    _Model,
    parse_duration,
    parse_timestamp,
    with_preset,
)
from sim.farm_config import SpawnFarmConfig

if TYPE_CHECKING:
    from sim.orders import ExecutionSettings


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
                  "agent_stop", "agent_update", "agent_move", "farm_pause", "farm_resume",
                  "farm_kill"]
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
    # Farm lifecycle (sim.farm_lifecycle): the farm of farm_pause/farm_resume/farm_kill,
    # where agent_move sends its agent; ``flatten``: farm_kill closes the farm's positions.
    # agent_spawn with [[farms]]: the farm the agent joins (its name), or a farm of its
    # own (sim.farm_config.SpawnFarmConfig: capital from the reserve, risk, policy).
    farm: str | SpawnFarmConfig | None = None
    flatten: bool = False

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The agent fields only when set (older scenarios hash as before)."""
        out = handler(self)
        for name in ("agent", "agent_kind", "params", "symbols", "batch", "farm"):
            if out.get(name) is None:
                out.pop(name, None)
        if not out.get("flatten"):
            out.pop("flatten", None)
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
        names_farm = self.kind.startswith("farm_") or self.kind == "agent_move"
        if names_farm and not (isinstance(self.farm, str) and self.farm):
            raise ValueError(f"farm: a farm's name is required for an {self.kind} event"
                             if self.kind.startswith("agent_")
                             else f"farm: a farm's name is required for a {self.kind} event")
        if self.farm is not None and not (names_farm or self.kind == "agent_spawn"):
            raise ValueError("farm: only for agent_spawn, agent_move and farm_* events")
        if self.farm == "":
            raise ValueError("farm: an empty name")
        if self.flatten and self.kind != "farm_kill":
            raise ValueError("flatten: only for a farm_kill event (kill_switch flattens "
                             "by risk.flatten_on_trip)")
        if self.kind.startswith("farm_"):
            for name in ("agent", "agent_kind", "params", "symbols", "venue",
                         "latency_ms", "rate"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: not for a {self.kind} event")
            return self
        if self.kind.startswith("agent_"):
            return self._agent_event()
        for name in ("agent", "agent_kind", "params", "symbols", "batch"):
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
        if self.kind == "agent_move" and (self.params is not None or self.symbols is not None):
            raise ValueError("params: not for an agent_move event")
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
