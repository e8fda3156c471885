"""A paper session on the fake Hyperliquid is watched: its structured log goes to a
JSON-lines file beside the store and to the store's ``logs`` table, and ``quorum logs``
reads it back."""

from __future__ import annotations

import json
from pathlib import Path

from quorum.cli import main
from sim.monitor.logs import log_path, read_lines
from sim.store import DuckDBStore
from tests.integration.test_live_cli import fake, live, pusher, write_scenario

__all__ = ["fake"]  # the fixture, used by name


def test_a_paper_session_logs_beside_the_store_and_in_it(tmp_path: Path, fake, capsys
                                                          ) -> None:
    scenario = write_scenario(tmp_path)
    scenario.write_text(scenario.read_text() + "[monitor]\nheartbeat_s = 0.05\n")
    thread = pusher(fake, 4)
    code = live(tmp_path, scenario, "--url", fake.base_url, "--max-bars", "3",
                "--override-gate", "observe test", "--testnet")
    thread.join(5)
    assert code == 0, capsys.readouterr().err
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db, read_only=True) as store:
        run_id = store.con.execute("SELECT run_id FROM runs").fetchone()[0]
        stored = store.con.execute("SELECT level, category, message FROM logs "
                                   "WHERE run_id = ? ORDER BY seq", [run_id]).fetchall()
        figures = store.con.execute("SELECT agent, symbol FROM agent_figures "
                                    "WHERE run_id = ?", [run_id]).fetchall()
    assert ("sma", "ETH") in figures  # the session's last figures at least
    lines = list(read_lines(log_path(db, run_id)))
    system = [r["message"] for r in lines if r["category"] == "system"]
    assert system[0] == f"session {run_id} started (paper)"
    assert lines[-1]["message"] == f"session {run_id} ended"
    # the agents a session starts with are logged as lifecycle rows (sim.lifecycle)
    assert any(r["category"] == "agent" and r["message"].startswith("start ")
               for r in lines)
    assert [(r["level"], r["category"], r["message"]) for r in lines] == stored
    capsys.readouterr()
    assert main(["logs", run_id[:6], "--db", str(db), "--format", "jsonl",
                 "--category", "system"]) == 0
    out = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["message"] for r in out][:1] == [f"session {run_id} started (paper)"]
