"""A scenario without ``[[farms]]`` is one farm holding every agent: its stored rows are
those of before farms existed (every bundled scenario's tables are compared with da22740's
by ``test_rows_unchanged``, which runs after farms landed), and its stored config says
nothing of farms, so its config id is the one it had before.

(Farms first pinned the whole stored config too; that hash moves with every config field
another change adds with a default, e.g. ``live.venues``, which is not a farms question.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sim.config import load_scenario
from sim.config_sources import stored_config
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests._run_digests import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_scenario_without_farms_stores_no_farm_settings(scenario: str) -> None:
    config = load_scenario(ROOT / scenario)
    assert not config.farms
    stored = stored_config(config)
    assert "farms" not in stored and "allocator" not in stored


def test_a_run_without_farms_stores_no_farm_rows(tmp_path: Path) -> None:
    config = load_scenario(ROOT / "scenarios/demo.toml")
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = run_scenario(config, store).run_id
        (text,) = store.con.execute("SELECT config FROM runs WHERE run_id = ?",
                                    [run_id]).fetchone()
        assert "farms" not in json.loads(text)
        for table in ("farms", "farm_orders", "farm_decisions", "farm_equity",
                      "capital_transfers", "farm_events", "farm_funding",
                      "farm_liquidations"):
            (n,) = store.con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?",
                                     [run_id]).fetchone()
            assert n == 0, table
