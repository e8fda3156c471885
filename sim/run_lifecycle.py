"""The scenario's agents under lifecycle control: the roster that steers them
(``sim.lifecycle.AgentRoster``, a farm run's ``FarmRoster``) with each agent's failure
tolerance (``error_policy``), and the scenario's agent_* and farm_* ``[[events]]`` as the
lifecycle commands it runs at their times (``scripted_commands``).

Split from ``sim.runner`` along that seam: ``build_engine`` wires the pipeline and hands
its agents to this roster. ``sim.runner`` re-exports the names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sim.agent_commands import ALL_AGENTS, AgentBatch, AgentCommand
from sim.agent_faults import ErrorPolicy
from sim.bus import EventBus
from sim.config import AgentConfig, ScenarioConfig
from sim.config_base import parse_duration, parse_timestamp
from sim.engine import Engine
from sim.farm_engine import FarmEngine
from sim.farm_lifecycle import FarmRoster
from sim.lifecycle import AgentRoster
from sim.recorder import Recorder


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
