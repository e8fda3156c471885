"""The run store: one DuckDB file holding many runs, every pipeline step as rows.

Rows arrive in column batches (Arrow tables) and are appended with one INSERT per table per
flush, never row by row. Wall-clock stamps (started_at, finished_at) come from DuckDB's
``now()``, so no simulation code reads the wall clock.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from sim.interrupts import stop_signals_held

SCHEMA_VERSION = 10

# table -> (column, DuckDB type); ``run_id`` is prepended to every table but ``runs``.
TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "signals": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("agent", "VARCHAR"),
        ("side", "VARCHAR"), ("confidence", "DOUBLE"), ("target", "DOUBLE"),
        ("reason", "VARCHAR"),
    ),
    "decisions": (
        ("decision_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("side", "VARCHAR"), ("confidence", "DOUBLE"), ("target", "DOUBLE"),
        ("method", "VARCHAR"),
        # which rule decided (sim.consensus: "none", "quorum", "risk_veto", a conflict
        # rule, ...) and the share of opinions on the most popular side
        ("rule", "VARCHAR"), ("agreement", "DOUBLE"),
    ),
    "votes": (
        ("decision_id", "BIGINT"), ("agent", "VARCHAR"), ("side", "VARCHAR"),
        ("confidence", "DOUBLE"), ("weight", "DOUBLE"),
    ),
    # One row per order, written when it reaches its one terminal state (sim.orders).
    # ts: submitted; decision_ts: the decision's bar; arrival_ts: first reached a venue;
    # fill_ts: last fill; ref_price: the expected (decision) price; avg_fill_price: realised.
    "orders": (
        ("order_id", "BIGINT"), ("decision_id", "BIGINT"), ("ts", "TIMESTAMP_NS"),
        ("symbol", "VARCHAR"), ("quantity", "DOUBLE"), ("ref_price", "DOUBLE"),
        ("notional", "DOUBLE"), ("status", "VARCHAR"),
        ("order_type", "VARCHAR"), ("time_in_force", "VARCHAR"), ("limit_price", "DOUBLE"),
        ("stop_price", "DOUBLE"), ("post_only", "BOOLEAN"), ("reduce_only", "BOOLEAN"),
        ("role", "VARCHAR"), ("parent_id", "BIGINT"), ("replaces", "BIGINT"),
        ("venue", "VARCHAR"), ("decision_ts", "TIMESTAMP_NS"), ("arrival_ts", "TIMESTAMP_NS"),
        ("fill_ts", "TIMESTAMP_NS"), ("filled_quantity", "DOUBLE"),
        ("avg_fill_price", "DOUBLE"), ("fees", "DOUBLE"), ("reason", "VARCHAR"),
    ),
    # Every step of every order's life, in the order it happened: submitted, arrived,
    # venue_rejected / venue_expired (a venue refused or it timed out; the router may fall
    # back), then exactly one terminal event (filled, cancelled, expired, rejected, denied).
    "order_events": (
        ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("event", "VARCHAR"), ("venue", "VARCHAR"), ("quantity", "DOUBLE"),
        ("price", "DOUBLE"), ("reason", "VARCHAR"),
    ),
    "risk_events": (
        ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("check_name", "VARCHAR"), ("reason", "VARCHAR"), ("limit_value", "DOUBLE"),
        ("actual_value", "DOUBLE"),
    ),
    "routing_decisions": (
        ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"),
        ("venue", "VARCHAR"), ("candidates", "VARCHAR[]"), ("candidate_fees_bps", "DOUBLE[]"),
        ("candidate_scores", "DOUBLE[]"), ("quantity", "DOUBLE"), ("reason", "VARCHAR"),
        ("elapsed_ns", "BIGINT"),
    ),
    "fills": (
        ("fill_id", "BIGINT"), ("order_id", "BIGINT"), ("ts", "TIMESTAMP_NS"),
        ("symbol", "VARCHAR"), ("venue", "VARCHAR"), ("quantity", "DOUBLE"),
        ("price", "DOUBLE"), ("fee", "DOUBLE"), ("ref_price", "DOUBLE"),
        ("cash_after", "DOUBLE"), ("position_after", "DOUBLE"), ("realized_pnl", "DOUBLE"),
        ("liquidity", "VARCHAR"),
    ),
    # Perpetual funding: payment > 0 received, < 0 paid (longs pay a positive rate).
    "funding": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("position", "DOUBLE"),
        ("mark", "DOUBLE"), ("rate", "DOUBLE"), ("payment", "DOUBLE"),
        ("venue", "VARCHAR"),  # the venue it was paid on (added: NULL in older stores)
    ),
    "liquidations": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("venue", "VARCHAR"),
        ("order_id", "BIGINT"), ("position", "DOUBLE"), ("liquidation_price", "DOUBLE"),
        ("price", "DOUBLE"), ("maintenance_margin", "DOUBLE"),
    ),
    "bars": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("open", "DOUBLE"), ("high", "DOUBLE"),
        ("low", "DOUBLE"), ("close", "DOUBLE"), ("volume", "DOUBLE"), ("regime", "VARCHAR"),
        ("source_regime", "VARCHAR"), ("filled", "BOOLEAN"),
    ),
    "equity": (
        ("ts", "TIMESTAMP_NS"), ("cash", "DOUBLE"), ("equity", "DOUBLE"),
        ("realized_pnl", "DOUBLE"), ("unrealized_pnl", "DOUBLE"),
    ),
    # Per agent per symbol, written once at the end of a run (sim.performance).
    "agent_performance": (
        ("symbol", "VARCHAR"), ("agent", "VARCHAR"), ("signals", "BIGINT"),
        ("scored", "BIGINT"), ("hits", "BIGINT"), ("hit_rate", "DOUBLE"),
        ("shadow_pnl", "DOUBLE"), ("votes", "BIGINT"), ("in_majority", "BIGINT"),
        ("overruled", "BIGINT"), ("weight", "DOUBLE"),
    ),
    # An agent's call to an outside service (sim.agents.external): replayed by request_hash.
    "agent_calls": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("agent", "VARCHAR"),
        ("request_hash", "VARCHAR"), ("request", "JSON"), ("response", "JSON"),
        ("error", "VARCHAR"), ("elapsed_ms", "DOUBLE"),
    ),
    # Per agent per symbol that calls an outside service (sim.agents.base.CallStats),
    # at the end of a run: calls made, how many failed, the last error.
    # Also one row per failure an agent was forgiven (``on_error = "abstain"``,
    # sim.lifecycle): kind "exception" (its type, message and a digest of its traceback)
    # or "latency" (slower than its ``latency_budget_ms``), at bar ``bar`` of ``symbol``;
    # the summary rows have kind "calls".
    "agent_errors": (
        ("symbol", "VARCHAR"), ("agent", "VARCHAR"), ("calls", "BIGINT"),
        ("errors", "BIGINT"), ("last_error", "VARCHAR"), ("kind", "VARCHAR"),
        ("ts", "TIMESTAMP_NS"), ("bar", "BIGINT"), ("error_type", "VARCHAR"),
        ("traceback_digest", "VARCHAR"), ("elapsed_ms", "DOUBLE"),
    ),
    # Every agent lifecycle command (sim.agent_commands), applied or rejected, and the
    # kernel's own changes (command "start": the run's first agents; "error": the
    # circuit breaker). params_*: the agent's spec {kind, params, symbols} as JSON.
    "agent_events": (
        ("seq", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("agent", "VARCHAR"),
        ("command", "VARCHAR"), ("state_before", "VARCHAR"), ("state_after", "VARCHAR"),
        ("params_before", "JSON"), ("params_after", "JSON"), ("actor", "VARCHAR"),
        ("reason", "VARCHAR"), ("outcome", "VARCHAR"), ("batch", "BIGINT"),
    ),
    # Watching a run (sim.monitor): alerts the detectors raised, each component's health
    # changes, and the structured log; seq is the event's bus sequence number.
    "alerts": (
        ("alert_id", "BIGINT"), ("ts", "TIMESTAMP_NS"), ("severity", "VARCHAR"),
        ("source", "VARCHAR"), ("kind", "VARCHAR"), ("message", "VARCHAR"),
        ("data", "JSON"), ("acknowledged", "BOOLEAN"), ("seq", "BIGINT"),
    ),
    "health": (
        ("ts", "TIMESTAMP_NS"), ("component", "VARCHAR"), ("state", "VARCHAR"),
        ("previous", "VARCHAR"), ("reason", "VARCHAR"), ("seq", "BIGINT"),
    ),
    "logs": (
        ("ts", "TIMESTAMP_NS"), ("level", "VARCHAR"), ("category", "VARCHAR"),
        ("agent", "VARCHAR"), ("message", "VARCHAR"), ("data", "JSON"), ("seq", "BIGINT"),
    ),
    # A session's per-agent figures as it ran (sim.monitor.figures): each time a position
    # closed, and at the end.
    "agent_figures": (
        ("ts", "TIMESTAMP_NS"), ("symbol", "VARCHAR"), ("agent", "VARCHAR"),
        ("trades", "BIGINT"), ("hit_rate", "DOUBLE"), ("win_rate", "DOUBLE"),
        ("shadow_pnl", "DOUBLE"), ("apr_30d", "DOUBLE"), ("apr_90d", "DOUBLE"),
        ("apr_inception", "DOUBLE"), ("sharpe", "DOUBLE"),
    ),
    # Farms (sim.farm_engine), only in runs with ``[[farms]]``: each farm as configured
    # (lists and tables as JSON), whose each order and decision is, each farm's ledger at
    # each time step, and capital moved between ledgers ("account": the unallocated
    # reserve; a run starts with one transfer to each farm).
    "farms": (
        ("farm", "VARCHAR"), ("agents", "JSON"), ("capital", "DOUBLE"), ("wallet", "JSON"),
        ("consensus", "JSON"), ("policy", "JSON"), ("risk", "JSON"),
    ),
    "farm_orders": (("order_id", "BIGINT"), ("decision_id", "BIGINT"), ("farm", "VARCHAR")),
    "farm_decisions": (("decision_id", "BIGINT"), ("farm", "VARCHAR")),
    "farm_equity": (
        ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"), ("cash", "DOUBLE"), ("equity", "DOUBLE"),
        ("realized_pnl", "DOUBLE"), ("unrealized_pnl", "DOUBLE"),
    ),
    "capital_transfers": (
        ("ts", "TIMESTAMP_NS"), ("from_farm", "VARCHAR"), ("to_farm", "VARCHAR"),
        ("amount", "DOUBLE"), ("reason", "VARCHAR"),
    ),
    # Perpetuals in farms (sim.farm_desk): each farm's funding on its own position (the
    # account's, on the netted position, is in ``funding``), and each farm's position
    # closed by a liquidation: its share of the venue's liquidation of the account (the
    # order is the account's; ``fee``: the farm's share) or its own margin call (the
    # order is the farm's; its fill has the fee).
    "farm_funding": (
        ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"), ("symbol", "VARCHAR"),
        ("position", "DOUBLE"), ("mark", "DOUBLE"), ("rate", "DOUBLE"), ("payment", "DOUBLE"),
    ),
    "farm_liquidations": (
        ("ts", "TIMESTAMP_NS"), ("farm", "VARCHAR"), ("symbol", "VARCHAR"),
        ("order_id", "BIGINT"), ("position", "DOUBLE"), ("price", "DOUBLE"),
        ("fee", "DOUBLE"), ("cause", "VARCHAR"),
    ),

    # How a run was made, one (key, value) row each: ``engine_path`` (``fast`` or
    # ``per-bar``, sim.fast_path) and ``engine_path_reason``. Never part of the results.
    "run_info": (("key", "VARCHAR"), ("value", "VARCHAR")),
}

# Columns added to a table of ``TABLES`` since it was first made (stores written before).
_TABLES_ADDED = {"agent_errors": TABLES["agent_errors"][5:],
                 "funding": TABLES["funding"][6:]}

# Each run's agents now: the last applied agent_events row of each (sim.agent_commands).
_AGENT_STATES_VIEW = """
CREATE OR REPLACE VIEW agent_states AS
SELECT run_id, agent, arg_max(state_after, seq) AS state, arg_max(params_after, seq) AS spec,
       max(ts) AS since, min(seq) AS first_seq
FROM agent_events WHERE outcome = 'applied' AND agent <> '*'
GROUP BY run_id, agent"""

# The farm of each order, fill, decision and risk event (NULL: a run without farms, whose
# one farm is the account), and each agent's trades: every order of a decision the agent
# voted for (its vote on the decision's side), with its reasoning (its standing signal's
# reason at the decision) and strategy (its kind). ``sim.farm_engine``.
_FARM_VIEWS = (
    """CREATE OR REPLACE VIEW orders_by_farm AS
SELECT o.*, f.farm FROM orders o
LEFT JOIN farm_orders f ON f.run_id = o.run_id AND f.order_id = o.order_id""",
    """CREATE OR REPLACE VIEW fills_by_farm AS
SELECT x.*, f.farm FROM fills x
LEFT JOIN farm_orders f ON f.run_id = x.run_id AND f.order_id = x.order_id""",
    """CREATE OR REPLACE VIEW risk_events_by_farm AS
SELECT x.*, f.farm FROM risk_events x
LEFT JOIN farm_orders f ON f.run_id = x.run_id AND f.order_id = x.order_id""",
    """CREATE OR REPLACE VIEW decisions_by_farm AS
SELECT d.*, f.farm FROM decisions d
LEFT JOIN farm_decisions f ON f.run_id = d.run_id AND f.decision_id = d.decision_id""",
    """CREATE OR REPLACE VIEW agent_trades AS
SELECT o.run_id, v.agent, fo.farm, o.order_id, o.decision_id, o.ts, o.symbol, d.side,
       o.quantity, o.avg_fill_price AS price, o.order_type,
       json_extract_string(st.spec, '$.kind') AS strategy, sg.reason AS reasoning,
       v.confidence, o.status, o.venue
FROM orders o
JOIN decisions d ON d.run_id = o.run_id AND d.decision_id = o.decision_id
JOIN votes v ON v.run_id = o.run_id AND v.decision_id = o.decision_id AND v.side = d.side
LEFT JOIN farm_orders fo ON fo.run_id = o.run_id AND fo.order_id = o.order_id
LEFT JOIN agent_states st ON st.run_id = o.run_id AND st.agent = v.agent
ASOF LEFT JOIN signals sg ON sg.run_id = o.run_id AND sg.agent = v.agent
    AND sg.symbol = o.symbol AND d.ts >= sg.ts""",
)

_RUNS_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY,
    scenario VARCHAR NOT NULL,
    config JSON NOT NULL,
    seed BIGINT NOT NULL,
    code_version VARCHAR NOT NULL,
    data_hash VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    n_bars BIGINT,
    error VARCHAR,
    mode VARCHAR NOT NULL DEFAULT 'backtest',
    writer_pid BIGINT,
    writer_host VARCHAR
)"""

# Columns added since the table was first made, for stores written before them (a run
# row's writer: the process that created it, see ``sim.liveness``).
_RUNS_ADDED = (("writer_pid", "BIGINT"), ("writer_host", "VARCHAR"))

# How a run met the market: replayed bars ("backtest"), live data with simulated fills
# ("paper"), or a real venue ("live").
RUN_MODES = ("backtest", "paper", "live")

# The promotion gate's records (sim.validation): one row per ``quorum validate`` (kind
# "suite") and one per explicit override of the gate (kind "override"). Not per run.
_VALIDATIONS_DDL = """
CREATE TABLE IF NOT EXISTS validations (
    validation_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL,
    scenario VARCHAR NOT NULL,
    config_hash VARCHAR NOT NULL,
    config JSON NOT NULL,
    suite VARCHAR,
    data_hashes JSON NOT NULL,
    code_version VARCHAR NOT NULL,
    thresholds JSON NOT NULL,
    metrics JSON NOT NULL,
    passed BOOLEAN NOT NULL,
    failures JSON NOT NULL,
    reason VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
)"""

# One row per live or paper session (live.session): what let it trade and what fed it.
_LIVE_SESSIONS_DDL = """
CREATE TABLE IF NOT EXISTS live_sessions (
    run_id VARCHAR PRIMARY KEY,
    mode VARCHAR NOT NULL,
    venue VARCHAR NOT NULL,
    network VARCHAR NOT NULL,
    data_url VARCHAR NOT NULL,
    interval VARCHAR NOT NULL,
    warmup_bars INTEGER NOT NULL,
    started_ns BIGINT NOT NULL,
    config_hash VARCHAR NOT NULL,
    validation_id VARCHAR,
    gate VARCHAR NOT NULL,
    overridden BOOLEAN NOT NULL,
    override_reason VARCHAR,
    warnings JSON NOT NULL,
    kill_file VARCHAR
)"""

# The code that made each run (sim.code_identity; sim.run_identity): a run stored by an
# older Quorum has no row, and counts as made by unknown code.
_RUN_CODE_DDL = """
CREATE TABLE IF NOT EXISTS run_code (
    run_id VARCHAR PRIMARY KEY,
    config_id VARCHAR NOT NULL,
    code_id VARCHAR NOT NULL,
    quorum VARCHAR NOT NULL,
    modules JSON NOT NULL
)"""

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
        try:
            self.con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"cannot open run store {self.path}: {one_line(exc)}") from None
        try:
            if read_only:
                self._check_schema()
            else:
                self._create_schema()
        except duckdb.Error as exc:  # a damaged file often opens and fails on first read
            self.con.close()
            raise StoreError(f"cannot read run store {self.path}: {one_line(exc)}") from None
        except BaseException:
            self.con.close()
            raise

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
        con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is not None and int(row[0]) != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {row[0]}, this Quorum writes {SCHEMA_VERSION}"
            )
        con.execute(_RUNS_DDL)
        for name, kind in _RUNS_ADDED:
            con.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {name} {kind}")
        con.execute(_VALIDATIONS_DDL)
        con.execute(_LIVE_SESSIONS_DDL)
        con.execute(_RUN_CODE_DDL)
        for table, columns in TABLES.items():
            cols = ", ".join(f"{name} {kind}" for name, kind in columns)
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} (run_id VARCHAR NOT NULL, {cols})")
        for table, added in _TABLES_ADDED.items():
            for name, kind in added:
                con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}")
        con.execute(_AGENT_STATES_VIEW)
        for view in _FARM_VIEWS:
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
            append_batch(self.con, run_id, table, batch)

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
            self.con.execute(
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
        self.con.close()

    def __enter__(self) -> DuckDBStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
