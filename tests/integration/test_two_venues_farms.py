"""Farms over two venue accounts (``live.farms`` with ``quorum live --venues``): farm
``hl_farm`` trades through the fake Hyperliquid only and farm ``ost_farm`` through the
fake Ostium only (their ``wallet``s), in one session. Each farm's orders go to its
account, each venue's fills are booked once and to the farm whose order it was, each
account's position is its fake's, and no reconciliation alert is raised."""

from __future__ import annotations

import asyncio

import pytest

from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.hyperliquid.conftest import fake  # noqa: F401 - the fixture
from tests.integration.hyperliquid.venue_session import bars_of, history
from tests.integration.two_venues import (
    drive,
    each_once_and_equal,
    open_two,
    scenario,
    start_ostium,
)

AGENTS = [{"name": "quick", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}},
          {"name": "steady", "kind": "sma_crossover", "params": {"fast": 4, "slow": 10}}]
FARMS = [{"name": "hl_farm", "agents": ["quick"], "share": 0.5, "wallet": ["hl"]},
         {"name": "ost_farm", "agents": ["steady"], "share": 0.5, "wallet": ["ost"]}]


@pytest.fixture
def ost():
    server = start_ostium()
    yield server
    server.stop()


def test_each_farm_trades_through_its_own_account(
        fake: FakeHyperliquid, ost, tmp_path) -> None:  # noqa: F811 - the fixture
    config = scenario(agents=AGENTS, farms=FARMS)
    bars = bars_of(config)[:40]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_two(fake, ost, store, config, clock, tmp_path,
                                 max_bars=len(bars))
        task = asyncio.create_task(session.run())
        await drive(fake, ost, session, clock, bars, 0)
        return await asyncio.wait_for(task, 60)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = asyncio.run(go(store))
        con, run_id = store.con, result.run_id
        assert result.status == "completed"
        fills = con.execute("SELECT farm, venue, count(*) FROM fills_by_farm WHERE"
                            " run_id = ? GROUP BY ALL ORDER BY ALL", [run_id]).fetchall()
        each_once_and_equal(fake, ost, store, run_id)
        assert con.execute("SELECT count(*) FROM reconciliations WHERE run_id = ?",
                           [run_id]).fetchone() == (0,)
    assert [(f, v) for f, v, _ in fills] == [("hl_farm", "hl"), ("ost_farm", "ost")], fills
    assert min(n for _, _, n in fills) >= 2, fills
