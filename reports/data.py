"""What reports read from the store, as numpy arrays: one query per need, every row. The
loaders take several runs at once (``RunData.many``: comparing 180 runs is then a handful
of queries, not a thousand); one run is the case of one.

Reports never touch the engine. Timestamps come back as int64 ns (UTC), as the metrics
expect them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from typing import Any

import duckdb
import numpy as np

from reports.metrics import periods_per_year, round_trips
from sim.sql import one_row


class ReportError(ValueError):
    """The run cannot be reported (unknown, or has nothing to show)."""


@dataclass(frozen=True, slots=True)
class Coverage:
    """What of a run the store holds: its status (``sim.liveness.run_status``), the bars
    that ran (``RAN``) and the bars it was given."""

    status: str
    ran: int
    given: int
    until_ns: int | None

    @property
    def partial(self) -> bool:
        return self.status != "completed"

    def note(self) -> str | None:
        """What a report of a partial run says first; None for a completed run."""
        if not self.partial:
            return None
        until = ("" if self.until_ns is None else
                 f", up to {np.datetime64(self.until_ns, 'ns').astype(str)[:19]} UTC")
        of = f", of the {self.given:,} it was given" if self.given > self.ran else ""
        return (f"partial run ({self.status}): covers the {self.ran:,} bars that ran{of}"
                f"{until}")


def coverage(con: duckdb.DuckDBPyConnection, run_id: str) -> Coverage:
    from sim.liveness import run_status

    status = run_status(con, run_id)
    if status is None:
        raise ReportError(f"no run {run_id!r} in the store")
    ran, given, until = one_row(
        con, f"SELECT count(*) FILTER (WHERE {RAN}), count(*),"
        " (SELECT epoch_ns(max(ts)) FROM equity WHERE run_id = $r)"
        " FROM bars WHERE run_id = $r", {"r": run_id})
    return Coverage(status, int(ran), int(given), None if until is None else int(until))


# Several runs in one statement: ``$ids`` lists them (each once), ``_K`` numbers each row's
# run by its place in that list, so rows come back grouped by run as integers, not as
# repeated run-id strings; ``$symbols`` holds one symbol per run where a query needs one.
# (A filter on run_id rather than a join with the list: measured faster, one run or 180.)
_IDS = "run_id IN (SELECT unnest($ids::VARCHAR[]))"
_K = "list_position($ids::VARCHAR[], run_id) - 1"
_SYMBOL = "list_extract($symbols::VARCHAR[], list_position($ids::VARCHAR[], run_id))"

# The bars a run got through: those its equity rows reach. A run stores every bar it is
# given before the first one runs, so an interrupted, failed or abandoned run has bars
# past its last equity row, and reports cover only the ones that ran. For a query on run
# ``$r`` (one subquery, evaluated once); ``_RAN_MANY`` is the same for any run of ``bars``.
RAN = "ts <= (SELECT max(e.ts) FROM equity e WHERE e.run_id = $r)"
_RAN_MANY = "ts <= (SELECT max(e.ts) FROM equity e WHERE e.run_id = bars.run_id)"


def _params(run_ids: Sequence[str], symbols: Sequence[str | None] | None = None,
            ) -> dict[str, list[str] | list[str | None]]:
    ids = list(run_ids)
    if len(set(ids)) != len(ids):
        raise ValueError("run ids repeat: each run is read once")
    return {"ids": ids} if symbols is None else {"ids": ids, "symbols": list(symbols)}


def _split(k: np.ndarray, n: int) -> list[slice]:
    """The row range of each of runs ``0..n-1`` in rows ordered by run number ``k``."""
    edges = np.searchsorted(k, np.arange(n + 1))
    return [slice(int(a), int(b)) for a, b in pairwise(edges.tolist())]


_CHECK = f"""
SELECT i.run_id, r.run_id IS NOT NULL AS known, coalesce(e.n, 0) AS n
FROM unnest($ids::VARCHAR[]) WITH ORDINALITY AS i(run_id, k)
LEFT JOIN runs r USING (run_id)
LEFT JOIN (SELECT run_id, count(*) AS n FROM equity WHERE {_IDS} GROUP BY run_id) e
  USING (run_id)
ORDER BY i.k
"""


def check_runs(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> None:
    """``check_run`` for each run, in one query; the first bad one in order raises."""
    ids = list(dict.fromkeys(run_ids))
    if not ids:
        return
    for run_id, known, n in con.execute(_CHECK, _params(ids)).fetchall():
        if not known:
            raise ReportError(f"no run {run_id!r} in the store")
        if not n:
            raise ReportError(f"run {run_id} is empty (no equity rows): nothing to report")


def check_run(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    """Raise ``ReportError`` for an unknown run or one without a single equity row."""
    check_runs(con, [run_id])


def run_rows(con: duckdb.DuckDBPyConnection,
             run_ids: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Each run's ``(scenario, config)`` (the config parsed), in the given order."""
    params = _params(run_ids)
    rows = {run_id: (str(scenario), config) for run_id, scenario, config in con.execute(
        f"SELECT run_id, scenario, config FROM runs WHERE {_IDS}", params).fetchall()}
    for run_id in params["ids"]:
        if run_id not in rows:
            raise ReportError(f"no run {run_id!r} in the store")
    return [(rows[r][0], json.loads(rows[r][1])) for r in params["ids"]]


def equities(con: duckdb.DuckDBPyConnection,
             run_ids: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each run's ``(ts, equity)``: one row per timestamp of the run, in time order."""
    eq = con.execute(f"SELECT {_K} AS k, epoch_ns(ts) AS t, equity FROM equity WHERE {_IDS}"
                     " ORDER BY k, ts", _params(run_ids)).fetchnumpy()
    ts = np.asarray(eq["t"], np.int64)
    values = np.asarray(eq["equity"], np.float64)
    return [(ts[s], values[s]) for s in _split(np.asarray(eq["k"], np.int64), len(run_ids))]


def run_symbols(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> list[list[str]]:
    """Each run's symbols (those it has bars of), by name."""
    out: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
    for run_id, symbol in con.execute(f"SELECT DISTINCT run_id, symbol FROM bars WHERE {_IDS}"
                                      " ORDER BY symbol", _params(run_ids)).fetchall():
        out[run_id].append(symbol)
    return list(out.values())


_REFERENCE_LABELS = f"""
SELECT DISTINCT coalesce(regime, 'unknown') AS label FROM bars
WHERE {_IDS} AND symbol = {_SYMBOL} AND {_RAN_MANY} ORDER BY 1
"""

_REFERENCE_BARS = f"""
SELECT {_K} AS k, epoch_ns(ts) AS t,
       list_position($names::VARCHAR[], coalesce(regime, 'unknown')) - 1 AS code
FROM bars WHERE {_IDS} AND symbol = {_SYMBOL} AND {_RAN_MANY} ORDER BY k, ts
"""


def asof_codes(eq_ts: np.ndarray, bar_ts: np.ndarray, bar_codes: np.ndarray,
               none: int) -> np.ndarray:
    """Per equity row, the code of the latest bar at or before it (what an ASOF join
    picks), ``none`` where there is no such bar."""
    if not len(bar_ts):
        return np.full(len(eq_ts), none, np.int64)
    k = _latest(bar_ts, eq_ts)
    return np.where(k >= 0, bar_codes[np.maximum(k, 0)], none)


def equity_regimes(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
                   symbols: Sequence[str | None], eq_ts: Sequence[np.ndarray],
                   ) -> tuple[list[np.ndarray], list[str]]:
    """The regime label of every equity row of each run (``eq_ts``: its equity times, as
    ``equities`` gives them): the causal label (``bars.regime``) of the run's ``symbol``
    at the latest of its bars at or before the row, ``"unknown"`` where there is none. As
    ``(codes per run, names)``: ``names[codes[i]]`` is row ``i``'s label (integer codes: a
    million strings are slow to fetch and to compare); names are shared by the runs."""
    pick = _params(run_ids, symbols)
    names = [r[0] for r in con.execute(_REFERENCE_LABELS, pick).fetchall()]
    names += [] if "unknown" in names else ["unknown"]
    got = con.execute(_REFERENCE_BARS, {**pick, "names": names}).fetchnumpy()
    ts, codes = np.asarray(got["t"], np.int64), np.asarray(got["code"], np.int64)
    parts = _split(np.asarray(got["k"], np.int64), len(run_ids))
    unknown = names.index("unknown")
    return [asof_codes(t, ts[s], codes[s], unknown)
            for t, s in zip(eq_ts, parts, strict=True)], names


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


def bars(con: duckdb.DuckDBPyConnection, run_id: str, symbol: str) -> dict[str, np.ndarray]:
    """One symbol's bars that ran (``RAN``) in time order: ``ts`` (int64 ns), ``open``,
    ``close``."""
    got = con.execute(
        "SELECT epoch_ns(ts) AS ts, open, close FROM bars WHERE run_id = $r AND symbol = $s"
        f" AND {RAN} ORDER BY ts", {"r": run_id, "s": symbol}).fetchnumpy()
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

    @classmethod
    def many(cls, con: duckdb.DuckDBPyConnection,
             run_ids: Sequence[str]) -> dict[str, RunData]:
        """The runs (each once), with what comparing them reads (scenario, config, symbols,
        equity, regime labels) read for all of them together: six queries in all, not
        several per run. ``ReportError`` as ``check_run`` for the first bad one."""
        ids = list(dict.fromkeys(run_ids))
        check_runs(con, ids)
        runs = [cls(con, run_id) for run_id in ids]
        if not runs:
            return {}
        for run, row, eq, syms in zip(runs, run_rows(con, ids), equities(con, ids),
                                      run_symbols(con, ids), strict=True):
            # a cached_property keeps its value in the instance dict under its own name:
            # putting it there is what the first read would do
            run.__dict__.update(_row=row, _equity=eq, symbols=syms)
        codes, names = equity_regimes(con, ids, [r.reference for r in runs],
                                      [r.ts for r in runs])
        for run, c in zip(runs, codes, strict=True):
            run.__dict__["regimes"] = (c, names)
        return {run.run_id: run for run in runs}

    @cached_property
    def _row(self) -> tuple[str, dict[str, Any]]:
        return run_rows(self.con, [self.run_id])[0]

    @property
    def scenario(self) -> str:
        return self._row[0]

    @property
    def config(self) -> dict[str, Any]:
        """The run's stored configuration (``runs.config``), parsed."""
        return self._row[1]

    @property
    def initial(self) -> float:
        return float(self.config["initial_cash"])

    @property
    def title(self) -> str:
        """How figures name the run."""
        return f"{self.scenario}, run {self.run_id}"

    @cached_property
    def _equity(self) -> tuple[np.ndarray, np.ndarray]:
        return equities(self.con, [self.run_id])[0]

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
        return run_symbols(self.con, [self.run_id])[0]

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
        codes, names = equity_regimes(self.con, [self.run_id], [self.reference], [self.ts])
        return codes[0], names

    @cached_property
    def trips(self) -> dict[str, np.ndarray]:
        """Round trips of the fills (``reports.metrics.round_trips``)."""
        return round_trips(self.fills)

    def label_at(self, ts: np.ndarray) -> np.ndarray:
        """The regime code of the latest equity row at or before each of ``ts`` (-1
        before the first)."""
        i = np.searchsorted(self.ts, np.asarray(ts, np.int64), side="right") - 1
        return np.where(i >= 0, self.regimes[0][np.maximum(i, 0)], -1)
