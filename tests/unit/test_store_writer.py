"""The live session's store writer: jobs are written in order, each whole or not at all,
and a failure stops the writing and reaches the caller."""

from __future__ import annotations

import threading

import duckdb
import pytest

from live.writer import StoreWriter


def table(tmp_path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, what VARCHAR)")
    return con


def insert(*rows: tuple[int, str]):
    def job(con: duckdb.DuckDBPyConnection) -> None:
        for row in rows:
            con.execute("INSERT INTO t VALUES (?, ?)", list(row))
    return job


def test_jobs_are_written_in_order_on_another_thread(tmp_path) -> None:
    con = table(tmp_path)
    threads: list[str] = []
    writer = StoreWriter(con)
    for n in range(50):
        writer.submit(insert((n, f"job {n}")))
    writer.submit(lambda _: threads.append(threading.current_thread().name))
    writer.wait()
    assert con.execute("SELECT list(n ORDER BY n) FROM t").fetchone()[0] == list(range(50))
    assert threads == ["quorum-store-writer"]
    writer.close()


def test_a_failing_job_is_rolled_back_whole_and_stops_the_writer(tmp_path) -> None:
    con = table(tmp_path)
    writer = StoreWriter(con)
    writer.submit(insert((1, "a")))
    writer.submit(insert((2, "b"), (1, "duplicate")))  # the second row violates the key
    writer.submit(insert((3, "after the failure")))
    with pytest.raises(duckdb.ConstraintException):
        writer.wait()
    with pytest.raises(duckdb.ConstraintException):
        writer.submit(insert((4, "refused")))
    writer.close()
    assert con.execute("SELECT list(n ORDER BY n) FROM t").fetchone()[0] == [1]


def test_close_writes_what_is_queued(tmp_path) -> None:
    con = table(tmp_path)
    release = threading.Event()
    writer = StoreWriter(con)
    writer.submit(lambda _: release.wait(5))
    for n in range(5):
        writer.submit(insert((n, "queued")))
    release.set()
    writer.close()
    assert con.execute("SELECT count(*) FROM t").fetchone() == (5,)
    writer.close()  # twice is harmless
