"""Running a sweep: workers make runs, the driver alone writes the run store.

A worker runs one combination into a ``CollectingStore`` (the ``RunStore`` port, kept in
memory) and returns what the store would have been told: the run row, every Arrow batch in
order, the final status, plus the run's metrics. The driver replays that into its DuckDB
file in one transaction per run, so a run is either stored whole or not at all, whatever
interrupts the driver. Workers never open the DuckDB file.

Executors yield outcomes as runs finish: ``serial`` (in this process), ``processes``
(a pool of spawned processes, one per core by default) or ``dask`` (a dask.distributed
cluster by address). The order runs finish in changes where rows sit in the file, never
what they are: every run's rows are inserted together in the order the run produced them,
and everything read back orders by combination index or parameter set (``reports.sweep``).

Resume: a run is identified by the hash of its resolved config (``sim.sweep``). Before
anything runs, the driver asks the store which of the sweep's runs are already there,
completed or failed, and runs only the others. A run left ``running``/``interrupted`` by
something else (or a failed one with ``retry_failed``) is deleted first and made again.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from sim.config import ScenarioConfig
from sim.provenance import code_version
from sim.store import TABLES, DuckDBStore
from sim.sweep import SWEEP_DDL, Sweep, SweepRun, canonical_json


# -- the worker side --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RunTask:
    run_id: str
    config: ScenarioConfig


@dataclass(slots=True)
class CollectingStore:
    """The ``RunStore`` port in memory: remembers every call, for the driver to replay."""

    created: tuple[Any, ...] | None = None
    batches: list[tuple[str, pa.Table]] = field(default_factory=list)
    finished: tuple[str, int, str | None] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def create_run(self, run_id: str, scenario: str, config: Any, seed: int,
                   code_version: str, data_hash: str) -> None:
        self.created = (scenario, config, seed, code_version, data_hash)
        self.started_at = datetime.now(UTC)

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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def execute_run(task: RunTask) -> RunOutcome:
    """Run one combination; any exception in the run becomes a failed outcome with its
    error (the sweep goes on). Interrupts are not caught."""
    from sim.runner import run_scenario

    store = CollectingStore()
    start = time.perf_counter()
    try:
        run_scenario(task.config, store, run_id=task.run_id)
        status, error = "completed", None
    except Exception as exc:
        status, error = "failed", _one_line(exc)
    metrics = _metrics(task.config, store) if status == "completed" else {}
    return RunOutcome(task.run_id, status, error, store, metrics, time.perf_counter() - start)


def _metrics(config: ScenarioConfig, store: CollectingStore) -> dict[str, float]:
    from reports.sweep import run_metrics

    equity = store.table("equity")
    fills = store.table("fills")
    ts = (equity.column("ts").cast(pa.int64()).to_numpy() if equity is not None
          else np.zeros(0, np.int64))
    values = (equity.column("equity").to_numpy() if equity is not None
              else np.zeros(0, np.float64))
    columns: dict[str, np.ndarray] = {}
    for name in ("ts", "symbol", "quantity", "price", "fee"):
        if fills is None:
            columns[name] = np.zeros(0, np.float64)
        elif name == "symbol":
            columns[name] = np.asarray(fills.column(name).cast(pa.string()).to_pylist(),
                                       dtype=object)
        elif name == "ts":
            columns[name] = fills.column(name).cast(pa.int64()).to_numpy()
        else:
            columns[name] = fills.column(name).to_numpy()
    return run_metrics(config.initial_cash, ts, values, columns)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the driver, which stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# -- executors --------------------------------------------------------------------------
class WorkerLost(RuntimeError):
    """A worker died or a cluster task failed outside a run (not a run's own failure)."""


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def run_serial(tasks: Sequence[RunTask]) -> Iterator[RunOutcome]:
    for task in tasks:
        yield execute_run(task)


def run_processes(tasks: Sequence[RunTask], workers: int) -> Iterator[RunOutcome]:
    """A pool of spawned processes (no fork: the driver holds a DuckDB connection and
    threads). At most ``2 * workers`` runs are queued, so an interrupt stops quickly and
    finished results do not pile up in memory."""
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_ignore_sigint)
    pending = iter(tasks)
    running: set[Any] = set()
    finished = False
    try:
        while True:
            while len(running) < 2 * workers:
                task = next(pending, None)
                if task is None:
                    break
                running.add(pool.submit(execute_run, task))
            if not running:
                finished = True
                return
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcome = future.result()
                except BrokenProcessPool as exc:
                    raise WorkerLost(f"a worker process died ({exc}); out of memory?") from None
                yield outcome
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:
            _stop_pool(pool)


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end busy workers now: their runs are dropped and
    made again on resume. (There is no public API for this before Python 3.14's
    ``terminate_workers``.)"""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)


def run_dask(tasks: Sequence[RunTask], address: str) -> Iterator[RunOutcome]:
    """Tasks on a dask.distributed cluster; its workers need this package installed and
    the scenario's data files at the same paths."""
    from distributed import Client, as_completed

    _check_reachable(address)
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnreachable(f"cannot reach the dask scheduler at {address}: "
                                 f"{_one_line(exc)}") from None
    token = os.urandom(4).hex()
    futures = [client.submit(execute_run, t, key=f"quorum-run-{t.run_id}-{token}", pure=False)
               for t in tasks]
    try:
        for future in as_completed(futures, loop=client.loop):
            try:
                yield future.result()
            except Exception as exc:
                raise WorkerLost(f"dask task {future.key} failed: {_one_line(exc)}") from None
    finally:
        client.cancel(futures)
        client.close()


class ClusterUnreachable(ValueError):
    """--cluster names no reachable scheduler (bad input: exit 2)."""


def _check_reachable(address: str) -> None:
    """Fail in a moment, not after the client's connect timeout, when nothing listens on a
    tcp:// address (a refused connection is final; dask would keep retrying)."""
    from urllib.parse import urlsplit

    parts = urlsplit(address)
    if parts.scheme != "tcp":
        return  # tls://, inproc://, ...: left to dask
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or not port:
        raise ClusterUnreachable(f"--cluster {address!r}: expected tcp://HOST:PORT")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise ClusterUnreachable(f"cannot reach the dask scheduler at {address}: "
                                 f"{exc.strerror or exc}") from None


# -- the driver -------------------------------------------------------------------------
def create_sweep_tables(store: DuckDBStore) -> None:
    for ddl in SWEEP_DDL:
        store.con.execute(ddl)


def register_sweep(store: DuckDBStore, sweep: Sweep) -> None:
    """The sweep and its combinations, once (same sweep id: already there)."""
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
            [sweep.sweep_id, sweep.config.name, sweep.source,
             canonical_json(sweep.config.model_dump(mode="json")), len(sweep.runs)])
        from sim.sweep import describe_params

        con.executemany(
            "INSERT INTO sweep_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [[sweep.sweep_id, r.idx, r.run_id, r.param_set, canonical_json(r.params),
              describe_params(r.params), r.regime, r.seed] for r in sweep.runs])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def stored_status(store: DuckDBStore, run_ids: Sequence[str]) -> dict[str, str]:
    rows = store.con.execute("SELECT run_id, status FROM runs WHERE list_contains(?, run_id)",
                             [list(run_ids)]).fetchall()
    return dict(rows)


def delete_runs(store: DuckDBStore, run_ids: Sequence[str]) -> None:
    if not run_ids:
        return
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        for table in (*TABLES, "run_metrics", "runs"):
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)", [list(run_ids)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def merge_outcome(store: DuckDBStore, run: SweepRun, outcome: RunOutcome) -> None:
    """Store one run whole, in one transaction: the run row as its worker made it (or, if
    it failed before it started, one saying so), its batches in order, its metrics."""
    con = store.con
    got = outcome.store
    con.execute("BEGIN TRANSACTION")
    try:
        if got.created is not None:
            store.create_run(outcome.run_id, *got.created)
        else:  # failed before the run existed (e.g. its data could not be loaded)
            store.create_run(outcome.run_id, run.config.name,
                             run.config.model_dump(mode="json"), run.config.seed,
                             code_version(), "")
        for table, batch in got.batches:
            store.append(outcome.run_id, table, batch)
        if got.finished is not None:
            store.finish_run(outcome.run_id, *got.finished)
        else:
            store.finish_run(outcome.run_id, "failed", 0, outcome.error)
        if got.started_at is not None and got.finished_at is not None:
            con.execute("UPDATE runs SET started_at = ?, finished_at = ? WHERE run_id = ?",
                        [got.started_at, got.finished_at, outcome.run_id])
        if outcome.metrics:
            con.executemany("INSERT INTO run_metrics VALUES (?, ?, ?)", [
                [outcome.run_id, name, None if math.isnan(v) else v]
                for name, v in sorted(outcome.metrics.items())])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """Reported after each stored run: how far, and what just finished."""

    done: int
    total: int
    failed: int
    run: SweepRun
    outcome: RunOutcome


@dataclass(frozen=True, slots=True)
class SweepPlan:
    total: int  # distinct runs in the sweep
    already: int  # stored before this invocation
    todo: list[SweepRun]


def plan_sweep(store: DuckDBStore, sweep: Sweep, retry_failed: bool = False) -> SweepPlan:
    """Register the sweep, clear leftovers, and list the runs still to make."""
    create_sweep_tables(store)
    register_sweep(store, sweep)
    unique = sweep.unique_runs()
    status = stored_status(store, [r.run_id for r in unique])
    keep = {"completed"} if retry_failed else {"completed", "failed"}
    delete_runs(store, [rid for rid, s in status.items() if s not in keep])
    todo = [r for r in unique if status.get(r.run_id) not in keep]
    return SweepPlan(len(unique), len(unique) - len(todo), todo)


Executor = Callable[[Sequence[RunTask]], Iterator[RunOutcome]]


def executor_for(workers: int | None, cluster: str | None) -> Executor:
    if cluster is not None:
        return lambda tasks: run_dask(tasks, cluster)
    n = workers or default_workers()
    if n <= 1:
        return run_serial
    return lambda tasks: run_processes(tasks, n)


def execute_sweep(store: DuckDBStore, plan: SweepPlan, executor: Executor,
                  on_stored: Callable[[SweepProgress], None] | None = None) -> int:
    """Run ``plan.todo`` and store each run as it finishes; returns how many failed.

    Ctrl-C (KeyboardInterrupt) stops the executor and propagates; every run stored before
    it is complete, and a rerun picks up the rest."""
    by_id = {r.run_id: r for r in plan.todo}
    tasks = [RunTask(r.run_id, r.config) for r in plan.todo]
    done, failed = plan.already, 0
    outcomes = executor(tasks)
    try:
        for outcome in outcomes:
            run = by_id[outcome.run_id]
            with sigint_deferred():
                merge_outcome(store, run, outcome)
            done += 1
            failed += outcome.status != "completed"
            if on_stored is not None:
                on_stored(SweepProgress(done, plan.total, failed, run, outcome))
    finally:
        close = getattr(outcomes, "close", None)
        if close is not None:
            close()
    return failed


@contextmanager
def sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C until the block is done, then raise it. DuckDB turns a signal that
    arrives mid-query into "Query interrupted" and aborts the transaction; a run being
    stored is better finished (a few ms) than rolled back and made again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextmanager
def opened(path: str) -> Iterator[DuckDBStore]:
    with DuckDBStore(path) as store:
        create_sweep_tables(store)
        yield store
