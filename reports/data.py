"""What reports read from the store, as numpy arrays: one query per need, every row.

Reports never touch the engine. Timestamps come back as int64 ns (UTC), as the metrics
expect them.
"""

from __future__ import annotations

import json
from functools import cached_property

import duckdb
import numpy as np

from reports.metrics import periods_per_year, round_trips


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


def fills(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    """Every fill in the store's order (``ts``, then ``fill_id``), as
    ``reports.metrics.round_trips`` takes them, plus ``venue``, ``ref_price`` and
    ``position_after``."""
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, symbol, venue, quantity, price, fee, ref_price, position_after"
        " FROM fills WHERE run_id = ? ORDER BY ts, fill_id", [run_id]).fetchnumpy()
    out = {k: np.asarray(v) for k, v in got.items()}
    out["ts"] = out["ts"].astype(np.int64)
    return out


_EQUITY_REGIMES = """
WITH ref AS (
  SELECT ts, list_position($names, coalesce(regime, 'unknown')) - 1 AS code FROM bars
  WHERE run_id = $r AND symbol = $s
)
SELECT coalesce(ref.code, list_position($names, 'unknown') - 1) AS code
FROM equity e ASOF LEFT JOIN ref ON e.ts >= ref.ts
WHERE e.run_id = $r ORDER BY e.ts
"""


def equity_regimes(con: duckdb.DuckDBPyConnection, run_id: str,
                   symbol: str | None) -> tuple[np.ndarray, list[str]]:
    """The regime label of every equity row (same order as ``equity``): the causal label
    (``bars.regime``) of ``symbol`` at the latest of its bars at or before the row,
    ``"unknown"`` where there is none. As ``(codes, names)``: ``names[codes[i]]`` is row
    ``i``'s label (integer codes: a million strings are slow to fetch and to compare)."""
    names = [r[0] for r in con.execute(
        "SELECT DISTINCT coalesce(regime, 'unknown') FROM bars WHERE run_id = ? AND symbol = ?"
        " ORDER BY 1", [run_id, symbol]).fetchall()]
    names += [] if "unknown" in names else ["unknown"]
    got = con.execute(_EQUITY_REGIMES, {"r": run_id, "s": symbol, "names": names}).fetchnumpy()
    return np.asarray(got["code"], np.int64), names


def bars(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str) -> dict[str, np.ndarray]:
    """One symbol's bars in time order: ``ts`` (int64 ns), ``open``, ``close``."""
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, open, close FROM bars WHERE run_id = ? AND symbol = ?"
        " ORDER BY ts", [run_id, symbol]).fetchnumpy()
    return {"ts": np.asarray(got["ts"], np.int64), "open": np.asarray(got["open"], np.float64),
            "close": np.asarray(got["close"], np.float64)}


def _rows(eq_ts: np.ndarray, bar_ts: np.ndarray) -> np.ndarray:
    """The equity row of each bar (every bar's time has one)."""
    row = np.searchsorted(eq_ts, bar_ts)
    if len(row) and (row[-1] >= len(eq_ts) or np.any(eq_ts[np.minimum(row, len(eq_ts) - 1)]
                                                    != bar_ts)):
        raise ValueError("a bar's time has no equity row: the run's rows are incomplete")
    return row


def _latest(event_ts: np.ndarray, bar_ts: np.ndarray) -> np.ndarray:
    """Index of the latest event at or before each bar (the last of equal times), -1 if
    none: what an ASOF join picks."""
    return np.searchsorted(event_ts, bar_ts, side="right") - 1


def exposure_series(eq_ts: np.ndarray, eq: np.ndarray, bars_by_symbol: dict[str, dict],
                    fills: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per equity row: net and gross position value over equity. A symbol's position at a
    bar is the ``position_after`` of its latest fill at or before the bar (fills in store
    order), marked at the bar's close; values are summed over symbols per equity row."""
    net, gross = np.zeros(len(eq_ts)), np.zeros(len(eq_ts))
    fill_symbols = np.asarray(fills["symbol"]).astype(str)
    for symbol, b in bars_by_symbol.items():
        m = fill_symbols == symbol
        if not m.any():
            continue
        k = _latest(fills["ts"][m], b["ts"])
        value = np.where(k >= 0, fills["position_after"][m][np.maximum(k, 0)], 0.0) * b["close"]
        row = _rows(eq_ts, b["ts"])
        net += np.bincount(row, value, len(eq_ts))
        gross += np.bincount(row, np.abs(value), len(eq_ts))
    return {"ts": eq_ts, "net": net / eq, "gross": gross / eq}


def standing_agreement(eq_ts: np.ndarray, bars_by_symbol: dict[str, dict],
                       decisions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Consensus agreement as it stood at every bar: each bar of a symbol carries the
    ``agreement`` of that symbol's latest decision at or before it (decisions are stored
    only when they change, so the latest one stands); bars before a symbol's first decision
    carry none. Per equity row where some symbol has one: ``agreement`` (the mean over the
    symbols that have one) and ``n`` (how many do), so ``sum(agreement * n) / sum(n)`` is
    the mean over bars; ``confidence`` (the standing decisions' weight share of the decided
    side, 0 for HOLD), averaged the same way."""
    total, conf, n = np.zeros(len(eq_ts)), np.zeros(len(eq_ts)), np.zeros(len(eq_ts), np.int64)
    symbols_ = np.asarray(decisions["symbol"]).astype(str)
    agreement = np.asarray(decisions["agreement"], np.float64)
    confidence = np.nan_to_num(np.asarray(decisions["confidence"], np.float64))
    for symbol, b in bars_by_symbol.items():
        m = symbols_ == symbol
        k = _latest(decisions["ts"][m], b["ts"])
        has = k >= 0
        row = _rows(eq_ts, b["ts"])[has]
        total += np.bincount(row, agreement[m][k[has]], len(eq_ts))
        conf += np.bincount(row, confidence[m][k[has]], len(eq_ts))
        n += np.bincount(row, minlength=len(eq_ts))
    keep = n > 0
    return {"ts": eq_ts[keep], "agreement": total[keep] / n[keep], "n": n[keep],
            "confidence": conf[keep] / n[keep]}


def decisions(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, np.ndarray]:
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, symbol, side, confidence, rule, agreement FROM decisions"
        " WHERE run_id = ? ORDER BY ts, decision_id", [run_id]).fetchnumpy()
    out = {k: np.asarray(v) for k, v in got.items()}
    out["ts"] = out["ts"].astype(np.int64)
    return out


class RunData:
    """One run's rows as the report needs them, each read from the store once and on
    first use: a report reads equity, fills, exposure and agreement for several tables
    and figures, and on a million-bar run every read counts."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str) -> None:
        self.con = con
        self.run_id = run_id

    @cached_property
    def initial(self) -> float:
        return initial_cash(self.con, self.run_id)

    @cached_property
    def scenario(self) -> str:
        return str(self.con.execute("SELECT scenario FROM runs WHERE run_id = ?",
                                    [self.run_id]).fetchone()[0])

    @property
    def title(self) -> str:
        """How figures name the run."""
        return f"{self.scenario}, run {self.run_id}"

    @cached_property
    def _equity(self) -> tuple[np.ndarray, np.ndarray]:
        return equity(self.con, self.run_id)

    @property
    def ts(self) -> np.ndarray:
        """Equity timestamps (int64 ns), one per bar time of the run."""
        return self._equity[0]

    @property
    def equity(self) -> np.ndarray:
        return self._equity[1]

    @cached_property
    def per_year(self) -> float:
        return periods_per_year(self.ts)

    @cached_property
    def returns(self) -> np.ndarray:
        """One simple return per equity row, the first from the initial cash."""
        path = np.concatenate(([self.initial], self.equity))
        return path[1:] / path[:-1] - 1.0

    @cached_property
    def symbols(self) -> list[str]:
        return symbols(self.con, self.run_id)

    @property
    def reference(self) -> str | None:
        """The symbol whose regime labels slice run-wide numbers: the first by name."""
        return self.symbols[0] if self.symbols else None

    @cached_property
    def fills(self) -> dict[str, np.ndarray]:
        return fills(self.con, self.run_id)

    @cached_property
    def bars(self) -> dict[str, dict[str, np.ndarray]]:
        """Every symbol's bars (``reports.data.bars``), by symbol."""
        return {symbol: bars(self.con, self.run_id, symbol) for symbol in self.symbols}

    @cached_property
    def exposure(self) -> dict[str, np.ndarray]:
        return exposure_series(self.ts, self.equity, self.bars, self.fills)

    @cached_property
    def agreement(self) -> dict[str, np.ndarray]:
        return standing_agreement(self.ts, self.bars, self.decisions)

    @cached_property
    def decisions(self) -> dict[str, np.ndarray]:
        return decisions(self.con, self.run_id)

    @cached_property
    def regimes(self) -> tuple[np.ndarray, list[str]]:
        """``(codes, names)``: each equity row's regime label (``equity_regimes``)."""
        return equity_regimes(self.con, self.run_id, self.reference)

    @cached_property
    def trips(self) -> dict[str, np.ndarray]:
        """Round trips of the fills (``reports.metrics.round_trips``)."""
        return round_trips(self.fills)

    def label_at(self, ts: np.ndarray) -> np.ndarray:
        """The regime code of the latest equity row at or before each of ``ts`` (-1
        before the first)."""
        i = np.searchsorted(self.ts, np.asarray(ts, np.int64), side="right") - 1
        return np.where(i >= 0, self.regimes[0][np.maximum(i, 0)], -1)
