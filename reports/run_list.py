"""``quorum runs``: the stored runs, newest first, filtered, each told apart by what made it.

A store fills with runs of every kind: single backtests, the 18 runs of each validation,
hundreds of sweep members, paper and live sessions. The ``kind`` column says which
(``sweep NAME``, ``validation``, ``paper``, ``live``, or ``run``), and the filters pick
by scenario (a glob), status, mode, start time and sweep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

from sim.sql import one_row


@dataclass(frozen=True, slots=True)
class RunFilter:
    scenario: str | None = None  # a glob: "rsi*"
    status: str | None = None  # completed, failed, interrupted, running, abandoned
    mode: str | None = None  # backtest, paper, live
    since_us: int | None = None  # started at or after (epoch microseconds, UTC)
    sweep: str | None = None  # a sweep's name, or its id or a prefix of it
    kind: str | None = None  # run, sweep, validation, paper, live


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(one_row(con, "SELECT count(*) FROM information_schema.tables "
                             "WHERE table_name = ?", [name])[0])


def sweep_names(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """``run_id -> sweep name`` (the newest sweep a run belongs to, by name)."""
    if not _has_table(con, "sweep_runs"):
        return {}
    rows = con.execute("SELECT sr.run_id, s.name FROM sweep_runs sr JOIN sweeps s "
                       "USING (sweep_id) ORDER BY s.created_at").fetchall()
    return {run_id: name for run_id, name in rows}


def validation_runs(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The runs a ``quorum validate`` made (named in its stored metrics)."""
    if not _has_table(con, "validations"):
        return set()
    out: set[str] = set()
    for (metrics,) in con.execute("SELECT metrics FROM validations").fetchall():
        try:
            rows = json.loads(metrics)
        except (TypeError, ValueError):
            continue
        out.update(str(r["run_id"]) for r in rows if isinstance(r, dict) and "run_id" in r)
    return out


def _sweep_members(con: duckdb.DuckDBPyConnection, sweep: str) -> set[str] | None:
    """Run ids of the sweeps named ``sweep`` or whose id starts with it; None: no such
    sweep."""
    if not _has_table(con, "sweep_runs"):
        return None
    ids = [r[0] for r in con.execute(
        "SELECT sweep_id FROM sweeps WHERE name = ? OR starts_with(sweep_id, ?)",
        [sweep, sweep]).fetchall()]
    if not ids:
        return None
    return {r[0] for r in con.execute(
        "SELECT DISTINCT run_id FROM sweep_runs WHERE list_contains(?, sweep_id)",
        [ids]).fetchall()}


class UnknownSweep(LookupError):
    """``--sweep`` names no sweep in the store."""


def list_runs(con: duckdb.DuckDBPyConnection, limit: int = 50,
              where: RunFilter | None = None,
              abandoned: set[str] | frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """Newest first, with final equity and kind; ``abandoned``: running runs whose writer
    is gone (shown and filtered as ``abandoned``)."""
    where = where or RunFilter()
    clauses: list[str] = ["TRUE"]
    params: list[Any] = []
    if where.scenario is not None:
        clauses.append("r.scenario GLOB ?")
        params.append(where.scenario)
    if where.mode is not None:
        clauses.append("r.mode = ?")
        params.append(where.mode)
    if where.since_us is not None:
        clauses.append("epoch_us(r.started_at) >= ?")
        params.append(where.since_us)
    if where.status is not None:
        clauses.append("r.status = ?")
        params.append("running" if where.status == "abandoned" else where.status)
    if where.sweep is not None:
        members = _sweep_members(con, where.sweep)
        if members is None:
            raise UnknownSweep(f"no sweep named {where.sweep!r} (nor with that id) in the "
                               "store")
        clauses.append("list_contains(?, r.run_id)")
        params.append(sorted(members))
    rel = con.execute(
        f"""
        SELECT r.run_id, r.scenario, r.status, r.mode, r.seed, r.n_bars,
               strftime(r.started_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') AS started,
               round(epoch_ms(r.finished_at) - epoch_ms(r.started_at)) / 1000.0 AS seconds,
               (SELECT e.equity FROM equity e WHERE e.run_id = r.run_id
                ORDER BY e.ts DESC LIMIT 1) AS final_equity
        FROM runs r WHERE {' AND '.join(clauses)}
        ORDER BY r.started_at DESC, r.run_id
        """, params)
    names = [d[0] for d in rel.description]
    fetched = rel.fetchall()  # before the next statement on the connection replaces it
    sweeps, validations = sweep_names(con), validation_runs(con)
    out = []
    for values in fetched:
        row = dict(zip(names, values, strict=True))
        if row["run_id"] in abandoned:
            row["status"] = "abandoned"
        if where.status is not None and row["status"] != where.status:
            continue
        kind = (row["mode"] if row["mode"] != "backtest" else
                f"sweep {sweeps[row['run_id']]}" if row["run_id"] in sweeps else
                "validation" if row["run_id"] in validations else "run")
        if where.kind is not None and kind.split(" ")[0] != where.kind:
            continue
        row.pop("mode")
        out.append({"run_id": row.pop("run_id"), "kind": kind, **row})
        if len(out) >= limit:
            break
    return out
