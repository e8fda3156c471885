"""``[[farms]]``: several pipelines, each with its own agents, capital, limits and wallet.

A farm is a group of agents with its own consensus, policy, risk limits and ledger; the
farms of a run share the market data, the venues and the account-level risk layer (the
scenario's ``[risk]``). A scenario without ``[[farms]]`` is one farm holding every agent
and runs the plain engine (its stored rows are those of before farms existed).

This module holds the farm models and the cross-checks against the rest of the scenario
(``check_farms``), called by ``ScenarioConfig``'s validator; errors name the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    field_validator,
    model_validator,
)

if TYPE_CHECKING:
    from sim.config import ConsensusConfig, PolicyConfig, ScenarioConfig


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FarmRiskConfig(_Model):
    """A farm's own limits, judged on its own ledger (the account's ``[risk]`` still
    applies to every order). Fractions are of the farm's equity; ``daily_loss`` is money:
    a farm losing that much since its day began stops opening positions until the next
    day, like ``daily_loss_limit``."""

    max_order_notional: PositiveFloat | None = None
    max_position_notional: PositiveFloat | None = None
    max_orders_per_day: int | None = Field(default=None, gt=0)
    daily_loss_limit: float | None = Field(default=None, gt=0, le=1)
    daily_loss: PositiveFloat | None = None
    max_drawdown: float | None = Field(default=None, gt=0, le=1)
    max_leverage: PositiveFloat | None = None
    flatten_on_trip: bool = False
    timezone: str = "UTC"


class FarmConfig(_Model):
    """One farm. ``capital`` is an amount or ``share`` a fraction of ``initial_cash``
    (one of them; neither: an equal part of what the others leave). ``consensus`` and
    ``policy`` default to the scenario's. ``wallet``: the venues (accounts) it trades
    through; default every venue."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    agents: list[str] = Field(min_length=1)
    capital: PositiveFloat | None = None
    share: float | None = Field(default=None, gt=0, le=1)
    consensus: ConsensusConfig | None = None
    policy: PolicyConfig | None = None
    risk: FarmRiskConfig = FarmRiskConfig()
    wallet: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_capital(self) -> FarmConfig:
        if self.capital is not None and self.share is not None:
            raise ValueError("capital: give capital (an amount) or share, not both")
        return self


class SpawnFarmConfig(_Model):
    """An agent spawned as a farm of its own (an ``agent_spawn`` event's ``farm`` table:
    the independent agent of a spawn dialog). ``capital`` is paid from the account's
    unallocated reserve when the agent spawns (a ``capital_transfers`` row); ``risk``
    holds its leverage, max drawdown and daily loss limits; ``name`` defaults to the
    agent's."""

    capital: PositiveFloat
    name: str | None = Field(default=None, min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    consensus: ConsensusConfig | None = None
    policy: PolicyConfig | None = None
    risk: FarmRiskConfig = FarmRiskConfig()
    wallet: list[str] | None = Field(default=None, min_length=1)

    def farm(self, agent: str) -> FarmConfig:
        """The ``FarmConfig`` of the farm this makes for ``agent``."""
        return FarmConfig(name=self.name or agent, agents=[agent], capital=self.capital,
                          consensus=self.consensus, policy=self.policy, risk=self.risk,
                          wallet=self.wallet)


class AllocatorConfig(_Model):
    """Capital re-allocated between the farms every ``every`` (a duration) by ``method``
    (``sim.allocator``): "equal", "inverse_volatility" or "performance" (both over the last
    ``lookback`` time steps), each farm's weight at least ``floor``."""

    method: Literal["equal", "inverse_volatility", "performance"]
    every: str
    lookback: int = Field(default=168, ge=2, le=1_000_000)
    floor: float = Field(default=0.0, ge=0, lt=1)

    @field_validator("every")
    @classmethod
    def _every(cls, v: str) -> str:
        from sim.config_base import parse_duration

        if parse_duration(v) <= 0:
            raise ValueError("must be a positive duration")
        return v


def farm_capitals(farms: Sequence[FarmConfig], initial_cash: float) -> list[float]:
    """Each farm's starting capital: its amount, its share of ``initial_cash``, or an
    equal part of what is left after those. Whatever no farm takes stays unallocated in
    the account (its reserve)."""
    fixed = [f.capital if f.capital is not None
             else (f.share * initial_cash if f.share is not None else None) for f in farms]
    left = initial_cash - sum(c for c in fixed if c is not None)
    n_rest = sum(1 for c in fixed if c is None)
    return [c if c is not None else left / n_rest for c in fixed]


def check_farms(config: ScenarioConfig) -> None:
    """Cross-check ``config.farms`` against the scenario; raises ValueError naming the
    field (pydantic turns it into the one-line ``ConfigError``)."""
    farms = config.farms
    if config.allocator is not None:
        if not farms:
            raise ValueError("allocator: re-allocates capital between [[farms]]; this "
                             "scenario has none")
        if config.allocator.floor * len(farms) > 1.0:
            raise ValueError(f"allocator.floor: {len(farms)} farms at "
                             f"{config.allocator.floor:g} each is over 1")
    names = [f.name for f in farms]
    for i, e in enumerate(config.events):
        # a spawn's farm may be one it makes, or an earlier spawn made: _check_spawns
        if e.farm is not None and e.kind != "agent_spawn" and e.farm not in names:
            raise ValueError(f"events.{i}.farm: " + (
                f"no farm is named {e.farm!r}" if farms
                else f"this scenario has no [[farms]] (a {e.kind} event needs one)"))
    if not farms:
        for i, e in enumerate(config.events):
            if e.farm is not None:
                raise ValueError(f"events.{i}.farm: this scenario has no [[farms]]")
        return
    if any(v.kind == "perp" for v in config.venues):
        execution = config.execution
        if execution.order_type != "market":
            raise ValueError("execution.order_type: farms trading perpetuals take market "
                             "orders only (a farm's margin is judged when an order is sent; "
                             "a resting order's is not held back yet)")
        if execution.latency:
            raise ValueError("execution.latency: farms trading perpetuals need it off (a "
                             "farm's margin is judged when an order is sent)")
    agents = [a.name for a in config.agents]
    owner: dict[str, str] = {}
    seen: set[str] = set()
    venues = {v.name for v in config.venues}
    for f in farms:
        where = f"farms.{f.name}"
        if f.name in seen:
            raise ValueError(f"farms: name {f.name!r} is used twice")
        seen.add(f.name)
        for agent in f.agents:
            if agent not in agents:
                raise ValueError(f"{where}.agents: no agent is named {agent!r}")
            if agent in owner:
                raise ValueError(f"{where}.agents: {agent!r} is in farm {owner[agent]!r} "
                                 "already (an agent trades for one farm)")
            owner[agent] = f.name
        for venue in f.wallet or ():
            if venue not in venues:
                raise ValueError(f"{where}.wallet: {venue!r} is not a venue")
    free = [a for a in agents if a not in owner]
    if free:
        raise ValueError(f"farms: agent {free[0]!r} is in no farm (list every agent in "
                         "one farm)")
    fixed = sum(f.share for f in farms if f.share is not None)
    if fixed > 1.0 + 1e-12:
        raise ValueError(f"farms: capital shares add up to {fixed:g}, over 1")
    capitals = farm_capitals(farms, config.initial_cash)
    total = sum(capitals)
    if total > config.initial_cash * (1.0 + 1e-12):
        raise ValueError(f"farms: farm capital adds up to {total:g}, over initial_cash "
                         f"{config.initial_cash:g}")
    for f, capital in zip(farms, capitals, strict=True):
        if not capital > 0.0:
            raise ValueError(f"farms.{f.name}.capital: nothing is left for this farm "
                             "(the other farms take all of initial_cash)")
    _check_spawns(config, set(names), config.initial_cash - total)
    _check_decays(config)


def _check_spawns(config: ScenarioConfig, names: set[str], reserve: float) -> None:
    """Each agent_spawn names the farm its agent joins, or makes it a farm of its own
    paid from the reserve (what the farms leave of initial_cash, less earlier spawns)."""
    from sim.config import parse_timestamp

    names = set(names)
    venues = {v.name for v in config.venues}
    # In the order they happen (a spawn may join a farm an earlier spawn made).
    timed = sorted(enumerate(config.events), key=lambda ie: parse_timestamp(ie[1].at))
    for i, e in timed:
        where = f"events.{i}.farm"
        if e.kind != "agent_spawn":  # farm commands name theirs (sim.farm_lifecycle)
            continue
        if e.farm is None:
            raise ValueError(f"{where}: with [[farms]] a spawned agent joins a farm "
                             "(farm = \"NAME\") or is a farm of its own (farm = { capital "
                             "= ... })")
        if isinstance(e.farm, str):
            if e.farm not in names:
                raise ValueError(f"{where}: no farm is named {e.farm!r}")
            continue
        name = e.farm.name or e.agent or ""
        if name in names:
            raise ValueError(f"{where}.name: a farm is named {name!r} already")
        names.add(name)
        for venue in e.farm.wallet or ():
            if venue not in venues:
                raise ValueError(f"{where}.wallet: {venue!r} is not a venue")
        if e.farm.capital > reserve * (1.0 + 1e-12):
            raise ValueError(f"{where}.capital: the account's unallocated reserve "
                             f"({reserve:g} after the farms and earlier spawns) cannot pay "
                             f"{e.farm.capital:g}")
        reserve -= e.farm.capital
        if config.allocator is not None:
            raise ValueError(f"{where}: an allocator re-allocates the farms listed in "
                             "[[farms]]; a spawned farm of its own is not supported with it")


def _check_decays(config: ScenarioConfig) -> None:
    """``performance_weighted`` farms read the run's one tracker: one decay for all."""
    methods = [("consensus", config.consensus)]
    methods += [(f"farms.{f.name}.consensus", f.consensus) for f in config.farms
                if f.consensus is not None]
    methods += [(f"events.{i}.farm.consensus", e.farm.consensus)
                for i, e in enumerate(config.events)
                if isinstance(e.farm, SpawnFarmConfig) and e.farm.consensus is not None]
    weighted = [(w, c) for w, c in methods if c.method == "performance_weighted"]
    for where, c in weighted[1:]:
        if c.decay != weighted[0][1].decay:
            raise ValueError(f"{where}.decay: {c.decay:g}, but {weighted[0][0]} weighs by "
                             f"performance with decay {weighted[0][1].decay:g} (one decay "
                             "per run)")


def performance_decay(config: ScenarioConfig) -> float | None:
    """The decay of the run's performance-weighted consensus (the scenario's or a
    farm's), None when none weighs by performance."""
    tables = [config.consensus, *(f.consensus for f in config.farms),
              *(e.farm.consensus for e in config.events
                if isinstance(e.farm, SpawnFarmConfig))]
    for c in tables:
        if c is not None and c.method == "performance_weighted":
            return c.decay
    return None


def farm_consensus(config: ScenarioConfig, farm: FarmConfig) -> ConsensusConfig:
    """The farm's ``ConsensusConfig``: its own table, else the scenario's."""
    return config.consensus if farm.consensus is None else farm.consensus


def farm_policy(config: ScenarioConfig, farm: FarmConfig) -> PolicyConfig:
    """The farm's ``PolicyConfig``: its own table, else the scenario's."""
    return config.policy if farm.policy is None else farm.policy
