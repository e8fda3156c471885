"""Errors a user meets as one line with the documented exit code, never a traceback:
agents that raise (during a run, or when built), a damaged or read-only store, output
paths that SQL or the file system would trip on, signal reasons that are no text, and a
suite run that fails during ``quorum validate``."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration._user_agents import install_agents, kind
from tests.integration.test_cli import (
    count,
    one_line,
    rows,
    run_cli,
    run_row,
    small_scenario,
    write_scenario,
)
from tests.integration.test_promotion_gate import REGIME

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def agents_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install_agents(tmp_path, monkeypatch)


def with_agent(agent: str, **params: Any) -> dict[str, Any]:
    return small_scenario(agents=[{"name": "user", "kind": kind(agent), "params": params}])


def stored(db: Path) -> list[tuple[str, str, str]]:
    return rows(db, "SELECT run_id, status, error FROM runs")


# -- agents that raise -----------------------------------------------------------------
@pytest.mark.parametrize("error", ["AgentError", "ConfigError", "DataError"])
def test_an_agent_raising_a_bad_input_class_is_a_failed_run(tmp_path: Path, capsys,
                                                            agents_dir: Path,
                                                            error: str) -> None:
    """Once the run is stored, what it raises is the run failing (exit 1, its id), even
    an exception of a class Quorum uses for bad input."""
    toml = write_scenario(tmp_path / "s.toml", with_agent("Raiser", at=50, error=error))
    db = tmp_path / "runs.duckdb"
    code, out, err = run_cli(capsys, "run", str(toml), "--db", str(db))
    assert code == 1, err
    ((run_id, status, stored_error),) = stored(db)
    line = one_line(err)
    assert line.startswith("quorum: run failed: agent "), line  # which agent, where
    assert "at bar 50 (" in line and f"): {error}: raised by the agent at bar 50" in line
    assert f"run {run_id}, stored as failed" in line
    assert status == "failed" and f"): {error}: " in stored_error
    assert count(db, "equity", run_id) == 49 and "run id:" not in out


@pytest.mark.parametrize("command", ["run", "validate"])
def test_an_agent_whose_constructor_raises_is_one_line(tmp_path: Path, capsys,
                                                       agents_dir: Path, command: str) -> None:
    toml = write_scenario(tmp_path / "s.toml", with_agent("BadInit"))
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, command, str(toml), "--db", str(db))
    assert code == 2
    line = one_line(err)
    assert kind("BadInit") in line and "RuntimeError: no model file at /models/x.pkl" in line
    assert not db.exists() or rows(db, "SELECT count(*) FROM runs") == [(0,)]


def test_a_failing_suite_run_of_validate_is_one_line(tmp_path: Path, capsys,
                                                     agents_dir: Path) -> None:
    (tmp_path / "trend_up.toml").write_text(
        REGIME.format(name="trend_up", params="{ drift = 2.0, volatility = 0.6 }"))
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "mini"\nscenarios = ["trend_up.toml"]\nseeds = [1]\n')
    toml = write_scenario(tmp_path / "s.toml", with_agent("Raiser", at=30,
                                                          error="RuntimeError"))
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "validate", str(toml), "--suite", str(suite), "--db",
                           str(db))
    assert code == 1
    ((run_id, status, _),) = stored(db)
    line = one_line(err)
    assert "trend_up@1 of the suite" in line and f"run {run_id}, stored as failed" in line
    assert status == "failed"
    assert rows(db, "SELECT count(*) FROM validations") == [(0,)]  # no verdict


# -- what an agent returns, checked at the boundary ------------------------------------
@pytest.mark.parametrize(("reason", "what"), [("int", "12345"), ("surrogate", "\\ud800")])
def test_a_reason_that_is_no_text_fails_the_run_naming_the_agent(tmp_path: Path, capsys,
                                                                 agents_dir: Path,
                                                                 reason: str,
                                                                 what: str) -> None:
    toml = write_scenario(tmp_path / "s.toml", with_agent("BadReason", kind=reason))
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db))
    assert code == 1, err
    line = one_line(err)
    assert "AgentOutputError: agent 'user' on SYN returned" in line and what in line
    assert "reason text or None" in line
    ((run_id, status, _),) = stored(db)
    assert status == "failed" and count(db, "equity", run_id) == 19  # the bars before kept


@pytest.fixture
def odd_service() -> Iterator[str]:
    """A decision service whose reason holds a lone surrogate, as JSON escapes it."""
    body = b'{"side": "long", "confidence": 0.5, "reason": "bad \\ud800 char"}'

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/decide"
    server.shutdown()
    server.server_close()


def test_an_external_service_s_odd_reason_does_not_fail_the_run(tmp_path: Path, capsys,
                                                               odd_service: str) -> None:
    raw = small_scenario(agents=[{"name": "ext", "kind": "external", "params": {
        "url": odd_service, "mode": "record", "lookback": 5, "every": 50}}])
    toml = write_scenario(tmp_path / "s.toml", raw)
    db = tmp_path / "runs.duckdb"
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db))
    assert code == 0, err
    assert [status for _, status, _ in stored(db)] == ["completed"]
    assert rows(db, "SELECT DISTINCT reason FROM signals") == [("external: bad ? char",)]
    assert rows(db, "SELECT count(*) FROM agent_calls WHERE error IS NULL") == [(8,)]


# -- the store -------------------------------------------------------------------------
@pytest.fixture
def one_run(tmp_path: Path, capsys) -> tuple[Path, str]:
    db = tmp_path / "runs.duckdb"
    toml = write_scenario(tmp_path / "s.toml", small_scenario())
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db))
    assert code == 0, err
    return db, rows(db, "SELECT run_id FROM runs")[0][0]


def damaged_commands(db: Path, run_id: str, tmp_path: Path) -> list[list[str]]:
    toml = write_scenario(tmp_path / "again.toml", small_scenario())
    where = ["--db", str(db)]
    return [["runs", *where], ["show", run_id, *where], ["show", run_id, "--metrics", *where],
            ["report", run_id, "--out", str(tmp_path / "r"), *where],
            ["compare", run_id, "--out", str(tmp_path / "c"), *where],
            ["query", "select count(*) from equity", *where], ["run", str(toml), *where]]


@pytest.mark.parametrize("damage", ["truncated", "overwritten", "garbage"])
def test_a_damaged_store_is_one_line_naming_it(one_run: tuple[Path, str], tmp_path: Path,
                                               capsys, damage: str) -> None:
    db, run_id = one_run
    data = db.read_bytes()
    if damage == "truncated":
        db.write_bytes(data[:len(data) // 2])
    elif damage == "overwritten":
        db.write_bytes(data[:8192] + b"\xff" * 40_000 + data[8192 + 40_000:])
    else:
        db.write_bytes(os.urandom(len(data)))
    failed = 0
    for argv in damaged_commands(db, run_id, tmp_path):
        code, _, err = run_cli(capsys, *argv)
        if code == 0 and argv[0] == "query":  # its table's pages may be the intact ones
            continue
        failed += 1
        line = one_line(err)
        assert code == 2, (argv, err)
        assert f"run store {db}" in line or "query failed" in line, (argv, line)
    assert failed >= len(damaged_commands(db, run_id, tmp_path)) - 1


def test_read_commands_open_the_store_read_only(one_run: tuple[Path, str],
                                                tmp_path: Path) -> None:
    """Another process holds the store open read-only (a shared lock): readers get in,
    a writer would not. The same holds for a file the user may not write."""
    db, run_id = one_run
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1], "
         "read_only=True); print('open', flush=True); sys.stdin.read()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        for argv in (["runs"], ["show", run_id, "--metrics"], ["query", "select 1 as one"],
                     ["report", run_id, "--out", str(tmp_path / "r")],
                     ["compare", run_id, "--out", str(tmp_path / "c")]):
            proc = subprocess.run([sys.executable, "-m", "quorum.cli", *argv, "--db", str(db)],
                                  cwd=REPO, capture_output=True, text=True, timeout=120,
                                  check=False)
            assert proc.returncode == 0, (argv, proc.stderr)
        proc = subprocess.run([sys.executable, "-m", "quorum.cli", "runs", "--fix-abandoned",
                               "--db", str(db)], cwd=REPO, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 2 and "cannot open run store" in one_line(proc.stderr)
    finally:
        holder.communicate("", timeout=30)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes any file")
def test_a_store_the_user_cannot_write_can_be_read(one_run: tuple[Path, str],
                                                   capsys) -> None:
    db, run_id = one_run
    db.chmod(0o444)
    for argv in (["runs"], ["show", run_id], ["query", "select count(*) from runs"]):
        code, _, err = run_cli(capsys, *argv, "--db", str(db))
        assert code == 0, (argv, err)


# -- --out -------------------------------------------------------------------------------
def test_out_paths_are_bound_not_spliced_into_sql(tmp_path: Path, capsys) -> None:
    toml = write_scenario(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    out = tmp_path / "o'brien"
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db), "--out", str(out))
    assert code == 0, err
    ((run_id, _, _),) = stored(db)
    equity = (out / "equity.csv").read_text().splitlines()
    assert equity[0].startswith("run_id,ts,") and len(equity) == 1 + count(db, "equity", run_id)
    # a quote that would end the string literal and run SQL of its own
    sneaky = tmp_path / "x' (HEADER); COPY runs TO 'leak"
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db), "--out", str(sneaky))
    assert code == 0, err
    assert (sneaky / "fills.csv").exists() and not list(tmp_path.glob("leak*"))


def test_out_naming_a_file_is_refused_before_the_run(tmp_path: Path, capsys) -> None:
    toml = write_scenario(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    taken = tmp_path / "taken"
    taken.write_text("keep me")
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db), "--out", str(taken))
    assert code == 2
    assert "exists and is not a directory" in one_line(err)
    assert not db.exists() or stored(db) == []  # refused before any run
    assert taken.read_text() == "keep me"
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db), "--out",
                           str(taken / "below"))
    assert code == 2 and "cannot make the directory" in one_line(err)


def test_a_run_row_decides_the_message_not_the_exception_class(tmp_path: Path,
                                                               agents_dir: Path) -> None:
    """The same in a real process: exit 1 and the run id, the run stored as failed."""
    toml = write_scenario(tmp_path / "s.toml", with_agent("Raiser", at=50,
                                                          error="ConfigError"))
    db = tmp_path / "runs.duckdb"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(agents_dir), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "quorum.cli", "run", str(toml), "--db",
                           str(db)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    ((run_id, status, _),) = stored(db)
    assert f"run {run_id}" in one_line(proc.stderr) and status == "failed"
    assert run_row(db, run_id)["n_bars"] == 50
