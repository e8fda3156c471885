"""A run on record in its store: created with its config, seed, code version and data
hash (and the code that made it, ``record_code``), then finished as completed, failed
(with the agent, symbol and bar that failed when one did) or interrupted; and the calling
agents' error counts, stored and held against their ``max_error_rate``.

Split from ``sim.runner`` along that seam: a backtest and a live session (``live.runner``)
both run inside ``stored_run``; what they run is the runner's. ``sim.runner`` re-exports
the names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

from sim.agent_failure import agent_failure
from sim.agents.base import CallStats
from sim.code_identity import code_identity
from sim.config import ScenarioConfig
from sim.config_base import ConfigError
from sim.config_sources import stored_config
from sim.engine import Engine
from sim.provenance import code_version
from sim.recorder import Recorder
from sim.run_identity import config_identity
from sim.store import RunStore, is_interrupt, settle


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
