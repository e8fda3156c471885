"""Helpers for the sweep tests: the tiny sweep, the CLI run in this process, a store
fingerprint, and an agent that fails on cue."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import duckdb

from quorum.cli import main
from sim.messages import LONG, Signal
from sim.schema import TABLES
from tests.property._support import NON_DETERMINISTIC

TINY = Path(__file__).resolve().parents[1] / "scenarios" / "sweeps" / "tiny.toml"


def cli(*argv: str) -> tuple[int, str, str]:
    """``quorum ARGV`` in this process: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def fingerprint(db: str | Path) -> dict[str, Any]:
    """Everything reproducible in a store holding sweeps, independent of the order runs
    were stored in: every run's rows in the order that run produced them (rowid order
    within the run), runs by id, sweep tables by key. Left out: wall-clock columns
    (runs.started_at/finished_at, sweeps.created_at, routing_decisions.elapsed_ns)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        out: dict[str, Any] = {
            "runs": con.execute(
                "SELECT run_id, scenario, config, seed, code_version, data_hash, status, n_bars,"
                " error FROM runs ORDER BY run_id").fetchall(),
            "sweeps": con.execute("SELECT sweep_id, name, source, spec, n_runs FROM sweeps "
                                  "ORDER BY sweep_id").fetchall(),
            "sweep_runs": con.execute("SELECT * FROM sweep_runs ORDER BY sweep_id, idx")
            .fetchall(),
            "run_metrics": con.execute("SELECT * FROM run_metrics ORDER BY run_id, metric")
            .fetchall(),
        }
        for table in TABLES:
            # Per run: row count and a sum of row hashes, each row hashed with its position
            # in the run, so values and their order within the run both count.
            cols = ", ".join(name for name, _ in TABLES[table]
                             if name not in NON_DETERMINISTIC.get(table, ()))
            out[table] = con.execute(
                f"SELECT run_id, count(*), sum(hash(rn, {cols})::HUGEINT) FROM ("
                f"  SELECT *, row_number() OVER (PARTITION BY run_id ORDER BY rowid) AS rn"
                f"  FROM {table}) GROUP BY run_id ORDER BY run_id").fetchall()
    finally:
        con.close()
    return out


class FailsAt:
    """Goes LONG at bar 5 and raises at bar ``fail_at`` (0: never)."""

    def __init__(self, fail_at: int = 0) -> None:
        self.fail_at = fail_at

    def on_bar(self, view: Any) -> Signal | None:
        if self.fail_at and view.n == self.fail_at:
            raise RuntimeError(f"boom at bar {view.n}")
        return Signal(LONG, 1.0) if view.n == 5 else None
