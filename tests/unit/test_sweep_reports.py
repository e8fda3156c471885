"""A sweep's analysis (``reports.sweep``): ranking, walk-forward windows and stability,
checked against hand-computed cases and an independent pandas computation."""

from __future__ import annotations

import json
import math
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from reports.sweep import rank_param_sets, stability, sweep_matrix_runs, walk_forward, windows
from research.sweep import RANK_METRICS, WINDOW_METRICS

DAY = 86_400 * 10**9


def member(idx: int, param_set: int, status: str = "completed", regime: str | None = "r",
           seed: int = 1, **metrics: float) -> dict[str, Any]:
    return {"idx": idx, "run_id": f"run{idx}", "param_set": param_set,
            "params": {"p": param_set}, "label": f"p={param_set}", "regime": regime,
            "seed": seed, "status": status, "error": None, "metrics": metrics}


def test_ranking_aggregates_over_runs_and_orders_best_first() -> None:
    members = [
        member(0, 0, sharpe=1.0, max_drawdown=0.10), member(1, 0, sharpe=3.0, max_drawdown=0.30),
        member(2, 1, sharpe=2.0, max_drawdown=0.05), member(3, 1, sharpe=2.0, max_drawdown=0.15),
        member(4, 2, sharpe=5.0, max_drawdown=0.01), member(5, 2, status="failed"),
        member(6, 3, sharpe=math.nan, max_drawdown=0.0), member(7, 3, sharpe=math.nan,
                                                                max_drawdown=0.0),
    ]
    by = [("sharpe", "max"), ("max_drawdown", "min")]
    mean = rank_param_sets(members, by, "mean")
    # sets 0 and 1 tie on mean sharpe (2.0): the lower mean drawdown (0.10 < 0.20) wins;
    # set 2 has a failed run (after complete sets); set 3's sharpe is NaN in all its runs:
    # not ranked, last
    assert [r["param_set"] for r in mean] == [1, 0, 2, 3]
    assert [r["rank"] for r in mean] == [1, 2, 3, None]
    assert [r["sharpe_n"] for r in mean] == [2, 2, 1, 0]
    assert [r["thin"] for r in mean] == [False, False, False, True]
    assert mean[0]["sharpe"] == 2.0 and mean[0]["max_drawdown"] == pytest.approx(0.10)
    assert mean[1]["sharpe_std"] == pytest.approx(np.std([1.0, 3.0], ddof=1))
    assert mean[2]["failed"] == 1 and mean[2]["completed"] == 1 and mean[2]["sharpe"] == 5.0
    worst = rank_param_sets(members, by, "worst")
    assert [r["param_set"] for r in worst] == [1, 0, 2, 3]  # worst sharpe 2.0 vs 1.0
    assert worst[0]["max_drawdown"] == 0.15 and worst[1]["max_drawdown"] == 0.30
    median = rank_param_sets(members[:4], [("max_drawdown", "min")], "median")
    assert [r["param_set"] for r in median] == [1, 0]


def test_a_figure_from_a_few_of_a_sets_runs_is_flagged_not_ranked() -> None:
    """The observed case: "12/12 completed" and a mean Sharpe of -2.595 from 1 run, the
    other 11 never traded (Sharpe undefined). It must not rank as if it stood for 12."""
    members = [member(i, 0, seed=i, sharpe=-2.595 if i == 0 else math.nan)
               for i in range(12)]
    members += [member(12 + i, 1, seed=i, sharpe=-3.0 + 0.1 * (i % 2)) for i in range(12)]
    members += [member(24 + i, 2, seed=i, sharpe=1.0 if i < 6 else math.nan)
                for i in range(12)]  # half: not "most" missing, ranked with its count
    ranked = rank_param_sets(members, [("sharpe", "max")], "mean")
    by_set = {r["param_set"]: r for r in ranked}
    assert by_set[0]["completed"] == 12 and by_set[0]["sharpe"] == -2.595
    assert by_set[0]["sharpe_n"] == 1 and by_set[0]["thin"] and by_set[0]["rank"] is None
    assert by_set[1]["sharpe_n"] == 12 and by_set[2]["sharpe_n"] == 6
    assert [(r["param_set"], r["rank"]) for r in ranked] == [(2, 1), (1, 2), (0, None)]
    for how in ("median", "worst"):  # whatever the aggregate
        assert rank_param_sets(members, [("sharpe", "max")], how)[-1]["param_set"] == 0


def test_the_regime_matrix_takes_the_completed_runs_of_the_top_sets_in_rank_order() -> None:
    members = [member(0, 0), member(1, 1), member(2, 0, status="failed"), member(3, 2),
               member(4, 1), {**member(5, 1), "run_id": "run1"}]  # a run shared by 2 entries
    ranked = [{"param_set": 1}, {"param_set": 0}, {"param_set": 2}]
    runs, labels = sweep_matrix_runs(ranked, members, top=2)
    assert runs == ["run1", "run4", "run0"]
    assert labels == {"run1": "#1 p=1", "run4": "#1 p=1", "run0": "#0 p=0"}
    assert sweep_matrix_runs(ranked, members, top=0) == ([], {})


def test_ranking_breaks_the_first_metric_down_by_regime() -> None:
    members = [member(0, 0, regime="up", sharpe=1.0), member(1, 0, regime="up", sharpe=3.0),
               member(2, 0, regime="down", sharpe=-1.0), member(3, 0, regime="down",
                                                                  sharpe=0.0)]
    (row,) = rank_param_sets(members, [("sharpe", "max")], "mean")
    assert row["by_regime"] == {"down": -0.5, "up": 2.0}
    (row,) = rank_param_sets(members, [("sharpe", "max")], "worst")
    assert row["by_regime"] == {"down": -1.0, "up": 1.0} and row["sharpe"] == -1.0


def test_ranking_is_independent_of_member_order() -> None:
    rng = np.random.default_rng(3)
    members = [member(i, i % 5, seed=i // 5, sharpe=float(rng.normal()),
                      max_drawdown=float(rng.uniform())) for i in range(30)]
    by = [("sharpe", "max"), ("max_drawdown", "min")]
    reference = rank_param_sets(members, by)
    for _ in range(5):
        shuffled = [members[i] for i in rng.permutation(len(members))]
        assert rank_param_sets(shuffled, by) == reference


def test_windows_rolling_and_anchored() -> None:
    got = windows(0, 10 * DAY, 3 * DAY, 2 * DAY, 2 * DAY)
    assert [(w.train_start // DAY, w.train_end // DAY, w.test_end // DAY) for w in got] == [
        (0, 3, 5), (2, 5, 7), (4, 7, 9)]
    got = windows(0, 10 * DAY, 3 * DAY, 2 * DAY, 2 * DAY, anchored=True)
    assert [(w.train_start // DAY, w.train_end // DAY) for w in got] == [(0, 3), (0, 5), (0, 7)]
    assert windows(0, 4 * DAY, 3 * DAY, 2 * DAY, 2 * DAY) == []


def test_stability_hand_computed() -> None:
    rows = [{"regime": "r", "seed": 1, "param_set": ps, "label": f"p={ps}",
             "train_score": tr, "test_score": te}
            for ps, tr, te in [(0, 1.0, 0.5), (0, 2.0, -0.5), (1, 3.0, 1.0), (1, 1.0, 2.0),
                               (0, 3.0, 0.0)]]
    s = stability(rows)
    assert (s["windows"], s["changes"], s["distinct"]) == (5, 2, 2)
    assert s["change_rate"] == 0.5
    assert (s["most_chosen"], s["share"]) == ("p=0", 0.6)
    assert s["train_mean"] == 2.0 and s["test_mean"] == 0.6
    assert s["test_std"] == pytest.approx(np.std([0.5, -0.5, 1.0, 2.0, 0.0], ddof=1))
    assert (s["test_min"], s["test_max"]) == (-0.5, 2.0)
    # across two paths a change is counted only within a path
    other = [{**r, "seed": 2} for r in rows[:2]]
    assert stability(rows + other, per_path=True)["changes"] == 2


def _store(curves: dict[int, np.ndarray], initial: float = 100.0
           ) -> tuple[duckdb.DuckDBPyConnection, list[dict[str, Any]]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE runs (run_id VARCHAR, config JSON)")
    con.execute("CREATE TABLE equity (run_id VARCHAR, ts TIMESTAMP_NS, equity DOUBLE)")
    members = []
    for ps, eq in curves.items():
        run_id = f"run{ps}"
        con.execute("INSERT INTO runs VALUES (?, ?)", [run_id,
                                                       json.dumps({"initial_cash": initial})])
        con.register("frame", pd.DataFrame({
            "run_id": run_id, "ts": pd.to_datetime(np.arange(len(eq)) * DAY, unit="ns"),
            "equity": eq}))
        con.execute("INSERT INTO equity SELECT * FROM frame")
        con.unregister("frame")
        members.append(member(ps, ps, regime=None))
    return con, members


def _reference(curves: dict[int, np.ndarray], initial: float, metric: str, train: int,
               test: int, step: int) -> list[tuple[int, float, float]]:
    """Walk-forward by pandas on daily bars: a window's returns are the series' returns
    (the first one against the bar before, or the initial cash) of the bars inside it."""
    returns = {ps: pd.Series(np.concatenate(([initial], eq))).pct_change().dropna()
               .reset_index(drop=True) for ps, eq in curves.items()}

    def score(r: pd.Series) -> float:
        if metric == "total_return":
            return float((1 + r).prod() - 1)
        if metric == "sharpe":
            return float(r.mean() / r.std(ddof=1) * math.sqrt(365))
        path = (1 + r).cumprod()  # max_drawdown, the start counting as a peak
        return float((1 - path / path.cummax().clip(lower=1.0)).max())

    n = len(next(iter(curves.values())))
    out = []
    start = 0
    while start + train + test <= n:
        train_scores = {ps: score(r.iloc[start:start + train]) for ps, r in returns.items()}
        if metric == "max_drawdown":
            best = min(train_scores, key=lambda ps: (train_scores[ps], ps))
        else:
            best = max(train_scores, key=lambda ps: (train_scores[ps], -ps))
        test_score = score(returns[best].iloc[start + train:start + train + test])
        out.append((best, train_scores[best], test_score))
        start += step
    return out


@pytest.mark.parametrize("metric", ["total_return", "sharpe", "max_drawdown"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_walk_forward_matches_an_independent_computation(metric: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    curves = {ps: 100.0 * np.cumprod(1 + rng.normal(0.001 * ps, 0.02, 60)) for ps in range(4)}
    con, members = _store(curves)
    rows, summary = walk_forward(con, members, metric, RANK_METRICS[metric], 10 * DAY,
                                 5 * DAY, 3 * DAY)
    want = _reference(curves, 100.0, metric, 10, 5, 3)
    assert len(rows) == len(want) == (60 - 15) // 3 + 1
    for row, (best, train_score, test_score) in zip(rows, want, strict=True):
        assert row["param_set"] == best
        assert row["train_score"] == pytest.approx(train_score, rel=1e-9, abs=1e-12)
        assert row["test_score"] == pytest.approx(test_score, rel=1e-9, abs=1e-12)
    assert summary[-1]["regime"] == "all" and summary[-1]["windows"] == len(rows)


def test_walk_forward_on_kept_curves_is_the_walk_forward_on_the_store() -> None:
    """Curves kept as runs are stored (``EquityCurves``) give the same windows as the
    store's; one whose stamps do not increase is not kept (read back instead), nor are
    runs past the kept row budget."""
    import pyarrow as pa

    from reports.sweep import EquityCurves

    rng = np.random.default_rng(5)
    curves = {ps: 100.0 * np.cumprod(1 + rng.normal(0.001 * ps, 0.02, 40)) for ps in range(4)}
    con, members = _store(curves)
    want = walk_forward(con, members, "sharpe", "max", 10 * DAY, 5 * DAY)
    kept = EquityCurves(max_rows=3 * 40 - 1)
    for mem in members:
        ts = np.arange(40) * DAY
        if mem["param_set"] == 1:
            ts[5] = ts[4]  # not increasing: left to the store
        kept.keep(mem["run_id"], 100.0, pa.table({
            "ts": pa.array(ts, pa.timestamp("ns")), "equity": curves[mem["param_set"]]}))
    assert set(kept.curves) == {members[0]["run_id"], members[2]["run_id"]}  # 3: past it
    assert walk_forward(con, members, "sharpe", "max", 10 * DAY, 5 * DAY, kept=kept) == want
    con.execute("DELETE FROM equity WHERE run_id = ?", [members[0]["run_id"]])
    assert walk_forward(con, members, "sharpe", "max", 10 * DAY, 5 * DAY, kept=kept) == want


def test_walk_forward_leaves_out_failed_runs_and_nan_never_wins() -> None:
    flat = np.full(30, 100.0)  # no spread: sharpe NaN
    rising = 100.0 * np.cumprod(np.full(30, 1.001) + np.tile([0.001, -0.001], 15))
    falling = rising[::-1].copy()
    con, members = _store({0: flat, 1: falling, 2: rising})
    members[2]["status"] = "failed"
    rows, _ = walk_forward(con, members, "sharpe", "max", 5 * DAY, 5 * DAY)
    assert {r["param_set"] for r in rows} == {1}


def test_metric_vocabulary_is_what_run_metrics_computes() -> None:
    from reports.sweep import run_metrics, window_score

    fills = {"ts": np.array([1, 2]), "symbol": np.array(["A", "A"], dtype=object),
             "quantity": np.array([1.0, -1.0]), "price": np.array([10.0, 11.0]),
             "fee": np.array([0.1, 0.1])}
    got = run_metrics(100.0, np.arange(5) * DAY, np.array([100, 101, 99, 102, 103.0]), fills)
    assert set(RANK_METRICS) <= set(got)
    assert got["trades"] == 1 and got["win_rate"] == 1.0 and got["fees"] == pytest.approx(0.2)
    for name in WINDOW_METRICS:
        assert math.isfinite(window_score(name, np.array([100, 101, 99, 102, 103.0]), 100.0,
                                          365.0))
