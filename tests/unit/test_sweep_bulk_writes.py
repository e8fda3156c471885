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
