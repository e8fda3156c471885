"""Per-farm figures of a run with ``[[farms]]`` (``sim.farm_engine``), from the store only:
each farm's equity metrics, fills, fees, denials and contribution to the account's PnL,
and the correlation of the farms' per-step returns.

A run without farms (or a store made before farms existed) has no farm rows: every
function here returns empty then.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from reports import metrics as m


def has_farms(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    try:
        row = con.execute("SELECT count(*) FROM farms WHERE run_id = ?", [run_id]).fetchone()
    except duckdb.CatalogException:  # a store made before farms existed
        return False
    return bool(row and row[0])


def farm_equity(con: duckdb.DuckDBPyConnection, run_id: str
                ) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """farm -> (ts ns, equity per time step, starting capital), in the scenario's order."""
    if not has_farms(con, run_id):
        return {}
    farms = con.execute(
        "SELECT farm, capital FROM farms WHERE run_id = ? ORDER BY rowid", [run_id]).fetchall()
    out = {}
    for farm, capital in farms:
        rows = con.execute(
            "SELECT epoch_ns(ts), equity FROM farm_equity WHERE run_id = ? AND farm = ? "
            "ORDER BY ts", [run_id, farm]).fetchnumpy()
        out[farm] = (np.asarray(rows["epoch_ns(ts)"], np.int64),
                     np.asarray(rows["equity"], np.float64), float(capital))
    return out


def farm_table(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """One row per farm: capital, final equity, return, drawdown, Sharpe, PnL and its share
    of the account's PnL (its contribution), fills, fees, orders and denials."""
    series = farm_equity(con, run_id)
    if not series:
        return []
    counts = {row[0]: row[1:] for row in con.execute(
        "SELECT o.farm, count(*) FILTER (WHERE o.status = 'filled'), count(*), "
        "count(*) FILTER (WHERE o.status = 'denied'), coalesce(sum(o.fees), 0) "
        "FROM orders_by_farm o WHERE o.run_id = ? GROUP BY o.farm", [run_id]).fetchall()}
    pnl = {farm: (float(eq[-1]) if len(eq) else cap) - cap
           for farm, (_, eq, cap) in series.items()}
    total = sum(pnl.values())
    rows = []
    for farm, (ts, equity, capital) in series.items():
        filled, orders, denied, fees = counts.get(farm, (0, 0, 0, 0.0))
        per_year = m.periods_per_year(ts) if len(ts) > 1 else float("nan")
        rows.append({
            "farm": farm, "capital": capital,
            "final_equity": float(equity[-1]) if len(equity) else capital,
            "total_return": m.total_return(equity, capital) if len(equity) else 0.0,
            "max_drawdown": m.max_drawdown(equity, capital) if len(equity) else 0.0,
            "sharpe": m.sharpe_ratio(equity, capital, per_year) if len(equity) > 1
            else float("nan"),
            "pnl": pnl[farm],
            "contribution": pnl[farm] / total if total else float("nan"),
            "orders": orders, "filled": filled, "denied": denied, "fees": float(fees),
        })
    return rows


def farm_correlation(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The correlation of the farms' per-step returns (one row per farm)."""
    series = farm_equity(con, run_id)
    if len(series) < 2:
        return []
    names = list(series)
    returns = []
    for _, equity, capital in series.values():
        path = np.concatenate([[capital], equity])
        returns.append(np.diff(path) / np.where(path[:-1] == 0.0, np.nan, path[:-1]))
    matrix = np.corrcoef(np.vstack(returns)) if all(np.nanstd(r) > 0 for r in returns) \
        else np.full((len(names), len(names)), np.nan)
    return [{"farm": a, **{b: float(matrix[i, j]) for j, b in enumerate(names)}}
            for i, a in enumerate(names)]
