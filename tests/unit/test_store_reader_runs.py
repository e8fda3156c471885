"""Which run the API reads: the watched run once it is stored, remembered after that (a
session's reads do not ask the store for it again: each query is interpreter time the
trading loop shares)."""

from __future__ import annotations

import duckdb
import pytest

from quorum.api.reads import StoreReader, UnknownRun


def test_the_watched_run_is_unknown_until_stored_then_remembered() -> None:
    con = duckdb.connect()
    con.execute("create table runs (run_id varchar, started_at timestamp)")
    reader = StoreReader(con, default_run="r-live")
    with pytest.raises(UnknownRun, match="has not started yet"):
        reader.run_id(None)
    con.execute("insert into runs values ('r-live', now())")
    assert reader.run_id(None) == "r-live"
    queries: list[str] = []
    plain_rows = reader.rows

    def counting(sql: str, params: list[object] | None = None) -> list[dict[str, object]]:
        queries.append(sql)
        return plain_rows(sql, params)

    reader.rows = counting  # type: ignore[method-assign]
    assert [reader.run_id(None) for _ in range(5)] == ["r-live"] * 5
    assert queries == []
    # A named run is still looked up (and a missing one still refused).
    assert reader.run_id("r-li") == "r-live"
    with pytest.raises(UnknownRun, match="no run 'other'"):
        reader.run_id("other")
