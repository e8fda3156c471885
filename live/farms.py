"""A session of a scenario with ``[[farms]]``: several farms in one live account.

The farms run as in a backtest (``sim.farm_engine``: one feed, one account, each farm's
own consensus, policy, limits and ledger, and the invariant that the account's ledger is
the sum of the farms' checked at every time step). What a session adds is here:

* ``start_farms``: a new session records its farms and each one's initial allocation
  (``farms``, ``capital_transfers``) when it starts, at the time its agents are recorded;
  a resumed run has them already.
* ``trip_farms``: each farm's risk engine, for ``live.risk_state.RiskTrips`` to write a
  farm's circuit breaker as it trips (its ``farm`` column), like the account's.
* ``restore_farms`` (a restart, called by ``live.recovery.restore``): each farm's ledger
  is rebuilt from its stored fills (``fills_by_farm``) and its share of the venue's
  funding (split by the farms' positions at each payment, as it was booked:
  ``sim.farm_desk.FarmDesk.split_funding``); the orders taken back from the venue book
  their later fills to their farm; each farm's risk engine continues (its orders sent
  today, its drawdown peak and day-start equity from its ``farm_equity`` rows, and a
  breaker it tripped before the restart: a farm stopped by its daily loss stays stopped
  until its day ends, the others trade on).

Reconciliation with the venue is the account's (``live.reconcile``): the venue account
is compared with the account's ledger, which is the sum of the farms' (and of what is
booked to no farm). A position difference is booked to the farm that owes it when one
farm alone trades the symbol, else unattributed; the alert says which
(``FarmDesk.holders``).
"""

from __future__ import annotations

import duckdb

from live.records import booked_funding
from live.risk_state import CIRCUIT_BREAKER, create_table
from sim.config import ScenarioConfig
from sim.engine import Engine
from sim.farm_build import record_farms
from sim.farm_desk import FarmDesk
from sim.farm_engine import FarmEngine
from sim.messages import OrderFilled
from sim.risk import RiskEngine


def start_farms(engine: Engine, config: ScenarioConfig, now_ns: int) -> None:
    """A new session's ``farms`` rows and initial allocations, at ``now_ns``."""
    if isinstance(engine, FarmEngine):
        record_farms(engine.recorder, config, engine.farms, now_ns)


def trip_farms(engine: Engine) -> list[tuple[str, RiskEngine]]:
    """(farm, its risk engine) of each farm (none without farms)."""
    if not isinstance(engine, FarmEngine):
        return []
    return [(f.name, f.risk) for f in engine.farms]


def restore_farms(engine: Engine, run_id: str, con: duckdb.DuckDBPyConnection,
                  adopted: list[int], now_ns: int) -> None:
    """Rebuild each farm's ledger and risk state of stored run ``run_id`` (see the
    module); ``adopted``: the ids of the orders taken back from the venue."""
    if not isinstance(engine, FarmEngine):
        return
    desk: FarmDesk = engine.desk  # type: ignore[assignment]
    farms = {f.name: f for f in engine.farms}
    index = {sym: s for s, sym in enumerate(engine.symbols)}
    # each order's farm (an order sent just before a crash: from the journal, ``absorb``)
    owner = {int(o): str(f) for o, f in con.execute(
        "SELECT order_id, farm FROM farm_orders WHERE run_id = ?", [run_id]).fetchall()}
    fills = con.execute(
        "SELECT fill_id, order_id, epoch_ns(ts), symbol, venue, quantity, price, fee,"
        " ref_price, liquidity FROM fills WHERE run_id = ? ORDER BY fill_id",
        [run_id]).fetchall()
    # fills and funding in the order they were booked: a payment splits by the
    # positions held when it came (fills up to its time)
    payments = sorted((int(time_ms) * 1_000_000, str(symbol), float(usdc))
                      for _coin, time_ms, symbol, usdc, _szi, _rate
                      in booked_funding(con, run_id))
    k = 0
    for fill in fills:
        while k < len(payments) and payments[k][0] < fill[2]:
            _, symbol, usdc = payments[k]
            desk.split_funding(index[symbol], usdc)
            k += 1
        farm = farms.get(owner.get(int(fill[1]), ""))
        ledger = desk.unattributed if farm is None else farm.ledger
        ledger.apply(index[fill[3]], OrderFilled(*fill))
    for _, symbol, usdc in payments[k:]:
        desk.split_funding(index[symbol], usdc)
    for order_id in adopted:
        farm = farms.get(owner.get(order_id, ""))
        if farm is not None:
            desk.adopt_farm(order_id, farm)
    create_table(con)
    for farm in engine.farms:
        equity = con.execute(
            "SELECT epoch_ns(ts), equity FROM farm_equity WHERE run_id = ? AND farm = ?"
            " ORDER BY ts", [run_id, farm.name]).fetchall()
        breaker = con.execute(
            "SELECT name, value, until_ns FROM live_risk_trips WHERE run_id = ? AND kind = ?"
            " AND farm = ? ORDER BY ts DESC, rowid DESC LIMIT 1",
            [run_id, CIRCUIT_BREAKER, farm.name]).fetchone()
        farm.risk.restore(
            now_ns, sent=_farm_sent(con, run_id, farm.name), equity_ts=[int(r[0]) for r in equity],
            equity=[float(r[1]) for r in equity],
            breaker=None if breaker is None else (str(breaker[0]), breaker[1], breaker[2]))


def _farm_sent(con: duckdb.DuckDBPyConnection, run_id: str, farm: str) -> list[int]:
    """The times of ``farm``'s orders that reached a venue (``live.risk_state``'s rule)."""
    rows = con.execute(
        "SELECT min(ts) FROM ("
        " SELECT order_id, ts FROM venue_orders WHERE run_id = ?"
        " UNION ALL SELECT order_id, epoch_ns(ts) FROM routing_decisions WHERE run_id = ?"
        " UNION ALL SELECT order_id, epoch_ns(ts) FROM orders WHERE run_id = ?"
        "  AND status <> 'denied' AND role NOT IN ('adjustment', 'liquidation')"
        ") x WHERE x.order_id IN (SELECT order_id FROM farm_orders WHERE run_id = ? AND"
        " farm = ?) GROUP BY x.order_id ORDER BY 1",
        [run_id, run_id, run_id, run_id, farm]).fetchall()
    return [int(ts) for (ts,) in rows]
