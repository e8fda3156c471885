"""Running a sweep: workers make runs (``research.sweep_worker``), the driver alone writes
the run store.

The driver stores whatever the executor hands it (``research.sweep_executors``: a list of
finished runs) in one transaction: each run's row as its worker made it, every batch of
each run in the order the run produced it, and the run's metrics. So a run is in the store
whole or not at all, whatever interrupts the driver, and Ctrl-C is held while a
transaction is open (DuckDB would otherwise abort it mid-way).

Order: runs arrive in whatever order they finish, so they sit in the file in that order.
What they hold does not change: within a run, rows keep the run's own order, and
everything read back (``reports.sweep``) orders by combination index or parameter set.

Resume: a run is identified by the hash of its resolved config, data and code
(``sim.run_identity``). Before anything runs, the driver asks the store which of the
sweep's runs are there, completed or failed, and runs only the others. A run found
``running`` or ``interrupted`` (left by something else), or a failed one with
``retry_failed``, is deleted and made again.

Stale runs: a stored run of the same combination made by other code (an edited agent
module, another Quorum) is not the sweep's run; the combination runs again and the old
run stays in the store. With ``reuse_stale`` the combination points at the latest such
run instead (``sweep_runs.run_id``), and the report marks it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import ValidationError

from research.sweep import Sweep, SweepRun, canonical_json, describe_params
from research.sweep_executors import Executor, WorkerLost
from research.sweep_worker import RunOutcome, RunTask
from sim.config import ScenarioConfig
from sim.config_sources import stored_config, stored_scenario
from sim.interrupts import stop_signals_held as interrupts_deferred
from sim.provenance import code_version
from sim.run_identity import config_identity, legacy_run_id
from sim.schema import SWEEP_DDL, TABLES
from sim.store import DuckDBStore

# DuckDB column type -> the Arrow type a batch is cast to before runs are concatenated.
_ARROW_TYPES = {
    "TIMESTAMP_NS": pa.timestamp("ns"), "VARCHAR": pa.string(), "JSON": pa.string(),
    "DOUBLE": pa.float64(), "BIGINT": pa.int64(), "BOOLEAN": pa.bool_(),
    "VARCHAR[]": pa.list_(pa.string()), "DOUBLE[]": pa.list_(pa.float64()),
}


def create_sweep_tables(store: DuckDBStore) -> None:
    for ddl in SWEEP_DDL:
        store.con.execute(ddl)


@contextmanager
def transaction(store: DuckDBStore) -> Iterator[None]:
    con = store.con
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


# DuckDB settings while a sweep's runs are stored (``bulk_writes``): one thread (the
# workers have the cores; DuckDB's own threads only add hand-offs to appends this small)
# and a checkpoint every 256 MB of log, not every 16 MB (the default): each checkpoint
# rewrites the tables' last, partly filled row groups, once per commit otherwise.
_BULK_SETTINGS = {"threads": "1", "checkpoint_threshold": "256MB"}


@contextmanager
def bulk_writes(store: DuckDBStore) -> Iterator[None]:
    """``_BULK_SETTINGS`` on ``store``'s database for the block, the old values after."""
    con = store.con
    old = {name: con.execute("SELECT current_setting(?)", [name]).fetchone()
           for name in _BULK_SETTINGS}
    for name, value in _BULK_SETTINGS.items():
        con.execute(f"SET {name} = '{value}'")
    try:
        yield
    finally:
        for name, row in old.items():
            if row is not None:
                con.execute(f"SET {name} = '{row[0]}'")


def register_sweep(store: DuckDBStore, sweep: Sweep,
                   used: dict[str, str] | None = None) -> None:
    """The sweep and its combinations, once (the same sweep id is already there); each
    combination's run is ``used[run_id]`` (a stale run kept in its place) or its own."""
    used = used or {}
    with transaction(store):
        store.con.execute(
            "INSERT INTO sweeps VALUES (?, ?, ?, ?, ?, now()) ON CONFLICT DO NOTHING",
            [sweep.sweep_id, sweep.config.name, sweep.source,
             canonical_json(sweep.config.model_dump(mode="json")), len(sweep.runs)])
        rows = pa.table({
            "sweep_id": [sweep.sweep_id] * len(sweep.runs),
            "idx": [r.idx for r in sweep.runs],
            "run_id": [used.get(r.run_id, r.run_id) for r in sweep.runs],
            "param_set": [r.param_set for r in sweep.runs],
            "params": [canonical_json(r.params) for r in sweep.runs],
            "label": [describe_params(r.params) for r in sweep.runs],
            "regime": pa.array([r.regime for r in sweep.runs], pa.string()),
            "seed": [r.seed for r in sweep.runs],
        })
        store.con.register("_sweep_rows", rows)
        try:
            store.con.execute("INSERT INTO sweep_runs SELECT * FROM _sweep_rows "
                              "ON CONFLICT DO UPDATE SET run_id = excluded.run_id")
        finally:
            store.con.unregister("_sweep_rows")


def stored_status(store: DuckDBStore, run_ids: Sequence[str]) -> dict[str, str]:
    rows = store.con.execute("SELECT run_id, status FROM runs WHERE list_contains(?, run_id)",
                             [list(run_ids)]).fetchall()
    return dict(rows)


def stale_runs(store: DuckDBStore, runs: Sequence[SweepRun], statuses: Sequence[str]
               ) -> dict[str, str]:
    """Per run id of ``runs``: the latest stored run of the same combination (config and
    data) made by other code, with a status in ``statuses``. Runs stored before Quorum
    recorded code count too (``_legacy_runs``)."""
    if not runs:
        return {}
    found = store.con.execute(
        "SELECT r.finished_at, r.run_id, c.config_id FROM run_code c JOIN runs r"
        " USING (run_id) WHERE list_contains(?, c.config_id) AND list_contains(?, r.status)",
        [[r.identity.config_id for r in runs], list(statuses)]).fetchall()
    found += _legacy_runs(store, runs, statuses)
    found.sort(key=lambda f: (f[0] is not None, f[0] or 0, f[1]))  # by finish time
    latest = {config_id: run_id for _, run_id, config_id in found}  # the latest wins
    return {r.run_id: latest[r.identity.config_id] for r in runs
            if r.identity.config_id in latest and latest[r.identity.config_id] != r.run_id}


def _legacy_runs(store: DuckDBStore, runs: Sequence[SweepRun], statuses: Sequence[str]
                 ) -> list[tuple[Any, str, str]]:
    """(finished_at, run id, config id) of runs a Quorum before ``quorum-run/3`` stored for
    these combinations: no ``run_code`` row, an id that is still the old formula over the
    stored config (so the files are unchanged), and a config this Quorum reads."""
    rows = store.con.execute(
        "SELECT r.finished_at, r.run_id, r.config FROM runs r ANTI JOIN run_code c"
        " USING (run_id) WHERE list_contains(?, r.scenario) AND list_contains(?, r.status)"
        " AND r.mode = 'backtest'",
        [sorted({r.config.name for r in runs}), list(statuses)]).fetchall()
    out = []
    for finished_at, run_id, text in rows:
        raw = json.loads(text)
        if legacy_run_id(raw) != run_id:
            continue
        try:
            config_id = config_identity(ScenarioConfig.model_validate(stored_scenario(raw)))
        except (ValidationError, ValueError):  # ConfigError is a ValueError
            continue
        out.append((finished_at, run_id, config_id))
    return out


def delete_runs(store: DuckDBStore, run_ids: Sequence[str]) -> None:
    if not run_ids:
        return
    with transaction(store):
        for table in (*TABLES, "run_metrics", "run_code", "runs"):
            store.con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id)",
                              [list(run_ids)])


# -- storing finished runs --------------------------------------------------------------
def merge_outcomes(store: DuckDBStore, items: Sequence[tuple[SweepRun, RunOutcome]]) -> None:
    """Store finished runs whole, in one transaction (``insert_outcomes``)."""
    with transaction(store):
        insert_outcomes(store, items)


def insert_outcomes(store: DuckDBStore, items: Sequence[tuple[SweepRun, RunOutcome]]) -> None:
    """Insert finished runs whole, in the caller's transaction: one statement per table
    for all of them (with many short runs, per-statement cost would make the driver the
    bottleneck)."""
    by_table: dict[str, list[tuple[str, pa.Table]]] = {}
    for _, o in items:
        for name, batch in o.store.batches:
            by_table.setdefault(name, []).append((o.run_id, batch))
    _insert_arrow(store, "runs", _run_rows(items))
    _insert_arrow(store, "run_code", _code_rows(items))
    for table in TABLES:
        parts = by_table.get(table)
        if parts:
            _append_runs(store, table, parts)
    metrics = [(o.run_id, name, value) for _, o in items
               for name, value in sorted(o.metrics.items())]
    if metrics:
        run_ids, names, values = zip(*metrics, strict=True)
        _insert_arrow(store, "run_metrics", pa.table({
            "run_id": list(run_ids), "metric": list(names),
            "value": pa.array([None if math.isnan(v) else v for v in values],
                              pa.float64())}))


def _run_rows(items: Sequence[tuple[SweepRun, RunOutcome]]) -> pa.Table:
    """The runs' rows as ``DuckDBStore.create_run`` and ``finish_run`` write them (config
    as sorted-key JSON), stamped with the worker's wall-clock times. A run that failed
    before it started (e.g. its data could not be loaded) gets a row saying so."""
    rows = []
    for run, outcome in items:
        got = outcome.store
        if got.created is not None:
            scenario, config, seed, version, data_hash, mode = got.created
        else:
            scenario, config, seed = (run.config.name, stored_config(run.config),
                                      run.config.seed)
            version, data_hash, mode = code_version(), "", "backtest"
        status, n_bars, error = (got.finished if got.finished is not None
                                 else ("failed", 0, outcome.error))
        now = datetime.now(UTC)
        rows.append({"run_id": outcome.run_id, "scenario": scenario,
                     "config": json.dumps(config, sort_keys=True), "seed": seed,
                     "code_version": version, "data_hash": data_hash, "status": status,
                     "started_at": got.started_at or now, "finished_at": got.finished_at or now,
                     "n_bars": n_bars, "error": error, "mode": mode})
    stamp = pa.timestamp("us", tz="UTC")
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("run_id", pa.string()), ("scenario", pa.string()), ("config", pa.string()),
        ("seed", pa.int64()), ("code_version", pa.string()), ("data_hash", pa.string()),
        ("status", pa.string()), ("started_at", stamp), ("finished_at", stamp),
        ("n_bars", pa.int64()), ("error", pa.string()), ("mode", pa.string())]))


def _code_rows(items: Sequence[tuple[SweepRun, RunOutcome]]) -> pa.Table:
    """The code each run was made by, as its worker saw it (the driver's view for a run
    that failed before it started)."""
    rows = []
    for run, outcome in items:
        code = outcome.store.code or (run.identity.config_id, run.identity.code.code_id,
                                      run.identity.code.quorum, run.identity.code.modules)
        config_id, code_id, quorum, modules = code
        rows.append({"run_id": outcome.run_id, "config_id": config_id, "code_id": code_id,
                     "quorum": quorum, "modules": canonical_json(modules)})
    return pa.Table.from_pylist(rows, schema=pa.schema([
        ("run_id", pa.string()), ("config_id", pa.string()), ("code_id", pa.string()),
        ("quorum", pa.string()), ("modules", pa.string())]))


def _append_runs(store: DuckDBStore, table: str, parts: Sequence[tuple[str, pa.Table]]
                 ) -> None:
    """Several runs' batches of ``table`` in one INSERT, each run's rows in its order.

    Batches of one schema (the usual case: one recorder made them all) are concatenated
    as they are and each column cast once to the Arrow type of its DuckDB column (what
    DuckDB converts it to on insert anyway; a dictionary of that type's values stays a
    dictionary, as does the run id column); batches that differ are cast one by one
    first, so they concatenate. A column type without a known Arrow type falls back to
    the store's own append, batch by batch."""
    columns = TABLES[table]
    if any(kind not in _ARROW_TYPES for _, kind in columns):
        for run_id, batch in parts:
            store.append(run_id, table, batch)
        return
    names = [name for name, _ in columns]
    schema = pa.schema([("run_id", pa.dictionary(pa.int32(), pa.string())),
                        *((name, _ARROW_TYPES[kind]) for name, kind in columns)])
    batches = [batch.select(names) for _, batch in parts]
    if any(not b.schema.equals(batches[0].schema) for b in batches[1:]):
        batches = [pa.table([b.column(name).cast(schema.field(name).type) for name in names],
                            names=names) for b in batches]
    data = pa.concat_tables(batches)
    # the run id of each row: one dictionary index per batch, repeated over its rows (as
    # such to DuckDB, which stores the strings: not a string per row made here first)
    owner = np.repeat(np.arange(len(parts), dtype=np.int32), [b.num_rows for b in batches])
    run_col = pa.DictionaryArray.from_arrays(pa.array(owner), pa.array([r for r, _ in parts]))
    stored = [_as_stored(data.column(name), schema.field(name).type) for name in names]
    _insert_arrow(store, table, pa.Table.from_arrays([run_col, *stored],
                                                     names=["run_id", *names]))


def _as_stored(column: pa.ChunkedArray, kind: pa.DataType) -> pa.ChunkedArray:
    """``column`` as Arrow type ``kind``; a dictionary of ``kind``'s values stays one
    (DuckDB reads it as its values: casting would only make each row's string here)."""
    if column.type == kind or (pa.types.is_dictionary(column.type)
                               and column.type.value_type == kind):
        return column
    return column.cast(kind)


def _insert_arrow(store: DuckDBStore, table: str, data: pa.Table) -> None:
    names = ", ".join(data.column_names)
    store.con.register("_sweep_batch", data)
    try:
        store.con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _sweep_batch")
    finally:
        store.con.unregister("_sweep_batch")


# -- planning and running ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SweepPlan:
    total: int  # distinct runs in the sweep
    already: int  # stored before this invocation (stale runs kept included)
    todo: list[SweepRun]
    reused: int = 0  # stale runs kept in place of the sweep's own (reuse_stale)
    stale: int = 0  # combinations to run that have a stale run stored (not reused)


@dataclass(frozen=True, slots=True)
class SweepProgress:
    """Reported after each stored run: how far, and what just finished."""

    done: int
    total: int
    failed: int
    run: SweepRun
    outcome: RunOutcome


def plan_sweep(store: DuckDBStore, sweep: Sweep, retry_failed: bool = False,
               reuse_stale: bool = False) -> SweepPlan:
    """Register the sweep, clear leftovers, and list the runs still to make. A run of the
    same combination made by other code is kept in place of the sweep's own only with
    ``reuse_stale``; otherwise the combination runs again."""
    create_sweep_tables(store)
    unique = sweep.unique_runs()
    status = stored_status(store, [r.run_id for r in unique])
    keep = ("completed",) if retry_failed else ("completed", "failed")
    delete_runs(store, [rid for rid, s in status.items() if s not in keep])
    missing = [r for r in unique if status.get(r.run_id) not in keep]
    stale = stale_runs(store, missing, keep)
    used = stale if reuse_stale else {}
    register_sweep(store, sweep, used)
    todo = [r for r in missing if r.run_id not in used]
    return SweepPlan(len(unique), len(unique) - len(todo), todo, reused=len(used),
                     stale=0 if reuse_stale else len(stale))


def execute_sweep(store: DuckDBStore, plan: SweepPlan, executor: Executor,
                  on_stored: Callable[[SweepProgress], None] | None = None,
                  commit_every: float = 2.0, concurrent: bool = False) -> int:
    """Run ``plan.todo``, storing finished runs; returns how many failed.

    Finished runs are committed together at most every ``commit_every`` seconds (a DuckDB
    commit costs 100-200 ms of CPU here, as much as a few short runs, and leaves the
    tables' partly filled row groups in the log for the final checkpoint), and at the
    end; meanwhile the store has ``_BULK_SETTINGS``.

    The last lot, with a ``concurrent`` executor (runs made while the driver stores: a
    pool, a cluster): once as many runs wait as are still to come, they are inserted at
    once, and from then on whatever waits whenever that holds again, all in one
    transaction committed when the last run is in. What the driver stores after the
    last run arrives, alone on the machine, is then what arrived while it inserted the
    previous few, not up to ``commit_every`` seconds' worth more; and that lot costs one
    commit. It holds at most twice the runs that were waiting when it began.

    A run is reported (``on_stored``) once committed. Ctrl-C (or a lost worker) stops the
    executor, stores the runs already finished, and propagates: every run in the store is
    complete, and running the sweep again makes the rest. Any other error leaves the
    runs not yet committed out."""
    by_id = {r.run_id: r for r in plan.todo}
    progress = {"done": plan.already, "failed": 0}
    pending: list[tuple[SweepRun, RunOutcome]] = []  # received, not inserted
    held: list[tuple[SweepRun, RunOutcome]] = []  # inserted, not committed
    lot = {"open": False, "last": False}  # a transaction is open; it is the last lot
    last = time.monotonic()

    def store_pending(commit: bool = True) -> None:
        items = list(pending)
        # stored and reported, then Ctrl-C (or SIGTERM) if it came meanwhile: DuckDB
        # would roll the statement back, and these runs are better kept
        with interrupts_deferred():
            if not lot["open"]:
                store.con.execute("BEGIN TRANSACTION")
                lot["open"] = True
            try:
                if items:
                    insert_outcomes(store, items)
                pending.clear()
                held.extend(items)
                if commit:
                    store.con.execute("COMMIT")
                    lot["open"] = False
            except BaseException:
                abandon()
                raise
            if not commit:
                return
            for run, outcome in held:
                progress["done"] += 1
                progress["failed"] += outcome.status != "completed"
                if on_stored is not None:
                    on_stored(SweepProgress(progress["done"], plan.total, progress["failed"],
                                            run, outcome))
            held.clear()

    def abandon() -> None:
        if lot["open"]:
            lot["open"] = False
            held.clear()
            store.con.execute("ROLLBACK")

    batches = executor([RunTask(r.run_id, r.config) for r in plan.todo])
    to_come = len(plan.todo)  # runs not received yet
    with bulk_writes(store):
        try:
            for ready in batches:
                pending.extend((by_id[o.run_id], o) for o in ready)
                to_come -= len(ready)
                if not pending:
                    continue
                if concurrent and len(pending) >= to_come:
                    lot["last"] = True
                    store_pending(commit=not to_come)
                elif not lot["last"] and time.monotonic() - last >= commit_every:
                    store_pending()
                    last = time.monotonic()
            if pending or lot["open"]:
                store_pending()
        except (KeyboardInterrupt, WorkerLost):  # what finished is kept
            if pending or lot["open"]:
                store_pending()
            raise
        finally:
            abandon()  # an error elsewhere: what is not committed is left out
            close = getattr(batches, "close", None)
            if close is not None:
                close()
    return progress["failed"]


@contextmanager
def opened(path: str) -> Iterator[DuckDBStore]:
    with DuckDBStore(path) as store:
        create_sweep_tables(store)
        yield store

