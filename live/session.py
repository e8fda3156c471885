"""The record of a live or paper session, next to its run: what let it trade and what fed it.

One ``live_sessions`` row per session, keyed by the run id. ``validation_id`` is the
promotion-gate row that let it start: the passing validation, or the ``override`` row
``check_promotion`` stored when the gate was overridden (then ``overridden`` is true and
``override_reason`` repeats the reason given). ``started_ns`` is the wall clock at start:
bars whose close (``ts + interval``) is at or before it were history when the session
began (the warm-up), the rest arrived live.

The table is created with the rest of the schema (``sim.store``); it holds no secret
(URLs only, never keys).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb


def record_session(con: duckdb.DuckDBPyConnection, *, run_id: str, mode: str, venue: str,
                   network: str, data_url: str, interval: str, warmup_bars: int,
                   started_ns: int, config_hash: str, validation_id: str | None, gate: str,
                   overridden: bool, override_reason: str | None, warnings: Sequence[str],
                   kill_file: str | None) -> None:
    con.execute(
        "INSERT INTO live_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, mode, venue, network, data_url, interval, warmup_bars, started_ns,
         config_hash, validation_id, gate, overridden, override_reason,
         json.dumps(list(warnings)), kill_file])


_RESUMES_DDL = """
CREATE TABLE IF NOT EXISTS live_resumes (
    run_id VARCHAR NOT NULL,
    resumed_ns BIGINT NOT NULL,
    recovered_orders INTEGER NOT NULL,
    config_hash VARCHAR NOT NULL,
    validation_id VARCHAR
)"""


def record_resume(con: duckdb.DuckDBPyConnection, *, run_id: str, resumed_ns: int,
                  recovered_orders: int, config_hash: str, validation_id: str | None) -> None:
    """One ``live_resumes`` row per restart of a live run (its ``live_sessions`` row
    stays the first session's)."""
    con.execute(_RESUMES_DDL)
    con.execute("INSERT INTO live_resumes VALUES (?, ?, ?, ?, ?)",
                [run_id, resumed_ns, recovered_orders, config_hash, validation_id])
