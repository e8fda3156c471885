"""A sweep's results, read from the run store: per-run metrics, the ranked table of
parameter sets, walk-forward windows with a stability summary, and the regime matrix.

The store holds a sweep as ``sweep_runs`` (one row per combination: parameter set, regime,
seed, run id), ``runs`` (status, error) and ``run_metrics`` (one value per run and metric).
Everything here orders by combination index or parameter set, never by the order runs
were stored, so results do not depend on which worker finished first or on a resume.

Metric directions (higher or lower is better) are given by the caller: the sweep's
vocabulary lives in ``research.sweep.RANK_METRICS``, and reports never import ``sim``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from reports import metrics as m

Direction = str  # "max" or "min"


# -- per-run metrics (computed where the run ran, from its arrays) ----------------------
def run_metrics(initial: float, ts_ns: np.ndarray, equity: np.ndarray,
                fills: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Headline figures of one run from its equity curve and fills (``reports.metrics``).

    ``ts_ns``/``equity``: the ``equity`` table in time order; ``fills``: the ``fills``
    columns ts, symbol, quantity, price, fee in store order. Trade figures come from round
    trips rebuilt from the fills."""
    equity = np.asarray(equity, dtype=np.float64)
    ts_ns = np.asarray(ts_ns, dtype=np.int64)
    per_year = m.periods_per_year(ts_ns)
    trips = m.round_trips(fills)
    pnl = trips["pnl"]
    return {
        "total_return": m.total_return(equity, initial),
        "cagr": m.cagr(equity, initial, per_year),
        "sharpe": m.sharpe_ratio(equity, initial, per_year),
        "sortino": m.sortino_ratio(equity, initial, per_year),
        "calmar": m.calmar_ratio(equity, initial, per_year),
        "max_drawdown": m.max_drawdown(equity, initial),
        "volatility": m.annual_volatility(equity, initial, per_year),
        "win_rate": m.win_rate(pnl),
        "profit_factor": m.profit_factor(pnl),
        "trades": float(len(pnl)),
        "fills": float(len(fills["quantity"])),
        "fees": float(np.sum(fills["fee"])) if len(fills["fee"]) else 0.0,
        "final_equity": float(equity[-1]) if len(equity) else float(initial),
    }


def window_score(metric: str, equity: np.ndarray, initial: float, per_year: float) -> float:
    """``metric`` of the equity path ``equity`` that started the window at ``initial``."""
    if metric == "sharpe":
        return m.sharpe_ratio(equity, initial, per_year)
    if metric == "sortino":
        return m.sortino_ratio(equity, initial, per_year)
    if metric == "calmar":
        return m.calmar_ratio(equity, initial, per_year)
    if metric == "total_return":
        return m.total_return(equity, initial)
    if metric == "cagr":
        return m.cagr(equity, initial, per_year)
    if metric == "max_drawdown":
        return m.max_drawdown(equity, initial)
    if metric == "volatility":
        return m.annual_volatility(equity, initial, per_year)
    raise ValueError(f"{metric!r} cannot be scored on a window")


# -- reading a sweep --------------------------------------------------------------------
def sweep_members(con: duckdb.DuckDBPyConnection, sweep_id: str) -> list[dict[str, Any]]:
    """Every combination of the sweep in index order, with its run's status, error and
    metrics (``metrics``: name -> value, NaN where undefined; empty if not stored yet)."""
    rows = con.execute(
        """SELECT s.idx, s.run_id, s.param_set, s.params, s.label, s.regime, s.seed,
                  r.status, r.error
           FROM sweep_runs s LEFT JOIN runs r USING (run_id)
           WHERE s.sweep_id = ? ORDER BY s.idx""", [sweep_id]).fetchall()
    values: dict[str, dict[str, float]] = {}
    for run_id, metric, value in con.execute(
            """SELECT run_id, metric, value FROM run_metrics WHERE run_id IN
               (SELECT run_id FROM sweep_runs WHERE sweep_id = ?) ORDER BY run_id, metric""",
            [sweep_id]).fetchall():
        values.setdefault(run_id, {})[metric] = math.nan if value is None else float(value)
    names = ("idx", "run_id", "param_set", "params", "label", "regime", "seed", "status",
             "error")
    out = []
    for row in rows:
        member = dict(zip(names, row, strict=True))
        member["params"] = json.loads(member["params"])
        member["metrics"] = values.get(member["run_id"], {})
        out.append(member)
    return out


def _aggregate(values: Sequence[float], how: str, direction: Direction) -> float:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    if not len(arr):
        return math.nan
    if how == "mean":
        return float(arr.mean())
    if how == "median":
        return float(np.median(arr))
    if how == "worst":
        return float(arr.min() if direction == "max" else arr.max())
    raise ValueError(f"unknown aggregate {how!r}")


def _order_key(value: float, direction: Direction) -> tuple[int, float]:
    """Sort key: better first, NaN last."""
    if math.isnan(value):
        return (1, 0.0)
    return (0, -value if direction == "max" else value)


def rank_param_sets(members: Sequence[Mapping[str, Any]], rank_by: Sequence[tuple[str,
                    Direction]], aggregate: str = "mean") -> list[dict[str, Any]]:
    """One row per parameter set, best first.

    Each ``rank_by`` metric is aggregated over the set's completed runs (regimes x seeds):
    ``mean``, ``median`` or ``worst`` (the minimum of a higher-is-better metric, the
    maximum of a lower-is-better one), NaN values left out; ``{metric}_n`` says how many
    runs the figure rests on. A set whose first metric is missing (NaN: e.g. a Sharpe
    ratio of a run that never traded) in most of its runs is ``thin``: it gets no rank
    (``rank`` None) and comes last, for its figure speaks for a few runs only. Sets with a
    failed or missing run rank after complete ones; then by the first metric, the next
    ones breaking ties, NaN last; then by parameter-set number. ``std`` is the sample
    spread of the first metric over the set's runs; ``by_regime`` its aggregate within
    each regime."""
    sets: dict[int, list[Mapping[str, Any]]] = {}
    for member in sorted(members, key=lambda mem: mem["idx"]):  # sums in one fixed order
        sets.setdefault(int(member["param_set"]), []).append(member)
    rows = []
    for param_set, group in sorted(sets.items()):
        done = {g["run_id"]: g for g in group if g["status"] == "completed"}
        row: dict[str, Any] = {
            "param_set": param_set, "label": group[0]["label"], "params": group[0]["params"],
            "runs": len({g["run_id"] for g in group}), "completed": len(done),
            "failed": len({g["run_id"] for g in group if g["status"] == "failed"}),
        }
        row["missing"] = row["runs"] - row["completed"] - row["failed"]
        # runs made by other code than the sweep's (kept by --reuse-stale)
        row["stale"] = len({g["run_id"] for g in group if g.get("stale")})
        for metric, direction in rank_by:
            vals = [d["metrics"].get(metric, math.nan) for d in done.values()]
            row[metric] = _aggregate(vals, aggregate, direction)
            row[f"{metric}_n"] = sum(not math.isnan(v) for v in vals)
        first, direction = rank_by[0]
        row["thin"] = 2 * row[f"{first}_n"] < row["runs"]  # missing in most of its runs
        regimes: dict[str, list[float]] = {}
        for d in done.values():
            regimes.setdefault(d["regime"] or "base", []).append(
                d["metrics"].get(first, math.nan))
        row["by_regime"] = {name: _aggregate(v, aggregate, direction)
                            for name, v in sorted(regimes.items())}
        firsts = np.asarray([d["metrics"].get(first, math.nan) for d in done.values()])
        firsts = firsts[~np.isnan(firsts)]
        row[f"{first}_std"] = float(firsts.std(ddof=1)) if len(firsts) > 1 else math.nan
        rows.append(row)
    rows.sort(key=lambda r: (r["thin"], r["failed"] + r["missing"] > 0,
                             *(_order_key(r[k], d) for k, d in rank_by), r["param_set"]))
    for i, row in enumerate(rows, 1):
        row["rank"] = None if row["thin"] else i
    return rows


# -- walk-forward -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Window:
    train_start: int
    train_end: int  # = test start
    test_end: int


def windows(first_ns: int, end_ns: int, train_ns: int, test_ns: int, step_ns: int,
            anchored: bool = False) -> list[Window]:
    """Train ``[train_start, train_end)`` then test ``[train_end, test_end)``, moving on by
    ``step_ns``; only windows whose test ends by ``end_ns`` (the end of the last bar)."""
    out: list[Window] = []
    k = 0
    while True:
        start = first_ns + k * step_ns
        train_end = start + train_ns
        test_end = train_end + test_ns
        if test_end > end_ns:
            return out
        out.append(Window(first_ns if anchored else start, train_end, test_end))
        k += 1


def _window_values(ts: np.ndarray, equity: np.ndarray, initial: float, lo: int,
                   hi: int) -> tuple[np.ndarray, float]:
    """Equity rows stamped in ``[lo, hi)`` and the equity just before them."""
    i, j = np.searchsorted(ts, [lo, hi], side="left")
    return equity[i:j], float(equity[i - 1]) if i > 0 else initial


Curve = tuple[np.ndarray, np.ndarray, float]  # equity stamps (ns), values, initial cash


class EquityCurves:
    """Runs' equity curves kept as they are stored (``keep``), so ``walk_forward`` need
    not read them back: the same arrays the store returns for them (``_equity``), for
    runs whose stamps strictly increase (any other run is read back, whose order the
    store decides). At most ``max_rows`` rows are kept; past them, runs are read back."""

    def __init__(self, max_rows: int = 8_000_000) -> None:
        self.curves: dict[str, Curve] = {}
        self.rows = 0
        self.max_rows = max_rows

    def keep(self, run_id: str, initial: float, equity: pa.Table | None) -> None:
        """``equity``: the run's ``equity`` rows as stored (None: it has none)."""
        n = 0 if equity is None else equity.num_rows
        if self.rows + n > self.max_rows:
            return
        if equity is None or not n:
            self.curves[run_id] = (np.zeros(0, np.int64), np.zeros(0), initial)
            return
        ts = np.array(equity.column("ts").cast(pa.int64()).to_numpy(), dtype=np.int64)
        if n > 1 and not bool(np.all(ts[1:] > ts[:-1])):
            return
        values = np.array(equity.column("equity").to_numpy(), dtype=np.float64)  # copies
        self.curves[run_id] = (ts, values, initial)
        self.rows += n


def walk_forward(con: duckdb.DuckDBPyConnection, members: Sequence[Mapping[str, Any]],
                 metric: str, direction: Direction, train_ns: int, test_ns: int,
                 step_ns: int | None = None, anchored: bool = False,
                 kept: EquityCurves | None = None,
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Choose the best parameter set on each train window, score it on the test window.

    Done separately for each market path: a (regime, seed) pair, where every parameter
    set saw the same bars. Each run covers the whole series once; a window's score is
    ``metric`` of the run's equity rows stamped inside it, starting from the equity just
    before it. So positions and indicator state carry over window boundaries as in a
    strategy that ran all along (switching parameters at a boundary would also inherit
    the previous choice's positions, which this leaves out). Ties go to the lower
    parameter-set number; NaN scores never win. Only completed runs take part.

    ``kept``: curves of runs just stored (``EquityCurves``), not read back.

    Returns (one row per path and window, one stability row per path plus ``all``)."""
    step_ns = step_ns or test_ns
    paths: dict[tuple[str, int], dict[int, Mapping[str, Any]]] = {}
    for mem in sorted(members, key=lambda mem: mem["idx"]):
        if mem["status"] == "completed":
            key = (mem["regime"] or "", int(mem["seed"]))
            paths.setdefault(key, {}).setdefault(int(mem["param_set"]), mem)
    rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    run_ids = [m["run_id"] for by_set in paths.values() for m in by_set.values()]
    known = {} if kept is None else kept.curves
    equity = _equity(con, [r for r in run_ids if r not in known])
    equity.update((r, known[r]) for r in run_ids if r in known)
    for (regime, seed), by_set in sorted(paths.items()):
        curves = {ps: equity[mem["run_id"]] for ps, mem in sorted(by_set.items())}
        # each curve's bars per year, once (not once per window: a median of its stamps)
        per_year = {ps: m.periods_per_year(ts) for ps, (ts, _, _) in curves.items()}
        ts0, _, _ = next(iter(curves.values()))
        spacing = int(np.median(np.diff(ts0))) if len(ts0) > 1 else 0
        grid = windows(int(ts0[0]), int(ts0[-1]) + spacing, train_ns, test_ns, step_ns,
                       anchored) if len(ts0) else []
        path_rows: list[dict[str, Any]] = []
        for w in grid:
            best, best_score = None, math.nan
            for ps, (ts, eq, initial) in curves.items():
                seg, start = _window_values(ts, eq, initial, w.train_start, w.train_end)
                score = window_score(metric, seg, start, per_year[ps])
                if best is None or _order_key(score, direction) < _order_key(best_score,
                                                                             direction):
                    best, best_score = ps, score
            if best is None:  # no curve to choose from
                continue
            ts, eq, initial = curves[best]
            seg, start = _window_values(ts, eq, initial, w.train_end, w.test_end)
            test = window_score(metric, seg, start, per_year[best])
            path_rows.append({
                "regime": regime or None, "seed": seed, "window": len(path_rows),
                "train_start": w.train_start, "train_end": w.train_end,
                "test_end": w.test_end, "param_set": best, "label": by_set[best]["label"],
                "train_score": best_score, "test_score": test,
            })
        rows.extend(path_rows)
        summary.append({"regime": regime or None, "seed": seed, **stability(path_rows)})
    summary.append({"regime": "all", "seed": None, **stability(rows, per_path=True)})
    return rows, summary


def _equity(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str]) -> dict[str, Curve]:
    """Per run: equity stamps (ns), values and the initial cash, in one query."""
    if not run_ids:
        return {}
    # the rows' run ids as one count per run, not a string per row (millions of them)
    counts = con.execute("SELECT run_id, count(*) FROM equity WHERE list_contains(?, run_id)"
                         " GROUP BY run_id ORDER BY run_id", [list(run_ids)]).fetchall()
    got = con.execute("SELECT epoch_ns(ts) AS t, equity FROM equity "
                      "WHERE list_contains(?, run_id) ORDER BY run_id, ts",
                      [list(run_ids)]).fetchnumpy()
    ts = np.asarray(got["t"], np.int64)
    values = np.asarray(got["equity"], np.float64)
    initial = {run_id: float(json.loads(config)["initial_cash"]) for run_id, config in
               con.execute("SELECT run_id, config FROM runs WHERE list_contains(?, run_id)",
                           [list(run_ids)]).fetchall()}
    out = {}
    lo = 0
    for run_id, n in counts:
        out[run_id] = (ts[lo:lo + n], values[lo:lo + n], initial[run_id])
        lo += n
    for run_id in run_ids:  # a completed run with no equity rows (no bars)
        out.setdefault(run_id, (np.zeros(0, np.int64), np.zeros(0), initial[run_id]))
    return out


def stability(rows: Sequence[Mapping[str, Any]], per_path: bool = False) -> dict[str, Any]:
    """How steady the walk-forward choice was: ``changes`` (a window choosing another set
    than the window before it, on the same path), ``change_rate`` (changes over the
    window-to-window steps), ``distinct`` sets chosen, the most chosen one and its
    ``share`` of the windows, and the spread of test scores (mean, sample std, min, max)
    against the mean train score of the chosen sets."""
    n = len(rows)
    changes = steps = 0
    prev: dict[tuple[Any, Any], int] = {}
    counts: dict[int, int] = {}
    labels: dict[int, str] = {}
    for r in rows:
        key = (r["regime"], r["seed"]) if per_path else (None, None)
        if key in prev:
            steps += 1
            changes += prev[key] != r["param_set"]
        prev[key] = r["param_set"]
        counts[r["param_set"]] = counts.get(r["param_set"], 0) + 1
        labels[r["param_set"]] = r["label"]
    test = np.asarray([r["test_score"] for r in rows], dtype=np.float64)
    test = test[~np.isnan(test)]
    train = np.asarray([r["train_score"] for r in rows], dtype=np.float64)
    train = train[~np.isnan(train)]
    top = min(counts, key=lambda ps: (-counts[ps], ps)) if counts else None
    return {
        "windows": n, "changes": changes,
        "change_rate": changes / steps if steps else math.nan,
        "distinct": len(counts),
        "most_chosen_set": top,
        "most_chosen": labels[top] if top is not None else None,
        "share": counts[top] / n if top is not None else math.nan,
        "train_mean": float(train.mean()) if len(train) else math.nan,
        "test_mean": float(test.mean()) if len(test) else math.nan,
        "test_std": float(test.std(ddof=1)) if len(test) > 1 else math.nan,
        "test_min": float(test.min()) if len(test) else math.nan,
        "test_max": float(test.max()) if len(test) else math.nan,
    }


# -- the regime matrix of a sweep --------------------------------------------------------
def sweep_matrix_runs(ranked: Sequence[Mapping[str, Any]], members: Sequence[Mapping[str, Any]],
                      top: int = 20) -> tuple[list[str], dict[str, str]]:
    """The regime matrix's runs (the completed runs of the ``top`` best ranked parameter
    sets, in rank order) and each one's row: its parameter set."""
    chosen = [r["param_set"] for r in ranked[:top]]
    runs: list[str] = []
    labels: dict[str, str] = {}
    for ps in chosen:
        for mem in members:
            if (mem["param_set"] == ps and mem["status"] == "completed"
                    and mem["run_id"] not in labels):
                labels[mem["run_id"]] = f"#{ps} {mem['label']}"
                runs.append(mem["run_id"])
    return runs, labels


def write_sweep_regime_matrix(con: duckdb.DuckDBPyConnection,
                              ranked: Sequence[Mapping[str, Any]],
                              members: Sequence[Mapping[str, Any]], out: Path,
                              top: int = 20) -> tuple[Path, Path] | None:
    """``reports.regime_matrix`` with one row per parameter set (the ``top`` best ranked,
    in rank order), pooling its completed runs over regimes and seeds. None when no run
    completed."""
    from reports.regime_matrix import write_regime_matrix

    runs, labels = sweep_matrix_runs(ranked, members, top)
    if not runs:
        return None
    return write_regime_matrix(con, runs, out, row_labels=labels)
