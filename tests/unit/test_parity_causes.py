"""Causes the parity report gives two-venue divergences it once left unexplained (found on
the two-venue sandbox session of docs/howto/two-venues.md):

- a leg a venue reports filled for less than it was asked (Ostium sizes a position by
  collateral x leverage at its own open price) is a partial fill;
- an order sized while an earlier order of the same bar was still in flight live is a
  latency divergence (the session sized it without that order's fills; the model books
  each fill before it sizes the next), and only then: when those fills had landed before
  it was sent, the difference stays unexplained.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from reports.parity_orders import orders_and_fills
from reports.parity_rows import Context, Divergence

BAR = 1_796_661_000_000_000_000
SENT = BAR + 123_000_000_000  # wall time the live legs went out


def _store(order3_legs: list[tuple[Any, ...]], landed: int) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("""CREATE TABLE orders (run_id VARCHAR, order_id BIGINT, ts TIMESTAMP_NS,
        decision_ts TIMESTAMP_NS, symbol VARCHAR, role VARCHAR, venue VARCHAR, order_type VARCHAR,
        quantity DOUBLE, ref_price DOUBLE, limit_price DOUBLE, stop_price DOUBLE,
        reduce_only BOOLEAN, status VARCHAR, arrival_ts TIMESTAMP_NS, filled_quantity DOUBLE,
        avg_fill_price DOUBLE, fees DOUBLE, reason VARCHAR)""")
    con.execute("""CREATE TABLE fills (run_id VARCHAR, fill_id BIGINT, order_id BIGINT,
        ts TIMESTAMP_NS, symbol VARCHAR, venue VARCHAR, quantity DOUBLE, price DOUBLE, fee DOUBLE,
        liquidity VARCHAR, position_after DOUBLE)""")
    con.execute("CREATE TABLE routing_decisions (run_id VARCHAR, order_id BIGINT, "
                "reason VARCHAR)")
    con.execute("CREATE TABLE equity (run_id VARCHAR, ts TIMESTAMP_NS, equity DOUBLE)")
    con.execute("""CREATE TABLE venue_orders (run_id VARCHAR, order_id BIGINT, leg INTEGER,
        status VARCHAR, size DOUBLE, filled DOUBLE, message VARCHAR, sent_ns BIGINT)""")
    for run in ("live", "model"):
        con.execute("INSERT INTO equity VALUES (?, make_timestamp_ns(?), 10000.0)",
                    [run, BAR - 60 * 10**9])
    asked_btc, asked_eth = -0.0671128, {"live": 1.3985286, "model": 1.3977353}
    filled_btc = {"live": -0.0671008, "model": asked_btc}
    for run in ("live", "model"):
        for oid, symbol, qty, price in ((3, "BTC", asked_btc, 59601.0),
                                        (4, "ETH", asked_eth[run], 2860.0)):
            filled = filled_btc[run] if oid == 3 else qty
            con.execute("INSERT INTO orders VALUES (?, ?, make_timestamp_ns(?), "
                        "make_timestamp_ns(?), ?, 'entry', 'ost', 'market', ?, ?, NULL, NULL,"
                        " false, 'filled', NULL, ?, ?, 0.0, NULL)",
                        [run, oid, BAR, BAR - 60 * 10**9, symbol, qty, price, filled, price])
            when = (landed if oid == 3 else SENT + 10**9) if run == "live" else BAR
            con.execute("INSERT INTO fills VALUES (?, ?, ?, make_timestamp_ns(?), ?, 'ost', ?,"
                        " ?, 0.0, 'taker', NULL)", [run, oid, oid, when, symbol, filled, price])
    for leg in order3_legs:
        con.execute("INSERT INTO venue_orders VALUES ('live', 3, ?, ?, ?, ?, NULL, ?)",
                    [*leg, SENT])
    con.execute("INSERT INTO venue_orders VALUES ('live', 4, 1, 'filled', 1.3985286, "
                "1.3985286, NULL, ?)", [SENT + 50_000])
    return con


def _causes(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str, str], Divergence]:
    ctx = Context(con, "live", "live", "model")
    out: list[Divergence] = []
    orders_and_fills(con, "live", "model", ctx, out, set(), latency_tolerance_ms=1e12)
    return {(d.stage, d.symbol, d.field): d for d in out}


SHORT_LEGS = [(1, "filled", 0.02516, 0.02516), (2, "filled", 0.0419528, 0.0419408)]


def test_a_leg_reported_filled_for_less_is_a_partial_fill() -> None:
    got = _causes(_store(SHORT_LEGS, landed=SENT + 9 * 10**9))
    fill = got[("fills", "BTC", "filled quantity")]
    assert fill.cause == "partial_fill"
    assert "leg 2: the venue filled 0.0419408 of 0.0419528 and reported it filled" in (
        fill.detail)


def test_an_order_sized_while_the_bars_earlier_order_was_in_flight_is_latency() -> None:
    got = _causes(_store(SHORT_LEGS, landed=SENT + 9 * 10**9))
    order = got[("orders", "ETH", "quantity")]
    assert order.cause == "latency"
    assert "order 3 of the same bar was in flight" in order.detail


@pytest.mark.parametrize("landed", [SENT - 10**6, SENT + 40_000])
def test_fills_that_landed_before_it_was_sent_leave_it_unexplained(landed: int) -> None:
    got = _causes(_store(SHORT_LEGS, landed=landed))
    assert got[("orders", "ETH", "quantity")].cause == "unexplained"


def test_legs_filled_in_full_give_no_partial_fill() -> None:
    full = [(1, "filled", 0.02516, 0.02516), (2, "filled", 0.0419528, 0.0419528)]
    got = _causes(_store(full, landed=SENT + 9 * 10**9))
    assert got[("fills", "BTC", "filled quantity")].cause == "unexplained"
