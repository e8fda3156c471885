"""The controller port: what the API's control endpoints ask of whatever runs the agents.

``Controller`` is a Protocol with two implementations, named by mode:

* ``SessionControl`` over a ``live.runner.LiveRunner`` (``quorum live --api``): commands go
  to ``LiveRunner.submit`` (applied by the session's single consumer between two bars,
  stored in ``agent_events``); the agent set, per-agent figures and positions are the
  session's own, current to the last bar; store writes (an alert's acknowledgement, the
  audit rows) go through the session's store writer thread, so DuckDB keeps one writer
  and the trading loop never waits for them.
* ``ReadOnlyControl``: ``quorum serve`` (the store opened read-only) and ``quorum run
  --api`` (a backtest is steered by its scenario's scripted ``[[events]]``, which keep it
  deterministic; a command at a wall-clock moment would not). Control answers 409
  ``read_only``; what the API reads comes from the store.

``outcome_of`` waits for a command's outcome on the API's own event loop, bounded in time:
the trading path never waits for the API, the API never waits for ever.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol, TypeVar

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from sim.agent_commands import AgentBatch, AgentCommand, CommandOutcome
from sim.lifecycle import AgentInfo
from sim.monitor.figures import AgentFigures, PositionView
from sim.monitor.sinks import acknowledge_alert

T = TypeVar("T")
Job = Callable[[duckdb.DuckDBPyConnection], T]


class ControlConfig(BaseModel):
    """Limits of the control endpoints: a token bucket per key (``burst`` calls at once,
    ``rate_per_s`` after), how long a call waits for its command's outcome, and the
    largest body taken."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_per_s: float = Field(default=5.0, gt=0, le=10_000)
    burst: int = Field(default=20, ge=1, le=100_000)
    command_timeout_s: float = Field(default=10.0, gt=0, le=600)
    max_body_bytes: int = Field(default=65_536, ge=1_024, le=10_000_000)


class ReadOnly(RuntimeError):
    """This server cannot change anything (the message says why)."""


class NotRunning(RuntimeError):
    """The session is not running (yet, or any more)."""


class CommandTimeout(TimeoutError):
    """The session did not apply a command within the time limit (it stays queued)."""


class Controller(Protocol):
    """What the control endpoints need of a session."""

    @property
    def read_only(self) -> str | None:
        """Why nothing can be changed here (None: control is on)."""

    def submit(self, command: AgentCommand | AgentBatch) -> Future[CommandOutcome]:
        """Queue a command; its stored outcome comes in the future."""

    def agents(self) -> tuple[AgentInfo, ...] | None:
        """The agent set now (None: ask the store)."""

    def figures(self) -> list[AgentFigures] | None:
        """Per-agent figures now (None: ask the store)."""

    def positions(self) -> list[PositionView] | None:
        """Open positions now (None: ask the store)."""

    def acknowledge(self, run_id: str, alert_id: int) -> Future[bool]:
        """Mark an alert acknowledged in the store (False: no such alert stored)."""

    def record(self, job: Job[None]) -> None:
        """Write an audit row (``job``) when and where this server can write."""


class ReadOnlyControl:
    """No control: every command and acknowledgement is refused with ``reason``. Audit
    rows go to ``audit_con`` (a writable connection to a table only the API writes), or
    nowhere (``quorum serve`` opens the store read-only)."""

    def __init__(self, reason: str, audit_con: duckdb.DuckDBPyConnection | None = None
                 ) -> None:
        self._reason = reason
        self._audit = audit_con
        self._lock = threading.Lock()

    @property
    def read_only(self) -> str | None:
        return self._reason

    def submit(self, command: AgentCommand | AgentBatch) -> Future[CommandOutcome]:
        raise ReadOnly(self._reason)

    def agents(self) -> tuple[AgentInfo, ...] | None:
        return None

    def figures(self) -> list[AgentFigures] | None:
        return None

    def positions(self) -> list[PositionView] | None:
        return None

    def acknowledge(self, run_id: str, alert_id: int) -> Future[bool]:
        raise ReadOnly(self._reason)

    def record(self, job: Job[None]) -> None:
        if self._audit is None:
            return
        with self._lock:
            cursor = self._audit.cursor()
        try:
            job(cursor)
        finally:
            cursor.close()


class SessionControl:
    """Control of one running ``LiveRunner`` (typed loosely: ``quorum`` may hold a
    runner; only these attributes are used)."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self._lock = threading.Lock()

    @property
    def read_only(self) -> str | None:
        return None

    def submit(self, command: AgentCommand | AgentBatch) -> Future[CommandOutcome]:
        try:
            return self.runner.submit(command)  # type: ignore[no-any-return]
        except RuntimeError as exc:  # before the session runs, or after it ended
            raise NotRunning(str(exc)) from None

    def agents(self) -> tuple[AgentInfo, ...] | None:
        return self.runner.lifecycle.snapshot()  # type: ignore[no-any-return]

    def figures(self) -> list[AgentFigures] | None:
        watch = self.runner.watch
        return None if watch is None else list(watch.figures.figures)

    def positions(self) -> list[PositionView] | None:
        watch = self.runner.watch
        return None if watch is None else list(watch.figures.positions)

    def acknowledge(self, run_id: str, alert_id: int) -> Future[bool]:
        return self._write(lambda con: acknowledge_alert(con, run_id, alert_id))

    def record(self, job: Job[None]) -> None:
        self._write(job)

    def _write(self, job: Job[T]) -> Future[T]:
        """Run ``job`` on the session's store writer (after what it holds: rows handed
        over before are written first); before the writer exists or after it failed,
        on a cursor of the store's connection. A failing job never fails the writer."""
        future: Future[T] = Future()

        def run(con: duckdb.DuckDBPyConnection) -> None:
            try:
                future.set_result(job(con))
            except Exception as exc:  # handed to the caller, not to the session
                future.set_exception(exc)

        writer = self.runner.writer
        if writer is not None and writer.error is None:
            try:
                writer.submit(run)
                return future
            except Exception:  # it failed just now: write beside it
                pass
        with self._lock:
            cursor = self.runner.store.con.cursor()
        try:
            run(cursor)
        finally:
            cursor.close()
        return future


async def outcome_of(controller: Controller, command: AgentCommand | AgentBatch,
                     timeout_s: float) -> CommandOutcome:
    """Submit ``command`` and wait (on the caller's loop, not the session's) for its
    stored outcome; ``CommandTimeout`` past ``timeout_s``."""
    future = controller.submit(command)
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except TimeoutError:
        raise CommandTimeout(f"the session did not apply the command within {timeout_s:g} s"
                             " (it stays queued; its outcome will be in agent_events)"
                             ) from None


async def wait(future: Future[T], timeout_s: float, what: str) -> T:
    """A store write's result, bounded in time."""
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
    except TimeoutError:
        raise CommandTimeout(f"{what}: not written within {timeout_s:g} s") from None
