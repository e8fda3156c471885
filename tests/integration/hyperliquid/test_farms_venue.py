"""Farms in a venue session on the fake Hyperliquid (``live.farms``): the venue account
holds an ETH position the run does not know when it starts. Reconciliation adopts it
(rule 4, ``live.reconcile``) and says whose ledger it is booked to: the one farm trading
ETH, or, with two farms trading it, no farm (no one can tell which disagrees). Then the
farms trade on: each order and fill carries its farm, and the farms' positions plus the
unattributed one are the venue's."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .venue_session import ACCOUNT, bars_of, drive, history, open_session, scenario, venue_once_each

AGENTS = [{"name": "quick", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}},
          {"name": "steady", "kind": "sma_crossover", "params": {"fast": 4, "slow": 10}}]
ONE = [{"name": "solo", "agents": ["quick", "steady"]}]
TWO = [{"name": "quick", "agents": ["quick"], "share": 0.5},
       {"name": "steady", "agents": ["steady"], "share": 0.5}]


@pytest.mark.parametrize(("farms", "booked"), [
    (ONE, "farm solo's ledger (the one farm trading ETH)"),
    (TWO, "no one farm's ledger (farms quick +0, steady +0 trade ETH: cannot tell which"
          " disagrees), booked unattributed")], ids=["one-farm", "two-farms"])
def test_a_venue_position_is_booked_to_the_farm_that_owes_it_if_one_can_tell(
        fake: FakeHyperliquid, tmp_path, farms: list[dict[str, Any]], booked: str) -> None:
    fake.accounts[ACCOUNT].positions["ETH"] = (Decimal("0.25"), Decimal("1990"))
    config = scenario(agents=AGENTS, farms=farms)
    bars = bars_of(config)[:30]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        return await asyncio.wait_for(task, 30)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = asyncio.run(go(store))
        con, run_id = store.con, result.run_id
        alerts = con.execute("SELECT kind, venue_value, action FROM reconciliations WHERE"
                             " run_id = ? ORDER BY ts", [run_id]).fetchall()
        venue_once_each(fake, store, run_id)
        by_farm = dict(con.execute(
            "SELECT coalesce(farm, 'none'), sum(quantity) FROM fills_by_farm WHERE"
            " run_id = ? GROUP BY ALL", [run_id]).fetchall())
        unfarmed = con.execute(
            "SELECT count(*) FROM orders_by_farm WHERE run_id = ? AND farm IS NULL AND"
            " role <> 'adjustment'", [run_id]).fetchone()[0]
        (health,) = con.execute("SELECT count(*) FROM health WHERE run_id = ? AND component"
                                " = 'reconciliation'", [run_id]).fetchone()
    (kind, venue, action), = alerts
    assert (kind, venue) == ("position", 0.25) and action.endswith(f"booked to {booked}")
    assert health >= 1  # the session's health names the reconciliation, as without farms
    assert unfarmed == 0 and len([f for f in by_farm if f != "none"]) == len(farms), by_farm
    assert ("none" in by_farm) == (farms is TWO)
    assert sum(by_farm.values()) == pytest.approx(fake.position(ACCOUNT, "ETH"), abs=1e-9)
