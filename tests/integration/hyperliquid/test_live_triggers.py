"""Stop entries and take-profit / stop-loss brackets on the (fake) venue, end to end: the
legs rest at the exchange as trigger orders, the mark crosses one, the fired order's fills
are booked to its leg once through the one fill path, the desk's one-cancels-the-other
cancels the sibling at the venue, and the store agrees with the exchange (position, and
cash recomputed from the exchange's own fills). A restart keeps the brackets of a
position that is still open."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from live.orders import OrderManager
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid, Order

from .test_faults import wait_for
from .venue_session import (
    ACCOUNT,
    bars_of,
    drive,
    history,
    open_session,
    scenario,
    venue_once_each,
)

TICK = Decimal("0.1")
BRACKETS = {"take_profit": 0.2, "stop_loss": 0.2}  # far: only the test's mark fires them


def resting_triggers(fake: FakeHyperliquid, *, reduce_only: bool) -> list[Order]:
    return [o for o in fake.user_orders(ACCOUNT) if o.trigger_px is not None
            and o.status == "open" and o.reduce_only == reduce_only]


def fire(fake: FakeHyperliquid, o: Order) -> None:
    """Move the market to trigger ``o``: the book quoted one tick around its trigger on
    the side the mark crosses, then the mark just past it."""
    assert o.trigger_px is not None
    trig = o.trigger_px
    rising = (o.tpsl == "tp") != o.is_buy
    bid, ask = (trig, trig + TICK) if rising else (trig - TICK, trig)
    fake.quote(o.coin, float(bid), float(ask))
    fake.set_mark(o.coin, float(trig + TICK / 2 if rising else trig - TICK / 2))


def venue_cash(fake: FakeHyperliquid, initial: float) -> float:
    """The account's cash from the exchange's own fills (an independent reference)."""
    cash = Decimal(repr(initial))
    for f in fake.fills_of(ACCOUNT):
        signed = Decimal(f["sz"]) * (1 if f["side"] == "B" else -1)
        cash -= signed * Decimal(f["px"]) + Decimal(f["fee"])
    return float(cash)


def store_cash(store: DuckDBStore, run_id: str) -> float:
    return store.con.execute("SELECT cash_after FROM fills WHERE run_id = ? ORDER BY fill_id"
                             " DESC LIMIT 1", [run_id]).fetchone()[0]


async def until_quiet(port: OrderManager, queue: asyncio.Queue[Any], done: Any) -> None:
    await wait_for(lambda: done() and port.settled and queue.empty(), 10)
    await asyncio.sleep(0.02)
    await wait_for(lambda: port.settled and queue.empty(), 10)


@pytest.mark.parametrize("side", ["sl", "tp"])
def test_a_bracket_leg_fires_fills_once_and_cancels_its_sibling(
        fake: FakeHyperliquid, tmp_path, side: str) -> None:
    config = scenario(execution=BRACKETS)
    bars = bars_of(config)
    clock = history(fake, bars, 0)
    seen: dict[str, Any] = {}

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=len(bars))
        port = session.port

        async def on_step(k: int) -> None:
            legs = resting_triggers(fake, reduce_only=True)
            if seen or len(legs) < 2:
                return
            (target,) = [o for o in legs if o.tpsl == side]
            (other,) = [o for o in legs if o.tpsl != side]
            held = port.desk.portfolio.qty[0]
            assert held != 0.0 and fake.position(ACCOUNT, "ETH") == held
            assert target.sz == other.sz == Decimal(repr(abs(held)))  # the whole position
            fire(fake, target)
            await until_quiet(port, session.runner.queue,
                              lambda: other.status == "canceled" and target.status == "filled")
            seen.update(target=target, other=other, held=held,
                        flat=(port.desk.portfolio.qty[0], fake.position(ACCOUNT, "ETH")))

        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, on_step=on_step)
        return await asyncio.wait_for(task, 60)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(go(store)).run_id
        assert seen, "no bracket pair ever rested at the venue"
        target, other = seen["target"], seen["other"]
        assert seen["flat"] == (0.0, 0.0)
        con = store.con
        legs = {r[0]: r[1:] for r in con.execute(
            "SELECT cloid, order_id, venue_type, reduce_only, status, role FROM venue_orders"
            " WHERE run_id = ?", [run_id]).fetchall()}
        role = {"sl": "stop_loss", "tp": "take_profit"}
        t_leg, o_leg = legs[target.cloid], legs[other.cloid]
        assert t_leg[1:] == (f"trigger_{side}", True, "filled", role[side])
        other_side = "tp" if side == "sl" else "sl"
        assert o_leg[1:] == (f"trigger_{other_side}", True, "cancelled", role[other_side])
        orders = {r[0]: r[1:] for r in con.execute(
            "SELECT order_id, status, reason FROM orders WHERE run_id = ?", [run_id]).fetchall()}
        assert orders[t_leg[0]][0] == "filled"
        assert orders[o_leg[0]][0] == "cancelled" and "position closed" in orders[o_leg[0]][1]
        # the fired order's fill, booked once, to its order, at the venue's price
        venue_fills = [f for f in fake.fills_of(ACCOUNT) if f["oid"] == target.oid]
        assert venue_fills and all(f["cloid"] == target.cloid for f in venue_fills)
        booked = con.execute("SELECT tid, order_id FROM venue_fills WHERE run_id = ? AND"
                             " cloid = ?", [run_id, target.cloid]).fetchall()
        assert sorted(booked) == sorted((f["tid"], t_leg[0]) for f in venue_fills)
        fills = con.execute("SELECT quantity, price FROM fills WHERE run_id = ? AND"
                            " order_id = ?", [run_id, t_leg[0]]).fetchall()
        assert sum(q for q, _ in fills) == pytest.approx(-seen["held"], abs=1e-12)
        assert [p for _, p in fills] == [float(f["px"]) for f in venue_fills]
        venue_once_each(fake, store, run_id)
        assert store_cash(store, run_id) == pytest.approx(venue_cash(fake, 10_000.0),
                                                          abs=1e-6)


def test_a_stop_entry_rests_as_a_trigger_fires_and_fills(fake: FakeHyperliquid,
                                                         tmp_path) -> None:
    config = scenario(execution={"order_type": "stop", "offset_bps": 20.0})
    bars = bars_of(config)
    clock = history(fake, bars, 0)
    seen: dict[str, Any] = {}

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=len(bars))
        port = session.port

        async def on_step(k: int) -> None:
            entries = resting_triggers(fake, reduce_only=False)
            if seen or not entries:
                return
            (entry,) = entries
            assert entry.tpsl == "sl"
            before = port.desk.portfolio.qty[0]
            fire(fake, entry)
            await until_quiet(port, session.runner.queue, lambda: entry.status == "filled")
            signed = float(entry.orig_sz) * (1 if entry.is_buy else -1)
            seen.update(entry=entry, moved=port.desk.portfolio.qty[0] - before,
                        signed=signed)

        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, on_step=on_step)
        return await asyncio.wait_for(task, 60)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(go(store)).run_id
        assert seen, "no stop entry ever rested at the venue"
        entry = seen["entry"]
        assert seen["moved"] == pytest.approx(seen["signed"], abs=1e-12)
        con = store.con
        order_id, venue_type, reduce_only, status = con.execute(
            "SELECT order_id, venue_type, reduce_only, status FROM venue_orders WHERE"
            " run_id = ? AND cloid = ?", [run_id, entry.cloid]).fetchone()
        assert (venue_type, reduce_only, status) == ("trigger_sl", False, "filled")
        kind, role, stop, filled, ostatus = con.execute(
            "SELECT order_type, role, stop_price, filled_quantity, status FROM orders WHERE"
            " run_id = ? AND order_id = ?", [run_id, order_id]).fetchone()
        assert (kind, role, ostatus) == ("stop", "entry", "filled")
        assert filled == pytest.approx(seen["signed"], abs=1e-12)
        # the trigger is the order's stop rounded to the grid, never worse: a buy's down
        assert float(entry.trigger_px) == pytest.approx(stop, abs=0.1)
        assert (float(entry.trigger_px) <= stop) == entry.is_buy
        (n,) = con.execute("SELECT count(*) FROM venue_fills WHERE run_id = ? AND cloid = ?",
                           [run_id, entry.cloid]).fetchone()
        assert n == len([f for f in fake.fills_of(ACCOUNT) if f["oid"] == entry.oid]) >= 1
        venue_once_each(fake, store, run_id)
        assert store_cash(store, run_id) == pytest.approx(venue_cash(fake, 10_000.0),
                                                          abs=1e-6)


def test_a_restart_keeps_the_brackets_of_an_open_position(fake: FakeHyperliquid,
                                                           tmp_path) -> None:
    """The process dies (cancelled mid-session, nothing cancelled at the venue) while a
    position is open with both brackets resting. The resumed session re-adopts them
    instead of cancelling them (the position stays protected); the stop then fires in the
    new session: its fill is booked once, the take-profit is cancelled at the venue."""
    config = scenario(execution=BRACKETS)
    bars = bars_of(config)
    clock = history(fake, bars, 0)

    async def first(store: DuckDBStore) -> tuple[str, list[Order]]:
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=len(bars))
        task = asyncio.create_task(session.run())
        driver = asyncio.create_task(drive(fake, session, clock, bars, 0))
        await wait_for(lambda: len(resting_triggers(fake, reduce_only=True)) == 2
                       and session.port.settled and session.runner.queue.empty(), 30)
        legs = resting_triggers(fake, reduce_only=True)
        for t in (driver, task):
            t.cancel()
        await asyncio.gather(driver, task, return_exceptions=True)
        return session.runner.run_id, legs

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id, legs = asyncio.run(first(store))
        store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", [run_id])
        held = fake.position(ACCOUNT, "ETH")
        assert held != 0.0 and {o.status for o in legs} == {"open"}
        (sl,) = [o for o in legs if o.tpsl == "sl"]
        (tp,) = [o for o in legs if o.tpsl == "tp"]
        seen: dict[str, Any] = {}

        async def second() -> None:
            k = next(i for i, b in enumerate(bars) if b.ts > clock.now_ns()) + 1
            later = history(fake, bars, k)
            session = await open_session(fake, store, config, later, tmp_path, max_bars=3,
                                         resume=run_id)
            seen["recovered"] = session.recovered
            port = session.port

            async def on_step(step: int) -> None:
                if step == 1:
                    seen["kept"] = (sl.status, tp.status, port.desk.portfolio.qty[0])
                    fire(fake, sl)
                    await until_quiet(port, session.runner.queue,
                                      lambda: tp.status == "canceled")
                    seen["after"] = (sl.status, port.desk.portfolio.qty[0])

            task = asyncio.create_task(session.run())
            await drive(fake, session, later, bars[k:k + 3], 0, on_step=on_step)
            await asyncio.wait_for(task, 30)

        asyncio.run(second())
        assert seen["recovered"] == 2
        assert seen["kept"] == ("open", "open", held)  # protected across the restart
        assert seen["after"] == ("filled", 0.0)
        statuses = dict(store.con.execute(
            "SELECT cloid, status FROM venue_orders WHERE run_id = ?", [run_id]).fetchall())
        assert (statuses[sl.cloid], statuses[tp.cloid]) == ("filled", "cancelled")
        venue_once_each(fake, store, run_id)
        assert store_cash(store, run_id) == pytest.approx(venue_cash(fake, 10_000.0),
                                                          abs=1e-6)
