"""``quorum bench SCENARIO``: stages timed without changing the run, the stress grid's
replication, ``--against`` a commit or a file, and the CLI's outputs and exit codes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from array import array
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import sim.runner as runner
import sim.store
from quorum.bench_driver import STAGE_METHODS, bench, instrument, replicate, untime_store
from sim.config import load_scenario, parse_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
SCENARIO = """
name = "bench_small"
seed = 5
initial_cash = 50_000.0
[[data]]
kind = "gbm"
symbol = "AAA"
bars = 1500
interval = "1m"
volatility = 1.5
[[data]]
kind = "regime"
regime = "ranging"
symbols = ["BBB"]
bars = 1500
interval = "1m"
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 3, slow = 12 }
[[agents]]
name = "z"
kind = "zscore_reversion"
params = { window = 20, entry = 1.0, exit = 0.2 }
symbols = ["AAA"]
[consensus]
method = "confidence_weighted"
[policy]
allow_short = true
exposure = 0.5
[risk]
allowed_symbols = ["AAA", "BBB"]
max_order_notional = 40_000.0
[risk.agents.z]
allowed_symbols = ["AAA"]
[[venues]]
name = "v"
symbols = ["AAA", "BBB"]
fee_bps = 5.0
[venues.instruments.AAA]
lot_size = 0.0001
"""


@pytest.fixture()
def scenario(tmp_path: Path) -> Path:
    path = tmp_path / "bench_small.toml"
    path.write_text(SCENARIO)
    return path


def quorum(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def tables(store: DuckDBStore, run_id: str) -> dict[str, pd.DataFrame]:
    out = {}
    for table in ("decisions", "orders", "order_events", "fills", "signals", "equity"):
        frame = store.con.execute(f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = $r",
                                  {"r": run_id}).df()
        out[table] = frame
    return out


def plain_and_timed(config: Any, tmp_path: Path, stages: dict[str, array]
                    ) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """The tables of a plain run of ``config`` and of one timed as the bench times it
    (its stage timings into ``stages``)."""
    with DuckDBStore(str(tmp_path / "s.duckdb")) as store:
        plain = runner.run_scenario(config, store)
        build = runner.build_engine

        def built(*args: Any, **kwargs: Any) -> Any:
            engine = build(*args, **kwargs)
            instrument(engine, store, stages)
            return engine

        runner.build_engine = built
        try:
            # as the bench times stages: every bar walked (the fast path calls no on_bar)
            timed = runner.run_scenario(config, store, fast_path=False)
        finally:
            runner.build_engine = build
            untime_store(store)
        return tables(store, plain.run_id), tables(store, timed.run_id)


def test_timing_wrappers_change_no_row(scenario: Path, tmp_path: Path) -> None:
    """The bench's timed run stores what the plain run stores, and every stage was timed."""
    stages: dict[str, array] = {}
    a, b = plain_and_timed(load_scenario(scenario), tmp_path, stages)
    for name in a:
        assert len(a[name]) > 0, name
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    orders = len(a["orders"])
    # the SMA sees both symbols, the z-score one: one call per bar it sees
    assert len(stages["agent sma"]) == 3000
    assert len(stages["agent z"]) == 1500
    assert len(stages["risk"]) == orders
    assert {*STAGE_METHODS} <= {*stages}
    assert not [k for k, v in stages.items() if not len(v)]


def test_store_stage_times_the_inserts_where_they_run(scenario: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A backtest's appends run behind it (``DuckDBStore.appends_behind``), where ``append``
    only hands a batch over: the store stage times the inserts themselves, on the writer's
    thread, once each however many runs were built and timed."""
    inserts: list[str] = []
    slow = 0.02
    insert = sim.store.append_batch

    def slow_insert(con: Any, run_id: str, table: str, batch: Any) -> None:
        inserts.append(table)
        __import__("time").sleep(slow)  # an insert's cost, well above a hand-over's
        insert(con, run_id, table, batch)

    monkeypatch.setattr(sim.store, "append_batch", slow_insert)
    stages: dict[str, array] = {}
    config = load_scenario(scenario)
    with DuckDBStore(str(tmp_path / "s.duckdb")) as store:
        build = runner.build_engine

        def built(*args: Any, **kwargs: Any) -> Any:
            engine = build(*args, **kwargs)
            instrument(engine, store, stages)
            return engine

        monkeypatch.setattr(runner, "build_engine", built)
        for _ in range(2):  # two builds: instrument twice on one store
            runner.run_scenario(config, store, fast_path=False)
        untime_store(store)
        assert "insert_batch" not in vars(store)
    timed = sorted(stages["store"])
    assert len(timed) == len(inserts) > 0
    assert timed[0] >= slow * 1e9


def test_replicate_grows_agents_symbols_and_every_list_naming_them() -> None:
    raw = parse_scenario(__import__("tomllib").loads(SCENARIO)).model_dump(
        mode="json", exclude_unset=True)
    grown = replicate(raw, agents=3, symbols=2, bars=400)
    config = parse_scenario(grown)
    assert [a.name for a in config.agents] == ["sma", "sma_2", "sma_3", "z", "z_2", "z_3"]
    assert [a.symbols for a in config.agents][3:] == [["AAA", "AAA_2"]] * 3
    assert config.venues[0].symbols == ["AAA", "AAA_2", "BBB", "BBB_2"]
    assert set(config.venues[0].instruments) == {"AAA", "AAA_2"}
    assert config.risk.allowed_symbols == ["AAA", "AAA_2", "BBB", "BBB_2"]
    assert set(config.risk.agents) == {"z", "z_2", "z_3"}
    assert all(src.bars == 400 for src in config.data)
    assert raw == parse_scenario(__import__("tomllib").loads(SCENARIO)).model_dump(
        mode="json", exclude_unset=True)  # the input is left alone


def test_bench_report_counts_and_orders_its_percentiles(scenario: Path) -> None:
    report = bench({"scenario": str(scenario), "repeat": 2, "warmup": 0,
                    "agents": 2, "symbols": 2, "bars": 300})
    assert (report["agents"], report["symbols"], report["bars"]) == (4, 4, 1200)
    assert report["bars_per_s"] == pytest.approx(report["bars"] / report["best_s"], rel=1e-3)
    assert report["orders"] > 0 and report["decisions"] >= report["orders"] / 2
    stages = report["stages"]
    assert stages["agent sma_2"]["calls"] == 2 * 1200  # two timed repeats, every symbol
    assert stages["agent z"]["calls"] == 2 * 600
    for name, st in stages.items():
        assert st["p50_us"] <= st["p90_us"] <= st["p99_us"] <= st["max_us"], name


def test_cli_bench_scenario_json_and_table(scenario: Path, tmp_path: Path) -> None:
    done = quorum("bench", str(scenario), "--repeat", "1", "--warmup", "0",
                  "--json", str(tmp_path / "b.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert {"agent sma", "agent z", "consensus", "policy", "risk", "router",
            "venue/matching", "store"} <= set(report["stages"])
    assert "venue/matching" in done.stdout and "bars_per_s" in done.stdout


def test_cli_stress_writes_csv_and_png(scenario: Path, tmp_path: Path) -> None:
    done = quorum("bench", str(scenario), "--stress", "agents=1,2", "symbols=1,3",
                  "--bars", "200", "--repeat", "1", "--warmup", "0",
                  "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    with (tmp_path / "o" / "bench_stress.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["agents"], r["symbols"], r["bars"]) for r in rows] == [
        ("2", "2", "400"), ("4", "2", "400"), ("2", "6", "1200"), ("4", "6", "1200")]
    assert (tmp_path / "o" / "bench_stress.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_against_a_commit_and_a_file(scenario: Path, tmp_path: Path) -> None:
    done = quorum("bench", str(scenario), "--repeat", "1", "--warmup", "0", "--bars", "300",
                  "--against", "HEAD", "--json", str(tmp_path / "a.json"), cwd=REPO)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["against"].startswith("HEAD (")
    assert report["other"]["bars"] == report["this"]["bars"] == 600
    assert report["ratio"]["bars_per_s"] == pytest.approx(
        report["this"]["bars_per_s"] / report["other"]["bars_per_s"], rel=1e-2)
    other = tmp_path / "other.toml"
    other.write_text(SCENARIO.replace("fast = 3, slow = 12", "fast = 5, slow = 30"))
    done = quorum("bench", str(scenario), "--repeat", "1", "--warmup", "0",
                  "--against", str(other), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "this / other" in done.stdout


@pytest.mark.parametrize("args", [
    ["--against", "no-such-ref-xyz"],
    ["--stress", "agent=1,2"],
    ["--stress", "agents=0"],
    ["--stress", "agents=1,2", "--against", "HEAD"],
])
def test_cli_bad_bench_input_is_one_line_exit_2(scenario: Path, tmp_path: Path,
                                               args: list[str]) -> None:
    done = quorum("bench", str(scenario), "--repeat", "1", "--warmup", "0", *args,
                  cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_cli_bench_of_a_missing_scenario_is_exit_2(tmp_path: Path) -> None:
    done = quorum("bench", str(tmp_path / "nope.toml"), cwd=tmp_path)
    assert done.returncode == 2 and "not found" in done.stderr


def test_bench_live_fake_reports_tick_to_trade_and_stages(tmp_path: Path) -> None:
    done = quorum("bench", "live", "--fake", "--bars", "30", "--json",
                  str(tmp_path / "l.json"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "l.json").read_text())
    assert report["figures"]["event to bar in the engine"]["calls"] == 30
    assert report["figures"]["event to order"]["calls"] > 0
    assert report["stages"]["agent fast"]["calls"] == 30


def test_a_farm_runs_consensus_and_policy_are_timed(tmp_path: Path) -> None:
    """In a farm run each farm votes with its own consensus and sizes with its own policy
    (the engine's are never called): the bench times those in the same stages, and the
    timed run stores what the plain one does."""
    raw = {"name": "bench_farms", "seed": 2,
           "data": [{"kind": "gbm", "symbol": "AAA", "bars": 300, "interval": "1m",
                     "volatility": 1.5}],
           "agents": [{"name": "sma", "kind": "sma_crossover",
                       "params": {"fast": 3, "slow": 12}},
                      {"name": "z", "kind": "zscore_reversion", "params": {"window": 20}}],
           "policy": {"allow_short": True, "exposure": 0.5},
           "venues": [{"name": "v", "symbols": ["AAA"]}],
           "farms": [{"name": "a", "agents": ["sma"]}, {"name": "b", "agents": ["z"]}]}
    stages: dict[str, array] = {}
    a, b = plain_and_timed(parse_scenario(raw), tmp_path, stages)
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], obj=name)
    decisions = len(a["decisions"])
    # a farm votes on every bar its agent's signal changed; a decision is stored only
    # when the outcome changed, and each one was sized by the farm's policy
    assert decisions > 0
    assert len(stages["consensus"]) >= decisions
    assert len(stages["policy"]) >= decisions
