"""Per-farm figures of a run with ``[[farms]]`` (``sim.farm_engine``), from the store only:
each farm's equity metrics, fills, fees, denials and contribution to the account's PnL,
and the correlation of the farms' per-step returns.

A run without farms (or a store made before farms existed) has no farm rows: every
function here returns empty then.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import numpy as np

from reports import figures
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


# Per farm and agent: the agent's votes in the farm's decisions, how many were on the
# decided side, and the orders of those decisions attributed to it (``agent_trades``). An
# agent moved between farms (``sim.farm_lifecycle``) has a row in each.
_FARM_AGENTS = """
WITH v AS (
    SELECT d.farm, v.agent, count(*) AS votes,
           count(*) FILTER (WHERE v.side = d.side) AS with_decision
    FROM votes v JOIN decisions_by_farm d
      ON d.run_id = v.run_id AND d.decision_id = v.decision_id
    WHERE v.run_id = ? GROUP BY d.farm, v.agent),
t AS (
    SELECT farm, agent, count(*) AS orders,
           count(*) FILTER (WHERE status = 'filled') AS filled
    FROM agent_trades WHERE run_id = ? GROUP BY farm, agent)
SELECT v.farm, v.agent, v.votes, v.with_decision, coalesce(t.orders, 0) AS orders,
       coalesce(t.filled, 0) AS filled
FROM v LEFT JOIN t ON t.farm = v.farm AND t.agent = v.agent
"""


def farm_agent_table(con: duckdb.DuckDBPyConnection, run_id: str,
                     agents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per agent inside each farm (farms in the scenario's order, agents by
    name): its votes in the farm's decisions, those on the decided side, the orders of
    those decisions attributed to it and how many filled; with its run-wide signal
    figures from ``agents`` (``reports.slices.agent_table``: hit rate, shadow PnL, which
    follow its signals whatever farm they voted in)."""
    order = {name: i for i, name in enumerate(farm_equity(con, run_id))}
    if not order:
        return []
    by_agent = {row["agent"]: row for row in agents}
    rows = con.execute(_FARM_AGENTS, [run_id, run_id]).fetchall()
    out = []
    for farm, agent, votes, with_decision, orders, filled in sorted(
            rows, key=lambda r: (order.get(r[0], len(order)), r[1])):
        own = by_agent.get(agent, {})
        out.append({"farm": farm, "agent": agent, "votes": int(votes),
                    "with_decision": int(with_decision), "orders": int(orders),
                    "filled": int(filled),
                    "hit_rate": own.get("hit_rate", float("nan")),
                    "shadow_pnl": own.get("shadow_pnl", float("nan"))})
    return out


def farm_curves(con: duckdb.DuckDBPyConnection, run_id: str
                ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Each farm's equity over its starting capital, compounded from its returns net of
    transfers (so an allocator's moves do not show as jumps): ``(farm, ts, curve)``; the
    curve starts at 1.0 one step before its first row."""
    out = []
    for name, f in farm_equity(con, run_id).items():
        out.append((name, f.ts, np.cumprod(1.0 + f.returns)))
    return out


def compare_farms(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], out: Path
                  ) -> tuple[list[dict[str, Any]], Path, Path]:
    """The farms of ``run_ids`` side by side (``quorum compare RUN --farms``): one
    ``farm_table`` row per farm, labelled by its name (``RUN6:farm`` when several runs are
    compared), written to ``compare_farms.csv`` (one row per metric, one column per farm,
    full precision), and their equity curves over starting capital, net of transfers,
    overlaid in ``compare_farms_equity.png`` against days since the run's start. A run
    without farms is a ``ValueError``."""
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    curves = []
    for run_id in run_ids:
        table = farm_table(con, run_id)
        if not table:
            raise ValueError(f"run {run_id} has no [[farms]] (compare --farms puts the farms "
                             "of farm runs side by side)")
        prefix = f"{run_id[:6]}:" if len(run_ids) > 1 else ""
        for row, (name, ts, curve) in zip(table, farm_curves(con, run_id), strict=True):
            label = prefix + name
            rows.append({"label": label, **row})
            # The start is one step before the first row (as compare_runs draws it).
            step = float(np.median(np.diff(ts))) if len(ts) > 1 else 0.0
            days = np.concatenate(([0.0], (ts - ts[0] + step) / 86_400e9)) if len(ts) \
                else np.zeros(1)
            curves.append((f"{label} ({row['total_return']:+.1%})", days,
                           np.concatenate(([1.0], curve))))
    import matplotlib.pyplot as plt  # after reports.figures chose its backend

    csv_path = out / "compare_farms.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["metric", *(r["label"] for r in rows)])
        for name in list(rows[0])[1:]:
            writer.writerow([name, *(r[name] for r in rows)])
    with plt.rc_context(figures.STYLE):
        png = figures.fig_compare(curves, out / "compare_farms_equity.png")
    return rows, csv_path, png
