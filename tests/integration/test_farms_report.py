"""The HTML report and ``show --metrics`` of a farm run carry the per-farm figures, from
the store only; a run without farms has none."""

from __future__ import annotations

from pathlib import Path

import pytest

from reports.report import write_report
from sim.config import parse_scenario
from sim.data import bars_from_frame, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.unit.test_farms_hand_computed import OPPOSITE, _frame, scenario


def test_per_farm_tables_in_the_report(tmp_path: Path) -> None:
    """The opposite-views case (tests/unit/test_farms_hand_computed.py): a ends at
    6593.4 (PnL 593.4 on 6000), b at 3595.6 (-404.4 on 4000); the account made 189."""
    raw = scenario(
        {"alpha": [(2, "LONG"), (4, "FLAT")], "beta": [(2, "SHORT"), (4, "FLAT")]},
        {"alpha": "X", "beta": "X"},
        [{"name": "a", "agents": ["alpha"], "capital": 6000.0},
         {"name": "b", "agents": ["beta"]}])
    plain = {**raw, "name": "plain"}
    plain.pop("farms")
    data = merge([bars_from_frame(_frame(OPPOSITE), "X")])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        farmed = run_scenario(parse_scenario(raw), store, data=data).run_id
        pooled = run_scenario(parse_scenario(plain), store, data=data).run_id
        report = write_report(store.con, farmed, tmp_path / "farmed")
        without = write_report(store.con, pooled, tmp_path / "pooled")
    rows = {row["farm"]: row for row in report.tables["farms"]}
    assert rows["a"]["pnl"] == pytest.approx(593.4, rel=1e-12)
    assert rows["b"]["pnl"] == pytest.approx(-404.4, rel=1e-12)
    assert rows["a"]["total_return"] == pytest.approx(593.4 / 6000, rel=1e-12)
    assert rows["a"]["contribution"] == pytest.approx(593.4 / 189, rel=1e-12)
    assert [r["filled"] for r in rows.values()] == [2, 2]
    corr = {row["farm"]: row for row in report.tables["farm_correlation"]}
    assert corr["a"]["b"] == pytest.approx(corr["b"]["a"])
    assert corr["a"]["a"] == pytest.approx(1.0)
    page = report.html.read_text()
    assert "<h2>Per farm</h2>" in page
    assert "farms" not in without.tables
    assert "Per farm" not in without.html.read_text()
