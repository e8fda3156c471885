"""A dead decision service does not go unnoticed: every run reports its agents' failed
calls (count and rate) in its summary and the ``agent_errors`` table, and a run whose
agent failed more often than its ``max_error_rate`` is stored as failed, exit 1, with a
message naming the agent and the rate.

Observed on 9d04f14: the ``external`` template with no service running made 1,951 failed
calls, exited 0 and printed nothing."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sim.agents.base import CallStats
from sim.config import parse_scenario
from sim.messages import LONG, Signal
from sim.runner import ErrorRateExceeded, check_error_rates, run_scenario
from sim.store import DuckDBStore

BARS, LOOKBACK = 120, 20
CALLS = BARS - LOOKBACK + 1


def dead_url() -> str:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/decide"


def write_scenario(path: Path, max_error_rate: float | None) -> Path:
    limit = "" if max_error_rate is None else f"max_error_rate = {max_error_rate}\n"
    path.write_text(f'''
name = "dead_service"
seed = 1
[[data]]
kind = "gbm"
symbol = "SYN"
bars = {BARS}
interval = "1h"
[[agents]]
name = "svc"
kind = "external"
{limit}params = {{ url = "{dead_url()}", mode = "record", lookback = {LOOKBACK}, retries = 0 }}
[[venues]]
name = "v"
symbols = ["SYN"]
''')
    return path


def quorum(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv], capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_dead_service_fails_the_run_naming_the_agent_and_rate(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    proc = quorum("run", str(write_scenario(tmp_path / "s.toml", None)), "--db", str(db))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert (f"agent 'svc': {CALLS} of {CALLS} calls to its service failed (100.0%), above "
            "max_error_rate 0.1; last error: connection failed") in proc.stderr
    assert "stored as failed" in proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        status, error = con.execute("SELECT status, error FROM runs").fetchone()
        counts = con.execute("SELECT symbol, agent, calls, errors FROM agent_errors").fetchall()
    finally:
        con.close()
    assert status == "failed" and error.startswith("ErrorRateExceeded: agent 'svc'")
    assert counts == [("SYN", "svc", CALLS, CALLS)]


def test_errors_are_in_the_summary_of_a_run_allowed_to_have_them(tmp_path: Path) -> None:
    db = tmp_path / "runs.duckdb"
    proc = quorum("run", str(write_scenario(tmp_path / "s.toml", 1.0)), "--db", str(db))
    assert proc.returncode == 0, proc.stderr
    assert f"svc {CALLS}/{CALLS} calls (100.0%)" in proc.stdout, proc.stdout
    run_id = proc.stdout.rsplit("run id: ", 1)[1].split()[0]
    shown = quorum("show", run_id, "--db", str(db))
    assert f"svc {CALLS}/{CALLS} calls (100.0%)" in shown.stdout, shown.stdout


def test_the_rate_is_over_all_of_an_agents_symbols_and_may_reach_the_limit() -> None:
    config = parse_scenario({
        "name": "x", "data": [{"kind": "gbm", "symbol": "A", "bars": 10}],
        "agents": [{"name": "one", "kind": "sma_crossover", "max_error_rate": 0.25,
                    "params": {"fast": 2, "slow": 4}},
                   {"name": "two", "kind": "sma_crossover",
                    "params": {"fast": 2, "slow": 4}}],
        "venues": [{"name": "v", "symbols": ["A"]}]})
    at_limit = [("A", "one", CallStats(4, 2)), ("B", "one", CallStats(4, 0)),
                ("A", "two", CallStats(100, 10))]
    check_error_rates(config, at_limit)  # 2/8 = 0.25 and 10/100 = 0.1: not above
    over = [("A", "one", CallStats(4, 2)), ("B", "one", CallStats(4, 1, "HTTP 500"))]
    with pytest.raises(ErrorRateExceeded, match=r"agent 'one': 3 of 8 calls .* \(37\.5%\), "
                                                r"above max_error_rate 0\.25; last error: "
                                                r"HTTP 500"):
        check_error_rates(config, over)
    check_error_rates(config, [("A", "two", CallStats(0, 0))])  # no calls: no rate


class Flaky:
    """A user agent with its own outside calls: one in four fails."""

    def __init__(self) -> None:
        self.calls = 0

    def on_bar(self, view: Any) -> Signal | None:
        self.calls += 1
        return Signal(LONG, 1.0) if view.n == 3 else None

    def call_stats(self) -> CallStats:
        return CallStats(self.calls, self.calls // 4, "timeout" if self.calls >= 4 else None)


@pytest.mark.parametrize(("limit", "status"), [(0.3, "completed"), (0.2, "failed")])
def test_any_agent_with_call_stats_is_counted(tmp_path: Path, limit: float,
                                              status: str) -> None:
    config = parse_scenario({
        "name": "flaky", "data": [{"kind": "gbm", "symbol": "A", "bars": 40}],
        "agents": [{"name": "mine", "kind": f"{__name__}:Flaky", "max_error_rate": limit}],
        "venues": [{"name": "v", "symbols": ["A"]}]})
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        if status == "failed":
            with pytest.raises(ErrorRateExceeded, match="agent 'mine': 10 of 40 calls"):
                run_scenario(config, store)
        else:
            run_scenario(config, store)
        assert store.con.execute("SELECT status FROM runs").fetchone()[0] == status
        assert store.con.execute("SELECT calls, errors FROM agent_errors").fetchall() == [
            (40, 10)]
