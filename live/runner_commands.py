"""Commands that reach a live session from outside its loop: agent lifecycle commands
(``submit``, from any thread: the API, a local channel) queued for the session's one
consumer, which applies them between bars and stores them, and the kill switch (a file,
a signal, the API, a ``kill`` lifecycle command), pulled durably and applied before the
next bar.

Split from ``live.runner`` along that seam: each is a message on the runner's queue (or a
scheduled event on the engine's), applied by the same single consumer as a bar.
"""

from __future__ import annotations

import asyncio
import sys
from concurrent.futures import Future
from typing import TYPE_CHECKING

import duckdb

from sim.agent_commands import AgentBatch, AgentCommand, CommandOutcome
from sim.messages import ScenarioEvent

if TYPE_CHECKING:
    from live.risk_state import RiskTrips
    from sim.engine import Engine
    from sim.lifecycle import AgentRoster


class SessionCommands:
    """``LiveRunner``'s commands and kill switch (a mixin: the state is the runner's,
    declared below for the type checker only)."""

    if TYPE_CHECKING:
        run_id: str
        engine: Engine
        queue: asyncio.Queue[object]
        killed_by: str | None
        trips: RiskTrips | None
        _loop: asyncio.AbstractEventLoop | None

    def submit(self, command: AgentCommand | AgentBatch) -> Future[CommandOutcome]:
        """Queue a lifecycle command (any thread); the session's consumer applies it
        between bars and stores it. The future's result is its ``CommandOutcome``
        (applied, or rejected with why)."""
        return self._enqueue(_Submitted(command, None))

    def submit_rejected(self, command: AgentCommand, why: str) -> Future[CommandOutcome]:
        """Store ``command`` as rejected (a message that was not one)."""
        return self._enqueue(_Submitted(command, why))

    def _enqueue(self, item: _Submitted) -> Future[CommandOutcome]:
        loop = self._loop
        if loop is None or loop.is_closed():
            raise RuntimeError(f"session {self.run_id} is not running")
        try:
            here = asyncio.get_running_loop() is loop
        except RuntimeError:
            here = False
        if here:  # in order with what this thread queued before (a feed, a watcher)
            self.queue.put_nowait(item)
        else:
            loop.call_soon_threadsafe(self.queue.put_nowait, item)
        return item.future

    def kill(self, source: str) -> None:
        """Pull the scenario's kill switch now: it takes effect before the next bar (only
        position-reducing orders pass; with ``flatten_on_trip`` positions are closed)."""
        if self.killed_by is not None:
            print(f"quorum live: kill switch already pulled by {self.killed_by}; {source} "
                  "changes nothing", file=sys.stderr, flush=True)
            return
        self.killed_by = source
        if self.trips is not None:
            self.trips.pull(source)
        now = self.engine.clock.now_ns()
        print(f"quorum live: KILL SWITCH pulled by {source} (run {self.run_id})",
              file=sys.stderr, flush=True)
        self.engine.schedule_events([ScenarioEvent(now, "kill_switch")])

    def _kill_command(self, ts: int, flatten: bool, source: str) -> None:
        """A ``kill`` lifecycle command: the kill switch now (the consumer applies it
        between bars), pulled durably as ``kill`` does; ``flatten`` closes every
        position even when the scenario does not flatten on a trip."""
        if self.killed_by is None:
            self.killed_by = source
            if self.trips is not None:
                self.trips.pull(source)
            print(f"quorum live: KILL SWITCH pulled by {source} (run {self.run_id})",
                  file=sys.stderr, flush=True)
        self.engine.kill(ts, flatten)


class _Submitted:
    """A lifecycle command on the session's queue, and the future its outcome goes to."""

    __slots__ = ("command", "future", "why")

    def __init__(self, command: AgentCommand | AgentBatch, why: str | None) -> None:
        self.command = command
        self.why = why
        self.future: Future[CommandOutcome] = Future()

    def apply(self, roster: AgentRoster) -> None:
        try:
            if self.why is not None:
                assert isinstance(self.command, AgentCommand)
                outcome = roster.reject(self.command, self.why)
            else:
                outcome = roster.apply(self.command)
        except BaseException as exc:  # a bug, not bad input: the session fails on it
            self.future.set_exception(exc)
            raise
        self.future.set_result(outcome)

def stored_seq(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """The last ``agent_events`` row number of ``run_id`` (0: none)."""
    row = con.execute("SELECT max(seq) FROM agent_events WHERE run_id = ?",
                      [run_id]).fetchone()
    return int(row[0]) if row and row[0] is not None else 0
