"""The regime matrix reads all its runs together (``RunData.many``); it must give what
reading them one by one gave. The reference here is that per-run algorithm, rebuilt from
its own SQL: each run's equity, its first symbol by name, and that symbol's labels put on
the equity rows by a DuckDB ASOF join (the batch path does this step in numpy), pooled per
row in run order and summarised by ``slice_stats``. Checked on real runs, on hand-made
stores with the awkward cases, and on random stores (hypothesis). Equal means bit for bit,
NaN where NaN."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reports.data import ReportError, RunData, check_run
from reports.metrics import periods_per_year
from reports.plots import REGIME_COLOURS
from reports.regime_matrix import GROUPINGS, STATS, regime_matrix, write_regime_matrix
from reports.slices import regime_returns, slice_stats
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
HOUR = 3_600_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01 UTC, ns
# a row whose runs all have one equity row has no bar spacing: nanmedian warns, NaN Sharpe
pytestmark = pytest.mark.filterwarnings("ignore:All-NaN slice:RuntimeWarning")

_ASOF = """
WITH ref AS (SELECT ts, coalesce(regime, 'unknown') AS label FROM bars
             WHERE run_id = $r AND symbol = $s)
SELECT coalesce(ref.label, 'unknown') AS label
FROM equity e ASOF LEFT JOIN ref ON e.ts >= ref.ts WHERE e.run_id = $r ORDER BY e.ts
"""


def _reference_row(con: duckdb.DuckDBPyConnection, run_id: str, by: str) -> str:
    scenario, config = con.execute("SELECT scenario, config FROM runs WHERE run_id = ?",
                                   [run_id]).fetchone()
    if by == "run":
        return f"{scenario} {run_id}"
    if by == "scenario":
        return str(scenario)
    cfg = json.loads(config)
    agents = sorted(cfg.get("agents", []), key=lambda a: str(a.get("name")))
    method = cfg.get("consensus", {}).get("method", "?")
    rest = {k: cfg.get(k) for k in ("policy", "risk", "consensus")}
    rest["agents"] = [{k: a.get(k) for k in ("name", "kind", "params")} for a in agents]
    digest = hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:6]
    return f"{'+'.join(str(a.get('name')) for a in agents)} / {method} [{digest}]"


def reference_matrix(con: duckdb.DuckDBPyConnection, run_ids: Sequence[str],
                     by: str = "scenario",
                     row_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The regime matrix computed run by run, with its own queries."""
    pooled: dict[str, dict[str, list[np.ndarray]]] = {}
    per_year: dict[str, list[float]] = {}
    for run_id in run_ids:
        config = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()[0]
        eq = con.execute("SELECT epoch_ns(ts) AS t, equity FROM equity WHERE run_id = ?"
                         " ORDER BY ts", [run_id]).fetchnumpy()
        ts, equity = np.asarray(eq["t"], np.int64), np.asarray(eq["equity"], np.float64)
        path = np.concatenate(([float(json.loads(config)["initial_cash"])], equity))
        returns = path[1:] / path[:-1] - 1.0
        symbols = [s for (s,) in con.execute("SELECT DISTINCT symbol FROM bars WHERE run_id = ?"
                                             " ORDER BY symbol", [run_id]).fetchall()]
        labels = np.asarray(con.execute(_ASOF, {"r": run_id, "s": symbols[0] if symbols
                                                else None}).fetchnumpy()["label"]).astype(str)
        row = row_labels[run_id] if row_labels is not None else _reference_row(con, run_id, by)
        per_year.setdefault(row, []).append(periods_per_year(ts))
        cells = pooled.setdefault(row, {})
        for name in dict.fromkeys(labels.tolist()):
            cells.setdefault(name, []).append(returns[labels == name])
    seen = {n for c in pooled.values() for n in c}
    names = [n for n in REGIME_COLOURS if n in seen] + sorted(seen - set(REGIME_COLOURS))
    rows = list(pooled)
    out: dict[str, Any] = {"rows": rows, "labels": names}
    for stat in (*STATS, "bars"):
        out[stat] = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # every run of the row < 2 rows
            ppy = float(np.nanmedian(per_year[row]))
        for j, name in enumerate(names):
            parts = pooled[row].get(name)
            r = np.concatenate(parts) if parts else np.zeros(0)
            out["bars"][i, j] = len(r)
            if len(r):
                stats = slice_stats(r, ppy)
                for stat in STATS:
                    out[stat][i, j] = stats[stat]
    return out


def assert_same(got: dict[str, Any], ref: dict[str, Any]) -> None:
    assert got["rows"] == ref["rows"]
    assert got["labels"] == ref["labels"]
    for stat in (*STATS, "bars"):
        assert got[stat].shape == ref[stat].shape, stat
        assert np.array_equal(np.isnan(got[stat]), np.isnan(ref[stat])), stat
        assert np.array_equal(got[stat], ref[stat], equal_nan=True), stat


# -- stores ---------------------------------------------------------------------------------
def _insert(con: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    con.register("_rows", rows)
    try:
        con.execute(f"INSERT INTO {table} ({', '.join(rows.column_names)}) SELECT * FROM _rows")
    finally:
        con.unregister("_rows")


def add_run(store: DuckDBStore, run_id: str, scenario: str, config: Mapping[str, Any],
            equity: Sequence[tuple[int, float]],
            bars: Mapping[str, Sequence[tuple[int, str | None]]]) -> None:
    """A run with ``equity`` rows ``(hour, value)`` and, per symbol (in insertion order),
    bars ``(hour, regime label or None)``."""
    store.create_run(run_id, scenario, dict(config), 0, "test", "none")
    if equity:
        hours, values = zip(*equity, strict=True)
        _insert(store.con, "equity", pa.table({
            "run_id": [run_id] * len(hours),
            "ts": pa.array([T0 + h * HOUR for h in hours], pa.timestamp("ns")),
            "equity": pa.array(values, pa.float64())}))
    for symbol, rows in bars.items():
        if rows:
            hours, labels = zip(*rows, strict=True)
            _insert(store.con, "bars", pa.table({
                "run_id": [run_id] * len(hours), "symbol": [symbol] * len(hours),
                "ts": pa.array([T0 + h * HOUR for h in hours], pa.timestamp("ns")),
                "regime": pa.array(labels, pa.string())}))
    store.finish_run(run_id, "completed", len(equity), None)


CFG_A = {"initial_cash": 1000.0, "agents": [{"name": "sma"}, {"name": "zscore"}],
         "consensus": {"method": "vote"}, "policy": {"exposure": 0.5}, "risk": {}}
CFG_B = {**CFG_A, "initial_cash": 500.0}  # the same configuration row, other cash
CFG_C = {**CFG_A, "agents": [{"name": "sma"}], "consensus": {"method": "confidence"}}
A1_EQUITY = [(h, 1000.0 + 10 * h * (-1) ** h) for h in range(10)]


@pytest.fixture(scope="module")
def made() -> duckdb.DuckDBPyConnection:
    with DuckDBStore(":memory:") as store:
        # reference AAA (inserted after BBB): no bar before hour 2, a NULL label at 3,
        # gaps carried forward, a label outside REGIME_COLOURS
        add_run(store, "a1", "s1", CFG_A, A1_EQUITY, {
            "BBB": [(h, "ranging") for h in range(10)],
            "AAA": [(2, "trend_up"), (3, None), (5, "crash"), (6, "crash"), (8, "zeta")]})
        # its reference symbol has no labels at all; 2-hour bars
        add_run(store, "a2", "s1", CFG_B, [(2 * h, 500.0 + h * h) for h in range(6)],
                {"CCC": [(2 * h, None) for h in range(6)], "DDD": [(0, "crash")]})
        # reference BTC, labels on bars between equity rows
        add_run(store, "b1", "s2", CFG_A,
                [(h, 990.0 + 3 * h + (h % 3)) for h in range(0, 12)],
                {"ETH": [(h, "trend_down") for h in range(12)],
                 "BTC": [(0, "crash"), (3, "high_volatility"), (7, "crash"), (11, "ranging")]})
        # no bars at all; one equity row only (no bar spacing: NaN Sharpe)
        add_run(store, "c1", "s2", CFG_C, [(4, 1010.0)], {})
        add_run(store, "d1", "s3", CFG_C, [(h, 1000.0 * 1.01 ** h) for h in range(8)],
                {"XRP": [(h, "trend_up" if h < 5 else "crash") for h in range(8)]})
        store.create_run("e0", "empty", {"initial_cash": 1000.0}, 0, "test", "none")
        store.finish_run("e0", "failed", 0, "nothing ran")
        con = store.con.cursor()
        yield con
        con.close()


MADE = ["a1", "a2", "b1", "c1", "d1"]


@pytest.mark.parametrize("by", GROUPINGS)
@pytest.mark.parametrize("run_ids", [MADE, MADE[::-1], ["b1", "a1", "b1", "d1"], ["c1"]])
def test_batched_equals_run_by_run(made, by: str, run_ids: list[str]) -> None:
    assert_same(regime_matrix(made, run_ids, by), reference_matrix(made, run_ids, by))


def test_row_labels_pool_runs_of_any_scenario_and_config(made) -> None:
    labels = {"a1": "x", "d1": "x", "a2": "y", "b1": "z", "c1": "y"}
    got = regime_matrix(made, MADE, row_labels=labels)
    assert got["rows"] == ["x", "y", "z"]
    assert_same(got, reference_matrix(made, MADE, row_labels=labels))


def test_by_hand(made) -> None:
    m = regime_matrix(made, ["a1", "a2", "c1"], by="run")
    assert m["rows"] == ["s1 a1", "s1 a2", "s2 c1"]
    assert m["labels"] == ["trend_up", "crash", "unknown", "zeta"]
    # a1's hours 0-9: unknown unknown trend_up unknown(NULL) unknown crash crash crash zeta
    # zeta; a2 and c1 all unknown
    assert m["bars"].tolist() == [[1, 3, 4, 2], [0, 0, 6, 0], [0, 0, 1, 0]]
    eq = [e for _, e in A1_EQUITY]
    crash = [eq[h] / eq[h - 1] - 1 for h in (5, 6, 7)]
    assert m["return"][0, 1] == pytest.approx(np.prod(np.add(crash, 1)) - 1, rel=1e-12)
    first = eq[0] / CFG_A["initial_cash"] - 1  # hour 0 returns from the initial cash
    unknown = [first, *(eq[h] / eq[h - 1] - 1 for h in (1, 3, 4))]
    assert m["return"][0, 2] == pytest.approx(np.prod(np.add(unknown, 1)) - 1, rel=1e-12)
    assert np.isnan(m["sharpe"][0, 0])  # one bar: no spread
    assert np.isnan(m["return"][1, 0]) and m["bars"][1, 0] == 0  # a2 never trended
    assert np.isnan(m["sharpe"][2, 2])  # c1: a single row, no bar spacing


def test_each_runs_arrays_are_its_single_run_ones(made) -> None:
    runs = RunData.many(made, MADE)
    assert list(runs) == MADE
    for run_id, run in runs.items():
        alone = RunData(made, run_id)
        assert run.reference == alone.reference
        assert run.initial == alone.initial and run.scenario == alone.scenario
        assert np.array_equal(run.ts, alone.ts) and np.array_equal(run.returns, alone.returns)
        codes, names = run.regimes
        own_codes, own_names = alone.regimes
        assert [names[c] for c in codes] == [own_names[c] for c in own_codes]
        assert {k: v.tolist() for k, v in regime_returns(run).items()} == \
            {k: v.tolist() for k, v in regime_returns(alone).items()}
    assert runs["a1"].reference == "AAA" and runs["c1"].reference is None


@pytest.mark.parametrize(("run_ids", "message"), [
    (["a1", "nope", "e0"], "no run 'nope' in the store"),
    (["a1", "e0", "nope"], "run e0 is empty (no equity rows): nothing to report"),
])
def test_bad_runs_fail_as_check_run_does(made, run_ids: list[str], message: str) -> None:
    bad = run_ids[1]
    with pytest.raises(ReportError) as alone:
        check_run(made, bad)
    assert str(alone.value) == message
    with pytest.raises(ReportError) as batched:
        regime_matrix(made, run_ids)
    assert str(batched.value) == message


def test_no_runs_no_rows(made) -> None:
    m = regime_matrix(made, [])
    assert m["rows"] == [] and m["labels"] == [] and m["sharpe"].shape == (0, 0)


# -- real runs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real() -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    with DuckDBStore(":memory:") as store:
        ids = [run_scenario(load_scenario(REPO / "scenarios" / f), store).run_id
               for f in ("demo.toml", "regimes/trend_up.toml", "regimes/crash.toml",
                         "regimes/regime_switching.toml")]
        con = store.con.cursor()
        yield con, ids
        con.close()


@pytest.mark.parametrize("by", GROUPINGS)
def test_batched_equals_run_by_run_on_real_runs(real, by: str) -> None:
    con, ids = real
    assert_same(regime_matrix(con, ids, by), reference_matrix(con, ids, by))
    labels = {r: f"set {i % 2}" for i, r in enumerate(ids)}
    assert_same(regime_matrix(con, ids[::-1], row_labels=labels),
                reference_matrix(con, ids[::-1], row_labels=labels))


# -- random stores --------------------------------------------------------------------------
LABELS = [None, "trend_up", "crash", "ranging", "zeta"]
hours = st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True).map(sorted)


@st.composite
def runs(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        eq_hours = draw(hours)
        symbols = draw(st.lists(st.sampled_from(["AAA", "BBB", "CCC"]), max_size=3, unique=True))
        out.append({
            "run_id": f"r{i}", "scenario": draw(st.sampled_from(["s1", "s2"])),
            "config": draw(st.sampled_from([CFG_A, CFG_B, CFG_C])),
            "equity": [(h, draw(st.floats(50.0, 150.0))) for h in eq_hours],
            "bars": {s: [(h, draw(st.sampled_from(LABELS))) for h in draw(hours)]
                     for s in symbols}})
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=runs(), data=st.data())
def test_batched_equals_run_by_run_on_random_stores(spec: list[dict[str, Any]],
                                                     data: st.DataObject) -> None:
    with DuckDBStore(":memory:") as store:
        for run in spec:
            add_run(store, **run)
        ids = [r["run_id"] for r in spec]
        run_ids = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=6))
        if data.draw(st.booleans()):
            labels = {r: data.draw(st.sampled_from(["x", "y"])) for r in ids}
            got, ref = (regime_matrix(store.con, run_ids, row_labels=labels),
                        reference_matrix(store.con, run_ids, row_labels=labels))
        else:
            by = data.draw(st.sampled_from(GROUPINGS))
            got, ref = regime_matrix(store.con, run_ids, by), reference_matrix(store.con,
                                                                               run_ids, by)
        assert_same(got, ref)


def test_each_cell_says_how_many_of_its_rows_runs_it_rests_on(made, tmp_path) -> None:
    """A pooled cell from one run of several says so (the counts behind every figure)."""
    labels = {"a1": "x", "d1": "x", "a2": "y", "b1": "z", "c1": "y"}
    m = regime_matrix(made, MADE, row_labels=labels)
    assert m["row_runs"] == [2, 2, 1]
    x = dict(zip(m["labels"], m["runs"][0], strict=True))
    # trend_up and crash: both a1 and d1; unknown and zeta: a1 alone
    assert (x["trend_up"], x["crash"], x["unknown"], x["zeta"]) == (2, 2, 1, 1)
    y = dict(zip(m["labels"], m["runs"][1], strict=True))
    assert y["unknown"] == 2 and y["crash"] == 0  # a2 and c1 never labelled
    _, csv_path = write_regime_matrix(made, MADE, tmp_path, row_labels=labels)
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    zeta = next(r for r in rows if r["row"] == "x" and r["regime"] == "zeta")
    assert (zeta["bars"], zeta["runs"], zeta["row_runs"]) == ("2", "1", "2")


# -- what a row is ----------------------------------------------------------------------------
def _sma(fast: int, symbols: list[str], kind: str = "sma_crossover") -> dict[str, Any]:
    return {**CFG_A, "agents": [{"name": "sma", "kind": kind, "params": {"fast": fast},
                                 "symbols": symbols}]}


def test_config_rows_part_agent_params_and_pool_regimes() -> None:
    """Two sweep members with sma.fast 6 and 12 are two configurations (they shared a row
    when only agent names were hashed); one configuration whose agent a suite run pointed
    at another regime's symbols is one."""
    with DuckDBStore(":memory:") as store:
        for run_id, cfg in (("f6", _sma(6, ["BTC"])), ("f6eth", _sma(6, ["ETH"])),
                            ("f12", _sma(12, ["BTC"])),
                            ("ema", _sma(6, ["BTC"], "ema_crossover"))):
            add_run(store, run_id, "s", cfg, [(h, 1000.0 + h) for h in range(4)],
                    {"BTC": [(h, "trend_up") for h in range(4)]})
        m = regime_matrix(store.con, ["f6", "f6eth", "f12", "ema"], by="config")
    assert len(m["rows"]) == 3 and m["row_runs"] == [2, 1, 1]


def test_compare_puts_each_run_in_its_own_row_by_default(tmp_path: Path) -> None:
    """``compare A B --regimes`` of two seeds of one scenario: two rows, not one pooled."""
    def quorum(*argv: str) -> str:
        done = subprocess.run([sys.executable, "-m", "quorum.cli", *argv], cwd=tmp_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        return done.stdout

    scenario = str(REPO / "scenarios" / "regimes" / "trend_up.toml")
    ids = [re.search(r"run id: ([0-9a-f]{12})", quorum("run", scenario, "--seed", seed,
                                                      "--quiet")).group(1)
           for seed in ("1", "2")]
    quorum("compare", *ids, "--regimes", "--out", "cmp")
    with (tmp_path / "cmp" / "regime_matrix.csv").open() as fh:
        rows = {r["row"]: int(r["row_runs"]) for r in csv.DictReader(fh)}
    assert sorted(rows) == ["seed=1", "seed=2"]  # named by what differs (issue 21)
    assert set(rows.values()) == {1}
    quorum("compare", *ids, "--regimes", "--by", "scenario", "--out", "pooled")
    with (tmp_path / "pooled" / "regime_matrix.csv").open() as fh:
        assert {(r["row"], r["row_runs"]) for r in csv.DictReader(fh)} == {
            ("regime_trend_up", "2")}
