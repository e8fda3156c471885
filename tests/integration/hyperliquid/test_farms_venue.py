"""Farms in a venue session on the fake Hyperliquid (``live.farms``): the venue account
holds an ETH position the run does not know when it starts. Reconciliation adopts it
(rule 4, ``live.reconcile``) and says whose ledger it is booked to: the one farm trading
ETH, or, with two farms trading it, no farm (no one can tell which disagrees). Then the
farms trade on: each order and fill carries its farm, and the farms' positions plus the
unattributed one are the venue's. ``quorum parity`` explains every divergence of the
two-farm session by the adopted position."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from quorum.parity import replay
from reports.parity import parity
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .parity_session import Faults, parity_scenario, run_session
from .venue_session import ACCOUNT, bars_of, drive, history, open_session, scenario, venue_once_each

AGENTS = [{"name": "quick", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}},
          {"name": "steady", "kind": "sma_crossover", "params": {"fast": 4, "slow": 10}}]
ONE = [{"name": "solo", "agents": ["quick", "steady"]}]
TWO = [{"name": "quick", "agents": ["quick"], "share": 0.5},
       {"name": "steady", "agents": ["steady"], "share": 0.5}]


def _farm_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[list[tuple], dict, int]:
    """(reconciliation alerts, filled quantity by farm, orders without a farm)."""
    alerts = con.execute("SELECT kind, venue_value, action FROM reconciliations WHERE"
                         " run_id = ? ORDER BY ts", [run_id]).fetchall()
    by_farm = dict(con.execute(
        "SELECT coalesce(farm, 'none'), sum(quantity) FROM fills_by_farm WHERE run_id = ?"
        " GROUP BY ALL", [run_id]).fetchall())
    (unfarmed,) = con.execute(
        "SELECT count(*) FROM orders_by_farm WHERE run_id = ? AND farm IS NULL AND"
        " role <> 'adjustment'", [run_id]).fetchone()
    return alerts, by_farm, unfarmed


def test_a_venue_position_is_booked_to_the_one_farm_trading_it(
        fake: FakeHyperliquid, tmp_path) -> None:
    fake.accounts[ACCOUNT].positions["ETH"] = (Decimal("0.25"), Decimal("1990"))
    config = scenario(agents=AGENTS, farms=ONE)
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
        alerts, by_farm, unfarmed = _farm_rows(store.con, result.run_id)
        venue_once_each(fake, store, result.run_id)
        (health,) = store.con.execute("SELECT count(*) FROM health WHERE run_id = ? AND"
                                      " component = 'reconciliation'", [result.run_id]
                                      ).fetchone()
    (kind, venue, action), = alerts
    assert (kind, venue) == ("position", 0.25)
    assert action.endswith("booked to farm solo (the one farm trading ETH)"), action
    assert health >= 1  # the session's health names the reconciliation, as without farms
    assert unfarmed == 0 and list(by_farm) == ["solo"], by_farm
    assert by_farm["solo"] == pytest.approx(fake.position(ACCOUNT, "ETH"), abs=1e-9)


def test_with_two_farms_on_it_no_farm_owes_it_and_parity_explains_it(tmp_path: Path) -> None:
    config = parity_scenario(agents=AGENTS, farms=TWO)
    run_id, db = run_session(tmp_path, config, Faults(held=0.25))
    with duckdb.connect(str(db), read_only=True) as con:
        alerts, by_farm, unfarmed = _farm_rows(con, run_id)
        rep = replay(con, run_id)
        try:
            result = parity(rep.store.con, rep.live_run, rep.replay_run, rep.mode)
        finally:
            rep.store.close()
    (kind, venue, action), = alerts
    assert (kind, venue) == ("position", 0.25)
    assert action.endswith("booked to no farm (farms quick +0, steady +0 trade ETH: cannot"
                           " tell whose ledger disagrees)"), action
    assert unfarmed == 0 and by_farm["none"] == 0.25
    assert set(by_farm) == {"none", "quick", "steady"}, by_farm
    # the adopted position is the one root; what follows is carried from it
    assert result.unexplained == []
    (root,) = [d for d in result.divergences if d.cause != "carried"]
    assert (root.stage, root.field, root.cause) == ("fills", "adjustment", "reconciliation")
