"""``quorum sweep`` end to end: the same store whatever runs it (one process, a process pool,
a Dask cluster, any completion order), resume after SIGINT without repeating or losing a
run, failures recorded and the sweep going on, metrics cross-checked from the store."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from reports.summary import run_summary
from research.sweep import load_sweep
from research.sweep_driver import execute_sweep, opened, plan_sweep
from research.sweep_executors import run_serial
from research.sweep_worker import RunOutcome, RunTask, execute_run
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore
from tests._sweep_support import TINY, cli, fingerprint
from tests.property._support import table_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def serial_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("serial") / "runs.duckdb"
    code, out, err = cli("sweep", str(TINY), "--db", str(db), "--workers", "1", "--quiet")
    assert code == 0, err
    assert "16 runs, 0 already stored, 16 to run" in out
    return db


def test_pool_of_processes_stores_the_same_as_one_process(serial_db: Path,
                                                          tmp_path: Path) -> None:
    db = tmp_path / "pool.duckdb"
    code, _, err = cli("sweep", str(TINY), "--db", str(db), "--workers", "2", "--quiet")
    assert code == 0, err
    assert fingerprint(db) == fingerprint(serial_db)


def test_dask_local_cluster_stores_the_same_as_one_process(serial_db: Path,
                                                           tmp_path: Path) -> None:
    from distributed import LocalCluster

    db = tmp_path / "dask.duckdb"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster:
        code, _, err = cli("sweep", str(TINY), "--db", str(db), "--cluster",
                             cluster.scheduler_address, "--quiet")
    assert code == 0, err
    assert fingerprint(db) == fingerprint(serial_db)


def test_completion_order_does_not_reach_the_results(serial_db: Path, tmp_path: Path) -> None:
    """Runs finishing in reverse order give the same rows, ranking and walk-forward."""

    def reversed_order(tasks: Sequence[RunTask]) -> Iterator[list[RunOutcome]]:
        outcomes = [execute_run(t) for t in tasks][::-1]
        yield outcomes[:5]  # in three transactions of different sizes
        yield outcomes[5:6]
        yield outcomes[6:]

    sweep = load_sweep(TINY)
    db = tmp_path / "reversed.duckdb"
    with opened(str(db)) as store:
        execute_sweep(store, plan_sweep(store, sweep), reversed_order)
    assert fingerprint(db) == fingerprint(serial_db)
    outputs = []
    for path in (serial_db, db):
        code, out, err = cli("sweep", str(TINY), "--db", str(path), "--quiet")
        assert code == 0, err
        outputs.append(out)
    assert "16 already stored, 0 to run" in outputs[0]
    assert outputs[0] == outputs[1]


def test_bulk_insert_equals_the_stores_own_append(serial_db: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables whose column types the bulk path does not know go through
    DuckDBStore.append batch by batch; both paths store the same."""
    import research.sweep_driver as driver

    monkeypatch.setattr(driver, "_ARROW_TYPES", {})
    db = tmp_path / "append.duckdb"
    with opened(str(db)) as store:
        execute_sweep(store, plan_sweep(store, load_sweep(TINY)), run_serial)
    assert fingerprint(db) == fingerprint(serial_db)


def test_a_sweep_run_stores_what_a_direct_run_stores(serial_db: Path, tmp_path: Path) -> None:
    run = load_sweep(TINY).runs[5]
    with DuckDBStore(tmp_path / "direct.duckdb") as direct:
        run_scenario(run.config, direct, run_id=run.run_id)
        con = duckdb.connect(str(serial_db), read_only=True)
        try:
            for table in TABLES:
                assert (table_rows(direct.con, table, run.run_id, sort=False)
                        == table_rows(con, table, run.run_id, sort=False)), table
            cols = "scenario, config, seed, code_version, data_hash, status, n_bars, error"
            assert (direct.con.execute(f"SELECT {cols} FROM runs").fetchall()
                    == con.execute(f"SELECT {cols} FROM runs WHERE run_id = ?",
                                   [run.run_id]).fetchall())
        finally:
            con.close()


def test_stored_metrics_match_the_run_summary(serial_db: Path) -> None:
    """Metrics computed in the worker from its batches equal reports.summary's, computed
    from the merged store (another path to the same numbers)."""
    con = duckdb.connect(str(serial_db), read_only=True)
    try:
        run_ids = [r[0] for r in con.execute("SELECT run_id FROM runs").fetchall()]
        assert len(run_ids) == 16
        for run_id in run_ids:
            stored = dict(con.execute("SELECT metric, value FROM run_metrics WHERE run_id = ?",
                                      [run_id]).fetchall())
            summary = run_summary(con, run_id)
            for name in ("total_return", "max_drawdown", "sharpe", "final_equity", "fees",
                         "fills"):
                want, got = summary[name], stored[name]
                assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), (name, got, want)
    finally:
        con.close()


def _sigint_sweep(tmp_path: Path) -> Path:
    """12 runs of 120,000 bars (about 0.5 s each): a SIGINT after 3 are stored leaves
    some unfinished (the finished ones are stored before the driver exits)."""
    base = tmp_path / "base.toml"
    base.write_text(
        'name = "slow"\nseed = 1\n[[data]]\nkind = "gbm"\nsymbol = "SYN"\nbars = 120000\n'
        'interval = "1m"\n[[agents]]\nname = "sma"\nkind = "sma_crossover"\n'
        '[[venues]]\nname = "v"\nsymbols = ["SYN"]\nfee_bps = 5.0\n')
    path = tmp_path / "sweep.toml"
    path.write_text('name = "slow"\nscenario = "base.toml"\nseeds = [1, 2, 3]\n'
                    '[grid]\n"agents.sma.params.fast" = [5, 10]\n'
                    '"agents.sma.params.slow" = [40, 80]\n')
    return path


def _sweep_process(path: Path, db: Path, workers: int) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", "sweep", str(path), "--db", str(db),
         "--workers", str(workers), "--commit-every", "0"], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stored_ids(lines: Sequence[str]) -> list[str]:
    return [line.split()[1] for line in lines if line.startswith("[")]


def test_sigint_then_resume_repeats_and_loses_nothing(tmp_path: Path) -> None:
    path = _sigint_sweep(tmp_path)
    db = tmp_path / "interrupted.duckdb"
    proc = _sweep_process(path, db, workers=2)
    seen = []
    assert proc.stderr is not None
    for line in proc.stderr:  # one line per stored run (stderr is not a terminal)
        seen.append(line)
        if len(_stored_ids(seen)) == 3:
            proc.send_signal(signal.SIGINT)
            break
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert "sweep interrupted" in rest and "run the same command again" in rest
    con = duckdb.connect(str(db), read_only=True)
    first = {r[0]: r[1] for r in con.execute("SELECT run_id, status FROM runs").fetchall()}
    con.close()
    assert 3 <= len(first) < 12
    assert set(first.values()) == {"completed"}  # nothing half-stored

    proc = _sweep_process(path, db, workers=1)  # resumed by the other executor
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"12 runs, {len(first)} already stored, {12 - len(first)} to run" in out
    second = _stored_ids(err.splitlines())
    assert not set(second) & set(first)  # nothing repeated
    assert len(second) == len(set(second)) == 12 - len(first)  # nothing lost

    reference = tmp_path / "reference.duckdb"
    code, _, err = cli("sweep", str(path), "--db", str(reference), "--workers", "1",
                       "--quiet")
    assert code == 0, err
    assert fingerprint(db) == fingerprint(reference)


def test_a_worker_that_dies_stops_the_sweep_and_keeps_what_finished(serial_db: Path,
                                                                    tmp_path: Path) -> None:
    """A worker killed (as by the OOM killer) is WorkerLost, not a failed run: the runs
    finished so far are stored, none is marked failed, and a rerun makes the rest."""
    import multiprocessing

    from research.sweep_executors import WorkerLost, run_processes

    sweep = load_sweep(TINY)
    db = tmp_path / "lost.duckdb"
    killed = []

    def killing(tasks: Sequence[RunTask]) -> Iterator[list[RunOutcome]]:
        for ready in run_processes(tasks, 2):
            if ready and not killed:
                victim = next(p for p in multiprocessing.active_children()
                              if p.name.startswith("sweep-"))
                os.kill(victim.pid, signal.SIGKILL)
                killed.append(victim.pid)
            yield ready

    with opened(str(db)) as store:
        with pytest.raises(WorkerLost, match="died"):
            execute_sweep(store, plan_sweep(store, sweep), killing)
        stored = store.con.execute("SELECT status, count(*) FROM runs GROUP BY 1").fetchall()
        assert len(stored) == 1 and stored[0][0] == "completed" and 0 < stored[0][1] < 16
        plan = plan_sweep(store, sweep)
        assert plan.already == stored[0][1]
        execute_sweep(store, plan, run_serial)
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("sweep-")]
    assert fingerprint(db) == fingerprint(serial_db)


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    """One run fails part-way (its agent raises), one before it starts (its data file is
    unsorted); both are stored as failed with the error, the third completes."""
    good = tmp_path / "good.csv"
    lines = [f"2024-01-01T{h:02d}:{m:02d}:00Z,1,1.1,0.9,1.05,1\n" for h in range(5)
             for m in range(60)]
    good.write_text("timestamp,open,high,low,close,volume\n" + "".join(lines))
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n" + "".join(reversed(lines)))
    base = tmp_path / "base.toml"
    base.write_text(
        'name = "fails"\nseed = 1\n[[data]]\nsymbol = "SYN"\npath = "good.csv"\n'
        '[[agents]]\nname = "f"\nkind = "tests._sweep_support:FailsAt"\n'
        '[[venues]]\nname = "v"\nsymbols = ["SYN"]\n')
    path = tmp_path / "sweep.toml"
    path.write_text('name = "fails"\nscenario = "base.toml"\n[grid]\n'
                    '"agents.f.params.fail_at" = [0, 100]\n'
                    '"data.0.path" = ["good.csv", "bad.csv"]\n')  # relative to the sweep
    db = tmp_path / "runs.duckdb"
    code, out, err = cli("sweep", str(path), "--db", str(db), "--workers", "1", "--quiet")
    assert code == 1, err
    assert "3 runs failed" in out and "RuntimeError: boom at bar 100" in out
    con = duckdb.connect(str(db), read_only=True)
    rows = con.execute("SELECT s.idx, r.status, r.error, r.n_bars FROM sweep_runs s "
                       "JOIN runs r USING (run_id) ORDER BY s.idx").fetchall()
    equity = con.execute("SELECT count(*) FROM equity e JOIN sweep_runs s USING (run_id) "
                         "WHERE s.idx = 2").fetchone()[0]
    metrics = con.execute("SELECT count(DISTINCT run_id) FROM run_metrics").fetchone()[0]
    con.close()
    assert [r[1] for r in rows] == ["completed", "failed", "failed", "failed"]
    assert rows[2][2].startswith("agent 'f' raised on SYN at bar 100 (")  # issue 21
    assert rows[2][2].endswith("): RuntimeError: boom at bar 100") and rows[2][3] == 100
    assert equity > 0  # what the failing run computed before it failed is kept
    assert rows[1][2].startswith("DataError") and "bad.csv" in rows[1][2]
    assert rows[1][3] == 0
    assert metrics == 1  # metrics only for the completed run
    # A stored failure is final: a rerun makes nothing; --retry-failed makes them again.
    code, out, _ = cli("sweep", str(path), "--db", str(db), "--workers", "1", "--quiet")
    assert code == 1 and "4 runs, 4 already stored, 0 to run" in out
    code, out, _ = cli("sweep", str(path), "--db", str(db), "--workers", "1", "--quiet",
                       "--retry-failed")
    assert code == 1 and "1 already stored, 3 to run" in out


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--workers", "0"], "--workers must be >= 1"),
    (["--workers", "2", "--cluster", "tcp://127.0.0.1:1"], "--workers does not apply"),
    (["--cluster", "tcp://127.0.0.1:1"], "cannot reach the dask scheduler"),
])
def test_bad_command_line_is_one_line_exit_2(tmp_path: Path, argv: list[str],
                                             fragment: str) -> None:
    code, _, err = cli("sweep", str(TINY), "--db", str(tmp_path / "x.duckdb"), "--quiet",
                       *argv)
    assert code == 2
    assert fragment in err and err.count("\n") == 1


def test_bad_sweep_files_exit_2_with_one_line(tmp_path: Path) -> None:
    cases = {
        "unknown parameter": '[grid]\n"agents.sma.params.fastt" = [3]\n',
        "empty list of values": '[grid]\n"agents.sma.params.fast" = []\n',
        "unknown regime 'moon'": f'suite = "{REPO}/scenarios/regimes/suite.toml"\n'
                                 'regimes = ["moon"]\n',
    }
    for fragment, body in cases.items():
        path = tmp_path / "bad.toml"
        path.write_text(f'name = "bad"\nscenario = "{REPO}/scenarios/regimes/crash.toml"\n'
                        + body)
        code, out, err = cli("sweep", str(path), "--db", str(tmp_path / "x.duckdb"))
        assert code == 2, fragment
        assert err.startswith("quorum: error: ") and err.count("\n") == 1, err
        assert fragment in err and out == ""
    assert not (tmp_path / "x.duckdb").exists()  # nothing opened, nothing stored
