"""The agent roster: each agent's lifecycle state and the commands that change it (what
the kernel forgives an agent that fails is ``sim.agent_faults``).

States: ``active`` (sees bars, votes), ``paused`` (sees bars, so its state stays warm, but
its standing signal is withdrawn and it does not vote; ``resume`` stands its current view
again), ``stopped`` (sees nothing, votes nothing; final) and ``errored`` (its circuit
breaker tripped: not called, no votes; ``resume`` clears it).

Commands (``sim.agent_commands``) are applied by the pipeline's single consumer between
two bars: a backtest's scheduled ``[[events]]`` from the engine's event queue, a live
session's from its queue. Each is checked first (``_prepare``: unknown agent or kind, bad
parameters naming the field, a command its state does not allow, a spawned or updated agent
that cannot warm up on the history seen so far) and then applied (``_Plan.commit``);
a batch checks every command before applying any. Applied or rejected, each is stored as
an ``agent_events`` row and published (topic ``agent``).

The bar path pays nothing for any of this: a change swaps the tuple of (position, on_bar)
pairs the engine calls for a symbol (``Engine.set_calls``); a paused agent's entry
calls it and keeps its signal aside; a stopped or errored one has no entry. Only an agent
whose failures are forgiven (``on_error = "abstain"``) or timed (``latency_budget_ms``, in
sessions) is called through a wrapper.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from sim.agent_commands import (
    ACTIVE,
    ALL_AGENTS,
    APPLIED,
    COMMANDS,
    ERRORED,
    FARM_COMMANDS,
    PAUSED,
    STOPPED,
    AgentBatch,
    AgentCommand,
    CommandOutcome,
    StoredAgent,
    farm_event_row,
    spec_json,
)
from sim.agent_faults import ErrorPolicy, FaultKeeper, OnBar
from sim.agents.base import Agent, AgentError, build_agent
from sim.agents.external import call_log_for
from sim.bus import AGENT, EventBus
from sim.bus_events import AgentStateChanged
from sim.engine import AgentSlot, Engine, valid_signal
from sim.messages import Signal
from sim.recorder import Recorder
from sim.view import MarketView


@dataclass(slots=True)
class AgentState:
    """One agent of the roster. ``positions``: symbol index -> its slot on that symbol
    (the symbols it trades now); ``shadow``: a paused agent's latest signal per symbol."""

    name: str
    index: int
    kind: str
    params: dict[str, Any]
    symbols: tuple[str, ...] | None
    state: str
    policy: ErrorPolicy
    positions: dict[int, int] = field(default_factory=dict)
    shadow: dict[int, Signal | None] = field(default_factory=dict)
    recent_errors: deque[int] = field(default_factory=deque)
    errors: int = 0
    slow_bars: int = 0
    generation: int = 0

    def spec(self) -> str:
        return spec_json(self.kind, self.params, self.symbols)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One agent as ``AgentRoster.snapshot`` shows it: its state, spec, the errors it
    was forgiven and the bars it overran its latency budget on."""

    name: str
    state: str
    kind: str
    params: dict[str, Any]
    symbols: tuple[str, ...] | None
    errors: int
    slow_bars: int


class Rejected(Exception):
    """A command that cannot be applied; the message says why."""


@dataclass(slots=True)
class _Plan:
    """A checked command: what the row will say, and what applying it does."""

    command: AgentCommand
    before: str | None
    after: str | None
    spec_before: str | None
    spec_after: str | None
    commit: Callable[[], None]


# The view a batch is checked against: name -> (state, kind, params, symbols).
_View = dict[str, tuple[str, str, dict[str, Any], tuple[str, ...] | None]]


class AgentRoster:
    """The agents of one engine and the commands that change them."""

    def __init__(self, engine: Engine, recorder: Recorder, *, seed: int, scenario: str,
                 specs: Sequence[tuple[str, str, Mapping[str, Any], Sequence[str] | None,
                                      ErrorPolicy]],
                 default_policy: ErrorPolicy, bus: EventBus | None = None,
                 timer: Callable[[], int] | None = None) -> None:
        self.engine = engine
        self.recorder = recorder
        self.seed = seed
        self.scenario = scenario
        self.default_policy = default_policy
        self.bus = bus
        # How a kill command pulls the switch: (ts, flatten, source). A live session sets
        # its own, which also keeps the pull durable (live.risk_state).
        self.on_kill: Callable[[int, bool, str], None] = (
            lambda ts, flatten, source: engine.kill(ts, flatten))
        self.faults = FaultKeeper(recorder, engine.symbols, bus, timer, self._trip)
        self.seq = 0  # the last agent_events row's number
        self.agents: dict[str, AgentState] = {}
        self._by_index: dict[int, AgentState] = {}
        for index, (name, kind, params, symbols, policy) in enumerate(specs):
            agent = AgentState(name, index, kind, dict(params),
                               None if symbols is None else tuple(symbols), ACTIVE, policy)
            self.agents[name] = agent
            self._by_index[index] = agent
        for s, slots in enumerate(engine.agents):
            for pos, slot in enumerate(slots):
                self._by_index[slot.index].positions[s] = pos
        if any(self.faults.wrapped(a) for a in self.agents.values()):
            for s in range(len(engine.symbols)):
                self._rebuild_calls(s)

    # -- reading ------------------------------------------------------------------------
    def states(self) -> dict[str, str]:
        return {name: a.state for name, a in self.agents.items()}

    def snapshot(self) -> tuple[AgentInfo, ...]:
        """The agent set now, as plain values (what the control API shows); a copy, so
        another thread may take it while the session runs."""
        return tuple(AgentInfo(a.name, a.state, a.kind, dict(a.params), a.symbols,
                               a.errors, a.slow_bars)
                     for a in list(self.agents.values()))

    # -- the run's first agents ----------------------------------------------------------
    def start(self, ts: int, actor: str = "scenario") -> None:
        """One ``start`` row per agent the run begins with (so the store alone says what
        the agent set is at any time)."""
        for agent in self.agents.values():
            self._record(ts, agent.name, "start", None, ACTIVE, None, agent.spec(), actor,
                         "", APPLIED)

    def restore(self, stored: Sequence[StoredAgent], seq: int) -> None:
        """Rebuild the agent set a stored run had (a resumed session): the store, not
        the scenario file, says which agents run, with what and in which state. Nothing
        is recorded: the rows exist."""
        ts = self.engine.clock.now
        for agent in stored:
            mine = self.agents.get(agent.name)
            symbols = None if agent.symbols is None else tuple(agent.symbols)
            if mine is None:
                self._plan(AgentCommand("spawn", agent.name, kind=agent.kind,
                                        params=agent.params, symbols=symbols),
                           self._view(), ts).commit()
            elif (mine.kind, mine.params, mine.symbols) != (agent.kind, agent.params,
                                                           symbols):
                self._plan(AgentCommand("update", agent.name, params=agent.params,
                                        symbols=symbols), self._view(), ts,
                           replace_params=True).commit()
            if agent.state in (PAUSED, STOPPED):
                verb = "pause" if agent.state == PAUSED else "stop"
                self._plan(AgentCommand(verb, agent.name), self._view(), ts).commit()
            elif agent.state == ERRORED:
                self._set_errored(self.agents[agent.name], ts)
        self.seq = max(self.seq, seq)

    # -- commands -----------------------------------------------------------------------
    def apply(self, command: AgentCommand | AgentBatch) -> CommandOutcome:
        """Check and apply ``command`` now (between two bars); store and publish it."""
        ts = self.engine.clock.now
        if isinstance(command, AgentBatch):
            return self._apply_batch(command, ts)
        try:
            plan = self._plan(command, self._view(), ts)
        except Rejected as exc:
            return self._rejected(ts, command, str(exc))
        plan.commit()
        return self._record(ts, command.agent, command.command, plan.before, plan.after,
                            plan.spec_before, plan.spec_after, command.actor,
                            command.reason, APPLIED, subject=command)

    def reject(self, command: AgentCommand, why: str) -> CommandOutcome:
        """Store a command refused before it reached the roster (a message that did
        not parse, from the local channel)."""
        return self._rejected(self.engine.clock.now, command, why)

    def _apply_batch(self, batch: AgentBatch, ts: int) -> CommandOutcome:
        self.seq += 1
        batch_id = self.seq  # the batch's number: its rows carry it
        # A command that names no actor or reason of its own has the batch's.
        commands = tuple(replace(
            c, actor=batch.actor if c.actor == "operator" else c.actor,
            reason=c.reason or batch.reason) for c in batch.commands)
        batch = replace(batch, commands=commands)
        view = self._view()
        plans: list[_Plan] = []
        for i, command in enumerate(batch.commands, 1):
            try:
                plans.append(self._plan(command, view, ts))
            except Rejected as exc:
                why = f"batch command {i} ({command.describe()}): {exc}"
                results = tuple(
                    self._rejected(ts, c, str(exc) if j == i else f"batch rejected: {why}",
                                   batch_id) for j, c in enumerate(batch.commands, 1))
                return CommandOutcome(batch_id, ts, ALL_AGENTS, "batch", f"rejected: {why}",
                                      None, results)
        applied: list[CommandOutcome] = []
        for plan in plans:
            plan.commit()
            c = plan.command
            applied.append(self._record(ts, c.agent, c.command, plan.before, plan.after,
                                        plan.spec_before, plan.spec_after, c.actor,
                                        c.reason, APPLIED, batch_id, subject=c))
        return CommandOutcome(batch_id, ts, ALL_AGENTS, "batch", APPLIED, None, tuple(applied))

    def _rejected(self, ts: int, command: AgentCommand, why: str,
                  batch: int | None = None) -> CommandOutcome:
        agent = self.agents.get(command.agent)
        state = agent.state if agent is not None else None
        spec = agent.spec() if agent is not None else None
        if command.command in FARM_COMMANDS:
            state = spec = None
        return self._record(ts, command.agent, command.command, state, state, spec, spec,
                            command.actor, command.reason, f"rejected: {why}", batch,
                            subject=command)

    def _view(self) -> _View:
        return {n: (a.state, a.kind, a.params, a.symbols) for n, a in self.agents.items()}

    def _plan(self, command: AgentCommand, view: _View, ts: int,
              replace_params: bool = False) -> _Plan:
        """Check ``command`` against ``view`` (updated for the batch's next command) and
        return how to apply it; ``Rejected`` naming why it cannot be."""
        verb, name = command.command, command.agent
        if verb in FARM_COMMANDS:
            return self._farm_plan(command, view, ts)
        if verb not in COMMANDS:
            raise Rejected(f"unknown command {verb!r}; one of {', '.join(COMMANDS)}")
        if verb == "kill":
            source = f"command by {command.actor}" + (f" ({command.reason})"
                                                       if command.reason else "")
            return _Plan(command, None, None, None, None,
                         lambda: self.on_kill(ts, command.flatten, source))
        if command.flatten:
            raise Rejected("flatten: only for kill")
        if verb not in ("spawn", "update") and (command.params is not None
                                                or command.symbols is not None
                                                or command.kind is not None):
            raise Rejected(f"{verb} takes no kind, params or symbols")
        known = view.get(name)
        if verb == "spawn":
            if known is not None:
                raise Rejected(f"agent {name!r} exists ({known[0]})")
            if name == ALL_AGENTS:
                raise Rejected(f"agent: {ALL_AGENTS!r} is no agent name")
            if not command.kind:
                raise Rejected("kind: required to spawn an agent")
            params = dict(command.params or {})
            symbols = self._symbols(command.symbols)
            built = self._build(name, command.kind, params, symbols, 0)
            view[name] = (ACTIVE, command.kind, params, symbols)
            return _Plan(command, None, ACTIVE, None,
                         spec_json(command.kind, params, symbols),
                         lambda: self._commit_spawn(name, command.kind or "", params,
                                                    symbols, built, ts))
        if known is None:
            raise Rejected(f"unknown agent {name!r} (agents: {', '.join(view) or 'none'})")
        state, kind, params, symbols = known
        spec = spec_json(kind, params, symbols)
        if state == STOPPED:
            raise Rejected(f"agent {name!r} is stopped")
        if verb == "pause":
            if state != ACTIVE:
                raise Rejected(f"agent {name!r} is {state}, not active")
            view[name] = (PAUSED, kind, params, symbols)
            return _Plan(command, state, PAUSED, spec, spec,
                         lambda: self._commit_pause(name, ts))
        if verb == "resume":
            if state == ACTIVE:
                raise Rejected(f"agent {name!r} is active already")
            view[name] = (ACTIVE, kind, params, symbols)
            return _Plan(command, state, ACTIVE, spec, spec,
                         lambda: self._commit_resume(name, ts))
        if verb == "stop":
            view[name] = (STOPPED, kind, params, symbols)
            return _Plan(command, state, STOPPED, spec, spec,
                         lambda: self._commit_stop(name, ts))
        # update
        if command.kind is not None and command.kind != kind:
            raise Rejected(f"kind: an update keeps the agent's kind ({kind!r}); stop it "
                           "and spawn another")
        if command.params is None and command.symbols is None:
            raise Rejected("update: give params and/or symbols")
        new_params = (dict(command.params or {}) if replace_params
                      else {**params, **(command.params or {})})
        new_symbols = (self._symbols(command.symbols) if command.symbols is not None
                       else symbols)
        generation = self.agents[name].generation + 1 if name in self.agents else 1
        built = self._build(name, kind, new_params, new_symbols, generation)
        view[name] = (state, kind, new_params, new_symbols)
        return _Plan(command, state, state, spec, spec_json(kind, new_params, new_symbols),
                     lambda: self._commit_update(name, new_params, new_symbols, built, ts))

    def _farm_plan(self, command: AgentCommand, view: _View, ts: int) -> _Plan:
        """A farm command (``sim.farm_lifecycle.FarmRoster`` plans them in farm runs)."""
        raise Rejected(f"{command.command}: this run has no [[farms]]")

    def _symbols(self, symbols: Sequence[str] | None) -> tuple[str, ...] | None:
        if symbols is None:
            return None
        known = self.engine.symbols
        for symbol in symbols:
            if symbol not in known:
                raise Rejected(f"symbols: {symbol!r} is not traded here ({', '.join(known)})")
        if not symbols:
            raise Rejected("symbols: empty (stop the agent instead)")
        return tuple(dict.fromkeys(symbols))

    def _build(self, name: str, kind: str, params: dict[str, Any],
               symbols: tuple[str, ...] | None, generation: int
               ) -> dict[int, tuple[Agent, Signal | None]]:
        """One instance per symbol, warmed up on the bars seen so far; its random streams
        derive from the scenario seed, the agent's name and how often it was built, so a
        replay builds the same agents."""
        engine = self.engine
        wanted = [s for s, sym in enumerate(engine.symbols)
                  if symbols is None or sym in symbols]
        seq = np.random.SeedSequence([self.seed, zlib.crc32(name.encode()), generation])
        rngs = np.random.default_rng(seq).spawn(len(wanted))
        call_log = call_log_for(self.recorder.store, self.scenario, self.recorder.run_id,
                                name, self.bus)
        built = {}
        for s, rng in zip(wanted, rngs, strict=True):
            try:
                agent = build_agent(kind, params, rng, call_log)
            except AgentError as exc:
                raise Rejected(str(exc)) from None
            built[s] = (agent, self._warm_up(agent, s))
        return built

    def _warm_up(self, agent: Agent, s: int) -> Signal | None:
        """Show ``agent`` every bar of symbol ``s`` seen so far, in order; its last
        signal is its view now."""
        live = self.engine.views[s]
        bars = live._bars
        view = MarketView(bars)
        columns = [bars.column(c) for c in ("ts", "open", "high", "low", "close", "volume")]
        last = None
        for i in range(live.n):
            view.n = i + 1
            view.ts = int(columns[0][i])
            view.open, view.high, view.low, view.close, view.volume = (
                float(c[i]) for c in columns[1:])
            try:
                signal = agent.on_bar(view)
            except Exception as exc:
                raise Rejected(f"warm-up on {live.n} bars of {live.symbol} raised "
                               f"{type(exc).__name__}: {exc}") from None
            if signal is not None:
                if not valid_signal(signal):
                    raise Rejected(f"warm-up on {live.symbol}: the agent returned "
                                   f"{signal!r}, not a valid Signal")
                last = signal
        return last

    # -- applying -----------------------------------------------------------------------
    def _commit_spawn(self, name: str, kind: str, params: dict[str, Any],
                      symbols: tuple[str, ...] | None,
                      built: dict[int, tuple[Agent, Signal | None]], ts: int) -> None:
        index = self.recorder.add_agent(name)
        agent = AgentState(name, index, kind, params, symbols, ACTIVE, self.default_policy)
        self.agents[name] = agent
        self._by_index[index] = agent
        for s, (instance, _) in built.items():
            agent.positions[s] = self.engine.add_slot(s, AgentSlot(index, name, instance))
            self._rebuild_calls(s)
        for s, (_, signal) in built.items():
            if signal is not None:
                self.engine.set_standing(s, agent.positions[s], signal, ts)

    def _commit_pause(self, name: str, ts: int) -> None:
        agent = self.agents[name]
        agent.state = PAUSED
        for s, pos in agent.positions.items():
            agent.shadow[s] = self.engine.standing(s, pos)
            self.engine.set_standing(s, pos, None, ts)
            self._rebuild_calls(s)

    def _commit_resume(self, name: str, ts: int) -> None:
        agent = self.agents[name]
        was = agent.state
        agent.state = ACTIVE
        agent.recent_errors.clear()
        for s, pos in agent.positions.items():
            self._rebuild_calls(s)
            signal = agent.shadow.pop(s, None)
            if was == PAUSED and signal is not None:
                self.engine.set_standing(s, pos, signal, ts)

    def _commit_stop(self, name: str, ts: int) -> None:
        agent = self.agents[name]
        agent.state = STOPPED
        agent.shadow.clear()
        for s, pos in agent.positions.items():
            self.engine.set_standing(s, pos, None, ts)
            self._rebuild_calls(s)

    def _commit_update(self, name: str, params: dict[str, Any],
                       symbols: tuple[str, ...] | None,
                       built: dict[int, tuple[Agent, Signal | None]], ts: int) -> None:
        agent = self.agents[name]
        engine = self.engine
        agent.params, agent.symbols = params, symbols
        agent.generation += 1
        touched = set(agent.positions) | set(built)
        for s in list(agent.positions):
            if s not in built:  # no longer traded: its vote there is withdrawn
                engine.set_standing(s, agent.positions.pop(s), None, ts)
                agent.shadow.pop(s, None)
        for s, (instance, signal) in built.items():
            slot = AgentSlot(agent.index, name, instance)
            if s in agent.positions:
                engine.replace_slot(s, agent.positions[s], slot)
            else:
                agent.positions[s] = engine.add_slot(s, slot)
            if agent.state == PAUSED:
                agent.shadow[s] = signal
            elif agent.state == ACTIVE:
                engine.set_standing(s, agent.positions[s], signal, ts)
        for s in sorted(touched):
            self._rebuild_calls(s)

    def _trip(self, agent: AgentState, ts: int, reason: str) -> None:
        """Its circuit breaker tripped: errored (no calls, no votes) until resumed."""
        was = agent.state
        self._set_errored(agent, ts)
        self._record(ts, agent.name, "error", was, ERRORED, agent.spec(), agent.spec(),
                     "kernel", reason, APPLIED)

    def _set_errored(self, agent: AgentState, ts: int) -> None:
        agent.state = ERRORED
        agent.shadow.clear()
        agent.recent_errors.clear()
        for s, pos in agent.positions.items():
            self.engine.set_standing(s, pos, None, ts)
            self._rebuild_calls(s)

    # -- the calls the bar path makes ---------------------------------------------------
    def _rebuild_calls(self, s: int) -> None:
        calls = []
        for pos, slot in enumerate(self.engine.agents[s]):
            agent = self._by_index[slot.index]
            if agent.positions.get(s) != pos or agent.state in (STOPPED, ERRORED):
                continue
            call = self.faults.call(agent, s, slot.agent.on_bar)
            if agent.state == PAUSED:
                call = _paused(call, agent.shadow, s)
            calls.append((pos, call))
        self.engine.set_calls(s, tuple(calls))

    def _record(self, ts: int, agent: str, command: str, before: str | None,
                after: str | None, spec_before: str | None, spec_after: str | None,
                actor: str, reason: str, outcome: str, batch: int | None = None, *,
                subject: AgentCommand | None = None) -> CommandOutcome:
        self.seq += 1
        if subject is not None and subject.command in FARM_COMMANDS:
            self.recorder.rare_row("farm_events", farm_event_row(
                self.seq, ts, subject, before, after, outcome, batch))
            return CommandOutcome(self.seq, ts, agent if command == "move"
                                  else subject.farm or agent, command, outcome, after)
        self.recorder.rare_row("agent_events", (
            self.seq, ts, agent, command, before, after, spec_before, spec_after, actor,
            reason, outcome, batch))
        if self.bus is not None and self.bus.wants(AGENT):
            self.bus.publish(AGENT, ts, AgentStateChanged(
                ts, agent, after or "", before, command, actor, reason, outcome))
        return CommandOutcome(self.seq, ts, agent, command, outcome, after)


def _paused(call: OnBar, shadow: dict[int, Signal | None], s: int) -> OnBar:
    """A paused agent still sees each bar; its signals are kept aside, not stood."""

    def paused(view: MarketView) -> None:
        signal = call(view)
        if signal is not None:
            shadow[s] = signal

    return paused
