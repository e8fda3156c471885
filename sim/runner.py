"""Builds the pipeline a scenario describes and runs it against a store.

This is the one place that turns config into components; the CLI, tests and benchmarks
all come through it, so a backtest is always wired the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from sim.agent_commands import ALL_AGENTS, AgentBatch, AgentCommand
from sim.agent_failure import agent_failure
from sim.agent_faults import ErrorPolicy
from sim.agents.base import CallStats, build_agent
from sim.agents.external import call_log_for
from sim.bus import BAR, DECISION, EQUITY, EventBus
from sim.bus_events import DecisionMade
from sim.code_identity import code_identity
from sim.config import AgentConfig, RiskConfig, ScenarioConfig, check_venue_symbols
from sim.config_base import ConfigError, parse_duration, parse_timestamp
from sim.config_sources import (
    CalibratedSourceConfig,
    FileSourceConfig,
    RegimeSourceConfig,
    stored_config,
)
from sim.config_venues import VenueConfig
from sim.consensus import VotingConsensus
from sim.data import MarketData, SymbolBars, gbm_bars, merge
from sim.data_cache import DataCache, PreparedData
from sim.engine import AgentSlot, Engine
from sim.farm_build import SpawnFarms, build_farms, record_farms, schedule_allocator
from sim.farm_config import performance_decay
from sim.farm_engine import FarmEngine, ObservedFarmEngine
from sim.farm_lifecycle import FarmRoster
from sim.fast_path import FAST, choose_path, run_fast
from sim.instruments import Instrument, resolve, unrepresentable
from sim.lifecycle import AgentRoster
from sim.loaders import Trades, load_file, load_funding, load_trades, trades_to_bars
from sim.messages import FillTiming, ScenarioEvent
from sim.monitor.watch import watch_backtest
from sim.observed import ObservedEngine, ObservedRecorder
from sim.performance import AgentPerformance
from sim.policy import TargetExposurePolicy
from sim.portfolio import Portfolio
from sim.provenance import code_version
from sim.recorder import Recorder
from sim.regimes.generators import generate
from sim.regimes.shocks import apply_shocks
from sim.risk import AgentPermissions, RiskEngine, RiskLimits
from sim.router import VenueRouter
from sim.run_identity import config_identity
from sim.store import RunStore, append_built, appends_behind, is_interrupt, settle
from sim.venue import SimVenue
from sim.view import MarketView


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    status: str
    bars: int


@dataclass(frozen=True, slots=True)
class RandomStreams:
    """Independent random streams spawned from the scenario seed, one per consumer."""

    data: list[np.random.Generator]
    agents: list[np.random.Generator]
    venues: list[np.random.Generator] = field(default_factory=list)

    @classmethod
    def spawn(cls, seed: int, n_data: int, n_agents: int, n_venues: int = 0) -> RandomStreams:
        """The third child (venues: latency draws, rejects) leaves the first two, and so
        every existing stream, exactly as they were."""
        data_seq, agent_seq, venue_seq = np.random.SeedSequence(seed).spawn(3)
        return cls(
            [np.random.default_rng(s) for s in data_seq.spawn(n_data)],
            [np.random.default_rng(s) for s in agent_seq.spawn(n_agents)],
            [np.random.default_rng(s) for s in venue_seq.spawn(n_venues)],
        )


def load_market_data(config: ScenarioConfig, rngs: list[np.random.Generator]) -> MarketData:
    bars: list[SymbolBars] = []
    for source, rng in zip(config.data, rngs, strict=True):
        if isinstance(source, FileSourceConfig):
            bars.append(load_file(
                source.path, source.symbol, format=source.format,
                interval_ns=parse_duration(source.interval) if source.interval else None,
                timezone=source.timezone, gaps=source.gaps, funding=source.funding,
                resample_ns=parse_duration(source.resample) if source.resample else None,
            ))
        elif isinstance(source, RegimeSourceConfig):
            generated = generate(
                source.regime, source.bars, rng, params=source.params, symbols=source.symbols,
                correlation=source.correlation, price=source.price,
                start_ns=parse_timestamp(source.start),
                interval_ns=parse_duration(source.interval), substeps=source.substeps,
                version=source.generator_version,
            )
            bars.extend(apply_shocks(generated, source.shocks, rng) if source.shocks
                        else generated)
        elif isinstance(source, CalibratedSourceConfig):
            from sim.regimes.calibrated import generate_calibrated, load_model

            bars.extend(generate_calibrated(
                load_model(source.model), source.bars, rng, symbols=source.symbols,
                prices=source.prices, start_ns=parse_timestamp(source.start),
                source=f"generated:calibrated({Path(source.model).name})",
            ))
        else:
            bars.append(gbm_bars(
                source.symbol, source.bars, rng, start_ns=parse_timestamp(source.start),
                interval_ns=parse_duration(source.interval), s0=source.price,
                drift=source.drift, volatility=source.volatility,
            ))
    return merge(bars)


def make_recorder(store: RunStore, run_id: str, symbols: Sequence[str],
                  config: ScenarioConfig, flush_rows: int = 500_000,
                  bus: EventBus | None = None) -> Recorder:
    """The run's recorder: an ``ObservedRecorder`` publishing on ``bus`` when there is one."""
    agents = [a.name for a in config.agents]
    if bus is None:
        return Recorder(store, run_id, symbols, agents, config.consensus.method,
                        flush_rows=flush_rows)
    return ObservedRecorder(store, run_id, symbols, agents, config.consensus.method, bus,
                            flush_rows=flush_rows)


def build_engine(
    config: ScenarioConfig, data: MarketData, recorder: Recorder,
    agent_rngs: list[np.random.Generator], bus: EventBus | None = None, *,
    session: bool = False, timer: Callable[[], int] | None = None,
) -> Engine:
    """The pipeline for ``config`` on ``data``. With a ``bus`` the engine publishes bars
    and equity on it (``sim.observed.ObservedEngine``); pair it with an
    ``ObservedRecorder`` on the same bus for the rest of the pipeline's events.

    The engine's agents are steered by its ``lifecycle`` (``sim.lifecycle.AgentRoster``),
    which also runs the scenario's agent_* events. ``session``: a paper or venue session
    (agents abstain on errors by default); ``timer``: a monotonic ns clock that times the
    agents with a ``latency_budget_ms`` (sessions only: a backtest never reads a clock)."""
    symbols = data.symbols
    slots: list[list[AgentSlot]] = [[] for _ in symbols]
    for index, (agent_cfg, rng) in enumerate(zip(config.agents, agent_rngs, strict=True)):
        wanted = agent_cfg.symbols or symbols
        # One instance per symbol, each with its own stream so symbols never share state.
        streams = rng.spawn(len(symbols))
        # Agents that call outside services keep their exchanges in the run store.
        call_log = call_log_for(recorder.store, config.name, recorder.run_id, agent_cfg.name,
                                bus)
        for s, symbol in enumerate(symbols):
            if symbol in wanted:
                agent = build_agent(agent_cfg.kind, agent_cfg.params, streams[s], call_log)
                slots[s].append(AgentSlot(index, agent_cfg.name, agent))
    venue_rngs = RandomStreams.spawn(config.seed, 0, 0, len(config.venues)).venues
    first_prices = {b.symbol: float(b.open[0]) for b in data.bars if len(b)}
    rules = [venue_instruments(v, first_prices, config.initial_cash) for v in config.venues]
    venues = [SimVenue(v.name, frozenset(v.symbols), v.fee_bps, v.slippage_bps,
                       maker_fee_bps=v.maker_fee_bps, min_size=v.min_size,
                       tick_size=v.tick_size, lot_size=v.lot_size, latency_ms=v.latency_ms,
                       health=v.health, max_order_notional=v.max_order_notional,
                       volatility_slippage=v.volatility_slippage, impact_bps=v.impact_bps,
                       max_participation=v.max_participation, kind=v.kind,
                       max_leverage=v.max_leverage, maintenance_margin=v.maintenance_margin,
                       funding_rate=v.funding_rate,
                       funding_interval_ns=parse_duration(v.funding_interval),
                       latency_dist=v.latency_dist, latency_sigma=v.latency_sigma,
                       reject_rate=v.reject_rate, timeout_ms=v.timeout_ms, rng=rng,
                       instruments=instruments, resolver=resolver)
              for v, rng, (instruments, resolver) in zip(config.venues, venue_rngs, rules,
                                                         strict=True)]
    cons = config.consensus
    decay = performance_decay(config)  # the scenario's or a farm's
    performance = AgentPerformance([len(s) for s in slots],
                                   cons.decay if decay is None else decay,
                                   online=decay is not None)
    consensus = VotingConsensus(cons.method, min_agreement=cons.min_agreement,
                                conflict=cons.conflict, quorum=cons.quorum,
                                performance=performance)
    views = [MarketView(b) for b in data.bars]
    # Per-bar publishing only when someone listens to bars or equity already: a watched
    # run (sim.monitor) takes event-level topics and keeps the plain bar path.
    per_bar = bus is not None and (bus.wants(BAR) or bus.wants(EQUITY))
    engine_class: Any = Engine
    if bus is not None and per_bar:
        engine_class = partial(ObservedEngine, bus=bus)
    if config.farms:  # several pipelines in one loop (sim.farm_engine)
        if session and config.allocator is not None:
            raise ConfigError("allocator: re-allocating capital between farms is not "
                              "supported in paper and live sessions yet")
        farms, reserve = build_farms(config, symbols, slots, views, performance)
        if not session:  # a session records them when it starts (live.farms)
            record_farms(recorder, config, farms,
                         min((int(b.ts[0]) for b in data.bars if len(b)), default=0))
        engine_class = (partial(ObservedFarmEngine, bus=bus, farms=farms, reserve=reserve)
                        if bus is not None and per_bar
                        else partial(FarmEngine, farms=farms, reserve=reserve))
    engine = engine_class(
        symbols,
        views,
        slots,
        consensus,
        TargetExposurePolicy(**config.policy.model_dump(exclude={"preset"}), views=views),
        RiskEngine(limits=risk_limits(config.risk), initial_equity=config.initial_cash),
        VenueRouter(venues, config.router.policy, config.router.preference,
                    funding_horizon=config.router.funding_horizon),
        Portfolio(symbols, config.initial_cash),
        recorder,
        performance=performance,
        max_signal_age=parse_duration(cons.max_signal_age) if cons.max_signal_age else None,
        fill_timing=FillTiming.CLOSE if config.execution.fill_at == "close"
        else FillTiming.NEXT_OPEN,
        execution=config.execution.settings(),
    )
    engine.schedule_events([
        ScenarioEvent(parse_timestamp(e.at), e.kind, e.venue,
                      e.latency_ms if e.kind == "venue_latency" else e.rate)
        for e in config.events if not _lifecycle_event(e.kind)])
    engine.lifecycle = roster = build_roster(config, engine, recorder, bus, session, timer)
    for ts, command in scripted_commands(config):
        engine.schedule(ts, roster.apply, command, _command_name)
    firsts = [int(b.ts[0]) for b in data.bars if len(b)]
    if firsts:  # a live session records its agents when it starts (LiveRunner.run)
        roster.start(min(firsts))
    schedule_funding(engine, data)
    if isinstance(engine, FarmEngine):
        engine.spawns = SpawnFarms(config, performance)
        schedule_allocator(config, engine, data)
    return engine


def scripted_commands(config: ScenarioConfig
                      ) -> list[tuple[int, AgentCommand | AgentBatch]]:
    """The scenario's agent_* ``[[events]]`` as lifecycle commands (actor "scenario"), in
    file order: those sharing a ``batch`` label as one ``AgentBatch`` (its reason the
    label), placed where its first command is."""
    order: list[tuple[int, AgentCommand | str]] = []
    batches: dict[str, list[AgentCommand]] = {}
    for e in config.events:
        if not _lifecycle_event(e.kind):
            continue
        command = AgentCommand(e.kind.removeprefix("agent_"), e.agent or ALL_AGENTS,
                               "scenario", e.reason, e.agent_kind, e.params,
                               None if e.symbols is None else tuple(e.symbols), e.flatten,
                               # a spawn's farm is made or joined by sim.farm_build.SpawnFarms
                               e.farm if isinstance(e.farm, str) and e.kind != "agent_spawn"
                               else None)
        if e.batch is None:
            order.append((parse_timestamp(e.at), command))
            continue
        if e.batch not in batches:
            batches[e.batch] = []
            order.append((parse_timestamp(e.at), e.batch))
        batches[e.batch].append(command)
    return [(ts, AgentBatch(tuple(batches[c]), "scenario", c) if isinstance(c, str) else c)
            for ts, c in order]


def _command_name(command: AgentCommand | AgentBatch) -> str:
    """A scripted command as its ``[[events]]`` kind and agent (a batch: its label)."""
    if isinstance(command, AgentBatch):
        return f"batch {command.reason!r}"
    verb = command.command if command.command.startswith("farm_") else f"agent_{command.command}"
    return f"{verb} {command.agent}"


def _lifecycle_event(kind: str) -> bool:
    """An ``[[events]]`` kind that is a lifecycle command (agent_* and farm_*)."""
    return kind.startswith(("agent_", "farm_"))


def error_policy(agent: AgentConfig | None, session: bool) -> ErrorPolicy:
    """An agent's failure tolerance (``sim.lifecycle``); None: a spawned agent's."""
    if agent is None:
        return ErrorPolicy("abstain" if session else "fail")
    return ErrorPolicy(
        agent.on_error or ("abstain" if session else "fail"), agent.max_errors or None,
        parse_duration(agent.error_window) if agent.error_window else None,
        None if agent.latency_budget_ms is None else int(agent.latency_budget_ms * 1e6))


def build_roster(config: ScenarioConfig, engine: Engine, recorder: Recorder,
                 bus: EventBus | None, session: bool, timer: Callable[[], int] | None
                 ) -> AgentRoster:
    roster: Any = FarmRoster if isinstance(engine, FarmEngine) else AgentRoster
    return roster(  # type: ignore[no-any-return]
        engine, recorder, seed=config.seed, scenario=config.name,
        specs=[(a.name, a.kind, a.params, a.symbols, error_policy(a, session))
               for a in config.agents],
        default_policy=error_policy(None, session), bus=bus, timer=timer)


def venue_instruments(
    v: VenueConfig, first_prices: Mapping[str, float], cash: float,
) -> tuple[dict[str, Instrument], Callable[[str, float], Instrument] | None]:
    """Each symbol's instrument on venue ``v`` (``sim.instruments.resolve``), checked
    against the symbol's first price and the account: a spec that cannot represent the
    prices or can never be traded is a ConfigError naming venue, symbol and field.
    A symbol whose first price is not known yet (a live session) and whose rule needs one
    is resolved, and checked, by the returned resolver at its first order."""

    def make(symbol: str, price: float | None) -> Instrument | None:
        spec = v.instruments.get(symbol)
        return resolve(v.name, symbol, rule=v.preset, kind=v.kind, tick_size=v.tick_size,
                       lot_size=v.lot_size, min_size=v.min_size,
                       spec=spec.model_dump(exclude_none=True) if spec else None,
                       price=price)

    def checked(symbol: str, price: float) -> Instrument:
        inst = make(symbol, price)
        assert inst is not None
        problem = unrepresentable(inst, price, cash)
        if problem is not None:
            raise ConfigError(problem)
        return inst

    out: dict[str, Instrument] = {}
    lazy = False
    for symbol in sorted(v.symbols):
        price = first_prices.get(symbol)
        inst = checked(symbol, price) if price is not None else make(symbol, None)
        if inst is None:
            lazy = True
        else:
            out[symbol] = inst
    return out, checked if lazy else None


def schedule_funding(engine: Engine, data: MarketData) -> None:
    """Funding for every symbol that trades on a perpetual venue, at the funding times
    within its bars' span: the data's recorded series when it has one, else the venue's
    ``funding_rate`` every ``funding_interval`` (on the epoch grid)."""
    desk = engine.desk
    for s, (bars, perp) in enumerate(zip(data.bars, desk.perp, strict=True)):
        if perp is None or len(bars) == 0:
            continue
        first, last = int(bars.ts[0]), int(bars.ts[-1])
        if bars.funding is not None:
            keep = (bars.funding.ts > first) & (bars.funding.ts <= last)
            desk.schedule_funding(s, bars.funding.ts[keep].tolist(),
                                  bars.funding.rate[keep].tolist())
        elif perp.funding_rate is not None:
            step = perp.funding_interval_ns
            times = range(first - first % step + step, last + 1, step)
            desk.schedule_funding(s, list(times), [perp.funding_rate] * len(times))


def risk_limits(cfg: RiskConfig) -> RiskLimits:
    """The risk engine's limits from the scenario's ``[risk]``."""
    return RiskLimits(
        max_order_notional=cfg.max_order_notional,
        max_position_notional=cfg.max_position_notional,
        max_orders_per_day=cfg.max_orders_per_day,
        allowed_symbols=None if cfg.allowed_symbols is None else frozenset(cfg.allowed_symbols),
        daily_loss_limit=cfg.daily_loss_limit,
        max_drawdown=cfg.max_drawdown,
        max_leverage=cfg.max_leverage,
        price_band=cfg.price_band,
        max_orders_per_window=cfg.max_orders_per_window,
        order_window_ns=parse_duration(cfg.order_window),
        flatten_on_trip=cfg.flatten_on_trip,
        timezone=cfg.timezone,
        agents={
            name: AgentPermissions(
                p.max_trade_notional, p.max_position_notional, p.max_trades_per_day,
                None if p.allowed_symbols is None else frozenset(p.allowed_symbols),
                p.risk_level,
            )
            for name, p in cfg.agents.items()
        },
    )


def check_agent_symbols(config: ScenarioConfig, data: MarketData) -> None:
    known = set(data.symbols)
    for agent in config.agents:
        for symbol in agent.symbols or ():
            if symbol not in known:
                raise ConfigError(f"agents.{agent.name}.symbols: {symbol!r} is not in the data")
    try:
        check_venue_symbols(config.venues, known)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def run_scenario(
    config: ScenarioConfig,
    store: RunStore,
    *,
    run_id: str | None = None,
    data: MarketData | None = None,
    on_start: Callable[[str, int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    flush_rows: int = 500_000,
    bus: EventBus | None = None,
    on_decision: Callable[[DecisionMade], None] | None = None,
    monitor: bool | None = None,
    fast_path: bool = True,
    data_cache: DataCache | None = None,
) -> RunResult:
    """Run a backtest; the run is in the store as completed, failed or interrupted.

    ``bus``: publish the run's events on it (``sim.bus``), delivered synchronously and
    deterministically to its subscribers; the stored rows are the same without it.
    ``on_decision``: called with each decision consensus records (``DecisionMade``:
    side, confidence, target, the votes by agent), in order, as the run makes it.
    ``monitor``: watch the run (``sim.monitor``: health, alerts, logs on sim time, stored
    in ``health``, ``alerts``, ``logs``); None: when the scenario has ``[monitor]``.
    ``fast_path``: walk only the event bars when that is exact (``sim.fast_path``; the
    stored rows are the same); False: the per-bar loop. The run's ``run_info`` says which.
    ``data_cache``: take generated data from it, or generate it there, with its hash and
    ``bars`` batch (``sim.data_cache``: a sweep worker's runs share a few data sets).

    ``data`` replaces the scenario's data sources (e.g. bars built from a DataFrame with
    ``sim.data.bars_from_frame``). Bad config or data raise before the run is created, so
    nothing half-made is stored.
    """
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    trades: Trades | None = None
    prepared: PreparedData | None = None
    if config.execution.replay == "ticks":
        if data is not None or not config.data:
            raise ConfigError(f"scenario {config.name!r}: tick replay reads its one trades "
                              "source from the scenario")
        trades, data = load_ticks(config)
    if data is None:
        if not config.data:
            raise ConfigError(f"scenario {config.name!r}: no data sources")
        key = DataCache.key(config) if data_cache is not None else None
        if data_cache is not None and key is not None:
            prepared = data_cache.get(key, lambda: load_market_data(config, streams.data))
            data = prepared.data
        else:
            data = load_market_data(config, streams.data)
    check_agent_symbols(config, data)
    if on_decision is not None:
        bus = bus or EventBus()
        bus.subscribe(lambda envelope: on_decision(envelope.event), [DECISION])
    run_id = run_id or new_run_id()
    watching = config.monitor is not None if monitor is None else monitor
    if watching and bus is None:
        bus = EventBus()
    recorder = make_recorder(store, run_id, data.symbols, config, flush_rows, bus)
    engine = build_engine(config, data, recorder, streams.agents, bus)
    watch = watch_backtest(config, engine, data, bus) if watching and bus else None
    data_hash = (prepared.content_hash if prepared is not None
                 else data.content_hash() if trades is None else ticks_hash(data, trades))
    path = choose_path(engine, [e.kind for e in config.events], allowed=fast_path)
    recorder.rare_row("run_info", ("engine_path", path.path))
    recorder.rare_row("run_info", ("engine_path_reason", path.reason))
    with appends_behind(store), stored_run(store, run_id, config, data_hash, recorder,
                                            engine):
        # the market the run saw (built on the writer's thread when appends run behind)
        append_built(store, run_id, "bars", data.bars_table if prepared is None
                     else lambda: prepared.bars_table)
        if on_start is not None:
            on_start(run_id, len(data))
        try:
            if trades is None and path.path == FAST:
                run_fast(engine, data, on_progress=on_progress)
            elif trades is None:
                engine.run(data, on_progress=on_progress)
            else:
                source = config.data[0]
                assert isinstance(source, FileSourceConfig) and source.interval is not None
                engine.run_ticks(0, trades.ts.tolist(), trades.price.tolist(),
                                 trades.amount.tolist(), parse_duration(source.interval))
        finally:  # what was seen before a failure is stored with it
            if watch is not None:
                watch.finish(store, run_id)
    return RunResult(run_id, "completed", engine.bars_seen)


def record_code(store: RunStore, run_id: str, config: ScenarioConfig) -> None:
    """Keep the code that makes the run with it (``sim.run_identity``), in stores that keep
    it (``record_code``). A live config whose files are not here gets no config id."""
    record = getattr(store, "record_code", None)
    if record is None:
        return
    try:
        config_id = config_identity(config)
    except ConfigError:
        config_id = ""
    code = code_identity(a.model_dump(mode="json") for a in config.agents)
    record(run_id, config_id, code.code_id, code.quorum, code.modules)


class ErrorRateExceeded(RuntimeError):
    """An agent's calls to its service failed more often than its ``max_error_rate``."""


def record_agent_errors(store: RunStore, run_id: str, engine: Engine
                        ) -> list[tuple[str, str, CallStats]]:
    """Store (``agent_errors``) and return each calling agent's ``CallStats`` per symbol:
    (symbol, agent name, stats), for agents that have ``call_stats()``."""
    rows = []
    for symbol, slots in zip(engine.symbols, engine.agents, strict=True):
        for slot in slots:
            stats = getattr(slot.agent, "call_stats", None)
            if stats is not None:
                rows.append((symbol, slot.name, stats()))
    if rows:
        n = len(rows)
        store.append(run_id, "agent_errors", pa.table({
            "symbol": [r[0] for r in rows], "agent": [r[1] for r in rows],
            "calls": pa.array([r[2].calls for r in rows], pa.int64()),
            "errors": pa.array([r[2].errors for r in rows], pa.int64()),
            "last_error": pa.array([r[2].last_error for r in rows], pa.string()),
            "kind": pa.array(["calls"] * n, pa.string()),
            "ts": pa.nulls(n, pa.timestamp("ns")), "bar": pa.nulls(n, pa.int64()),
            "error_type": pa.nulls(n, pa.string()),
            "traceback_digest": pa.nulls(n, pa.string()),
            "elapsed_ms": pa.nulls(n, pa.float64())}))
    return rows


def check_error_rates(config: ScenarioConfig, rows: list[tuple[str, str, CallStats]]
                      ) -> None:
    """Raise ``ErrorRateExceeded`` naming the first agent (in config order) whose errors /
    calls over all its symbols is above its ``max_error_rate``."""
    for agent in config.agents:
        mine = [stats for _, name, stats in rows if name == agent.name]
        calls = sum(s.calls for s in mine)
        errors = sum(s.errors for s in mine)
        if calls and errors / calls > agent.max_error_rate:
            last = next((s.last_error for s in reversed(mine) if s.last_error), None)
            raise ErrorRateExceeded(
                f"agent {agent.name!r}: {errors} of {calls} calls to its service failed "
                f"({errors / calls:.1%}), above max_error_rate {agent.max_error_rate:g}"
                + (f"; last error: {last}" if last else ""))


def load_ticks(config: ScenarioConfig) -> tuple[Trades, MarketData]:
    """The trades of a tick-replay scenario, and the bars they make (what agents see and
    the ``bars`` table stores: the same aggregation ``run_ticks`` performs on the fly)."""
    source = config.data[0]
    assert isinstance(source, FileSourceConfig) and source.interval is not None
    trades = load_trades(source.path)
    gaps = "skip" if source.gaps == "fail" else source.gaps
    if gaps == "ffill":
        raise ConfigError(f"data.0.gaps: tick replay builds bars from trades; an interval "
                          f"without trades is no bar ({source.path}): use 'skip' or 'fail'")
    if source.gaps == "fail":  # checked as the bar loader would, then walked as is
        trades_to_bars(trades, source.symbol, parse_duration(source.interval), gaps="fail")
    bars = trades_to_bars(trades, source.symbol, parse_duration(source.interval), gaps=gaps)
    if source.funding is not None:
        bars = replace(bars, funding=load_funding(source.funding))
    return trades, merge([bars])


def ticks_hash(data: MarketData, trades: Trades) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(data.content_hash().encode())
    for column in (trades.ts, trades.price, trades.amount):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()


@contextmanager
def stored_run(
    store: RunStore, run_id: str, config: ScenarioConfig, data_hash: str,
    recorder: Recorder, engine: Engine, mode: str = "backtest", *, resume: bool = False,
) -> Iterator[None]:
    """Create the run (``resume``: it exists; a live session continues it); on leaving,
    mark it completed, or keep what was computed and mark it interrupted (Ctrl-C, a
    signal that cut a store write short, cancellation: re-raised as KeyboardInterrupt or
    CancelledError) or failed (any other exception, re-raised; an agent whose service
    failed more often than its ``max_error_rate`` too)."""
    if not resume:
        store.create_run(run_id, config.name, stored_config(config), config.seed,
                         code_version(), data_hash, mode)
        record_code(store, run_id, config)
    elif hasattr(store, "claim_run"):  # this process writes it now (sim.liveness)
        store.claim_run(run_id)
    try:
        yield
        check_error_rates(config, record_agent_errors(store, run_id, engine))
        settle(store)  # every row appended (a writer's failure fails the run here)
    except BaseException as exc:
        in_store = is_interrupt(exc)  # a signal during a store write: Ctrl-C all the same
        stopped = in_store or isinstance(exc, KeyboardInterrupt | asyncio.CancelledError)
        error = (f"KeyboardInterrupt: during a store write ({exc})" if in_store
                 else f"{type(exc).__name__}: {exc}")
        found = None if stopped else agent_failure(exc)
        if found is not None:  # which agent, symbol and bar (sim.agent_failure)
            error = f"{found.describe()}: {error}"
        try:
            recorder.flush()
        finally:
            store.finish_run(run_id, "interrupted" if stopped else "failed",
                             engine.bars_seen, error)
        if in_store:
            raise KeyboardInterrupt(str(exc)) from exc
        raise
    store.finish_run(run_id, "completed", engine.bars_seen, None)
