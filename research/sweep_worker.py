"""What a sweep worker does: one run into memory, handed back whole.

``execute_run`` runs a combination into a ``CollectingStore`` (the ``RunStore`` port kept
in memory) and returns what the store was told, in order (the run row, every Arrow batch,
the final status), with the run's metrics computed from those batches. It opens no file,
so any number of workers, local or on a cluster, can run at once; the driver
(``research.sweep_driver``) alone writes the run store.
"""

from __future__ import annotations

import gc
import importlib
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from sim.agent_failure import with_agent
from sim.config import ScenarioConfig
from sim.data_cache import DataCache

# A worker's runs share a few generated data sets (the bundled sweep: 18 for 1,296 runs).
_DATA = DataCache()


@dataclass(frozen=True, slots=True)
class RunTask:
    run_id: str
    config: ScenarioConfig


@dataclass(slots=True)
class CollectingStore:
    """The ``RunStore`` port in memory: remembers every call, for the driver to replay.
    The wall-clock stamps are taken here, where the run ran."""

    created: tuple[Any, ...] | None = None
    batches: list[tuple[str, pa.Table]] = field(default_factory=list)
    finished: tuple[str, int, str | None] | None = None
    code: tuple[str, str, str, dict[str, str]] | None = None  # config_id, code_id, ...
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def create_run(self, run_id: str, scenario: str, config: Any, seed: int,
                   code_version: str, data_hash: str, mode: str = "backtest") -> None:
        self.created = (scenario, config, seed, code_version, data_hash, mode)
        self.started_at = datetime.now(UTC)

    def record_code(self, run_id: str, config_id: str, code_id: str, quorum: str,
                    modules: dict[str, str]) -> None:
        self.code = (config_id, code_id, quorum, dict(modules))

    def append(self, run_id: str, table: str, batch: pa.Table) -> None:
        if batch.num_rows:
            self.batches.append((table, batch))

    def finish_run(self, run_id: str, status: str, n_bars: int, error: str | None) -> None:
        self.finished = (status, n_bars, error)
        self.finished_at = datetime.now(UTC)

    def table(self, name: str) -> pa.Table | None:
        parts = [b for t, b in self.batches if t == name]
        return pa.concat_tables(parts) if parts else None


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What a worker hands back for one run."""

    run_id: str
    status: str  # completed | failed
    error: str | None
    store: CollectingStore
    metrics: dict[str, float]
    seconds: float
    traceback: str | None = None  # a failure's, for ``quorum sweep --debug`` (not stored)


def one_line(exc: BaseException) -> str:
    """``Type: message``, naming the agent, symbol and bar when an agent raised."""
    return with_agent(exc)


def execute_run(task: RunTask) -> RunOutcome:
    """Run one combination. Any exception in the run becomes a failed outcome carrying
    its error (the sweep goes on); interrupts are not caught."""
    from sim.runner import run_scenario

    store = CollectingStore()
    start = time.perf_counter()
    try:
        run_scenario(task.config, store, run_id=task.run_id, data_cache=_DATA)
        status, error, trace = "completed", None, None
    except Exception as exc:
        status, error = "failed", one_line(exc)
        trace = "".join(traceback.format_exception(exc))
    metrics = run_metrics_of(task.config, store) if status == "completed" else {}
    return RunOutcome(task.run_id, status, error, store, metrics, time.perf_counter() - start,
                      trace)


def shared_batch(table: pa.Table) -> bool:
    """Whether ``table`` is a batch that other runs of this worker store too (the
    ``bars`` of a cached data set; ``research.sweep_payload`` sends it once)."""
    return _DATA.holds(table)


def run_metrics_of(config: ScenarioConfig, store: CollectingStore) -> dict[str, float]:
    """``reports.sweep.run_metrics`` from the run's own equity and fills batches."""
    from reports.sweep import run_metrics

    equity = store.table("equity")
    fills = store.table("fills")
    if equity is None:
        ts, values = np.zeros(0, np.int64), np.zeros(0, np.float64)
    else:
        ts = equity.column("ts").cast(pa.int64()).to_numpy()
        values = equity.column("equity").to_numpy()
    columns: dict[str, np.ndarray] = {}
    for name in ("ts", "symbol", "quantity", "price", "fee"):
        if fills is None:
            columns[name] = np.zeros(0, np.int64 if name == "ts" else np.float64)
        elif name == "symbol":
            columns[name] = np.asarray(fills.column(name).cast(pa.string()).to_pylist(),
                                       dtype=object)
        elif name == "ts":
            columns[name] = fills.column(name).cast(pa.int64()).to_numpy()
        else:
            columns[name] = fills.column(name).to_numpy()
    return run_metrics(config.initial_cash, ts, values, columns)


# A pool worker's young-generation threshold once settled (CPython's default is 700).
GC_YOUNG = 10_000


def settle_gc() -> None:
    """After a pool worker's first run: what it imported and built to stay (modules,
    classes, the data cache's first set) moves out of the collector's sight
    (``gc.freeze``), and young collections come after ``GC_YOUNG`` allocations, not 700.
    A bundled sweep run spent about 7% of its CPU in the collector, mostly walking
    those long-lived objects again and again. Collection stays on: a user agent that
    makes reference cycles has them collected, only less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG, older, oldest)


# What a run imports the first time it runs (``prepare_worker``).
_RUN_MODULES = ("sim.runner", "reports.sweep")


def prepare_worker() -> None:
    """A pool worker, before its first task: import what a run needs (about 0.3 s of CPU),
    so that it is done while the driver still loads and plans the sweep."""
    for name in _RUN_MODULES:
        importlib.import_module(name)
