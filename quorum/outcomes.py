"""What the CLI says about a run that raised, and with which exit code.

The run row decides, not the exception's class: once the run is in the store, anything
it raises (an agent's ``ConfigError`` included) is the run failing, exit 1 with its id;
before that, bad input is exit 2, a store that cannot be written is exit 2 naming it,
and anything else failed with nothing stored (and says so). A signal is an interruption
wherever it surfaced (DuckDB reports a Ctrl-C mid-statement as its own error).
"""

from __future__ import annotations

import signal

import duckdb

from quorum import signals
from sim.agent_failure import with_agent
from sim.agents.base import AgentError
from sim.config_base import ConfigError
from sim.data import DataError
from sim.store import DuckDBStore, StoreError, is_interrupt

BAD_INPUT = (ConfigError, DataError, AgentError, StoreError)


class RunFailed(Exception):
    """The run failed: stored as failed when the message says so (exit 1)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM; the message says what became of the run (exit 130 / 143)."""


def stored_status(store: DuckDBStore, run_id: str) -> str | None:
    """The run's status in the store, None when it has no row (or the store cannot say)."""
    try:
        row = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                [run_id]).fetchone()
    except duckdb.Error:
        return None
    return None if row is None else str(row[0])


def run_error(store: DuckDBStore, run_id: str, db: str, exc: BaseException) -> BaseException:
    """The exception the CLI reports for ``exc``, raised while running ``run_id``."""
    status = stored_status(store, run_id)
    show = f"quorum show {run_id} --db {db}"
    if isinstance(exc, KeyboardInterrupt) or is_interrupt(exc) or signals.received():
        why = signals.received()
        what = "interrupted" + (f" ({signal.Signals(why).name})" if why else "")
        if status is None:
            return Interrupted(f"{what} before the run was stored; nothing stored")
        return Interrupted(f"{what}; run {run_id} stored as {status} with what was "
                           f"computed ({show})")
    text = with_agent(exc)  # names the agent, symbol and bar when an agent raised
    if status is not None:
        return RunFailed(f"{text} (run {run_id}, stored as {status}; {show})")
    if isinstance(exc, BAD_INPUT):
        return exc
    if isinstance(exc, duckdb.Error | OSError):
        return StoreError(f"cannot write run store {db}: {text}")
    return RunFailed(f"{text} (before the run was stored: nothing stored)")
