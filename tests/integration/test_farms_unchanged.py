"""A scenario without ``[[farms]]`` is one farm holding every agent, and its stored rows
are those of before farms existed: every bundled scenario's tables (every column but the
wall-clock ``elapsed_*`` ones) and its stored config hash as they did at da22740 (the
checkout's own path, in resolved data and agent file paths, replaced by ``<root>``).

The digests in ``tests/fixtures/scenario_digests_da22740.json`` were made on commit
da22740 (before farms) by ``scenario_digests`` below. ``templates/external.toml`` is left
out: it needs its outside service running.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import TABLES, DuckDBStore

ROOT = Path(__file__).resolve().parents[2]
DIGESTS: dict[str, dict[str, str]] = json.loads(
    (ROOT / "tests/fixtures/scenario_digests_da22740.json").read_text())


def scenario_digests(store: DuckDBStore, run_id: str) -> dict[str, str]:
    out = {}
    for table, columns in TABLES.items():
        if table not in DIGESTS["scenarios/demo.toml"]:
            continue  # a table added since da22740: not part of "the rows of before"
        names = ", ".join(n for n, _ in columns if not n.startswith("elapsed"))
        rows = store.con.execute(
            f"SELECT {names} FROM {table} WHERE run_id = ? ORDER BY ALL", [run_id]).fetchall()
        text = repr(rows).replace(str(ROOT), "<root>")  # paths an agent was given
        out[table] = hashlib.sha256(text.encode()).hexdigest()[:16]
    config = store.con.execute("SELECT config FROM runs WHERE run_id = ?",
                               [run_id]).fetchone()[0]
    # Data paths are stored resolved: the checkout's own path is not part of the config.
    config = config.replace(str(ROOT), "<root>")
    out["runs.config"] = hashlib.sha256(config.encode()).hexdigest()[:16]
    return out


@pytest.mark.parametrize("scenario", sorted(DIGESTS))
def test_a_scenario_without_farms_stores_the_rows_of_before(scenario: str,
                                                            tmp_path: Path) -> None:
    config = load_scenario(ROOT / scenario)
    assert not config.farms
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        got = scenario_digests(store, run_scenario(config, store).run_id)
    assert got == DIGESTS[scenario]
