"""A backtest's appends on the store's writer thread (``DuckDBStore.appends_behind``,
``sim.append_writer``): the same rows in the same order as appended by the run's thread,
every row there for whatever reads the store after, a writer's failure failing the run
with its cause, and an interrupted run keeping what it computed."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

import sim.store as sim_store
from sim.append_writer import AppendWriter
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.integration.test_fast_path import table_hashes

Append = Any


def scenario(bars: int = 3_000) -> dict[str, Any]:
    return {
        "name": "behind", "seed": 7, "initial_cash": 10_000.0,
        "data": [{"kind": "gbm", "symbol": "X", "bars": bars, "interval": "1m"},
                 {"kind": "gbm", "symbol": "Y", "bars": bars, "interval": "1m"}],
        "agents": [{"name": "fast", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}},
                   {"name": "z", "kind": "zscore_reversion", "params": {"window": 30}}],
        "venues": [{"name": "v", "symbols": ["X", "Y"], "fee_bps": 5.0}],
    }


@contextmanager
def in_front(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Appends on the run's thread, as before the writer (the reference)."""
    with monkeypatch.context() as m:
        m.setattr(DuckDBStore, "appends_behind", lambda self: _null())
        yield


@contextmanager
def _null() -> Iterator[None]:
    yield


def patch_append(monkeypatch: pytest.MonkeyPatch, wrap: Any) -> list[tuple[str, str]]:
    """Wrap ``sim.store.append_batch``; returns (thread name, table) of each call."""
    real = sim_store.append_batch
    calls: list[tuple[str, str]] = []

    def append_batch(con: Any, run_id: str, table: str, batch: pa.Table) -> None:
        calls.append((threading.current_thread().name, table))
        wrap(real, con, run_id, table, batch)

    monkeypatch.setattr(sim_store, "append_batch", append_batch)
    return calls


def slow(real: Append, con: Any, run_id: str, table: str, batch: pa.Table) -> None:
    """Appends that lag well behind the run (a barrier that did not wait would read
    short tables)."""
    threading.Event().wait(0.02)
    real(con, run_id, table, batch)


def test_the_appends_run_behind_and_store_what_the_run_thread_stored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = parse_scenario(scenario(40_000))  # a flush mid-run (after 65,536 bars)
    with in_front(monkeypatch), DuckDBStore(tmp_path / "front.duckdb") as store:
        run_scenario(config, store, run_id="front0000000", flush_rows=20_000)
        front = table_hashes(store, "front0000000")
    calls = patch_append(monkeypatch, slow)
    with DuckDBStore(tmp_path / "behind.duckdb") as store:
        run = run_scenario(config, store, run_id="behind000000", flush_rows=20_000)
        # read at once: every row handed over is in (the store's barrier), none twice
        behind = table_hashes(store, "behind000000")
        status, n_bars = store.con.execute(
            "SELECT status, n_bars FROM runs WHERE run_id = 'behind000000'").fetchone()
    assert run.status == status == "completed" and n_bars == 80_000
    assert behind == front and behind["equity"][0] > 0 and behind["bars"][0] == 80_000
    assert {thread for thread, _ in calls} == {"quorum-append-writer"}  # none in front
    assert [table for _, table in calls].count("equity") == 2  # two flushes


@pytest.mark.parametrize("table", ["bars", "equity"])
def test_a_failed_append_on_the_writer_fails_the_run_naming_the_cause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str) -> None:
    def full(real: Append, con: Any, run_id: str, name: str, batch: pa.Table) -> None:
        if name == table:
            raise duckdb.IOException("IO Error: No space left on device")
        real(con, run_id, name, batch)

    calls = patch_append(monkeypatch, full)
    config = parse_scenario(scenario())
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(duckdb.IOException, match="No space left"):
            run_scenario(config, store, run_id="full00000000", flush_rows=1_000)
        status, error = store.con.execute(
            "SELECT status, error FROM runs WHERE run_id = 'full00000000'").fetchone()
        stored = store.con.execute(
            f"SELECT count(*) FROM {table} WHERE run_id = 'full00000000'").fetchone()[0]
    assert status == "failed"
    assert error == "IOException: IO Error: No space left on device"
    assert stored == 0 and {thread for thread, _ in calls} == {"quorum-append-writer"}


def test_an_interrupted_run_keeps_every_row_it_handed_over(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stop(seen: int) -> None:  # after the first 65,536 bars (``Engine.run``'s chunk)
        raise KeyboardInterrupt

    config = parse_scenario(scenario(40_000))
    runs = {}
    for name, front in (("front0000000", True), ("behind000000", False)):
        with monkeypatch.context() as m:
            if front:
                m.setattr(DuckDBStore, "appends_behind", lambda self: _null())
            else:
                patch_append(m, slow)
            with DuckDBStore(tmp_path / f"{name}.duckdb") as store:
                with pytest.raises(KeyboardInterrupt):
                    run_scenario(config, store, run_id=name, flush_rows=20_000,
                                 on_progress=stop, fast_path=False)
                status = store.con.execute(
                    "SELECT status, n_bars FROM runs WHERE run_id = ?", [name]).fetchone()
                runs[name] = (status, table_hashes(store, name))
    assert runs["behind000000"] == runs["front0000000"]
    (status, n_bars), hashes = runs["behind000000"]
    assert status == "interrupted" and n_bars == 65_536
    assert hashes["equity"][0] > 0 and hashes["bars"][0] == 80_000


def test_the_hand_over_holds_at_most_max_bytes_waiting_in_order(tmp_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    written: list[str] = []

    def append(con: Any, run_id: str, table: str, batch: pa.Table) -> None:
        started.set()
        release.wait()
        written.append(table)

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    batch = pa.table({"x": pa.array(range(1_000), pa.int64())})  # 8,000 bytes
    writer = AppendWriter(con, append, max_bytes=10_000)
    writer.submit("r", "a", batch)
    started.wait()  # the writer holds "a": nothing waits
    assert writer.waiting_bytes == 0 and writer.has_room(10**9)  # one is always taken
    writer.submit("r", "b", batch)
    assert writer.waiting_bytes == 8_000
    assert not writer.has_room(batch.nbytes)  # a third would wait for "b" to be taken
    assert writer.has_room(2_000)
    writer.submit("r", "c", lambda: batch)  # built on the writer's thread: no bytes here
    release.set()
    writer.submit("r", "d", batch)
    writer.drain()
    assert written == ["a", "b", "c", "d"] and writer.error is None
    assert writer.waiting_bytes == 0
    writer.close()
    con.close()


def test_duckdb_runs_on_one_thread_behind_a_run_and_gets_its_setting_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a run's appends run behind, DuckDB's ``threads`` is 1 (its workers would only
    contend with the run's two threads); the store's own setting is back afterwards, also
    when the run fails, and the rows are the same as with DuckDB's default."""
    def threads(store: DuckDBStore) -> int:
        return int(store.con.execute("SELECT current_setting('threads')").fetchone()[0])

    config = parse_scenario(scenario(600), "behind")
    with DuckDBStore(tmp_path / "a.duckdb") as store:
        store.con.execute("SET threads = 3")
        with store.appends_behind():
            assert threads(store) == 1
        assert threads(store) == 3
        with pytest.raises(RuntimeError, match="boom"), store.appends_behind():
            raise RuntimeError("boom")
        assert threads(store) == 3
        run_id = run_scenario(config, store).run_id
        assert threads(store) == 3
        got = table_hashes(store, run_id)
    with DuckDBStore(tmp_path / "b.duckdb") as store, in_front(monkeypatch):
        store.con.execute("SET threads = 3")  # DuckDB's workers at the appends
        want = table_hashes(store, run_scenario(config, store).run_id)
        assert threads(store) == 3
    assert got == want
