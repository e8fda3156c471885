"""Execution quality, when the store has it: implementation shortfall, latency, funding.

The figures and metrics here are written against two small frames (dicts of equal-length
numpy arrays), so they can be built and tested without the columns existing in the store:

**Execution frame** (one row per fill):

=================  ============================================================
``decision_ts``    int64 ns: when the decision became an order (submitted)
``arrival_ts``     int64 ns: when the order reached the venue
``fill_ts``        int64 ns: when it filled
``expected_price`` the price expected at decision time (the decision price)
``fill_price``     the price actually paid or received
``quantity``       signed: + buy, - sell
``symbol``         the symbol
``venue``          the venue that filled it
=================  ============================================================

**Funding frame** (one row per funding payment): ``ts`` (int64 ns), ``symbol``,
``venue`` ('' when not known), ``amount`` (cash paid by the account: positive paid,
negative received).

Only ``execution_frame`` and ``funding_frame`` read the store (the marked block below).
Each returns None when the columns or the table it needs are absent (checked in DuckDB's
``information_schema``), and the report then leaves the figures and metrics out and says
they are not stored.
"""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np

from reports.metrics import implementation_shortfall, latency_summary, shortfall_bps

EXECUTION_COLUMNS = ("decision_ts", "arrival_ts", "fill_ts", "expected_price", "fill_price",
                     "quantity", "symbol", "venue")
FUNDING_COLUMNS = ("ts", "symbol", "venue", "amount")


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    rows = con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
        " AND table_schema = current_schema()", [table]).fetchall()
    return {r[0] for r in rows}


def _arrays(got: dict[str, Any], ts_columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    out = {k: np.asarray(v) for k, v in got.items()}
    for name in ts_columns:
        out[name] = out[name].astype(np.int64)
    return out


# ---------------------------------------------------------------------------------------
# STORE QUERIES: the one place that maps the store's columns onto the two frames, written
# against the schema the execution issue (issue 6, store schema 7) adds:
#   orders: ts (submitted), decision_ts (the decision's bar, stamped by its open time),
#           arrival_ts (first reached a venue), fill_ts, ref_price (the decision price),
#           avg_fill_price;
#   funding: ts, symbol, position, mark, rate, payment (> 0 received, < 0 paid).
# Without those columns (schema 6) both return None.
# ---------------------------------------------------------------------------------------
_EXECUTION_NEEDS = {"ts", "arrival_ts", "ref_price"}
# The frame's decision time is the order's submission (``orders.ts``): a decision is made
# at its bar's close and submitted then, while ``decision_ts`` stamps that bar by its
# open, one bar earlier. Expected price: the decision price (``orders.ref_price``; for a
# limit, stop or bracket order, its own limit or trigger price).
_EXECUTION_SQL = """
SELECT epoch_ns(o.ts) AS decision_ts, epoch_ns(o.arrival_ts) AS arrival_ts,
       epoch_ns(f.ts) AS fill_ts, o.ref_price AS expected_price, f.price AS fill_price,
       f.quantity, f.symbol, f.venue
FROM fills f JOIN orders o ON o.run_id = f.run_id AND o.order_id = f.order_id
WHERE f.run_id = ? ORDER BY f.ts, f.fill_id
"""


def execution_frame(con: duckdb.DuckDBPyConnection,
                    run_id: str) -> dict[str, np.ndarray] | None:
    """The run's execution frame, one row per fill, or None when the store does not
    hold the columns."""
    if not _EXECUTION_NEEDS.issubset(_columns(con, "orders")):
        return None
    return _arrays(con.execute(_EXECUTION_SQL, [run_id]).fetchnumpy(),
                   ("decision_ts", "arrival_ts", "fill_ts"))


_FUNDING_SQL = """
SELECT epoch_ns(ts) AS ts, symbol, '' AS venue, -payment AS amount FROM funding
WHERE run_id = ? ORDER BY ts, symbol
"""


def funding_frame(con: duckdb.DuckDBPyConnection,
                  run_id: str) -> dict[str, np.ndarray] | None:
    """The run's funding payments (``amount`` > 0 paid, as fees are), or None when the
    store has no funding table. The store does not say which venue charged them."""
    if not {"run_id", "ts", "symbol", "payment"} <= _columns(con, "funding"):
        return None
    return _arrays(con.execute(_FUNDING_SQL, [run_id]).fetchnumpy(), ("ts",))
# ---------------------------------------------------------------------------------------


def execution_metrics(frame: dict[str, np.ndarray]) -> dict[str, float]:
    """Run-level figures of an execution frame: shortfall in cash (sum) and in bps of
    the expected notional, and the latency from submission to arrival and to fill (ms)."""
    q, exp, fill = frame["quantity"], frame["expected_price"], frame["fill_price"]
    arrival = latency_summary(frame["arrival_ts"] - frame["decision_ts"])
    total = latency_summary(frame["fill_ts"] - frame["decision_ts"])
    return {
        "implementation_shortfall": float(np.sum(implementation_shortfall(q, exp, fill))),
        "implementation_shortfall_bps": shortfall_bps(q, exp, fill),
        "latency_to_arrival_ms_mean": arrival["mean"],
        "latency_to_arrival_ms_p99": arrival["p99"],
        "latency_to_fill_ms_mean": total["mean"],
        "latency_to_fill_ms_p99": total["p99"],
    }


def execution_by(frame: dict[str, np.ndarray], key: str) -> dict[str, dict[str, float]]:
    """``execution_metrics``-style shortfall figures per value of ``key`` (e.g. venue)."""
    out: dict[str, dict[str, float]] = {}
    labels = np.asarray(frame[key]).astype(str)
    for name in sorted(set(labels.tolist())):
        m = labels == name
        q, exp, fill = frame["quantity"][m], frame["expected_price"][m], frame["fill_price"][m]
        out[name] = {
            "shortfall": float(np.sum(implementation_shortfall(q, exp, fill))),
            "shortfall_bps": shortfall_bps(q, exp, fill),
            "latency_to_fill_ms_p50": latency_summary(
                frame["fill_ts"][m] - frame["decision_ts"][m])["p50"],
        }
    return out


def funding_paid(frame: dict[str, np.ndarray] | None) -> float | None:
    """Net funding paid (received counts negative); None when not stored."""
    if frame is None:
        return None
    return float(np.sum(np.asarray(frame["amount"], dtype=np.float64)))
