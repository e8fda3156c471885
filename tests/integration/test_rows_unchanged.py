"""Speed work on the order path changes no stored row: every bundled scenario, and a few
built for the paths they take rarely, store exactly the rows they stored at da22740
(``tests/fixtures/run_digests_da22740.json``, made by ``tests/_run_digests.py`` with that
commit's code; ``scenarios/operations.toml``'s entry re-made after that scenario was
rewritten to drive every lifecycle command). A change meant to alter results updates the
fixture in its own commit, saying why; a digest that moves otherwise is a regression.
The digests hold on the machine kind they were made on: float results' last bits can
follow the CPU (see test_generator_v1_reproducible).

The bundled scenarios are checked where they run already: ``test_fast_path`` compares
each one's per-bar run with these digests before comparing its fast run with it."""

from __future__ import annotations

import pytest

from sim.store import DuckDBStore
from tests._run_digests import SCENARIOS, SYNTHETIC, pinned_digests, synthetic_digests

EXPECTED = pinned_digests()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> DuckDBStore:
    with DuckDBStore(tmp_path_factory.mktemp("digests") / "runs.duckdb") as s:
        yield s


@pytest.mark.parametrize("name", sorted(SYNTHETIC))
def test_a_built_scenario_stores_the_rows_of_before(name: str, store: DuckDBStore) -> None:
    assert synthetic_digests(name, store) == EXPECTED[name]


def test_the_fixture_covers_every_case_and_the_order_path() -> None:
    assert set(EXPECTED) == set(SCENARIOS) | set(SYNTHETIC)
    counts = {table: sum(int(d[table].split(":")[0]) for d in EXPECTED.values())
              for table in ("orders", "fills", "risk_events", "funding", "order_events")}
    assert all(n > 0 for n in counts.values()), counts
