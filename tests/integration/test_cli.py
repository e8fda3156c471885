"""The ``quorum`` command end to end: run / runs / show / query, bad input (exit 2, one line
on stderr, nothing marked completed), and runs that fail or are interrupted part-way."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from quorum.cli import main
from sim.config import parse_scenario
from sim.data import gbm_bars
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "demo.toml"
DATA = REPO / "data"
RUN_ID = re.compile(r"run id: ([0-9a-f]{12})")
AGENTS_MODULE = "quorum_test_user_agents"
AGENTS_SOURCE = '''
from sim.messages import FLAT, LONG, Signal


class Scripted:
    """LONG at bar 10, FLAT at bar 50, and ``fail_with`` raised on bar ``fail_at``."""

    def __init__(self, fail_at=100, fail_with="RuntimeError"):
        self.fail_at = fail_at
        self.fail_with = fail_with

    def on_bar(self, view):
        if view.n == self.fail_at:
            if self.fail_with == "KeyboardInterrupt":
                raise KeyboardInterrupt
            raise RuntimeError(f"boom at bar {view.n}")
        if view.n == 10:
            return Signal(LONG, 1.0)
        if view.n == 50:
            return Signal(FLAT, 1.0)
        return None
'''


# -- helpers ---------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def to_toml(raw: dict[str, Any]) -> str:
    """Just enough TOML for scenario dicts: scalars, [table]s and [[array of tables]]."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in raw.items() if not isinstance(v, dict | list)
             or (isinstance(v, list) and not all(isinstance(x, dict) for x in v))]
    for key, value in raw.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for item in value:
                lines += ["", f"[[{key}]]", *(f"{k} = {_toml_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def small_scenario(data: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    data = data or [{"kind": "gbm", "symbol": "SYN", "bars": 400, "interval": "1m",
                     "volatility": 2.0}]
    raw: dict[str, Any] = {
        "name": "small",
        "description": "generated test scenario",
        "seed": 3,
        "data": data,
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}}],
        "risk": {"max_order_notional": 50_000.0},
        "venues": [{"name": "v", "symbols": [d["symbol"] for d in data], "fee_bps": 5.0}],
    }
    raw.update(extra)
    return raw


def write_scenario(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(to_toml(raw))
    return path


def write_csv(path: Path, n: int = 60, seed: int = 0) -> Path:
    bars = gbm_bars("X", n, np.random.default_rng(seed),
                    start_ns=pd.Timestamp("2024-01-01T00:00:00Z").value, interval_ns=60 * 10**9)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(bars.ts, utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **{c: bars.column(c) for c in ("open", "high", "low", "close", "volume")},
    })
    frame.to_csv(path, index=False)
    return path


def rows(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def count(db: Path, table: str, run_id: str) -> int:
    return rows(db, f"SELECT count(*) FROM {table} WHERE run_id = ?", [run_id])[0][0]


def run_row(db: Path, run_id: str) -> dict[str, Any]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        rel = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        names = [d[0] for d in rel.description]
        return dict(zip(names, rel.fetchone(), strict=True))
    finally:
        con.close()


def assert_nothing_stored(db: Path) -> None:
    """Bad input: no completed run, and in fact no run row at all."""
    if not db.exists():
        return
    assert rows(db, "SELECT count(*) FROM runs WHERE status = 'completed'")[0][0] == 0
    assert rows(db, "SELECT run_id, status FROM runs") == []


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert "Traceback" not in err
    return lines[0]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(*argv: str, cwd: Path, pythonpath: Path | None = None
                   ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def user_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An importable module with a scripted user agent (``module:Class`` form)."""
    agents_dir = tmp_path / "agents"
    agents_dir.mkdir()
    (agents_dir / f"{AGENTS_MODULE}.py").write_text(AGENTS_SOURCE)
    monkeypatch.syspath_prepend(str(agents_dir))
    monkeypatch.delitem(sys.modules, AGENTS_MODULE, raising=False)
    return agents_dir


def scripted_scenario(fail_at: int, fail_with: str = "RuntimeError") -> dict[str, Any]:
    return small_scenario(
        data=[{"kind": "gbm", "symbol": "SYN", "bars": 300, "interval": "1m"}],
        agents=[{"name": "user", "kind": f"{AGENTS_MODULE}:Scripted",
                 "params": {"fail_at": fail_at, "fail_with": fail_with}}],
    )


# -- the demo, once per module ---------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("demo")
    db, out_dir = base / "runs.duckdb", base / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["run", str(DEMO), "--db", str(db), "--out", str(out_dir)])
    match = RUN_ID.search(stdout.getvalue())
    yield {"code": code, "out": stdout.getvalue(), "err": stderr.getvalue(), "db": db,
           "out_dir": out_dir, "run_id": match.group(1) if match else None}


def test_demo_run_succeeds_and_prints_summary(demo):
    assert demo["code"] == 0, demo["err"]
    assert demo["run_id"], demo["out"]
    out = demo["out"]
    for word in ("demo", "completed", "final_equity", "total_return", "sharpe", "fills"):
        assert word in out, out
    assert f"run id: {demo['run_id']}  (store: {demo['db']})" in out
    assert "Traceback" not in demo["err"]


def test_demo_run_is_stored_completed(demo):
    run = run_row(demo["db"], demo["run_id"])
    assert run["status"] == "completed"
    assert run["scenario"] == "demo"
    assert run["seed"] == 7
    assert run["n_bars"] == 3 * 5760
    assert run["error"] is None and run["finished_at"] is not None
    assert run["code_version"] and len(run["data_hash"]) == 32
    assert json.loads(run["config"])["risk"]["max_order_notional"] == 5000.0


def test_demo_run_writes_every_pipeline_table(demo):
    db, run_id = demo["db"], demo["run_id"]
    counts = {table: count(db, table, run_id) for table in TABLES}
    # the demo's limits never bind, so it records no risk denials (see the tight-risk test),
    # none of its agents calls an outside service (tests/integration/test_external_agent),
    # and it trades spot only: no funding or liquidations (tests/unit/test_perpetuals.py);
    # it stays healthy (no health changes) and agent_figures are a session's
    # (tests/integration/test_monitor_scenario.py, test_session_observe.py); it has no
    # [[farms]], so no farm rows (tests/unit/test_farms_hand_computed.py)
    farm_tables = ("farms", "farm_orders", "farm_decisions", "farm_equity",
                   "capital_transfers", "farm_events", "farm_funding", "farm_liquidations")
    empty = [t for t, n in counts.items()
             if n == 0 and t not in ("risk_events", "agent_calls", "agent_errors", "funding",
                                     "liquidations", "health", "agent_figures", *farm_tables)]
    assert not empty, counts
    assert counts["equity"] == 5760  # one row per timestamp; the three series align
    assert counts["votes"] >= counts["decisions"] > 0
    assert counts["fills"] <= counts["orders"]


def test_demo_outputs(demo):
    out_dir, run_id = demo["out_dir"], demo["run_id"]
    assert {p.name for p in out_dir.iterdir()} >= {"summary.json", "equity.csv", "fills.csv",
                                                    "equity.png"}
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    assert summary["fills"] == count(demo["db"], "fills", run_id)
    # run ids are hex: one like "706700e37331" would otherwise be read as a float
    equity = pd.read_csv(out_dir / "equity.csv", dtype={"run_id": str})
    assert len(equity) == count(demo["db"], "equity", run_id)
    assert (equity["run_id"] == run_id).all()
    assert summary["final_equity"] == pytest.approx(equity["equity"].iloc[-1])
    fills = pd.read_csv(out_dir / "fills.csv", dtype={"run_id": str})
    assert len(fills) == summary["fills"]
    assert (out_dir / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_runs_lists_the_run(demo, capsys):
    code, out, err = run_cli(capsys, "runs", "--db", str(demo["db"]))
    assert code == 0, err
    assert demo["run_id"] in out and "completed" in out and "demo" in out


def test_show_accepts_a_unique_prefix(demo, capsys):
    run_id = demo["run_id"]
    code, out, err = run_cli(capsys, "show", run_id[:5], "--db", str(demo["db"]))
    assert code == 0, err
    assert f"run {run_id}" in out
    for word in ("completed", "data_hash", "code_version", "final_equity"):
        assert word in out, out
    code, out, err = run_cli(capsys, "show", run_id, "--db", str(demo["db"]), "--config")
    assert code == 0, err
    assert '"max_order_notional"' in out


def test_show_routing_prints_venue_distribution(demo, capsys):
    db, run_id = demo["db"], demo["run_id"]
    code, out, err = run_cli(capsys, "show", run_id, "--db", str(db), "--routing")
    assert code == 0, err
    for word in ("routing by venue and symbol", "success_rate", "p99_route_us",
                 "routed_orders"):
        assert word in out, out
    venues = rows(db, "SELECT DISTINCT venue FROM routing_decisions WHERE run_id = ?",
                  [run_id])
    assert venues and all(v in out for (v,) in venues)


def test_query_counts_fills(demo, capsys):
    db, run_id = demo["db"], demo["run_id"]
    fills = count(db, "fills", run_id)
    code, out, err = run_cli(capsys, "query", "select count(*) from fills", "--db", str(db))
    assert code == 0, err
    assert str(fills) in out
    code, out, err = run_cli(capsys, "query", "select count(*) as n from fills", "--db", str(db),
                             "--csv")
    assert code == 0, err
    assert list(csv.reader(out.splitlines())) == [["n"], [str(fills)]]


# -- smaller generated runs ------------------------------------------------------------
def test_seed_override_is_stored(tmp_path, capsys):
    scenario = write_scenario(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    ids = {}
    for seed in (None, 11, 12):
        argv = ["run", str(scenario), "--db", str(db), "--quiet"]
        if seed is not None:
            argv += ["--seed", str(seed)]
        code, out, err = run_cli(capsys, *argv)
        assert code == 0, err
        ids[seed] = RUN_ID.search(out).group(1)
    stored = {seed: run_row(db, run_id) for seed, run_id in ids.items()}
    assert stored[None]["seed"] == 3  # the scenario's own seed
    assert stored[11]["seed"] == 11 and stored[12]["seed"] == 12
    assert json.loads(stored[11]["config"])["seed"] == 11
    # the seed drives the generated data, so the data hash follows it
    assert len({s["data_hash"] for s in stored.values()}) == 3
    assert all(s["status"] == "completed" for s in stored.values())


def test_same_seed_same_data_hash(tmp_path, capsys):
    scenario = write_scenario(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    for _ in range(2):
        assert run_cli(capsys, "run", str(scenario), "--db", str(db), "--seed", "5")[0] == 0
    hashes = rows(db, "SELECT DISTINCT data_hash FROM runs")
    assert len(hashes) == 1


def test_tight_risk_fills_every_table(tmp_path, capsys):
    raw = small_scenario(risk={"max_orders_per_day": 2})
    scenario = write_scenario(tmp_path / "s.toml", raw)
    db = tmp_path / "runs.duckdb"
    code, out, err = run_cli(capsys, "run", str(scenario), "--db", str(db))
    assert code == 0, err
    run_id = RUN_ID.search(out).group(1)
    counts = {table: count(db, table, run_id) for table in TABLES
              if table not in ("agent_calls", "agent_errors", "funding",
                               "liquidations",  # spot, no calls
                               "health", "alerts", "agent_figures",  # nothing to watch
                               "farms", "farm_orders", "farm_decisions", "farm_equity",
                               "capital_transfers", "farm_events", "farm_funding",
                               "farm_liquidations")}  # no [[farms]]
    assert all(counts.values()), counts
    assert rows(db, "SELECT DISTINCT status FROM orders WHERE run_id = ? ORDER BY 1",
                [run_id]) == [("denied",), ("filled",)]


def test_show_ambiguous_and_unknown_prefix(tmp_path, capsys):
    config = parse_scenario(small_scenario())
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store:
        for run_id in ("abcd00000001", "abcd00000002"):
            run_scenario(config, store, run_id=run_id)
    code, _, err = run_cli(capsys, "show", "abcd", "--db", str(db))
    assert code == 2
    assert "ambiguous" in one_line(err)
    code, out, err = run_cli(capsys, "show", "abcd00000002", "--db", str(db))
    assert code == 0 and "run abcd00000002" in out, err
    code, _, err = run_cli(capsys, "show", "ffff", "--db", str(db))
    assert code == 2
    assert "no run 'ffff'" in one_line(err)


def test_gaps_skip_lets_the_ada_file_run(tmp_path, capsys):
    data = [{"symbol": "ADABTC", "path": str(DATA / "binance_ADA_BTC_5m_2018-01.csv"),
             "interval": "5m", "gaps": "skip"}]
    scenario = write_scenario(tmp_path / "ada.toml", small_scenario(data=data))
    db = tmp_path / "runs.duckdb"
    code, out, err = run_cli(capsys, "run", str(scenario), "--db", str(db))
    assert code == 0, err
    assert run_row(db, RUN_ID.search(out).group(1))["n_bars"] == 5720


# -- bad input: exit 2, one line naming the problem, nothing stored ---------------------
def _file_scenario(tmp_path: Path, csv_path: Path, **source: Any) -> Path:
    data = [{"symbol": "X", "path": str(csv_path), "interval": "1m", **source}]
    return write_scenario(tmp_path / "s.toml", small_scenario(data=data))


def _corrupt_csv(tmp_path: Path, edit) -> tuple[Path, Path]:
    path = write_csv(tmp_path / "bars.csv")
    frame = pd.read_csv(path, dtype={"timestamp": str})
    edit(frame)
    frame.to_csv(path, index=False)
    return _file_scenario(tmp_path, path), path


def _set(frame: pd.DataFrame, row: int, column: str, value: Any) -> None:
    frame.loc[row, column] = value


def bad_malformed(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(to_toml(small_scenario()).replace("seed = 3", "seed = = 3"))
    return path, [f"{path}: malformed TOML", "line 3"]


def bad_unknown_agent(tmp_path):
    raw = small_scenario()
    raw["agents"][0]["kind"] = "no_such_agent"
    path = write_scenario(tmp_path / "s.toml", raw)
    return path, [str(path), "agents.0.kind", "unknown agent 'no_such_agent'"]


def bad_negative_limit(tmp_path):
    path = write_scenario(tmp_path / "s.toml", small_scenario(risk={"max_order_notional": -5}))
    return path, [str(path), "risk.max_order_notional", "greater than 0"]


def bad_unknown_field(tmp_path):
    path = write_scenario(tmp_path / "s.toml", small_scenario(risk={"max_order": 5.0}))
    return path, ["risk.max_order: unknown field"]


def bad_interval(tmp_path):
    path = _file_scenario(tmp_path, write_csv(tmp_path / "bars.csv"), interval="5 minutes")
    return path, ["data.0.interval", "5 minutes"]


def bad_duplicate_symbols(tmp_path):
    data = [{"kind": "gbm", "symbol": "SYN", "bars": 50},
            {"kind": "gbm", "symbol": "SYN", "bars": 50}]
    raw = small_scenario(data=data)
    return write_scenario(tmp_path / "s.toml", raw), ["symbol 'SYN' appears twice"]


def bad_agent_symbol(tmp_path):
    raw = small_scenario()
    raw["agents"][0]["symbols"] = ["NOPE"]
    return write_scenario(tmp_path / "s.toml", raw), ["agents.sma.symbols", "'NOPE'"]


def bad_agent_params(tmp_path):
    raw = small_scenario()
    raw["agents"][0]["params"] = {"fast": 8, "slow": 3}
    return write_scenario(tmp_path / "s.toml", raw), ["sma_crossover", "bad parameters"]


def bad_csv_nan(tmp_path):
    scenario, path = _corrupt_csv(tmp_path, lambda f: _set(f, 17, "close", np.nan))
    return scenario, [f"{path} line 19: close"]


def bad_csv_duplicates(tmp_path):
    def edit(f):
        f.loc[30, "timestamp"] = f.loc[29, "timestamp"]
    scenario, path = _corrupt_csv(tmp_path, edit)
    return scenario, [f"{path} line 32: duplicate timestamp"]


def bad_csv_unsorted(tmp_path):
    def edit(f):
        f.loc[[40, 41]] = f.loc[[41, 40]].to_numpy()
    scenario, path = _corrupt_csv(tmp_path, edit)
    return scenario, [f"{path} line 43: ", "sorted"]


def bad_csv_high(tmp_path):
    scenario, path = _corrupt_csv(tmp_path, lambda f: _set(f, 5, "high", f.loc[5, "low"]))
    return scenario, [f"{path} line 7: high"]


def bad_csv_price(tmp_path):
    scenario, path = _corrupt_csv(tmp_path, lambda f: _set(f, 9, "open", 0.0))
    return scenario, [f"{path} line 11: open", "not positive"]


def bad_gap(tmp_path):
    path = DATA / "binance_ADA_BTC_5m_2018-01.csv"
    data = [{"symbol": "ADABTC", "path": str(path), "interval": "5m"}]
    scenario = write_scenario(tmp_path / "s.toml", small_scenario(data=data))
    return scenario, [f"{path} line ", "gap", 'gaps = "skip"']


def bad_missing_csv(tmp_path):
    path = tmp_path / "missing.csv"
    return _file_scenario(tmp_path, path), [f"{path}: file not found"]


def bad_missing_scenario(tmp_path):
    path = tmp_path / "nope.toml"
    return path, [f"{path}: scenario file not found"]


BAD_INPUTS = [bad_malformed, bad_unknown_agent, bad_negative_limit, bad_unknown_field,
              bad_interval, bad_duplicate_symbols, bad_agent_symbol, bad_agent_params,
              bad_csv_nan, bad_csv_duplicates, bad_csv_unsorted, bad_csv_high, bad_csv_price,
              bad_gap, bad_missing_csv, bad_missing_scenario]


@pytest.mark.parametrize("make", BAD_INPUTS, ids=[f.__name__[4:] for f in BAD_INPUTS])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, make):
    scenario, words = make(tmp_path)
    db = tmp_path / "runs.duckdb"
    code, out, err = run_cli(capsys, "run", str(scenario), "--db", str(db))
    assert code == 2, (out, err)
    line = one_line(err)
    assert line.startswith("quorum: error: "), line
    for word in words:
        assert word in line, line
    assert "run id:" not in out
    assert_nothing_stored(db)


def test_bad_input_next_to_good_runs_stores_nothing(tmp_path, capsys):
    db = tmp_path / "runs.duckdb"
    good = write_scenario(tmp_path / "good.toml", small_scenario())
    assert run_cli(capsys, "run", str(good), "--db", str(db))[0] == 0
    scenario, _ = bad_csv_nan(tmp_path)
    assert run_cli(capsys, "run", str(scenario), "--db", str(db))[0] == 2
    assert rows(db, "SELECT status FROM runs") == [("completed",)]


def test_bad_input_in_a_real_process(tmp_path):
    scenario, words = bad_csv_nan(tmp_path)
    db = tmp_path / "runs.duckdb"
    proc = run_subprocess("run", str(scenario), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc.stderr)
    assert line.startswith("quorum: error: ") and words[0] in line, line
    assert_nothing_stored(db)

    scenario, words = bad_malformed(tmp_path)
    proc = run_subprocess("run", str(scenario), "--db", str(db), cwd=tmp_path)
    assert proc.returncode == 2
    assert words[0] in one_line(proc.stderr)
    assert_nothing_stored(db)


def test_negative_seed_is_bad_input(tmp_path, capsys):
    scenario = write_scenario(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "run", str(scenario), "--db", str(db), "--seed", "-1")
    assert code == 2
    assert "--seed" in one_line(err)
    assert_nothing_stored(db)


def test_usage_errors_are_one_line(tmp_path, capsys):
    for argv in (["run"], ["run", "x.toml", "--seed", "abc"], ["frobnicate"],
                 ["run", "x.toml", "--bogus"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
        assert one_line(capsys.readouterr().err).startswith("quorum: error: ")


def test_commands_on_a_missing_store(tmp_path, capsys):
    db = tmp_path / "none.duckdb"
    for argv in (["runs"], ["show", "abc"], ["query", "select 1"]):
        code, _, err = run_cli(capsys, *argv, "--db", str(db))
        assert code == 2
        assert "no run store" in one_line(err)
    assert not db.exists()  # reading commands never create a store


def test_bad_sql_is_one_line(demo, capsys):
    code, _, err = run_cli(capsys, "query", "selec nothing", "--db", str(demo["db"]))
    assert code == 2
    assert one_line(err).startswith("quorum: error: query failed:")


def test_store_path_that_is_a_directory(tmp_path, capsys):
    scenario = write_scenario(tmp_path / "s.toml", small_scenario())
    code, _, err = run_cli(capsys, "run", str(scenario), "--db", str(tmp_path))
    assert code == 2
    assert "cannot open run store" in one_line(err)


# -- runs that fail or are interrupted part-way ----------------------------------------
def test_agent_exception_marks_run_failed_and_keeps_rows(tmp_path, user_agents):
    config = parse_scenario(scripted_scenario(fail_at=100))
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store, pytest.raises(RuntimeError, match="boom at bar 100"):
        run_scenario(config, store, run_id="failed000001")
    run = run_row(db, "failed000001")
    assert run["status"] == "failed"
    # the agent, the symbol and the bar (sim.agent_failure), then the exception
    assert run["error"] == ("agent 'user' raised on SYN at bar 100 (2024-01-01 01:39:00 UTC): "
                            "RuntimeError: boom at bar 100")
    assert run["n_bars"] == 100 and run["finished_at"] is not None
    # everything computed before bar 100 is kept: bars 1..99 of equity, both signals,
    # the fills at the opens of bars 11 and 51
    assert count(db, "equity", "failed000001") == 99
    assert count(db, "signals", "failed000001") == 2
    assert count(db, "fills", "failed000001") == 2


def test_agent_exception_in_a_real_process(tmp_path, user_agents):
    scenario = write_scenario(tmp_path / "s.toml", scripted_scenario(fail_at=100))
    db = tmp_path / "runs.duckdb"
    proc = run_subprocess("run", str(scenario), "--db", str(db), cwd=tmp_path,
                          pythonpath=user_agents)
    assert proc.returncode != 0
    assert "run id:" not in proc.stdout
    (run_id, status, n_bars, error), = rows(db, "SELECT run_id, status, n_bars, error FROM runs")
    assert status == "failed" and n_bars == 100
    assert "boom at bar 100" in error
    assert 0 < count(db, "equity", run_id) < 100
    assert count(db, "fills", run_id) == 2


def test_failed_run_is_listed_as_failed(tmp_path, user_agents, capsys):
    config = parse_scenario(scripted_scenario(fail_at=60))
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store, pytest.raises(RuntimeError):
        run_scenario(config, store, run_id="failed000002")
    code, out, err = run_cli(capsys, "runs", "--db", str(db))
    assert code == 0, err
    assert "failed000002" in out and "failed" in out and "completed" not in out
    code, out, err = run_cli(capsys, "show", "failed", "--db", str(db))
    assert code == 0, err
    assert "RuntimeError: boom at bar 60" in out


def test_keyboard_interrupt_marks_run_interrupted(tmp_path, user_agents):
    config = parse_scenario(scripted_scenario(fail_at=120, fail_with="KeyboardInterrupt"))
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store, pytest.raises(KeyboardInterrupt):
        run_scenario(config, store, run_id="interrupt001")
    run = run_row(db, "interrupt001")
    assert run["status"] == "interrupted"
    assert run["n_bars"] == 120
    assert run["error"].startswith("KeyboardInterrupt")
    assert count(db, "equity", "interrupt001") == 119
    assert count(db, "fills", "interrupt001") == 2
    assert rows(db, "SELECT count(*) FROM runs WHERE status = 'completed'")[0][0] == 0


def test_keyboard_interrupt_through_the_cli(tmp_path, user_agents, capsys):
    raw = scripted_scenario(fail_at=80, fail_with="KeyboardInterrupt")
    scenario = write_scenario(tmp_path / "s.toml", raw)
    db = tmp_path / "runs.duckdb"
    code, out, err = run_cli(capsys, "run", str(scenario), "--db", str(db))
    assert code == 130
    assert "interrupted" in one_line(err)
    assert rows(db, "SELECT status, n_bars FROM runs") == [("interrupted", 80)]
    assert "run id:" not in out


# -- regressions: each was a bug found by these tests ---------------------------------
def test_agent_exception_through_main_returns_1_with_one_line(tmp_path, user_agents, capsys):
    scenario = write_scenario(tmp_path / "s.toml", scripted_scenario(fail_at=100))
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "run", str(scenario), "--db", str(db))
    assert code == 1
    assert "boom at bar 100" in one_line(err)


def test_huge_seed_is_bad_input(tmp_path, capsys):
    scenario = write_scenario(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "run", str(scenario), "--db", str(db), "--seed", str(2**63))
    assert code == 2
    assert "seed" in one_line(err)


def test_bad_gbm_start_is_bad_input(tmp_path, capsys):
    raw = small_scenario(data=[{"kind": "gbm", "symbol": "SYN", "bars": 50,
                                "start": "garbage"}])
    scenario = write_scenario(tmp_path / "s.toml", raw)
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "run", str(scenario), "--db", str(db))
    assert code == 2
    assert "start" in one_line(err)


def test_corrupt_parquet_is_bad_input(tmp_path, capsys):
    path = tmp_path / "bars.parquet"
    path.write_text("not parquet")
    scenario = _file_scenario(tmp_path, path)
    code, _, err = run_cli(capsys, "run", str(scenario), "--db", str(tmp_path / "r.duckdb"))
    assert code == 2
    assert str(path) in one_line(err)
