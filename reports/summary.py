"""A run's numbers, read from the store (reports never touch the engine): the headline
summary ``quorum run`` and ``quorum show`` print (``run_summary``), every run-level metric
of the report (``run_metrics``), and how a metric is shown to people (``fmt``)."""

from __future__ import annotations

import json
import math
from typing import Any

import duckdb
import numpy as np

from reports.data import RunData
from reports.metrics import max_drawdown, periods_per_year, sharpe_ratio, total_return
from sim.liveness import run_status
from sim.sql import one_row

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
    if status == "running":  # or abandoned: its writer is gone (sim.liveness)
        status = run_status(con, run_id)
    initial = float(json.loads(config)["initial_cash"])
    eq = con.execute(
        "SELECT epoch_ns(ts), equity FROM equity WHERE run_id = ? ORDER BY ts", [run_id]
    ).fetchnumpy()
    ts, equity = eq["epoch_ns(ts)"].astype(np.int64), eq["equity"].astype(np.float64)
    signals, decisions, orders, denied, fills, fees = one_row(
        con, _COUNTS, {"id": run_id}
    )
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
        **agent_errors(con, run_id),
    }


def agent_errors(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, str]:
    """``{"agent_errors": "name 3/900 calls (0.3%); ..."}`` for a run whose agents call a
    service (the ``agent_errors`` table), so failed calls are in every run's summary;
    empty when no agent calls out."""
    query = ("SELECT agent, sum(calls), sum(errors) FROM agent_errors WHERE run_id = ?"
             " {} GROUP BY agent ORDER BY agent")
    try:  # the summary rows (kind "calls"), not the failures an agent was forgiven
        rows = con.execute(query.format("AND coalesce(kind, 'calls') = 'calls'"),
                           [run_id]).fetchall()
    except duckdb.BinderException:  # a store from before the kind column
        rows = con.execute(query.format(""), [run_id]).fetchall()
    except duckdb.CatalogException:  # a store from before the table
        return {}
    if not rows:
        return {}
    return {"agent_errors": "; ".join(
        f"{agent} {errors}/{calls} calls ({errors / calls if calls else 0.0:.1%})"
        for agent, calls, errors in rows)}


# -- every run-level metric -------------------------------------------------------------
# Groups, in the order the report's metrics table shows them. Fractions (returns,
# drawdowns, exposure, rates) are marked so they can be shown as percentages.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "run": ("scenario", "status", "seed", "bars", "days", "bars_per_year"),
    "return": ("initial_equity", "final_equity", "total_return", "cagr", "apr_30d", "apr_90d",
               "apr_since_inception"),
    "risk": ("annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
             "max_drawdown_bars", "max_drawdown_days"),
    "activity": ("time_in_market", "mean_gross_exposure", "turnover", "fills", "fees",
                 "funding_paid", "signals", "decisions", "mean_agreement", "orders", "denied"),
    "trades": ("round_trips", "win_rate", "profit_factor", "average_trade", "expectancy"),
    "execution": ("implementation_shortfall", "implementation_shortfall_bps",
                  "latency_to_arrival_ms_mean", "latency_to_arrival_ms_p99",
                  "latency_to_fill_ms_mean", "latency_to_fill_ms_p99"),
}
FRACTIONS = frozenset({
    "total_return", "cagr", "apr_30d", "apr_90d", "apr_since_inception", "annual_volatility",
    "max_drawdown", "time_in_market", "mean_gross_exposure", "mean_agreement", "win_rate",
    "expectancy", "share", "return", "volatility", "notional_share", "hit_rate",
    "majority_share", "episode_win_rate", "mean_episode_return",
})
NOT_STORED = "not stored"


def run_metrics(run: RunData) -> dict[str, Any]:
    """Every run-level metric, from every stored row (never downsampled), in the order of
    ``METRIC_GROUPS``.

    Execution metrics (``reports.execution``) appear only when the store has the columns;
    ``funding_paid`` is ``NOT_STORED`` until the store books funding."""
    from reports import execution
    from reports import metrics as m

    con, run_id = run.con, run.run_id
    head = run_summary(con, run_id)
    ts, equity, initial, per_year = run.ts, run.equity, run.initial, run.per_year
    fills = run.fills
    trips = run.trips
    dd_bars, dd_ns = m.max_drawdown_duration(equity, initial, ts)
    agree, gross = run.agreement, run.exposure["gross"]
    span_ns = (ts[-1] - ts[0] + float(np.median(np.diff(ts)))) if len(ts) > 1 else 0.0
    out: dict[str, Any] = {
        **{k: head[k] for k in ("run_id", "scenario", "status", "seed", "bars")},
        "days": span_ns / m.DAY_NS, "bars_per_year": per_year,
        "initial_equity": initial, "final_equity": head["final_equity"],
        "total_return": head["total_return"], "cagr": m.cagr(equity, initial, per_year),
        "apr_30d": m.apr(equity, initial, ts, 30 * m.DAY_NS),
        "apr_90d": m.apr(equity, initial, ts, 90 * m.DAY_NS),
        "apr_since_inception": m.apr(equity, initial, ts),
        "annual_volatility": m.annual_volatility(equity, initial, per_year),
        "sharpe": head["sharpe"], "sortino": m.sortino_ratio(equity, initial, per_year),
        "calmar": m.calmar_ratio(equity, initial, per_year),
        "max_drawdown": head["max_drawdown"], "max_drawdown_bars": dd_bars,
        "max_drawdown_days": dd_ns / m.DAY_NS,
        "time_in_market": m.exposure(gross),
        "mean_gross_exposure": float(np.mean(gross)) if len(gross) else float("nan"),
        "turnover": m.turnover(fills["quantity"], fills["price"], equity),
        "fills": head["fills"], "fees": head["fees"],
        "funding_paid": execution.funding_paid(execution.funding_frame(con, run_id)),
        "signals": head["signals"], "decisions": head["decisions"],
        "mean_agreement": float((agree["agreement"] * agree["n"]).sum() / agree["n"].sum())
        if agree["n"].sum() else float("nan"),
        "orders": head["orders"], "denied": head["denied"],
        "round_trips": len(trips["pnl"]), "win_rate": m.win_rate(trips["pnl"]),
        "profit_factor": m.profit_factor(trips["pnl"]),
        "average_trade": m.average_trade(trips["pnl"]),
        "expectancy": m.expectancy(trips["pnl"], trips["entry_notional"]),
    }
    if out["funding_paid"] is None:
        out["funding_paid"] = NOT_STORED
    frame = execution.execution_frame(con, run_id)
    if frame is not None:
        out.update(execution.execution_metrics(frame))
    return out


def fmt(value: Any, name: str = "") -> str:
    """A metric for people: fractions in ``FRACTIONS`` as percentages, floats to 6
    significant digits, big numbers with thousands separators, NaN as ``n/a``."""
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "n/a"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if name in FRACTIONS:
            return f"{value:.2%}"
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    return str(value)
