"""The control endpoints: agent lifecycle commands, the kill switch, alert
acknowledgement. Each body is a pydantic model (``extra="forbid"``: a misspelt field is a
422 naming it); each command goes to the ``Controller`` and the call answers with its
stored outcome: 200 with the ``agent_events`` outcome when applied, 409 in the one error
shape (code ``rejected``, the outcome beside it) when the session refused it.

Roles: ``operator`` pauses, resumes, stops, updates (PATCH), batches and acknowledges
alerts; ``admin`` spawns (also inside a batch) and pulls the kill switch.

(No ``from __future__ import annotations``: FastAPI reads the handlers' annotations.)
"""

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from quorum.api.access import Access, Caller, error
from quorum.api.control import ControlConfig, Controller, outcome_of, wait
from quorum.api.reads import StoreReader
from sim.agent_commands import (
    ALL_AGENTS,
    AgentBatch,
    AgentCommand,
    CommandOutcome,
    outcome_json,
)

AgentName = Annotated[str, Path(min_length=1, max_length=200)]
Reason = Annotated[str, Field(max_length=1000)]
Symbols = Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]],
                    Field(min_length=1, max_length=1000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReasonBody(_Body):
    reason: Reason = ""


class SpawnBody(_Body):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=200)
    params: dict[str, Any] = Field(default_factory=dict)
    symbols: Symbols | None = None
    reason: Reason = ""


class UpdateBody(_Body):
    params: dict[str, Any] | None = None
    symbols: Symbols | None = None
    reason: Reason = ""

    @model_validator(mode="after")
    def _something(self) -> "UpdateBody":
        if self.params is None and self.symbols is None:
            raise ValueError("give params and/or symbols to change")
        return self


class BatchItem(_Body):
    command: Literal["spawn", "pause", "resume", "stop", "update"]
    agent: str = Field(min_length=1, max_length=200)
    kind: str | None = Field(default=None, min_length=1, max_length=200)
    params: dict[str, Any] | None = None
    symbols: Symbols | None = None
    reason: Reason = ""


class BatchBody(_Body):
    commands: list[BatchItem] = Field(min_length=1, max_length=100)
    reason: Reason = ""


class KillBody(_Body):
    flatten: bool = False
    reason: Reason = ""


def _answer(outcome: CommandOutcome) -> dict[str, Any] | JSONResponse:
    body = outcome_json(outcome)
    if outcome.applied:
        return body
    return error(409, "rejected", outcome.outcome.removeprefix("rejected: "), None,
                 outcome=body)


def commands_router(reader: StoreReader, controller: Controller, access: Access,
                    config: ControlConfig) -> APIRouter:
    router = APIRouter()
    Operator = Annotated[Caller, Depends(access.require("operator"))]
    Admin = Annotated[Caller, Depends(access.require("admin"))]
    limit = config.command_timeout_s

    async def run(command: AgentCommand | AgentBatch) -> dict[str, Any] | JSONResponse:
        return _answer(await outcome_of(controller, command, limit))

    @router.post("/api/agents", summary="spawn an agent (admin)", response_model=None)
    async def spawn(who: Admin, body: SpawnBody) -> dict[str, Any] | JSONResponse:
        return await run(AgentCommand("spawn", body.name, who.actor, body.reason, body.kind,
                                      body.params, _symbols(body.symbols)))

    @router.post("/api/agents/batch", summary="several commands, all or none (operator; "
                                              "admin when one spawns)", response_model=None)
    async def batch(who: Operator, body: BatchBody) -> dict[str, Any] | JSONResponse:
        if any(c.command == "spawn" for c in body.commands) and who.role != "admin":
            raise HTTPException(403, f"role {who.role!r} may not spawn (needs admin)")
        return await run(AgentBatch(tuple(
            AgentCommand(c.command, c.agent, who.actor, c.reason, c.kind, c.params,
                         _symbols(c.symbols)) for c in body.commands), who.actor,
            body.reason))

    @router.post("/api/agents/{name}/{action}", summary="pause, resume or stop an agent "
                 "(operator)", response_model=None)
    async def act(who: Operator, name: AgentName,
                  action: Literal["pause", "resume", "stop"],
                  body: Annotated[ReasonBody | None, Body()] = None
                  ) -> dict[str, Any] | JSONResponse:
        reason = body.reason if body is not None else ""
        return await run(AgentCommand(action, name, who.actor, reason))

    @router.patch("/api/agents/{name}", summary="change an agent's params and/or symbols "
                  "(operator)", response_model=None)
    async def update(who: Operator, name: AgentName, body: UpdateBody
                     ) -> dict[str, Any] | JSONResponse:
        return await run(AgentCommand("update", name, who.actor, body.reason, None,
                                      body.params, _symbols(body.symbols)))

    @router.post("/api/kill", summary="emergency stop: the kill switch, optionally "
                                      "flattening every position (admin)", response_model=None)
    async def kill(who: Admin, body: Annotated[KillBody | None, Body()] = None
                   ) -> dict[str, Any] | JSONResponse:
        body = body or KillBody()
        return await run(AgentCommand("kill", ALL_AGENTS, who.actor, body.reason,
                                      flatten=body.flatten))

    @router.post("/api/alerts/{alert_id}/ack", summary="acknowledge an alert (operator)")
    async def ack(who: Operator, alert_id: Annotated[int, Path(ge=0, le=2**62)],
                  run: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        run_id = await asyncio.to_thread(reader.run_id, run)
        found = await wait(controller.acknowledge(run_id, alert_id), limit,
                           f"acknowledging alert {alert_id}")
        if not found:
            raise HTTPException(404, f"run {run_id} has no alert {alert_id} stored")
        return {"run_id": run_id, "alert_id": alert_id, "acknowledged": True,
                "outcome": "acknowledged"}

    return router


def _symbols(symbols: list[str] | None) -> tuple[str, ...] | None:
    return None if symbols is None else tuple(symbols)
