"""The record of a live or paper session, next to its run: what let it trade and what fed it.

One ``live_sessions`` row per session, keyed by the run id. ``validation_id`` is the
promotion-gate row that let it start: the passing validation, or the ``override`` row
``check_promotion`` stored when the gate was overridden (then ``overridden`` is true and
``override_reason`` repeats the reason given). ``started_ns`` is the wall clock at start:
bars whose close (``ts + interval``) is at or before it were history when the session
began (the warm-up), the rest arrived live.

The money the session trades (``live.capital``): ``initial_cash`` (the scenario's),
``account_value`` (the venue account's equity at start; NULL in paper mode), ``capital``
(what it trades: the run's stored ``initial_cash``) and ``capital_from_account`` (the
session was started with ``--capital-from-account``). These columns are added to a store
made before them on first use.

The table is created with the rest of the schema (``sim.store``); it holds no secret
(URLs only, never keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb

from sim.schema import LIVE_RESUMES_DDL, LIVE_SESSIONS_ADDED


def record_session(con: duckdb.DuckDBPyConnection, *, run_id: str, mode: str, venue: str,
                   network: str, data_url: str, interval: str, warmup_bars: int,
                   started_ns: int, config_hash: str, validation_id: str | None, gate: str,
                   overridden: bool, override_reason: str | None, warnings: Sequence[str],
                   kill_file: str | None, initial_cash: float | None = None,
                   capital: float | None = None, account_value: float | None = None,
                   capital_from_account: bool = False) -> None:
    add_capital_columns(con)
    con.execute(
        "INSERT INTO live_sessions (run_id, mode, venue, network, data_url, interval,"
        " warmup_bars, started_ns, config_hash, validation_id, gate, overridden,"
        " override_reason, warnings, kill_file, initial_cash, capital, account_value,"
        " capital_from_account) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, mode, venue, network, data_url, interval, warmup_bars, started_ns,
         config_hash, validation_id, gate, overridden, override_reason,
         json.dumps(list(warnings)), kill_file, initial_cash, capital, account_value,
         capital_from_account])


def add_capital_columns(con: duckdb.DuckDBPyConnection) -> None:
    """The capital columns, on a ``live_sessions`` table made before them."""
    for name, kind in LIVE_SESSIONS_ADDED:
        con.execute(f"ALTER TABLE live_sessions ADD COLUMN IF NOT EXISTS {name} {kind}")


def session_initial_cash(con: duckdb.DuckDBPyConnection, run_id: str) -> float | None:
    """The scenario's ``initial_cash`` a session recorded (None: recorded before the
    capital columns, when the run's own ``initial_cash`` was the scenario's)."""
    add_capital_columns(con)
    row = con.execute("SELECT initial_cash FROM live_sessions WHERE run_id = ?",
                      [run_id]).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def record_resume(con: duckdb.DuckDBPyConnection, *, run_id: str, resumed_ns: int,
                  recovered_orders: int, config_hash: str, validation_id: str | None) -> None:
    """One ``live_resumes`` row per restart of a live run (its ``live_sessions`` row
    stays the first session's)."""
    con.execute(LIVE_RESUMES_DDL)
    con.execute("INSERT INTO live_resumes VALUES (?, ?, ?, ?, ?)",
                [run_id, resumed_ns, recovered_orders, config_hash, validation_id])
