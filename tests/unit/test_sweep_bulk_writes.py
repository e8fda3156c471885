"""The driver's bulk-write settings hold while runs are stored and are undone after,
also when storing fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from research.sweep_driver import _BULK_SETTINGS, bulk_writes
from sim.store import DuckDBStore


def _settings(store: DuckDBStore) -> dict[str, str]:
    return {name: str(store.con.execute("SELECT current_setting(?)", [name]).fetchone()[0])
            for name in _BULK_SETTINGS}


def test_bulk_settings_hold_inside_and_are_undone_after(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "s.duckdb") as store:
        store.con.execute("SET threads = 3")
        before = _settings(store)
        assert before["threads"] == "3"
        with bulk_writes(store):
            inside = _settings(store)
        assert inside["threads"] == "1"
        assert inside["checkpoint_threshold"] != before["checkpoint_threshold"]
        assert _settings(store) == before
        with pytest.raises(RuntimeError), bulk_writes(store):
            raise RuntimeError("a failed merge")
        assert _settings(store) == before


def test_runs_appended_together_store_what_each_appended_alone_does(tmp_path: Path) -> None:
    """``_append_runs`` (several runs' batches in one INSERT, dictionary columns with a
    dictionary per batch and the run ids passed as dictionaries, not cast to strings)
    stores the rows, in order, that ``DuckDBStore.append`` stores run by run."""
    import pyarrow as pa

    from research.sweep_driver import _append_runs

    def batch(symbols: list[str], codes: list[int | None], sides: list[str]) -> pa.Table:
        n = len(codes)
        return pa.table({
            "ts": pa.array(list(range(n)), pa.timestamp("ns")),
            "symbol": pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()),
                                                     pa.array(symbols)),
            "agent": pa.array(["a"] * n).dictionary_encode(),
            "side": pa.array(sides),
            "confidence": pa.array([0.5] * n),
            "target": pa.array([None] * n, pa.float64()),
            "reason": pa.array([f"r{i}" for i in range(n)]),
        })

    parts = [("run-b", batch(["ETH", "BTC"], [0, 1, None, 0], ["LONG"] * 4)),
             ("run-a", batch(["BTC"], [0, 0], ["SHORT", "FLAT"])),
             ("run-c", batch(["SOL", "ETH", "BTC"], [2, 1, 0], ["HOLD"] * 3))]
    rows = []
    for together in (False, True):
        with DuckDBStore(tmp_path / f"{together}.duckdb") as store:
            if together:
                _append_runs(store, "signals", parts)
            else:
                for run_id, data in parts:
                    store.append(run_id, "signals", data)
            rows.append(store.con.execute("SELECT * FROM signals ORDER BY rowid").fetchall())
    assert rows[0] == rows[1]
    assert [r[0] for r in rows[0]] == ["run-b"] * 4 + ["run-a"] * 2 + ["run-c"] * 3
    assert [r[2] for r in rows[0]] == ["ETH", "BTC", None, "ETH", "BTC", "BTC", "BTC", "ETH",
                                       "SOL"]
