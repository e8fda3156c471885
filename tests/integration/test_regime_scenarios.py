"""The bundled regime scenarios: each loads, runs, labels every bar, and is reproducible to
the byte (a hash over every stored table, twice over)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from research.suite import load_suite
from sim.config import load_scenario, parse_scenario
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore

SUITE = Path(__file__).resolve().parents[2] / "scenarios" / "regimes" / "suite.toml"
SCENARIOS = load_suite(SUITE).scenarios


def _short(path: str, bars: int = 400):
    """The scenario as shipped, shortened so the suite stays quick."""
    raw = load_scenario(path).model_dump(mode="json")
    for source in raw["data"]:
        source["bars"] = bars
        for shock in source.get("shocks", []):
            shock["at"] = min(shock["at"], bars // 2)
    return parse_scenario(raw, path)


def _table_hashes(store: DuckDBStore, run_id: str) -> dict[str, str]:
    hashes = {}
    for table, columns in TABLES.items():
        names = ", ".join(name for name, _ in columns if name != "elapsed_ns")
        rows = store.con.execute(
            f"SELECT {names} FROM {table} WHERE run_id = ? ORDER BY ALL", [run_id]
        ).fetchall()
        hashes[table] = hashlib.sha256(repr(rows).encode()).hexdigest()
    return hashes


def test_suite_lists_one_scenario_per_named_regime() -> None:
    from sim.regimes.generators import REGIMES

    regimes = {load_scenario(p).data[0].regime for p in SCENARIOS}
    assert regimes == set(REGIMES)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: Path(p).stem)
def test_regime_scenario_is_reproducible_and_labelled(path: str, tmp_path: Path) -> None:
    config = _short(path)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        first = run_scenario(config, store).run_id
        second = run_scenario(config, store).run_id
        assert _table_hashes(store, first) == _table_hashes(store, second)
        unlabelled, untagged, bars = store.con.execute(
            "SELECT count(*) FILTER (WHERE regime IS NULL),"
            " count(*) FILTER (WHERE source_regime IS NULL), count(*)"
            " FROM bars WHERE run_id = ?", [first],
        ).fetchone()
    assert bars == 2 * 400
    assert unlabelled == 0 and untagged == 0
