"""The run store: one DuckDB file holding many runs, every pipeline step as rows.

Rows arrive in column batches (Arrow tables) and are appended with one INSERT per table per
flush, never row by row. Wall-clock stamps (started_at, finished_at) come from DuckDB's
``now()``, so no simulation code reads the wall clock.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from sim.append_writer import AppendWriter
from sim.interrupts import stop_signals_held
from sim.schema import (
    AGENT_STATES_VIEW,
    FARM_VIEWS,
    LIVE_SESSIONS_DDL,
    META_DDL,
    RUN_CODE_DDL,
    RUNS_ADDED,
    RUNS_DDL,
    SCHEMA_VERSION,
    TABLES,
    TABLES_ADDED,
    VALIDATIONS_DDL,
)

# How a run met the market: replayed bars ("backtest"), live data with simulated fills
# ("paper"), or a real venue ("live").
RUN_MODES = ("backtest", "paper", "live")

# "abandoned": it was running when its process died (``sim.liveness``).
RUN_STATUSES = ("running", "completed", "failed", "interrupted", "abandoned")


class RunStore(Protocol):
    """Where a run's rows go. DuckDB now; the live runner writes through the same port."""

    def create_run(
        self, run_id: str, scenario: str, config: Mapping[str, Any], seed: int,
        code_version: str, data_hash: str, mode: str = "backtest",
    ) -> None: ...

    def append(self, run_id: str, table: str, batch: pa.Table) -> None: ...

    def finish_run(self, run_id: str, status: str, n_bars: int, error: str | None) -> None: ...


class StoreError(RuntimeError):
    pass


def one_line(exc: BaseException) -> str:
    """The first line of an error's message (DuckDB's run to several)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def this_writer() -> tuple[str, int]:
    """(host, process id) stored with every run this process creates."""
    return socket.gethostname(), os.getpid()


def is_interrupt(exc: BaseException) -> bool:
    """A signal that came while DuckDB ran a statement. DuckDB runs the Python handler,
    drops the ``KeyboardInterrupt`` it raises, rolls the statement back and raises this
    instead: it is the user's Ctrl-C (or a SIGTERM), not a failure. (The store's own
    writes hold signals, ``sim.interrupts``; this is for every other statement.)"""
    return (isinstance(exc, duckdb.InterruptException)
            or (type(exc) is RuntimeError and str(exc) == "Query interrupted")
            # raised while DuckDB read an Arrow batch: "... failed: KeyboardInterrupt"
            or (isinstance(exc, duckdb.Error) and "KeyboardInterrupt" in str(exc)))


class DuckDBStore:
    """Opens (and if needed creates) the file; safe to reopen with later runs.

    ``read_only``: for commands that only read. The file must be a Quorum store already;
    nothing is created or migrated, a store the user cannot write can be read, and other
    readers may have it open at the same time (a writer excludes every other process)."""

    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.path = str(path)
        self.read_only = read_only
        # The run's appends, while one runs behind (``appends_behind``), else None.
        self._writer: AppendWriter | None = None
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open run store {self.path}: {one_line(exc)}") from None
        try:
            if read_only:
                self._check_schema()
            else:
                self._create_schema()
        except duckdb.Error as exc:  # a damaged file often opens and fails on first read
            self._con.close()
            raise StoreError(f"cannot read run store {self.path}: {one_line(exc)}") from None
        except BaseException:
            self._con.close()
            raise

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The store's connection, once every append handed to the writer is in: whatever
        reads or writes through it sees every row appended before (a barrier)."""
        if self._writer is not None:
            with stop_signals_held():
                self._writer.drain()
        return self._con

    @contextmanager
    def appends_behind(self) -> Iterator[None]:
        """Within the block, ``append`` hands its batch to a writer thread
        (``sim.append_writer``) and returns: a backtest's appends overlap its simulation.
        Every other use of the store waits for them first (``con``). ``sync`` raises the
        writer's failure; leaving the block waits for the writer and stops it.

        Within the block DuckDB runs on one thread (its ``threads`` setting, restored
        after): the run already keeps two threads busy (its simulation and the writer), and
        DuckDB's own workers, one per core by default, only contend with them for the
        cores over appends too small to split: ~7% fewer instructions per order over all
        threads (callgrind, tests/perf/order_cost.py's runs; BENCHMARKS.md)."""
        if self._writer is not None or self.read_only:
            yield
            return
        threads = self._con.execute("SELECT current_setting('threads')").fetchone()
        self._con.execute("SET threads = 1")
        self._writer = AppendWriter(self._con, self.insert_batch)
        try:
            yield
        finally:
            writer, self._writer = self._writer, None
            try:
                with stop_signals_held():
                    writer.close()
            finally:
                if threads is not None:
                    with suppress(duckdb.Error):  # closed meanwhile: nothing to do
                        self._con.execute(f"SET threads = {int(threads[0])}")

    def sync(self) -> None:
        """Wait for the appends handed over; raise the writer's failure if it failed."""
        if self._writer is not None:
            with stop_signals_held():
                self._writer.drain()
            self._writer.check()

    def append_built(self, run_id: str, table: str, build: Callable[[], pa.Table]) -> None:
        """``append(run_id, table, build())``, with ``build`` run on the writer's thread
        when appends run behind (the ``bars`` table: its regime labels are numpy work)."""
        if self._writer is None:
            self.append(run_id, table, build())
            return
        with stop_signals_held():
            self._writer.submit(run_id, table, build)

    def _check_schema(self) -> None:
        try:
            row = self.con.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except duckdb.CatalogException:
            row = None
        if row is None:
            raise StoreError(f"{self.path} is not a Quorum run store (no schema version)")
        if int(row[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {row[0]}, this Quorum reads {SCHEMA_VERSION}")

    def _create_schema(self) -> None:
        con = self.con
        con.execute(META_DDL)
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {row[0]}, this Quorum writes {SCHEMA_VERSION}"
            )
        con.execute(RUNS_DDL)
        for name, kind in RUNS_ADDED:
            con.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {name} {kind}")
        con.execute(VALIDATIONS_DDL)
        con.execute(LIVE_SESSIONS_DDL)
        con.execute(RUN_CODE_DDL)
        for table, columns in TABLES.items():
            cols = ", ".join(f"{name} {kind}" for name, kind in columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} (run_id VARCHAR NOT NULL, {cols})")
        for table, added in TABLES_ADDED.items():
            for name, kind in added:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}")
        con.execute(AGENT_STATES_VIEW)
        for view in FARM_VIEWS:
            con.execute(view)
        if row is None:
            con.execute("INSERT INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])

    def create_run(
        self, run_id: str, scenario: str, config: Mapping[str, Any], seed: int,
        code_version: str, data_hash: str, mode: str = "backtest",
    ) -> None:
        if mode not in RUN_MODES:
            raise ValueError(f"unknown run mode {mode!r}; one of {RUN_MODES}")
        host, pid = this_writer()
        with stop_signals_held():
            self.con.execute(
                "INSERT INTO runs (run_id, scenario, config, seed, code_version, data_hash,"
                " status, started_at, mode, writer_pid, writer_host)"
                " VALUES (?, ?, ?, ?, ?, ?, 'running', now(), ?, ?, ?)",
                [run_id, scenario, json.dumps(config, sort_keys=True), seed, code_version,
                 data_hash, mode, pid, host],
            )

    def claim_run(self, run_id: str) -> None:
        """This process writes ``run_id`` from now on (a live session continuing it)."""
        host, pid = this_writer()
        self.con.execute("UPDATE runs SET writer_pid = ?, writer_host = ? WHERE run_id = ?",
                         [pid, host, run_id])

    def append(self, run_id: str, table: str, batch: pa.Table) -> None:
        with stop_signals_held():  # a Ctrl-C mid-INSERT would fail it (sim.interrupts)
            if self._writer is not None:  # handed over whole or not at all
                self._writer.submit(run_id, table, batch)
            else:
                self.insert_batch(self._con, run_id, table, batch)

    def insert_batch(self, con: duckdb.DuckDBPyConnection, run_id: str, table: str,
                     batch: pa.Table) -> None:
        """The insert itself, through ``con``: the store's connection, or the append
        writer's cursor when appends run behind the run (there ``append`` only hands the
        batch over). Where the store's inserts happen, on whichever thread (``quorum
        bench`` times the store stage here)."""
        append_batch(con, run_id, table, batch)

    def record_code(self, run_id: str, config_id: str, code_id: str, quorum: str,
                    modules: Mapping[str, str]) -> None:
        """The code that makes run ``run_id`` (a ``run_code`` row)."""
        self.con.execute("INSERT OR REPLACE INTO run_code VALUES (?, ?, ?, ?, ?)",
                         [run_id, config_id, code_id, quorum, json.dumps(dict(modules),
                                                                         sort_keys=True)])

    def finish_run(self, run_id: str, status: str, n_bars: int, error: str | None) -> None:
        if status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with stop_signals_held():
            con = self.con  # every append handed over is in
            writer = self._writer
            if writer is not None and writer.error is not None and not writer.reported:
                # an append failed and nobody raised it yet: the run did not keep its rows
                cause = f"{type(writer.error).__name__}: {writer.error}"
                status, error = "failed", cause if error is None else f"{error}; {cause}"
            con.execute(
                "UPDATE runs SET status = ?, finished_at = now(), n_bars = ?, error = ?"
                " WHERE run_id = ?",
                [status, n_bars, error, run_id],
            )

    def resolve_run_id(self, prefix: str) -> str:
        """Accept a unique prefix of a run id, as git does for commits."""
        rows = self.con.execute(
            "SELECT run_id FROM runs WHERE starts_with(run_id, ?) ORDER BY run_id", [prefix]
        ).fetchall()
        if not rows:
            raise StoreError(f"no run {prefix!r} in {self.path}")
        if len(rows) > 1:
            raise StoreError(f"run id {prefix!r} is ambiguous ({len(rows)} runs match)")
        return rows[0][0]

    def close(self) -> None:
        if self._writer is not None:
            with stop_signals_held():
                self._writer.close()
            self._writer = None
        self._con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def appends_behind(store: RunStore) -> AbstractContextManager[None]:
    """``DuckDBStore.appends_behind`` for a store that has it; other stores (a sweep
    worker's ``CollectingStore``, a live session's) append as they always did."""
    return store.appends_behind() if isinstance(store, DuckDBStore) else nullcontext()


def append_built(store: RunStore, run_id: str, table: str,
                 build: Callable[[], pa.Table]) -> None:
    """Append ``build()``, built on the writer's thread where there is one."""
    if isinstance(store, DuckDBStore):
        store.append_built(run_id, table, build)
    else:
        store.append(run_id, table, build())


def settle(store: RunStore) -> None:
    """The barrier before a run is marked completed: every append is in, or the writer's
    failure is raised (``DuckDBStore.sync``)."""
    if isinstance(store, DuckDBStore):
        store.sync()


def append_batch(con: duckdb.DuckDBPyConnection, run_id: str, table: str,
                 batch: pa.Table) -> None:
    """Insert ``batch`` (the columns of ``TABLES[table]``) as rows of ``run_id``, through
    ``con`` (the store's connection, or a cursor of it owned by another thread)."""
    if batch.num_rows == 0:
        return
    names = ", ".join(name for name, _ in TABLES[table])
    con.register("_quorum_batch", batch)
    try:
        con.execute(
            f"INSERT INTO {table} (run_id, {names}) SELECT ?, {names} FROM _quorum_batch",
            [run_id],
        )
    finally:
        con.unregister("_quorum_batch")
