"""A watched backtest of scenarios/monitor_faults.toml: the detectors fire at the faults
the scenario scripts, and the stored ``alerts``/``health``/``logs`` rows say so."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "monitor_faults.toml"


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    db = tmp_path_factory.mktemp("monitor") / "runs.duckdb"
    config = load_scenario(SCENARIO)
    with DuckDBStore(db) as store:
        first = run_scenario(config, store).run_id
        second = run_scenario(config, store).run_id
    return db, first, second


def _rows(db: Path, sql: str, *params: object) -> list[tuple]:
    with DuckDBStore(db, read_only=True) as store:
        return store.con.execute(sql, list(params)).fetchall()


def test_at_least_four_detectors_fire_at_the_scripted_faults(watched):
    db, run, _ = watched
    first = dict(_rows(db, "SELECT kind, min(ts) FROM alerts WHERE run_id = ? GROUP BY kind",
                       run))
    assert {"venue_down", "stale_data", "kill_switch", "latency_spike", "reject_burst",
            "signal_flapping", "agent_silent", "drawdown_velocity"} <= set(first)
    assert first["venue_down"] == datetime(2024, 1, 4)  # the venue_down event
    assert first["kill_switch"] == datetime(2024, 1, 14)  # the kill_switch event
    # ETH's last bar opens 2024-01-08 11:45 and closes at 12:00: stale past 4 x 15m
    assert datetime(2024, 1, 8, 13) < first["stale_data"] <= datetime(2024, 1, 8, 14)
    assert first["latency_spike"] >= datetime(2024, 1, 9)  # only once alpha turned slow
    severities = dict(_rows(db, "SELECT kind, any_value(severity) FROM alerts "
                                "WHERE run_id = ? GROUP BY kind", run))
    assert severities["kill_switch"] == severities["venue_down"] == "critical"
    sources = dict(_rows(db, "SELECT kind, any_value(source) FROM alerts WHERE run_id = ?"
                             " AND kind IN ('stale_data', 'kill_switch') GROUP BY kind", run))
    assert sources == {"stale_data": "feed:ETH", "kill_switch": "risk"}


def test_health_timeline_follows_the_faults(watched):
    db, run, _ = watched
    rows = _rows(db, "SELECT ts, component, state FROM health WHERE run_id = ? ORDER BY seq",
                 run)
    alpha = [(ts, state) for ts, c, state in rows if c == "venue:alpha"]
    assert (datetime(2024, 1, 4), "critical") in alpha
    assert (datetime(2024, 1, 4, 12), "healthy") in alpha  # venue_up at 12:00
    assert (datetime(2024, 1, 14), "risk", "critical") in rows
    overall = [state for _, c, state in rows if c == "overall"]
    assert overall[-1] == "critical" and "healthy" in overall


def test_same_alerts_on_every_replay_and_trading_unchanged(watched, tmp_path):
    db, first, second = watched
    query = ("SELECT alert_id, ts, severity, source, kind, message, data, seq FROM alerts "
             "WHERE run_id = ? ORDER BY alert_id")
    assert _rows(db, query, first) == _rows(db, query, second)
    with DuckDBStore(tmp_path / "plain.duckdb") as store:
        plain = run_scenario(load_scenario(SCENARIO), store, monitor=False).run_id
        fills = store.con.execute("SELECT ts, symbol, venue, quantity, price FROM fills "
                                  "WHERE run_id = ? ORDER BY fill_id", [plain]).fetchall()
        assert store.con.execute("SELECT count(*) FROM alerts WHERE run_id = ?",
                                 [plain]).fetchone() == (0,)
    assert fills == _rows(db, "SELECT ts, symbol, venue, quantity, price FROM fills "
                              "WHERE run_id = ? ORDER BY fill_id", first)


def test_logs_hold_trades_and_alerts(watched):
    db, run, _ = watched
    levels = dict(_rows(db, "SELECT level, count(*) FROM logs WHERE run_id = ? GROUP BY 1",
                        run))
    fills = _rows(db, "SELECT count(*) FROM fills WHERE run_id = ?", run)[0][0]
    assert levels["trade"] == fills  # one trade line per fill
    alerts = _rows(db, "SELECT count(*) FROM alerts WHERE run_id = ?", run)[0][0]
    alert_lines = _rows(db, "SELECT count(*) FROM logs WHERE run_id = ? AND "
                            "starts_with(message, 'alert ')", run)[0][0]
    assert alert_lines == alerts


def _quorum(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_cli_run_shows_alerts_and_show_logs_read_them(tmp_path):
    db = str(tmp_path / "cli.duckdb")
    out = _quorum("run", str(SCENARIO), "--db", db, "--quiet")
    assert out.returncode == 0, out.stderr
    assert "kill_switch" in out.stdout and "stale_data" in out.stdout
    run_id = out.stdout.split("run id: ")[1].split()[0]
    show = _quorum("show", run_id, "--db", db, "--health", "--alerts", "--tools")
    assert show.returncode == 0, show.stderr
    for text in ("health timeline", "venue:alpha", "alerts", "tool feedback", "venue:beta"):
        assert text in show.stdout
    logs = _quorum("logs", run_id, "--db", db, "--level", "error", "--format", "jsonl")
    assert logs.returncode == 0, logs.stderr
    records = [json.loads(line) for line in logs.stdout.splitlines()]
    assert records and all(r["level"] == "error" for r in records)
    assert any("kill_switch" in r["message"] for r in records)
    csv_out = _quorum("logs", run_id, "--db", db, "--category", "risk", "--grep", "KILL",
                      "--format", "csv")
    lines = csv_out.stdout.splitlines()
    assert lines[0].startswith("ts,level,category") and len(lines) >= 2
    assert all(",risk," in line for line in lines[1:])
    quiet = _quorum("run", str(SCENARIO), "--db", db, "--quiet", "--no-monitor")
    assert quiet.returncode == 0 and "kill_switch" not in quiet.stdout
