"""Which ``running`` runs still have a writer, and which were abandoned.

A run is marked ``running`` when it starts and gets its final status when it ends. A
process killed outright (SIGKILL, the OOM killer, a power cut) never gets there, and its
run would read ``running`` forever.

The rule rests on DuckDB's file lock: a process with the store open for writing excludes
every other process, readers included. So whoever holds a connection to the store knows
no other process is writing to it, and a ``running`` run is live only if this very
process created it (its ``writer_pid`` and ``writer_host`` are ours; another thread may
still be running it). Every other ``running`` run is **abandoned**: its writer is gone.
Runs stored before the writer was recorded have none, and are abandoned alike.

``abandoned_runs`` tells them (commands show them so, nothing is written);
``mark_abandoned`` stores the status with the reason. Live-venue runs (mode ``live``) are
left ``running``: the next ``quorum live --venue`` session resumes them.
"""

from __future__ import annotations

import duckdb

from sim.store import this_writer


def _has_writer_columns(con: duckdb.DuckDBPyConnection) -> bool:
    names = {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'runs'"
        " AND database_name = current_database() AND schema_name = 'main'").fetchall()}
    return {"writer_pid", "writer_host"} <= names


def abandoned_runs(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str, str]]:
    """``run_id -> (mode, reason)`` of every ``running`` run whose writer is gone. Valid
    on any open connection to the store (the lock keeps other writers out)."""
    host, pid = this_writer()
    writer = ("writer_pid, writer_host" if _has_writer_columns(con)
              else "NULL AS writer_pid, NULL AS writer_host")
    rows = con.execute(f"SELECT run_id, mode, {writer} FROM runs WHERE status = 'running'"
                       ).fetchall()
    out = {}
    for run_id, mode, run_pid, run_host in rows:
        if run_pid == pid and run_host == host:
            continue  # this process writes it
        who = ("its writer was not recorded" if run_pid is None
               else f"its writer, process {run_pid} on {run_host}, is gone")
        out[run_id] = (str(mode), f"abandoned: {who} (the store's lock was free)")
    return out


def mark_abandoned(con: duckdb.DuckDBPyConnection) -> tuple[list[str], list[str]]:
    """Store every abandoned run as ``abandoned``, with the reason in ``error`` and
    ``n_bars`` the bars its committed equity rows cover. Returns (marked, live runs left
    running for a venue session to resume)."""
    found = abandoned_runs(con)
    live = sorted(r for r, (mode, _) in found.items() if mode == "live")
    marked = sorted(r for r, (mode, _) in found.items() if mode != "live")
    for run_id in marked:
        con.execute(
            "UPDATE runs SET status = 'abandoned', finished_at = now(), error = $2,"
            " n_bars = (SELECT count(*) FROM bars b WHERE b.run_id = $1 AND b.ts <="
            "           (SELECT max(e.ts) FROM equity e WHERE e.run_id = $1))"
            " WHERE run_id = $1 AND status = 'running'", [run_id, found[run_id][1]])
    return marked, live


def run_status(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The run's status as it is: ``abandoned`` for a ``running`` run whose writer is
    gone; None for an unknown run."""
    row = con.execute("SELECT status FROM runs WHERE run_id = ?", [run_id]).fetchone()
    if row is None:
        return None
    if row[0] == "running" and run_id in abandoned_runs(con):
        return "abandoned"
    return str(row[0])
