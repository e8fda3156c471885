"""A run's headline numbers, read from the store (reports never touch the engine)."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import numpy as np

from reports.metrics import max_drawdown, periods_per_year, sharpe_ratio, total_return

_COUNTS = """
SELECT
  (SELECT count(*) FROM signals WHERE run_id = $id),
  (SELECT count(*) FROM decisions WHERE run_id = $id),
  (SELECT count(*) FROM orders WHERE run_id = $id),
  (SELECT count(*) FROM orders WHERE run_id = $id AND status = 'denied'),
  (SELECT count(*) FROM fills WHERE run_id = $id),
  (SELECT coalesce(sum(fee), 0) FROM fills WHERE run_id = $id)
"""


def run_summary(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any]:
    row = con.execute(
        "SELECT scenario, status, seed, n_bars, config FROM runs WHERE run_id = ?", [run_id]
    ).fetchone()
    if row is None:
        raise KeyError(run_id)
    scenario, status, seed, n_bars, config = row
    initial = float(json.loads(config)["initial_cash"])
    eq = con.execute(
        "SELECT epoch_ns(ts), equity FROM equity WHERE run_id = ? ORDER BY ts", [run_id]
    ).fetchnumpy()
    ts, equity = eq["epoch_ns(ts)"].astype(np.int64), eq["equity"].astype(np.float64)
    signals, decisions, orders, denied, fills, fees = con.execute(
        _COUNTS, {"id": run_id}
    ).fetchone()
    return {
        "run_id": run_id,
        "scenario": scenario,
        "status": status,
        "seed": seed,
        "bars": n_bars,
        "signals": signals,
        "decisions": decisions,
        "orders": orders,
        "denied": denied,
        "fills": fills,
        "fees": float(fees),
        "initial_equity": initial,
        "final_equity": float(equity[-1]) if len(equity) else initial,
        "total_return": total_return(equity, initial),
        "max_drawdown": max_drawdown(equity, initial),
        "sharpe": sharpe_ratio(equity, initial, periods_per_year(ts)),
    }


def list_runs(con: duckdb.DuckDBPyConnection, limit: int = 50) -> list[dict[str, Any]]:
    """Newest first, with final equity so runs can be compared at a glance."""
    rows = con.execute(
        """
        SELECT r.run_id, r.scenario, r.status, r.seed, r.n_bars,
               strftime(r.started_at AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M:%S') AS started,
               round(epoch_ms(r.finished_at) - epoch_ms(r.started_at)) / 1000.0 AS seconds,
               (SELECT e.equity FROM equity e WHERE e.run_id = r.run_id
                ORDER BY e.ts DESC LIMIT 1) AS final_equity
        FROM runs r ORDER BY r.started_at DESC, r.run_id LIMIT ?
        """,
        [limit],
    )
    names = [d[0] for d in rows.description]
    return [dict(zip(names, row, strict=True)) for row in rows.fetchall()]
