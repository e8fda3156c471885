"""Builds the pipeline a scenario describes and runs it against a store.

This is the one place that turns config into components; the CLI, tests and benchmarks
all come through it, so a backtest is always wired the same way.

Split off along their seams: the market data a scenario's sources make
(``sim.run_data``), the scenario's agents under lifecycle control, the roster and the
scripted commands (``sim.run_lifecycle``), and the run's record in its store, created,
finished and with its agents' error counts (``sim.run_record``). Their names are
re-exported here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from sim.agents.base import build_agent
from sim.agents.external import call_log_for
from sim.bus import BAR, DECISION, EQUITY, EventBus
from sim.bus_events import DecisionMade
from sim.config import RiskConfig, ScenarioConfig, check_venue_symbols
from sim.config_base import ConfigError, parse_duration, parse_timestamp
from sim.config_sources import FileSourceConfig
from sim.config_venues import VenueConfig
from sim.consensus import VotingConsensus
from sim.data import MarketData
from sim.data_cache import DataCache, PreparedData
from sim.engine import AgentSlot, Engine
from sim.farm_build import SpawnFarms, build_farms, record_farms, schedule_allocator
from sim.farm_config import performance_decay
from sim.farm_engine import FarmEngine, ObservedFarmEngine
from sim.fast_path import FAST, choose_path, run_fast
from sim.instruments import Instrument, resolve, unrepresentable
from sim.loaders import Trades
from sim.messages import FillTiming, ScenarioEvent
from sim.monitor.watch import watch_backtest
from sim.observed import ObservedEngine, ObservedRecorder
from sim.performance import AgentPerformance
from sim.policy import TargetExposurePolicy
from sim.portfolio import Portfolio
from sim.recorder import Recorder
from sim.risk import AgentPermissions, RiskEngine, RiskLimits
from sim.router import VenueRouter
from sim.run_data import load_market_data, load_ticks, ticks_hash
from sim.run_lifecycle import (
    _command_name,
    _lifecycle_event,
    build_roster,
    error_policy,
    scripted_commands,
)
from sim.run_record import (
    ErrorRateExceeded,
    check_error_rates,
    record_agent_errors,
    record_code,
    stored_run,
)
from sim.store import RunStore, append_built, appends_behind
from sim.venue import SimVenue
from sim.view import MarketView

# The names moved to sim.run_data, sim.run_lifecycle and sim.run_record are re-exported:
# they were defined here.
__all__ = [
    "ErrorRateExceeded", "RandomStreams", "RunResult", "build_engine", "build_roster",
    "check_agent_symbols", "check_error_rates", "error_policy", "load_market_data",
    "load_ticks", "make_recorder", "new_run_id", "record_agent_errors", "record_code",
    "risk_limits", "run_scenario", "schedule_funding", "scripted_commands", "stored_run",
    "ticks_hash", "venue_instruments",
]


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


