"""Execution quality, when the store has it: implementation shortfall, latency, funding.

The figures and metrics here are written against two small frames (dicts of equal-length
numpy arrays), so they can be built and tested without the columns existing in the store:

**Execution frame** (one row per fill):

=================  ============================================================
``decision_ts``    int64 ns: when the decision that caused the order was made
``arrival_ts``     int64 ns: when the order reached the venue
``fill_ts``        int64 ns: when it filled
``expected_price`` the price expected at decision time (the decision price)
``fill_price``     the price actually paid or received
``quantity``       signed: + buy, - sell
``symbol``         the symbol
``venue``          the venue that filled it
=================  ============================================================

**Funding frame** (one row per funding payment): ``ts`` (int64 ns), ``symbol``,
``venue``, ``amount`` (cash paid by the account: positive paid, negative received).

Only ``execution_frame`` and ``funding_frame`` read the store. Each returns None when the
columns or the table it needs are absent (checked in DuckDB's ``information_schema``), and
the report then leaves the figures and metrics out and says they are not stored.
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
# STORE QUERY, to adjust when the execution issue (issue 6) lands: the one place that maps
# the store's columns onto the execution frame. Assumed here: ``fills`` gains
# ``decision_ts`` and ``arrival_ts`` (TIMESTAMP_NS) and ``expected_price`` (DOUBLE);
# ``fills.ts`` is the fill time and ``fills.price`` the fill price.
# ---------------------------------------------------------------------------------------
_EXECUTION_NEEDS = {"decision_ts", "arrival_ts", "expected_price"}
_EXECUTION_SQL = """
SELECT epoch_ns(decision_ts) AS decision_ts, epoch_ns(arrival_ts) AS arrival_ts,
       epoch_ns(ts) AS fill_ts, expected_price, price AS fill_price, quantity, symbol, venue
FROM fills WHERE run_id = ? ORDER BY ts, fill_id
"""


def execution_frame(con: duckdb.DuckDBPyConnection,
                    run_id: str) -> dict[str, np.ndarray] | None:
    """The run's execution frame, or None when the store does not hold these columns."""
    if not _columns(con, "fills") >= _EXECUTION_NEEDS:
        return None
    return _arrays(con.execute(_EXECUTION_SQL, [run_id]).fetchnumpy(),
                   ("decision_ts", "arrival_ts", "fill_ts"))


# STORE QUERY, to adjust with issue 6: funding payments, assumed in a table
# ``funding_payments (run_id, ts, symbol, venue, amount)``.
_FUNDING_SQL = """
SELECT epoch_ns(ts) AS ts, symbol, venue, amount FROM funding_payments
WHERE run_id = ? ORDER BY ts
"""


def funding_frame(con: duckdb.DuckDBPyConnection,
                  run_id: str) -> dict[str, np.ndarray] | None:
    """The run's funding payments, or None when the store has no such table."""
    if not {"run_id", *FUNDING_COLUMNS} <= _columns(con, "funding_payments"):
        return None
    return _arrays(con.execute(_FUNDING_SQL, [run_id]).fetchnumpy(), ("ts",))
# ---------------------------------------------------------------------------------------


def execution_metrics(frame: dict[str, np.ndarray]) -> dict[str, float]:
    """Run-level figures of an execution frame: shortfall in cash (sum) and in bps of
    the expected notional, and the latency from decision to arrival and to fill (ms)."""
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
