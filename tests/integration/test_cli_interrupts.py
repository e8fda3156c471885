"""Runs stopped part-way: SIGTERM handled as Ctrl-C (``run``, ``sweep``), a signal inside
a DuckDB statement, a process killed outright (abandoned runs), and reports of partial
runs. Signal tests run the CLI as a subprocess and signal it once the run has surely
started (the agent says so on stderr); they wait with a bound, never on a clock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import sim.store as sim_store
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore
from tests.integration._user_agents import install_agents, kind
from tests.integration.test_cli import count, one_line, rows, run_cli, run_row, small_scenario
from tests.integration.test_cli import write_scenario as write_toml
from tests.integration.test_sweep import _sigint_sweep

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def agents_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return install_agents(tmp_path, monkeypatch)


def scenario(agent: str, bars: int = 3000, symbols: tuple[str, ...] = ("SYN",),
             **params: Any) -> dict[str, Any]:
    return small_scenario(
        data=[{"kind": "gbm", "symbol": s, "bars": bars, "interval": "1m", "volatility": 2.0}
              for s in symbols],
        agents=[{"name": "user", "kind": kind(agent), "params": params}])


def popen(*argv: str, cwd: Path, pythonpath: Path, **kw: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(pythonpath), str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.Popen([sys.executable, "-m", "quorum.cli", *argv], cwd=cwd, env=env,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def wait_for_mark(proc: subprocess.Popen[str]) -> None:
    """Read stderr up to the agent's MARK line: the run is under way."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.strip() == "MARK":
            return
    raise AssertionError(f"the run ended before it started: {proc.wait(60)}")


def finish(proc: subprocess.Popen[str]) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()


# -- SIGTERM ---------------------------------------------------------------------------
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path: Path, agents_dir: Path) -> None:
    toml = write_toml(tmp_path / "s.toml", scenario("Sleeper", bars=20_000, mark_at=300))
    db = tmp_path / "runs.duckdb"
    proc = popen("run", str(toml), "--db", str(db), cwd=tmp_path, pythonpath=agents_dir)
    wait_for_mark(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc)
    assert proc.returncode == 143, err
    line = one_line(err)
    assert "interrupted (SIGTERM)" in line and "stored as interrupted" in line, line
    assert "run id:" not in out
    (run_id, status, n_bars, error), = rows(db, "SELECT run_id, status, n_bars, error FROM runs")
    assert status == "interrupted" and "SIGTERM" in error
    assert 300 <= n_bars < 20_000
    # the rows so far are committed: an equity row per bar before the one cut short
    assert n_bars - 1 <= count(db, "equity", run_id) <= n_bars
    assert count(db, "fills", run_id) > 0


@pytest.mark.parametrize("group", [False, True], ids=["driver", "process_group"])
def test_sigterm_stops_a_sweep_as_ctrl_c_does(tmp_path: Path, group: bool) -> None:
    """To the driver alone, or to the whole group (docker, systemd): the finished runs are
    kept, none half-stored, exit 143, and the same command resumes."""
    path = _sigint_sweep(tmp_path)
    db = tmp_path / "sweep.duckdb"
    proc = popen("sweep", str(path), "--db", str(db), "--workers", "2", "--commit-every", "0",
                 cwd=REPO,
                 pythonpath=REPO, start_new_session=group)
    assert proc.stderr is not None
    stored = 0
    for line in proc.stderr:  # one line per stored run (stderr is not a terminal)
        stored += line.startswith("[")
        if stored == 2:
            if group:
                os.killpg(proc.pid, signal.SIGTERM)
            else:
                proc.send_signal(signal.SIGTERM)
            break
    _, rest = finish(proc)
    assert proc.returncode == 143, rest
    assert "sweep interrupted" in rest and "run the same command again" in rest
    statuses = [s for (s,) in rows(db, "SELECT status FROM runs")]
    assert 2 <= len(statuses) < 12 and set(statuses) == {"completed"}


# -- a signal while DuckDB runs a statement --------------------------------------------
def insert_with_a_signal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run's bars reach DuckDB as a stream of small batches, and the signal comes
    after the first: while DuckDB is inside the INSERT (as a Ctrl-C 2 s into a 2M-bar
    run did). DuckDB, not Python, then sees the KeyboardInterrupt first."""
    real = sim_store.append_batch

    def append_batch(con: Any, run_id: str, table: str, batch: pa.Table) -> None:
        if table != "bars":
            real(con, run_id, table, batch)
            return

        def chunks() -> Any:
            for i, chunk in enumerate(batch.to_batches(max_chunksize=100)):
                if i == 1:
                    os.kill(os.getpid(), signal.SIGINT)
                yield chunk

        names = ", ".join(name for name, _ in TABLES[table])
        con.register("_stream", pa.RecordBatchReader.from_batches(batch.schema, chunks()))
        try:
            con.execute(f"INSERT INTO bars (run_id, {names}) SELECT ?, {names} FROM _stream",
                        [run_id])
        finally:
            con.unregister("_stream")

    monkeypatch.setattr(sim_store, "append_batch", append_batch)


def test_ctrl_c_during_a_store_write_is_an_interruption(tmp_path: Path, capsys,
                                                         monkeypatch) -> None:
    toml = write_toml(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"
    insert_with_a_signal(monkeypatch)
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db), "--quiet")
    assert code == 130, err
    assert "interrupted (SIGINT)" in one_line(err) and "failed" not in err
    ((run_id, status, error),) = rows(db, "SELECT run_id, status, error FROM runs")
    assert status == "interrupted" and error.startswith("KeyboardInterrupt"), error
    assert count(db, "bars", run_id) == 400  # the statement finished, then the signal


def test_the_runner_stores_a_signal_in_a_store_write_as_interrupted(tmp_path: Path,
                                                                    monkeypatch) -> None:
    config = parse_scenario(small_scenario())
    insert_with_a_signal(monkeypatch)
    with DuckDBStore(tmp_path / "runs.duckdb") as store, pytest.raises(KeyboardInterrupt):
        run_scenario(config, store, run_id="cut0000000ab")
    assert run_row(tmp_path / "runs.duckdb", "cut0000000ab")["status"] == "interrupted"


# -- "stored as failed" only when a run row exists -------------------------------------
def test_a_failure_before_the_run_is_stored_says_nothing_was_stored(tmp_path: Path, capsys,
                                                                    monkeypatch) -> None:
    toml = write_toml(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"

    def no_memory(*args: Any, **kw: Any) -> None:
        raise MemoryError("Unable to allocate 745. TiB")

    monkeypatch.setattr("sim.runner.load_market_data", no_memory)
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db))
    assert code == 1
    line = one_line(err)
    assert "MemoryError" in line and "nothing stored" in line and "stored as" not in line
    assert rows(db, "SELECT count(*) FROM runs") == [(0,)]


def test_a_store_that_cannot_be_written_is_bad_input_naming_it(tmp_path: Path, capsys,
                                                               monkeypatch) -> None:
    toml = write_toml(tmp_path / "s.toml", small_scenario())
    db = tmp_path / "runs.duckdb"

    def denied(*args: Any, **kw: Any) -> None:
        raise duckdb.IOException(f'IO Error: Cannot open file "{db}.wal": Permission denied')

    monkeypatch.setattr(DuckDBStore, "create_run", denied)
    code, _, err = run_cli(capsys, "run", str(toml), "--db", str(db))
    assert code == 2
    line = one_line(err)
    assert f"cannot write run store {db}" in line and "Permission denied" in line
    assert "stored as" not in line


def test_a_bigger_than_memory_run_stores_nothing_and_says_so(tmp_path: Path) -> None:
    raw = small_scenario(data=[{"kind": "gbm", "symbol": "SYN", "bars": 10**14}])
    toml = write_toml(tmp_path / "s.toml", raw)
    db = tmp_path / "runs.duckdb"
    proc = popen("run", str(toml), "--db", str(db), cwd=tmp_path, pythonpath=tmp_path)
    _, err = finish(proc)
    assert proc.returncode in (1, 2), err  # 2 once such a size is refused as bad input
    assert "stored as failed" not in one_line(err)
    assert not db.exists() or rows(db, "SELECT count(*) FROM runs") == [(0,)]


# -- abandoned runs --------------------------------------------------------------------
def test_a_killed_run_is_abandoned_shown_so_and_marked_on_request(tmp_path: Path,
                                                                  agents_dir: Path) -> None:
    """SIGKILL after the first flush (500,000 rows): the run stays 'running' in the
    store, but its writer is gone."""
    toml = write_toml(tmp_path / "s.toml", scenario("Sleeper", bars=620_000, mark_at=600_000,
                                                    nap=0.05))
    db = tmp_path / "runs.duckdb"
    proc = popen("run", str(toml), "--db", str(db), "--quiet", cwd=tmp_path,
                 pythonpath=agents_dir)
    wait_for_mark(proc)
    pid = proc.pid
    proc.kill()
    finish(proc)
    ((run_id, status),) = rows(db, "SELECT run_id, status FROM runs")
    assert status == "running"  # as the killed process left it

    runs = quorum("runs", "--db", str(db))
    assert runs.returncode == 0, runs.stderr
    assert "abandoned" in runs.stdout and "running" not in runs.stdout
    assert "--fix-abandoned" in runs.stdout
    show = quorum("show", run_id, "--db", str(db))
    assert show.returncode == 0, show.stderr
    assert "abandoned" in show.stdout and f"process {pid}" in show.stdout
    report = quorum("report", run_id, "--db", str(db), "--out", str(tmp_path / "rep"))
    assert report.returncode == 0, report.stderr
    assert "partial run (abandoned)" in report.stdout
    assert rows(db, "SELECT status FROM runs") == [("running",)]  # reading wrote nothing

    fixed = quorum("runs", "--fix-abandoned", "--db", str(db))
    assert fixed.returncode == 0, fixed.stderr
    assert f"marked 1 run(s) abandoned: {run_id}" in fixed.stdout
    run = run_row(db, run_id)
    assert run["status"] == "abandoned" and f"process {pid}" in run["error"]
    assert run["finished_at"] is not None
    ran = rows(db, "SELECT count(*) FROM bars WHERE run_id = ? AND ts <= (SELECT max(ts)"
                   " FROM equity WHERE run_id = ?)", [run_id, run_id])[0][0]
    assert run["n_bars"] == ran and 500_000 <= ran < 620_000


def quorum(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_only_runs_of_a_live_writer_count_as_running(tmp_path: Path) -> None:
    """A run this process writes is running; one by another process (the store's lock is
    ours, so that process is gone) or by none recorded is abandoned; a live-venue run is
    shown abandoned but left running for the next session to resume."""
    from sim.liveness import abandoned_runs, mark_abandoned

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        con = store.con
        for run_id, mode in (("mine", "backtest"), ("theirs", "paper"), ("older", "backtest"),
                             ("venue", "live")):
            store.create_run(run_id, "s", {"initial_cash": 1.0}, 0, "v", "h", mode)
        con.execute("UPDATE runs SET writer_pid = 99999999 WHERE run_id IN ('theirs', 'venue')")
        con.execute("UPDATE runs SET writer_pid = NULL, writer_host = NULL"
                    " WHERE run_id = 'older'")
        found = abandoned_runs(con)
        assert set(found) == {"theirs", "older", "venue"}
        assert "process 99999999" in found["theirs"][1]
        assert "not recorded" in found["older"][1]
        assert mark_abandoned(con) == (["older", "theirs"], ["venue"])
        statuses = dict(con.execute("SELECT run_id, status FROM runs").fetchall())
    assert statuses == {"mine": "running", "theirs": "abandoned", "older": "abandoned",
                        "venue": "running"}


def test_a_store_written_before_writers_were_recorded_still_opens(tmp_path: Path,
                                                                  capsys) -> None:
    db = tmp_path / "old.duckdb"
    with DuckDBStore(db) as store:
        store.create_run("oldrun000001", "s", {"initial_cash": 1.0}, 0, "v", "h")
        store.con.execute("ALTER TABLE runs DROP COLUMN writer_pid")
        store.con.execute("ALTER TABLE runs DROP COLUMN writer_host")
    code, out, err = run_cli(capsys, "runs", "--db", str(db))  # read-only: not migrated
    assert code == 0, err
    assert "oldrun000001" in out and "abandoned" in out
    code, out, err = run_cli(capsys, "runs", "--fix-abandoned", "--db", str(db))
    assert code == 0, err
    assert rows(db, "SELECT status, writer_pid FROM runs") == [("abandoned", None)]


# -- reports of partial runs -----------------------------------------------------------
@pytest.fixture
def partial_runs(tmp_path: Path, agents_dir: Path) -> dict[str, Any]:
    """A failed and an interrupted two-symbol run (bars stored in full up front), and a
    completed one."""
    db = tmp_path / "runs.duckdb"
    ids = {}
    with DuckDBStore(db) as store:
        for status, error in (("failed", "RuntimeError"), ("interrupted", "KeyboardInterrupt")):
            config = parse_scenario(scenario("Raiser", symbols=("AAA", "BBB"), at=1500,
                                             error=error))
            with pytest.raises((RuntimeError, KeyboardInterrupt)):
                run_scenario(config, store, run_id=f"{status:0<12}"[:12])
            ids[status] = f"{status:0<12}"[:12]
        config = parse_scenario(scenario("Trader", symbols=("AAA", "BBB")))
        ids["completed"] = run_scenario(config, store).run_id
    return {"db": db, **ids}


@pytest.mark.parametrize("status", ["failed", "interrupted"])
def test_reports_cover_the_bars_that_ran_and_say_so_first(partial_runs: dict[str, Any],
                                                          status: str, tmp_path: Path,
                                                          capsys) -> None:
    db, run_id = str(partial_runs["db"]), partial_runs[status]
    ran = rows(partial_runs["db"], "SELECT count(*) FROM bars WHERE run_id = ? AND ts <="
               " (SELECT max(ts) FROM equity WHERE run_id = ?)", [run_id, run_id])[0][0]
    assert 2900 < ran < 3100  # 1,500 bars of each symbol ran, of 3,000 each
    note = f"partial run ({status}): covers the {ran:,} bars that ran, of the 6,000 it was given"

    code, out, err = run_cli(capsys, "report", run_id, "--db", db, "--out",
                             str(tmp_path / "report"))
    assert code == 0, err
    assert note in out
    html = (tmp_path / "report" / f"report_{run_id}.html").read_text()
    head = html[html.index("<h1>"):html.index("<h2>")]  # at the top, before any section
    assert note[0].upper() + note[1:] in head

    code, out, err = run_cli(capsys, "show", run_id, "--db", db, "--metrics")
    assert code == 0, err
    assert out.splitlines()[0].startswith(note)

    code, out, err = run_cli(capsys, "compare", run_id, partial_runs["completed"], "--db", db,
                             "--out", str(tmp_path / "cmp"))
    assert code == 0, err
    assert f"run {run_id}: {note}" in out
    assert f"run {partial_runs['completed']}:" not in out  # a completed run has no note
