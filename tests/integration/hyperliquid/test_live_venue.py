"""``--venue hyperliquid`` in-process against the fake exchange: orders from the engine's
desk go out as signed requests, the venue's answers and pushes come back as queued
messages, fills are booked once into the one ledger and the stored tables, warm-up bars
send nothing, and every order ends in a definite state with the venue's own words."""

from __future__ import annotations

import asyncio

import pytest

from live.hyperliquid.stream import candle, order_updates
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.test_live_seam import _rows

from .test_faults import wait_for
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


@pytest.mark.parametrize("rehearse_every_s", [None, 0.001])
def test_parity_with_the_backtest_of_the_same_bars(fake: FakeHyperliquid, tmp_path,
                                                   rehearse_every_s) -> None:
    """The recorded bars through the live runner against the fake with the real adapter:
    the same signals, decisions, votes, orders, risk events and bars as the backtest, row
    for row (floats to 1e-9 relative). With the fake's book quoted at each bar's open (as
    the driver does), the fills are the backtest's too (price, quantity, fee, cash,
    position, realized PnL to 1e-9) and so is equity; only fill times differ (the venue's
    clock, not the bar's). Rehearsing the order path every millisecond changes nothing
    of this, and sends nothing more."""
    config = scenario()
    bars = bars_of(config)
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=len(bars),
                                     rehearse_every_s=rehearse_every_s)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        result = await asyncio.wait_for(task, 60)
        assert (session.port.venue.rehearsals > 100) == (rehearse_every_s is not None)
        return result

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        sim = run_scenario(config, store)
        live = asyncio.run(go(store))
        for table in ("signals", "decisions", "votes", "orders", "risk_events", "bars"):
            # the venue's prices are the backtest's up to float representation (1e-13):
            # quantities sized from equity differ in the last digits, nothing else does
            got, want = _rows(store, table, live.run_id), _rows(store, table, sim.run_id)
            assert len(got) == len(want), table
            for a, b in zip(got, want, strict=True):
                assert [x for x in a if not isinstance(x, float)] == [
                    x for x in b if not isinstance(x, float)], table
                assert [x for x in a if isinstance(x, float)] == pytest.approx(
                    [x for x in b if isinstance(x, float)], rel=1e-9), table
        cols = "order_id, symbol, venue, quantity, price, fee, ref_price, cash_after, " \
               "position_after, realized_pnl"
        got, want = (store.con.execute(f"SELECT {cols} FROM fills WHERE run_id = ?"
                                       " ORDER BY fill_id", [r]).fetchall()
                     for r in (live.run_id, sim.run_id))
        assert len(got) == len(want) >= 5
        for a, b in zip(got, want, strict=True):
            assert a[:3] == b[:3]
            assert a[3:] == pytest.approx(b[3:], rel=1e-9, abs=1e-9)
        equity = [store.con.execute("SELECT ts, equity FROM equity WHERE run_id = ?"
                                    " ORDER BY ts", [r]).fetchall()
                  for r in (live.run_id, sim.run_id)]
        assert [e[0] for e in equity[0]] == [e[0] for e in equity[1]]
        assert [e[1] for e in equity[0]] == pytest.approx([e[1] for e in equity[1]], rel=1e-9)
        venue_once_each(fake, store, live.run_id)


def test_faults_through_the_live_runner_end_in_definite_states_once(
        fake: FakeHyperliquid, tmp_path) -> None:
    """429s (backoff), 5xx, a reply lost after the venue ran the order (502 after running,
    and a reply held past the client's timeout), and both WebSockets dropped mid-session:
    the session completes, every order ends in a definite state, nothing is sent or
    booked twice, and the store's position is the venue's."""
    config = scenario()
    bars = bars_of(config)[:70]
    clock = history(fake, bars, 0)
    fake.faults.hold_s = 0.8  # past the client's 0.5 s timeout
    faults = {8: ("http_429", 3), 16: ("http_5xx", 2), 24: ("exchange_5xx_after_run", 1),
              32: ("exchange_hold_after_run", 1), 48: ("exchange_5xx_after_run", 1)}

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))

        async def on_step(k: int) -> None:
            if k in faults:
                setattr(fake.faults, *faults[k])
            if k == 40:  # both streams drop; the pushes resume once both are back
                fake.drop_websockets()
                await wait_for(lambda: fake.connections == 0, 5)
                await wait_for(lambda: fake.subscribed(candle("ETH", "1m")) == 1
                               and fake.subscribed(order_updates(ACCOUNT)) == 1, 10)

        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, on_step=on_step)
        return await asyncio.wait_for(task, 60), session

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result, session = asyncio.run(go(store))
        con = store.con
        statuses = dict(con.execute("SELECT status, count(*) FROM orders WHERE run_id = ?"
                                    " GROUP BY ALL", [result.run_id]).fetchall())
        legs = dict(con.execute("SELECT status, count(*) FROM venue_orders WHERE run_id = ?"
                                " GROUP BY ALL", [result.run_id]).fetchall())
        venue_once_each(fake, store, result.run_id)
    assert statuses.get("filled", 0) >= 5 and set(statuses) <= {"filled"}, statuses
    assert set(legs) == {"filled"}, legs
    assert session.port.venue.rest.retries >= 5
    assert fake.faults.http_429 == fake.faults.http_5xx == 0
    assert fake.faults.exchange_5xx_after_run == fake.faults.exchange_hold_after_run == 0
