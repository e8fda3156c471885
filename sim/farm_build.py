"""Build a run's farms (``sim.farms.Farm``) from ``[[farms]]`` (``sim.farm_config``), and
record them in the ``farms`` table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sim.allocator import Allocator, schedule
from sim.config import ScenarioConfig
from sim.config_base import parse_duration
from sim.consensus import PerformanceSource, VotingConsensus
from sim.data import MarketData
from sim.event_queue import PRIORITY_EVENT
from sim.farm_config import FarmConfig, SpawnFarmConfig, farm_capitals, farm_consensus, farm_policy
from sim.farm_engine import FarmEngine
from sim.farms import Farm, FarmPerformance
from sim.policy import TargetExposurePolicy
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import RiskEngine, RiskLimits
from sim.view import MarketView


def build_farms(config: ScenarioConfig, symbols: Sequence[str], slots: Sequence[Sequence[Any]],
                views: Sequence[MarketView], performance: PerformanceSource
                ) -> tuple[list[Farm], float]:
    """The farms, in the scenario's order, and the account's unallocated reserve.
    ``slots[s]``: the engine's ``AgentSlot``s of symbol s (their positions are the
    columns of its standing signals); ``performance``: the engine's tracker (a farm's
    ``performance_weighted`` consensus weighs its own agents from it)."""
    capitals = farm_capitals(config.farms, config.initial_cash)
    farms = []
    for index, (fc, capital) in enumerate(zip(config.farms, capitals, strict=True)):
        farms.append(build_farm(config, index, fc, capital, symbols, slots, views,
                                performance))
    return farms, config.initial_cash - sum(capitals)


def build_farm(config: ScenarioConfig, index: int, fc: FarmConfig, capital: float,
               symbols: Sequence[str], slots: Sequence[Sequence[Any]],
               views: Sequence[MarketView], performance: PerformanceSource) -> Farm:
    """One farm of ``fc`` holding ``capital``; its agents' columns from ``slots`` (none
    yet for an agent spawned later: the engine adds them)."""
    members = set(fc.agents)
    columns = [tuple(p for p, slot in enumerate(row) if slot.name in members)
               for row in slots]
    cons = farm_consensus(config, fc)
    policy = farm_policy(config, fc)
    r = fc.risk
    limits = RiskLimits(
        max_order_notional=r.max_order_notional,
        max_position_notional=r.max_position_notional,
        max_orders_per_day=r.max_orders_per_day, daily_loss_limit=r.daily_loss_limit,
        max_drawdown=r.max_drawdown, max_leverage=r.max_leverage,
        flatten_on_trip=r.flatten_on_trip, timezone=r.timezone)
    venues = [v.name for v in config.venues]
    return Farm(
        index, fc.name, capital, Portfolio(symbols, capital),
        VotingConsensus(cons.method, min_agreement=cons.min_agreement,
                        conflict=cons.conflict, quorum=cons.quorum,
                        performance=FarmPerformance(performance, columns)),
        TargetExposurePolicy(**policy.model_dump(exclude={"preset"}), views=views),
        RiskEngine(limits=limits, initial_equity=capital),
        columns,
        [tuple(row[p].index for p in cols) for row, cols in zip(slots, columns,
                                                               strict=True)],
        [tuple(row[p].name for p in cols) for row, cols in zip(slots, columns,
                                                              strict=True)],
        daily_loss=r.daily_loss, flatten_on_trip=r.flatten_on_trip,
        outside_wallet=frozenset(v for v in venues if fc.wallet is not None
                                 and v not in fc.wallet),
        members=members)


def record_farms(recorder: Recorder, config: ScenarioConfig, farms: Sequence[Farm],
                 start: int) -> None:
    """One ``farms`` row per farm (what it holds and how it was configured) and its
    starting capital as a transfer from the account at ``start`` (the first bar)."""
    for farm, fc in zip(farms, config.farms, strict=True):
        recorder.rare_row("capital_transfers", (start, "account", farm.name, farm.capital,
                                                "initial allocation"))
        record_farm(recorder, config, fc, farm.capital)


def record_farm(recorder: Recorder, config: ScenarioConfig, fc: FarmConfig,
                capital: float) -> None:
    """The ``farms`` row of one farm: what it holds and how it is configured."""
    recorder.rare_row("farms", (
        fc.name, json.dumps(fc.agents), capital,
        json.dumps(fc.wallet if fc.wallet is not None else [v.name for v in config.venues]),
        json.dumps(farm_consensus(config, fc).model_dump(mode="json"), sort_keys=True),
        json.dumps(farm_policy(config, fc).model_dump(mode="json"), sort_keys=True),
        json.dumps(fc.risk.model_dump(mode="json"), sort_keys=True)))


def schedule_allocator(config: ScenarioConfig, engine: FarmEngine, data: MarketData) -> None:
    """``[allocator]``: rebalance the farms' capital at its times (before their bars)."""
    cfg = config.allocator
    if cfg is None:
        return
    recorder = engine.recorder

    def record(ts: int, source: str, target: str, amount: float, reason: str) -> None:
        recorder.rare_row("capital_transfers", (ts, source, target, amount, reason))

    allocator = Allocator(engine.farms, cfg.method, cfg.floor, cfg.lookback, record)
    engine.allocator = allocator
    stamps = [b.ts for b in data.bars if len(b)]
    if not stamps:
        return
    first = min(int(ts[0]) for ts in stamps)
    last = max(int(ts[-1]) for ts in stamps)
    for ts in schedule(first, last, parse_duration(cfg.every)):
        engine.queue.push(ts, PRIORITY_EVENT, allocator.rebalance, ts)


class SpawnFarms:
    """The farm of each agent the scenario spawns (``agent_spawn`` with ``farm``): one
    it joins, or one of its own, made when the agent spawns (``FarmEngine.add_slot``)
    and funded from the reserve."""

    def __init__(self, config: ScenarioConfig, performance: PerformanceSource) -> None:
        self.config = config
        self.performance = performance
        self.specs: dict[str, str | SpawnFarmConfig] = {}
        for e in config.events:
            if e.kind == "agent_spawn" and e.agent and e.farm is not None:
                self.specs.setdefault(e.agent, e.farm)

    def farm_for(self, agent: str, engine: FarmEngine) -> Farm:
        spec = self.specs.get(agent)
        if spec is None:
            raise ValueError(f"agent {agent!r} spawned with no farm (events: farm)")
        if isinstance(spec, str):
            return next(f for f in engine.farms if f.name == spec)
        fc = spec.farm(agent)
        ts = engine.clock.now
        farm = build_farm(self.config, len(engine.farms), fc, spec.capital, engine.symbols,
                          engine.agents, engine.views, self.performance)
        engine.add_farm(farm, ts, spec.capital, f"spawn: agent {agent}")
        record_farm(engine.recorder, self.config, fc, spec.capital)
        return farm

