"""A resumed live run keeps the scenario's risk state (``live.risk_state``): a kill switch
pulled and a circuit breaker tripped before the restart stay so, and the drawdown peak
continues from the stored equity rows."""

from __future__ import annotations

import asyncio

from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .venue_session import bars_of, drive, history, open_session, quote_at, scenario


def resume(fake: FakeHyperliquid, store: DuckDBStore, config, bars, run_id: str, start: int,
           tmp_path, n: int):
    """Resume ``run_id`` at ``bars[start]`` for ``n`` bars; returns (the risk engine right
    after the restore, the session's run result)."""
    store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", [run_id])

    async def go():
        later = history(fake, bars, start)
        session = await open_session(fake, store, config, later, tmp_path, max_bars=n,
                                     resume=run_id)
        risk = session.runner.engine.risk
        restored = (risk.killed, risk.breaker, risk.peak_equity, session.runner.killed_by)
        task = asyncio.create_task(session.run())
        await drive(fake, session, later, bars[start:start + n + 1], 0)
        await asyncio.wait_for(task, 30)
        return restored

    return asyncio.run(go())


def test_a_kill_switch_pulled_before_the_restart_stays_pulled(
        fake: FakeHyperliquid, tmp_path) -> None:
    config = scenario()
    bars = bars_of(config)[:60]
    clock = history(fake, bars, 0)

    async def first(store: DuckDBStore) -> str:
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=30)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, stop_after=20)
        session.runner.kill("test")
        quote_at(fake, bars[19])
        await drive(fake, session, clock, bars[:31], 20)
        assert session.runner.engine.risk.killed
        return (await asyncio.wait_for(task, 30)).run_id

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(first(store))
        trips = store.con.execute("SELECT kind, name FROM live_risk_trips WHERE run_id = ?",
                                  [run_id]).fetchall()
        (last,) = store.con.execute("SELECT max(order_id) FROM orders WHERE run_id = ?",
                                    [run_id]).fetchone()
        killed, breaker, _, killed_by = resume(fake, store, config, bars, run_id, 31,
                                               tmp_path, 20)
        orders = store.con.execute(
            "SELECT o.order_id, o.quantity, o.status, r.check_name FROM orders o LEFT JOIN"
            " risk_events r USING (run_id, order_id) WHERE o.run_id = ? ORDER BY order_id",
            [run_id]).fetchall()
        (held,) = store.con.execute(
            "SELECT sum(quantity) FROM fills WHERE run_id = ? AND order_id <= ?",
            [run_id, last]).fetchone()
    assert trips == [("kill_switch", "test")]
    assert killed and breaker is None and killed_by == "test (before the restart)"
    # the resumed run decided again: what would grow the position was denied by the
    # switch; only what reduces it went out
    later = [o for o in orders if o[0] > last]
    denied = [o for o in later if o[2] == "denied"]
    assert len(denied) >= 2 and {o[3] for o in denied} == {"kill_switch"}, later
    assert all(q * held < 0 and abs(q) <= abs(held) for _, q, status, _ in later
               if status != "denied"), (held, later)


def test_a_tripped_drawdown_breaker_stays_tripped(fake: FakeHyperliquid, tmp_path) -> None:
    config = scenario(risk={"max_drawdown": 0.0005})  # 5 USD of 10,000
    bars = bars_of(config)[:50]
    clock = history(fake, bars, 0)

    async def first(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=30)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars[:31], 0)
        risk = session.runner.engine.risk
        state = (risk.breaker, risk.breaker_value, risk.peak_equity)
        return (await asyncio.wait_for(task, 30)).run_id, state

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id, (breaker, value, peak) = asyncio.run(first(store))
        assert breaker == "max_drawdown" and value >= 0.0005  # the first session tripped it
        stored = store.con.execute(
            "SELECT name, value FROM live_risk_trips WHERE run_id = ? AND kind ="
            " 'circuit_breaker'", [run_id]).fetchall()
        (top,) = store.con.execute("SELECT max(equity) FROM equity WHERE run_id = ?",
                                   [run_id]).fetchone()
        killed, restored, restored_peak, _ = resume(fake, store, config, bars, run_id, 31,
                                                    tmp_path, 3)
    assert stored == [("max_drawdown", value)]
    assert restored == "max_drawdown" and not killed
    # the peak continues from the stored equity rows (and the initial equity)
    assert restored_peak == max(top, 10_000.0)
    assert peak >= restored_peak
