"""The API's reads are bounded in time: a read past its limit is interrupted (ReadTimeout)
by the one watchdog thread, and reads that finish in time are never interrupted."""

from __future__ import annotations

import threading

import duckdb
import pytest

from quorum.api.reads import ReadTimeout, StoreReader

SLOW = "select count(*) as n from range(1000000000) a, range(1000000000) b"


def test_a_read_past_its_limit_is_interrupted_and_the_next_one_runs() -> None:
    con = duckdb.connect()
    reader = StoreReader(con, timeout_s=0.2)
    with pytest.raises(ReadTimeout, match=r"longer than 0\.2 s"):
        reader.rows(SLOW)
    assert reader.rows("select 41 + 1 as x") == [{"x": 42}]


def test_reads_in_time_are_not_interrupted_and_one_thread_watches_them_all() -> None:
    con = duckdb.connect()
    con.execute("create table t as select range as i from range(100000)")
    reader = StoreReader(con, timeout_s=0.3)
    before = threading.active_count()
    for _ in range(200):  # far more reads than the limit: their deadlines pass unused
        assert reader.rows("select sum(i) as s from t") == [{"s": 4999950000}]
    assert threading.active_count() <= before + 1
    # A slow read among fast ones on other threads: only it is interrupted.
    outcome: dict[str, object] = {}

    def slow() -> None:
        try:
            reader.rows(SLOW)
        except ReadTimeout as exc:
            outcome["slow"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    fast = [reader.rows("select count(*) as n from t")[0]["n"] for _ in range(20)]
    thread.join(10)
    assert isinstance(outcome.get("slow"), ReadTimeout)
    assert fast == [100000] * 20
