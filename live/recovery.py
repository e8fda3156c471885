"""Restart of a live run after its process died (SIGKILL, power, OOM): the stored run
continues where its durable records leave it.

* The ledger is rebuilt by booking the run's stored ``fills`` again, in order, through
  ``Portfolio.apply`` (the same arithmetic, so cash and positions are what they were).
* Order, fill and decision ids continue after the largest stored, so a new order's cloid
  (from run id, order id, leg) never repeats an earlier one.
* The trade ids already booked (``venue_fills``) are loaded: a fill is never booked twice.
* Every leg whose outcome the store does not know (``venue_orders`` still "sent",
  "resting" or "unresolved") is taken back by the desk and its port, and looked up at the
  venue by cloid: fills not booked yet are booked; a leg that ended is closed with the
  venue's outcome; one the venue does not know ends rejected ("never placed"). Of those
  still resting, the rule:

  - a bracket leg (take-profit, stop-loss) whose position the rebuilt ledger still holds
    (on the side the bracket closes) is kept: it works again, re-adopted, and its
    sibling's fill cancels it as before (one cancels the other). Cancelling it would
    leave an open position unprotected until the next entry fills;
  - anything else (entries, stop entries, brackets of a position that is gone) is
    cancelled: the restarted session re-decides from its own warm-up, so an order from
    before the restart does not stand.

* Funding booked from the venue (``venue_funding``) is booked into the ledger again and
  known as booked; the account's capital outside the run is restored (``live.funding``).
* The risk engine continues (``live.risk_state``): orders sent today count toward
  ``max_orders_per_day``, the order-rate window and each agent's ``max_trades_per_day``;
  the start-of-day equity and the drawdown peak come from the stored equity rows; and a
  circuit breaker tripped or a kill switch pulled before the crash stays so.
* With ``[[farms]]``, each farm's ledger and risk state likewise (``live.farms``).

With several accounts (``ports``: one per account, by the scenario venues bound to it),
each leg goes back to its venue's account, each account knows its own booked trade ids,
funding and outside capital, and its part of the ledger (``OrderPort.share``) is rebuilt
from the fills and funding stored at its venues.
What is not restored: rows of up to the last second before the crash (the runner
commits at most every second, risk trips at once, each transaction whole). Fills and
order outcomes among them are not lost: their legs are still open in the store, so
they are settled at the venue by cloid above. The drawdown peak and the day's start
equity are those of the equity rows that were committed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import duckdb

from live.farms import restore_farms
from live.funding import restore_funding
from live.records import booked_funding, booked_tids, create_tables, open_venue_orders
from live.risk_state import restore_risk
from sim.messages import OrderFilled
from sim.orders import BRACKET_ROLES, IOC, MARKET, Order
from sim.sql import one_row

if TYPE_CHECKING:
    from live.orders import OrderPort
    from live.runner import LiveRunner


def restore(runner: LiveRunner, port: OrderPort | Mapping[str, OrderPort],
            con: duckdb.DuckDBPyConnection) -> int:
    """Restore ``runner``'s stored run into its engine and ``port`` (several accounts: a
    port by scenario venue); returns how many legs with an unknown outcome were taken
    back."""
    ports = port if isinstance(port, Mapping) else None
    first = next(iter(ports.values())) if ports else port
    assert not isinstance(first, Mapping)
    create_tables(con)
    run_id = runner.run_id
    engine = runner.engine
    desk = engine.desk
    portfolio = engine.portfolio
    index = {sym: s for s, sym in enumerate(runner.symbols)}
    fills = con.execute(
        "SELECT fill_id, order_id, epoch_ns(ts), symbol, venue, quantity, price, fee,"
        " ref_price, liquidity FROM fills WHERE run_id = ? ORDER BY fill_id",
        [run_id]).fetchall()
    for fill in fills:
        portfolio.apply(index[fill[3]], OrderFilled(*fill))
    (order_id,) = one_row(
        con, "SELECT coalesce(max(order_id), 0) FROM (SELECT order_id FROM orders WHERE run_id = ?"
        " UNION ALL SELECT order_id FROM order_events WHERE run_id = ?"
        " UNION ALL SELECT order_id FROM venue_orders WHERE run_id = ?)",
        [run_id, run_id, run_id])
    desk.restore_ids(int(order_id), int(fills[-1][0]) if fills else 0)
    (decision_id,) = one_row(con, "SELECT coalesce(max(decision_id), 0) FROM decisions"
                             " WHERE run_id = ?", [run_id])
    engine.restore_decision_id(int(decision_id))
    if ports is None:
        first.know_booked(booked_tids(con, run_id))
    else:
        for p in dict.fromkeys(ports.values()):
            p.know_booked(booked_tids(con, run_id, p.venue_name))
            _restore_share(p, [v for v, q in ports.items() if q is p], con, run_id)

    lives: dict[int, Order] = {}
    legs = open_venue_orders(con, run_id)
    for row in legs:
        life = lives.get(row["order_id"])
        if life is None:
            life = _order(row, index[row["symbol"]], con, run_id)
            lives[life.order_id] = life
        leg = desk.adopt_external(life, row["venue"], row["quantity"])
        (booked,) = one_row(con, "SELECT coalesce(sum(quantity), 0) FROM venue_fills"
                            " WHERE run_id = ? AND cloid = ?", [run_id, row["cloid"]])
        leg.remaining = row["quantity"] - booked
        stands = _guards_position(life, portfolio.qty[life.s])
        owner = first if ports is None else ports[row["venue"]]
        owner.adopt(leg, row["cloid"], row["coin"], row["size"],
                    row["kind"] == MARKET or row["tif"] == IOC, abs(booked),
                    oid=None if row["oid"] is None else int(row["oid"]),
                    close=None if stands else (
                        "cancelled", "restart: an order from before the restart does not stand"))
    _hold_what_was_taken(runner, con)
    restore_funding(runner, first if ports is None else list(dict.fromkeys(ports.values())), con)
    restore_farms(engine, run_id, con, list(lives), first.now_ns())  # [[farms]]: each farm
    killed_by = restore_risk(engine.risk, run_id, con, first.now_ns())
    if killed_by is not None and runner.killed_by is None:
        runner.killed_by = killed_by
    return len(legs)


def _hold_what_was_taken(runner: LiveRunner, con: duckdb.DuckDBPyConnection) -> None:
    """Every bar the run stored, or decided an order on (journalled as its process died),
    is history to the resumed session, whatever the wall clock says: its warm-up
    rebuilds the agents on them and sends nothing. Judged by the clock alone, a bar whose
    time is ahead of ours (a venue's clock ahead of this machine's, a replay faster than
    real time) would be taken, stored and traded on a second time."""
    (last,) = one_row(
        con, "SELECT max(t) FROM (SELECT max(epoch_ns(ts)) AS t FROM bars WHERE run_id = ?"
        " UNION ALL SELECT max(decision_ts) FROM venue_orders WHERE run_id = ?)",
        [runner.run_id, runner.run_id])
    if last is not None and runner.hold_until_ns is not None:
        runner.hold_until_ns = max(runner.hold_until_ns, int(last) + runner.interval_ns)


def _restore_share(port: OrderPort, venues: list[str], con: duckdb.DuckDBPyConnection,
                   run_id: str) -> None:
    """An account's part of the ledger: the fills stored at its venues (adjustments
    included) and the funding it was paid."""
    share = port.share
    if share is None:
        return
    marks = ", ".join("?" for _ in venues)
    for symbol, qty, price, fee in con.execute(
            f"SELECT symbol, quantity, price, fee FROM fills WHERE run_id = ? AND venue IN"
            f" ({marks}) ORDER BY fill_id", [run_id, *venues]).fetchall():
        share.fill(symbol, qty, price, fee)
    share.flow += sum(float(r[3]) for r in booked_funding(con, run_id, port.venue_name))


def _guards_position(life: Order, position: float) -> bool:
    """A bracket leg that still closes (part of) the position held: kept on restart."""
    return life.role in BRACKET_ROLES and position != 0.0 and (position > 0) != (
        life.quantity > 0)


def _order(row: dict[str, Any], s: int, con: duckdb.DuckDBPyConnection, run_id: str) -> Order:
    """The order of a write-ahead row, with what of it was filled already."""
    life = Order(row["order_id"], row["decision_id"], row["ts"], row["decision_ts"],
                 row["symbol"], s, row["quantity"], row["ref_price"], row["kind"],
                 row["limit_price"], row["stop_price"], row["tif"], row["post_only"],
                 row["reduce_only"] and row["role"] != "flatten", row["role"],
                 row["parent_id"], row["replaces"])
    filled, notional, fees, last = one_row(
        con, "SELECT coalesce(sum(quantity), 0), coalesce(sum(abs(quantity) * price), 0),"
        " coalesce(sum(fee), 0), max(epoch_ns(ts)) FROM fills WHERE run_id = ? AND"
        " order_id = ?", [run_id, life.order_id])
    life.filled, life.filled_notional, life.fees, life.fill_ts = filled, notional, fees, last
    (arrived,) = one_row(con, "SELECT min(epoch_ns(ts)) FROM order_events WHERE run_id = ?"
                         " AND order_id = ? AND event = 'arrived'", [run_id, life.order_id])
    life.arrival_ts = arrived
    return life
