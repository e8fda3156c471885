"""``--venue hyperliquid`` in-process against the fake exchange: orders from the engine's
desk go out as signed requests, the venue's answers and pushes come back as queued
messages, fills are booked once into the one ledger and the stored tables, warm-up bars
send nothing, and every order ends in a definite state with the venue's own words."""

from __future__ import annotations

import asyncio

from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .venue_session import (
    ACCOUNT,
    INTERVAL_NS,
    bars_of,
    drive,
    history,
    open_session,
    scenario,
    venue_once_each,
)


def test_a_session_trades_the_account_and_books_every_fill_once(
        fake: FakeHyperliquid, tmp_path) -> None:
    config = scenario(live={"warmup_bars": 25})
    bars = bars_of(config)
    warmup = 25
    clock = history(fake, bars, warmup)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars) - warmup)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, warmup)
        return await asyncio.wait_for(task, 30), session

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result, session = asyncio.run(go(store))
        con = store.con
        run_id = result.run_id
        assert con.execute("SELECT mode, status, n_bars FROM runs WHERE run_id = ?",
                           [run_id]).fetchone() == ("live", "completed", len(bars))
        started = bars[warmup].ts + INTERVAL_NS // 2
        # warm-up: decisions recorded, orders denied before any venue, nothing sent
        held = con.execute(
            "SELECT count(*) FROM orders o JOIN risk_events r USING (run_id, order_id)"
            " WHERE o.run_id = ? AND r.check_name = 'hold' AND o.status = 'denied'"
            " AND epoch_ns(o.ts) + ? <= ?", [run_id, INTERVAL_NS, started]).fetchone()[0]
        early = con.execute("SELECT count(*) FROM venue_orders WHERE run_id = ? AND ts + ?"
                            " <= ?", [run_id, INTERVAL_NS, started]).fetchone()[0]
        assert held >= 1 and early == 0
        statuses = dict(con.execute(
            "SELECT status, count(*) FROM orders WHERE run_id = ? GROUP BY ALL",
            [run_id]).fetchall())
        assert statuses.get("filled", 0) >= 5, statuses
        assert set(statuses) <= {"filled", "denied"}, statuses
        # one orders row per order sent, each with its fills, at the venue's prices
        rows = con.execute(
            "SELECT o.order_id, o.filled_quantity, sum(f.quantity), v.status"
            " FROM orders o JOIN venue_orders v USING (run_id, order_id)"
            " JOIN fills f USING (run_id, order_id) WHERE o.run_id = ? GROUP BY ALL",
            [run_id]).fetchall()
        assert rows and all(abs(a - b) < 1e-9 and s == "filled" for _, a, b, s in rows)
        venue_once_each(fake, store, run_id)
        assert fake.position(ACCOUNT, "ETH") != 0.0 or len(rows) >= 2
        assert session.port.idle


def test_an_ioc_that_meets_no_liquidity_expires_with_the_venues_message(
        fake: FakeHyperliquid, tmp_path) -> None:
    """No book: every market order (IOC) is refused by the venue as unmatched: expired,
    the venue's message stored; nothing fills, nothing is held against the position."""
    config = scenario()
    bars = bars_of(config)[:40]
    fake.quote("ETH", 1.0, 1e6, size=0.0001)  # a book nothing can trade against
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, quote=False)
        return await asyncio.wait_for(task, 30)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = asyncio.run(go(store))
        rows = store.con.execute(
            "SELECT status, reason FROM orders WHERE run_id = ?", [result.run_id]).fetchall()
        assert rows
        assert all(s == "expired" and "could not immediately match" in r for s, r in rows)
        assert store.con.execute("SELECT count(*) FROM fills").fetchone() == (0,)
        venue_once_each(fake, store, result.run_id)
