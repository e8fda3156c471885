"""What reports read from the store, as numpy arrays: one query per need, every row.

Reports never touch the engine. Timestamps come back as int64 ns (UTC), as the metrics
expect them.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np


class ReportError(ValueError):
    """The run cannot be reported (unknown, or has nothing to show)."""


def check_run(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Raise ``ReportError`` for an unknown run or one without a single equity row."""
    row = con.execute(
        "SELECT (SELECT count(*) FROM runs WHERE run_id = $r),"
        " (SELECT count(*) FROM equity WHERE run_id = $r)", {"r": run_id},
    ).fetchone()
    if not row[0]:
        raise ReportError(f"no run {run_id!r} in the store")
    if not row[1]:
        raise ReportError(f"run {run_id} is empty (no equity rows): nothing to report")


def initial_cash(con: duckdb.DuckDBPyConnection, run_id: str) -> float:
    config = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
    return float(json.loads(config)["initial_cash"])


def equity(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[np.ndarray, np.ndarray]:
    """``(ts, equity)``: one row per timestamp of the run, in time order."""
    eq = con.execute(
        "SELECT epoch_ns(ts) AS t, equity FROM equity WHERE run_id = ? ORDER BY ts", [run_id]
    ).fetchnumpy()
    return np.asarray(eq["t"], dtype=np.int64), np.asarray(eq["equity"], dtype=np.float64)


def symbols(con: duckdb.DuckDBPyConnection, run_id: str) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT symbol FROM bars WHERE run_id = ? ORDER BY symbol", [run_id]
    ).fetchall()
    return [r[0] for r in rows]


def reference_symbol(con: duckdb.DuckDBPyConnection, run_id: str) -> str | None:
    """The symbol whose regime labels slice run-wide numbers: the first alphabetically."""
    syms = symbols(con, run_id)
    return syms[0] if syms else None


def fills(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """Every fill in the store's order (``ts``, then ``fill_id``), as
    ``reports.metrics.round_trips`` takes them, plus ``venue`` and ``ref_price``."""
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, symbol, venue, quantity, price, fee, ref_price"
        " FROM fills WHERE run_id = ? ORDER BY ts, fill_id", [run_id]).fetchnumpy()
    out = {k: np.asarray(v) for k, v in got.items()}
    out["ts"] = out["ts"].astype(np.int64)
    return out


_EQUITY_REGIMES = """
WITH ref AS (
  SELECT ts, coalesce(regime, 'unknown') AS regime FROM bars
  WHERE run_id = $r AND symbol = $s
)
SELECT coalesce(ref.regime, 'unknown') AS regime
FROM equity e ASOF LEFT JOIN ref ON e.ts >= ref.ts
WHERE e.run_id = $r ORDER BY e.ts
"""


def equity_regimes(con: duckdb.DuckDBPyConnection, run_id: str,
                   symbol: str | None = None) -> np.ndarray:
    """The regime label of every equity row (same order as ``equity``): the causal label
    (``bars.regime``) of ``symbol`` (default: ``reference_symbol``) at the latest of its
    bars at or before the row; ``"unknown"`` where there is none."""
    symbol = symbol if symbol is not None else reference_symbol(con, run_id)
    got = con.execute(_EQUITY_REGIMES, {"r": run_id, "s": symbol}).fetchnumpy()
    return np.asarray(got["regime"]).astype(str)


_EXPOSURE = """
WITH f AS (
  SELECT symbol, ts, arg_max(position_after, fill_id) AS position
  FROM fills WHERE run_id = $r GROUP BY symbol, ts
), pos AS (
  SELECT b.ts, b.close * coalesce(f.position, 0) AS value
  FROM bars b ASOF LEFT JOIN f ON f.symbol = b.symbol AND b.ts >= f.ts
  WHERE b.run_id = $r
), agg AS (
  SELECT ts, sum(value) AS net, sum(abs(value)) AS gross FROM pos GROUP BY ts
)
SELECT epoch_ns(e.ts) AS t, coalesce(a.net, 0) / e.equity AS net,
       coalesce(a.gross, 0) / e.equity AS gross
FROM equity e LEFT JOIN agg a ON a.ts = e.ts
WHERE e.run_id = $r ORDER BY e.ts
"""


def exposure_series(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """Per equity row: net and gross position value over equity. Positions come from the
    fills (each symbol's ``position_after`` as of the bar), marked at each bar's close."""
    got = con.execute(_EXPOSURE, {"r": run_id}).fetchnumpy()
    return {"ts": np.asarray(got["t"], np.int64), "net": np.asarray(got["net"], np.float64),
            "gross": np.asarray(got["gross"], np.float64)}


_STANDING_AGREEMENT = """
SELECT epoch_ns(b.ts) AS t, avg(d.agreement) AS agreement, count(d.agreement) AS n,
       avg(d.confidence) AS confidence
FROM bars b ASOF JOIN (SELECT symbol, ts, agreement, coalesce(confidence, 0) AS confidence
                       FROM decisions WHERE run_id = $r) d
  ON b.symbol = d.symbol AND b.ts >= d.ts
WHERE b.run_id = $r
GROUP BY b.ts ORDER BY b.ts
"""


def standing_agreement(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """Consensus agreement as it stood at every bar: each bar of a symbol carries the
    ``agreement`` of that symbol's latest decision at or before it (decisions are stored
    only when they change, so the latest one stands); bars before a symbol's first decision
    carry none. Per timestamp: ``agreement`` (the mean over the symbols that have one),
    ``n`` (how many do), so ``sum(agreement * n) / sum(n)`` is the mean over bars, and
    ``confidence`` (the standing decisions' weight share of the decided side, 0 for HOLD),
    averaged the same way."""
    got = con.execute(_STANDING_AGREEMENT, {"r": run_id}).fetchnumpy()
    return {"ts": np.asarray(got["t"], np.int64),
            "agreement": np.asarray(got["agreement"], np.float64),
            "n": np.asarray(got["n"], np.int64),
            "confidence": np.asarray(got["confidence"], np.float64)}


def decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, symbol, side, confidence, rule, agreement FROM decisions"
        " WHERE run_id = ? ORDER BY ts, decision_id", [run_id]).fetchnumpy()
    out = {k: np.asarray(v) for k, v in got.items()}
    out["ts"] = out["ts"].astype(np.int64)
    return out
