"""Per-farm figures of a run with ``[[farms]]`` (``sim.farm_engine``), from the store only:
each farm's equity metrics, fills, fees, denials and contribution to the account's PnL,
and the correlation of the farms' per-step returns.

A run without farms (or a store made before farms existed) has no farm rows: every
function here returns empty then.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import duckdb
import numpy as np

from reports import metrics as m


class _Farm(NamedTuple):
    ts: np.ndarray
    equity: np.ndarray
    capital: float  # its first allocation
    returns: np.ndarray  # per time step, net of transfers
    moved_in: float  # capital transferred in by the allocator, net


def has_farms(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    try:
        row = con.execute("SELECT count(*) FROM farms WHERE run_id = ?", [run_id]).fetchone()
    except duckdb.CatalogException:  # a store made before farms existed
        return False
    return bool(row and row[0])


def farm_equity(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, _Farm]:
    """Each farm's equity path, in the scenario's order, with its per-step returns net of
    capital transfers (a transfer at a time lands before that time's row is booked), so
    an allocator moving capital never reads as a gain or a loss."""
    if not has_farms(con, run_id):
        return {}
    farms = con.execute(
        "SELECT farm, capital FROM farms WHERE run_id = ? ORDER BY rowid", [run_id]).fetchall()
    moves = con.execute(
        "SELECT epoch_ns(ts), from_farm, to_farm, amount FROM capital_transfers "
        "WHERE run_id = ? AND from_farm <> 'account' ORDER BY rowid", [run_id]).fetchall()
    out = {}
    for farm, capital in farms:
        rows = con.execute(
            "SELECT epoch_ns(ts) AS ts, equity FROM farm_equity WHERE run_id = ? AND farm = ? "
            "ORDER BY ts", [run_id, farm]).fetchnumpy()
        ts = np.asarray(rows["ts"], np.int64)
        equity = np.asarray(rows["equity"], np.float64)
        net = np.zeros(len(ts))
        for when, source, target, amount in moves:
            k = int(np.searchsorted(ts, when))  # the first row booked at or after it
            if k < len(ts) and farm in (source, target):
                net[k] += amount if target == farm else -amount
        before = np.concatenate(([float(capital)], equity[:-1]))
        with np.errstate(divide="ignore", invalid="ignore"):
            returns = np.where(before > 0.0, (equity - net) / before - 1.0, 0.0)
        out[farm] = _Farm(ts, equity, float(capital), returns, float(net.sum()))
    return out


def farm_table(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """One row per farm: starting capital, capital moved in (net, by an allocator), final
    equity, time-weighted return, drawdown and Sharpe of its returns, PnL and its share of
    the account's PnL (its contribution), orders, fills, denials and fees."""
    series = farm_equity(con, run_id)
    if not series:
        return []
    counts = {row[0]: row[1:] for row in con.execute(
        "SELECT o.farm, count(*) FILTER (WHERE o.status = 'filled'), count(*), "
        "count(*) FILTER (WHERE o.status = 'denied'), coalesce(sum(o.fees), 0) "
        "FROM orders_by_farm o WHERE o.run_id = ? GROUP BY o.farm", [run_id]).fetchall()}
    pnl = {name: (float(f.equity[-1]) if len(f.equity) else f.capital) - f.capital
           - f.moved_in for name, f in series.items()}
    total = sum(pnl.values())
    rows = []
    for name, f in series.items():
        filled, orders, denied, fees = counts.get(name, (0, 0, 0, 0.0))
        per_year = m.periods_per_year(f.ts)
        rows.append({
            "farm": name, "capital": f.capital, "moved_in": f.moved_in,
            "final_equity": float(f.equity[-1]) if len(f.equity) else f.capital,
            "total_return": m.compounded_return(f.returns),
            "max_drawdown": m.returns_max_drawdown(f.returns),
            "sharpe": m.returns_sharpe(f.returns, per_year),
            "pnl": pnl[name],
            "contribution": pnl[name] / total if total else float("nan"),
            "orders": orders, "filled": filled, "denied": denied, "fees": float(fees),
        })
    return rows


def farm_correlation(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """The correlation of the farms' per-step returns (one row per farm)."""
    series = farm_equity(con, run_id)
    if len(series) < 2:
        return []
    names = list(series)
    # Over the steps every farm has: a farm spawned mid-run has rows from its spawn on
    # (each farm books every step from when it exists, so the last k rows align).
    k = min(len(f.returns) for f in series.values())
    returns = np.vstack([f.returns[len(f.returns) - k:] for f in series.values()])
    if len(returns[0]) < 2 or not np.all(returns.std(axis=1) > 0.0):
        matrix = np.full((len(names), len(names)), np.nan)
    else:
        matrix = np.corrcoef(returns)
    return [{"farm": a, **{b: float(matrix[i, j]) for j, b in enumerate(names)}}
            for i, a in enumerate(names)]
