"""Agent lifecycle commands and their outcomes: the small typed messages that steer a
running pipeline's agents.

A command names its agent, its actor (who sent it: "scenario", "operator", "api", ...)
and a reason. Whatever sends it (a scenario's ``[[events]]``, ``LiveRunner.submit``,
``quorum agent``, the control API), the pipeline's single consumer applies it between
bars (``sim.lifecycle.AgentRoster``), stores it as an ``agent_events`` row and publishes
an ``AgentStateChanged`` on the bus. Bad input never raises into the pipeline: it becomes a
rejected outcome with its reason, stored like an applied one.

Commands: ``spawn`` (kind, params, symbols), ``pause``, ``resume``, ``stop``, ``update``
(params merged into the agent's, and/or new symbols), ``kill`` (the account's kill
switch, ``flatten`` to close every position; agent ``"*"``); ``AgentBatch`` applies several
all or none.

Farm commands (runs with ``[[farms]]``, ``sim.farm_lifecycle``): ``move`` (the agent to
``farm``), ``farm_pause``, ``farm_resume`` and ``farm_kill`` (``flatten`` to close that
farm's positions) of ``farm`` (agent ``"*"``). They are stored in ``farm_events``
(``farm_event_row``), not ``agent_events``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

ACTIVE, PAUSED, STOPPED, ERRORED = "active", "paused", "stopped", "errored"
STATES = (ACTIVE, PAUSED, STOPPED, ERRORED)
COMMANDS = ("spawn", "pause", "resume", "stop", "update", "kill")
FARM_COMMANDS = ("move", "farm_pause", "farm_resume", "farm_kill")
# Rows the kernel writes itself: the agents a run starts with, the circuit breaker.
KERNEL_COMMANDS = ("start", "error")
ALL_AGENTS = "*"
APPLIED = "applied"


@dataclass(frozen=True, slots=True)
class AgentCommand:
    """One lifecycle command. ``kind``/``params``/``symbols``: for ``spawn`` (kind
    required) and ``update`` (params merged into the current ones; symbols replace them);
    ``flatten``: for ``kill`` and ``farm_kill``; ``farm``: the farm of a farm command
    (for ``move``, where the agent goes)."""

    command: str
    agent: str
    actor: str = "operator"
    reason: str = ""
    kind: str | None = None
    params: Mapping[str, Any] | None = None
    symbols: tuple[str, ...] | None = None
    flatten: bool = False
    farm: str | None = None

    def describe(self) -> str:
        if self.command == "move":
            return f"move {self.agent!r} to {self.farm!r}"
        if self.command in FARM_COMMANDS:
            return f"{self.command} {self.farm!r}"
        return f"{self.command} {self.agent!r}"


@dataclass(frozen=True, slots=True)
class AgentBatch:
    """Commands applied together, in order, all or none: one that would be rejected
    rejects the batch, naming it."""

    commands: tuple[AgentCommand, ...]
    actor: str = "operator"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What became of a command: ``outcome`` is "applied" or "rejected: <why>";
    ``seq`` its ``agent_events`` row; ``state`` the agent's state after it. A batch's
    outcome holds one outcome per command in ``results``."""

    seq: int
    ts: int
    agent: str
    command: str
    outcome: str
    state: str | None
    results: tuple[CommandOutcome, ...] = ()

    @property
    def applied(self) -> bool:
        return self.outcome == APPLIED


class CommandError(ValueError):
    """A command message that is not one (one line naming the field)."""


class AgentCommandModel(BaseModel):
    """A command as JSON (the local channel, the control API): validated here, so a bad
    message is one line naming its field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["spawn", "pause", "resume", "stop", "update", "kill", "move",
                     "farm_pause", "farm_resume", "farm_kill"]
    agent: str = Field(default=ALL_AGENTS, min_length=1)
    actor: str = Field(default="operator", min_length=1)
    reason: str = ""
    kind: str | None = None
    params: dict[str, Any] | None = None
    symbols: list[str] | None = None
    flatten: bool = False
    farm: str | None = Field(default=None, min_length=1)

    def message(self) -> AgentCommand:
        return AgentCommand(self.command, self.agent, self.actor, self.reason, self.kind,
                            self.params, None if self.symbols is None
                            else tuple(self.symbols), self.flatten, self.farm)


class AgentBatchModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: list[AgentCommandModel] = Field(min_length=1)
    actor: str = Field(default="operator", min_length=1)
    reason: str = ""

    def message(self) -> AgentBatch:
        return AgentBatch(tuple(c.message() for c in self.batch), self.actor, self.reason)


def parse_command(data: Mapping[str, Any]) -> AgentCommand | AgentBatch:
    """A command or a batch (``{"batch": [...]}``) from a JSON object; ``CommandError``
    naming the field otherwise."""
    model: type[BaseModel] = AgentBatchModel if "batch" in data else AgentCommandModel
    try:
        parsed = model.model_validate(dict(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "command"
        raise CommandError(f"{where}: {first['msg']}") from None
    return parsed.message()  # type: ignore[attr-defined,no-any-return]


def command_json(command: AgentCommand | AgentBatch) -> dict[str, Any]:
    """The JSON form ``parse_command`` reads back."""
    if isinstance(command, AgentBatch):
        return {"batch": [command_json(c) for c in command.commands],
                "actor": command.actor, "reason": command.reason}
    out: dict[str, Any] = {"command": command.command, "agent": command.agent,
                           "actor": command.actor, "reason": command.reason}
    if command.kind is not None:
        out["kind"] = command.kind
    if command.params is not None:
        out["params"] = dict(command.params)
    if command.symbols is not None:
        out["symbols"] = list(command.symbols)
    if command.flatten:
        out["flatten"] = True
    if command.farm is not None:
        out["farm"] = command.farm
    return out


def outcome_json(outcome: CommandOutcome) -> dict[str, Any]:
    return {"seq": outcome.seq, "ts": outcome.ts, "agent": outcome.agent,
            "command": outcome.command, "outcome": outcome.outcome, "state": outcome.state,
            "results": [outcome_json(r) for r in outcome.results]}


def farm_event_row(seq: int, ts: int, command: AgentCommand, before: str | None,
                   after: str | None, outcome: str, batch: int | None) -> tuple[Any, ...]:
    """A farm command's ``farm_events`` row: the farm's state before and after it (for
    ``move``: the agent's farm before and after; ``farm`` is where it was sent)."""
    return (seq, ts, command.farm, command.command,
            command.agent if command.command == "move" else None, before, after,
            command.flatten, command.actor, command.reason, outcome, batch)


@dataclass(frozen=True, slots=True)
class StoredAgent:
    """An agent as the store last saw it (``current_agents``)."""

    name: str
    state: str
    kind: str
    params: dict[str, Any]
    symbols: tuple[str, ...] | None
    since_ns: int


def current_agents(con: duckdb.DuckDBPyConnection, run_id: str) -> list[StoredAgent]:
    """A run's agent set now: each agent's last applied ``agent_events`` row (its state
    and spec), in the order the agents first appeared. The ``agent_states`` view holds
    the same for every run."""
    rows = con.execute(
        "SELECT agent, state, spec, epoch_ns(since) FROM agent_states WHERE run_id = ?"
        " ORDER BY first_seq", [run_id]).fetchall()
    out = []
    for agent, state, spec, since in rows:
        parsed = json.loads(spec) if spec else {}
        symbols = parsed.get("symbols")
        out.append(StoredAgent(agent, state, parsed.get("kind", ""),
                               dict(parsed.get("params") or {}),
                               None if symbols is None else tuple(symbols), int(since or 0)))
    return out


def spec_json(kind: str, params: Mapping[str, Any], symbols: Sequence[str] | None) -> str:
    return json.dumps({"kind": kind, "params": dict(params),
                       "symbols": None if symbols is None else list(symbols)},
                      sort_keys=True, default=str)
