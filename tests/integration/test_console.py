"""``quorum console``: its commands against the API (in process), ``-c`` against a
``quorum serve`` process, and the interactive console driven through a pseudo-terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pexpect
import pytest
from fastapi.testclient import TestClient

from quorum.api.app import create_app
from quorum.api.console import ApiClient, ConsoleError, run_line
from quorum.api.keys import KeyStore
from quorum.api.reads import StoreReader
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("console") / "runs.duckdb"
    with DuckDBStore(path) as s:
        run_scenario(load_scenario(REPO / "scenarios/demo.toml"), s)
    return path


def test_why_names_the_decision_votes_and_reasons(store: Path, tmp_path: Path) -> None:
    con = duckdb.connect(str(store), read_only=True)
    api = ApiClient(TestClient(create_app(StoreReader(con), KeyStore(tmp_path / "k.toml"))))
    (order_id, decision_id, status) = con.execute(
        "select order_id, decision_id, status from orders where status = 'filled' "
        "order by order_id limit 1").fetchone()
    out = run_line(api, f"why {order_id}")
    assert f"order {order_id}:" in out and status in out
    assert f"decision {decision_id} at" in out
    for agent, reason in con.execute(
            "select v.agent, s.reason from votes v join decisions d using (run_id, "
            "decision_id) asof left join signals s on s.run_id = v.run_id and "
            "s.agent = v.agent and s.symbol = d.symbol and d.ts >= s.ts "
            "where v.decision_id = ?", [decision_id]).fetchall():
        assert agent in out
        if reason:
            assert reason in out
    with pytest.raises(ConsoleError, match=r"404 run .* has no order 999999"):
        run_line(api, "why 999999")
    with pytest.raises(ConsoleError, match="unknown command 'frobnicate'"):
        run_line(api, "frobnicate")
    assert "why ORDER_ID" in run_line(api, "help")
    con.close()


def serve(store: Path, tmp_path: Path) -> tuple[pexpect.spawn, str]:
    proc = pexpect.spawn(sys.executable, ["-m", "quorum.cli", "serve", "--db", str(store),
                                          "--api", "127.0.0.1:0", "--keys",
                                          str(tmp_path / "none.toml")],
                         cwd=str(tmp_path), encoding="utf-8", timeout=60)
    proc.expect(r"quorum serve: (http://127\.0\.0\.1:\d+)")
    return proc, proc.match.group(1)


def test_c_runs_commands_against_a_server(store: Path, tmp_path: Path) -> None:
    server, url = serve(store, tmp_path)
    try:
        done = subprocess.run([sys.executable, "-m", "quorum.cli", "console", "--url", url,
                               "-c", "status; runs 1; why 1"], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "healthy (read-only" in done.stdout and "demo" in done.stdout
        assert "order 1:" in done.stdout
        bad = subprocess.run([sys.executable, "-m", "quorum.cli", "console", "--url", url,
                              "-c", "why nope"], capture_output=True, text=True, timeout=60)
        assert bad.returncode == 1 and "expected a number" in bad.stderr
    finally:
        server.terminate(force=True)


def test_the_interactive_console_in_a_terminal(store: Path, tmp_path: Path) -> None:
    server, url = serve(store, tmp_path)
    try:
        console = pexpect.spawn(sys.executable, ["-m", "quorum.cli", "console", "--url", url],
                                cwd=str(tmp_path), encoding="utf-8", timeout=60,
                                env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin",
                                     "TERM": "xterm"}, dimensions=(40, 200))
        console.expect("help lists the commands")
        console.expect("quorum>")
        console.sendline("status")
        console.expect(r"healthy \(read-only")
        console.expect("quorum>")
        console.sendline("orders 2")
        console.expect("order_id")
        console.expect("quorum>")
        console.sendline("exit")
        console.expect(pexpect.EOF)
        assert "status" in (tmp_path / ".quorum_console_history").read_text()
    finally:
        server.terminate(force=True)
