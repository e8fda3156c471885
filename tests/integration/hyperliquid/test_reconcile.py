"""Reconciliation with the venue (``live.reconcile``), each rule against the fake exchange:
a position the store does not have (at start, and one appearing mid-session), an open
order the run did not send, and an order the store thinks is working that the venue
never got. Each difference is an alert on stderr and a ``reconciliations`` row, and is
resolved by the documented rule."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from live.hyperliquid.config import Credentials
from live.hyperliquid.venue import HyperliquidVenue
from live.records import client_order_id
from quorum.live import run_to_resume
from sim.config_base import ConfigError
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import make_config
from .test_faults import wait_for
from .venue_session import (
    ACCOUNT,
    CREDENTIALS,
    bars_of,
    drive,
    history,
    open_session,
    quote_at,
    scenario,
    venue_once_each,
)

# an agent that cannot speak within these short sessions (it needs 80 bars)
QUIET = [{"name": "slow", "kind": "sma_crossover", "params": {"fast": 40, "slow": 80}}]


def rows(store: DuckDBStore, run_id: str) -> list[tuple]:
    return store.con.execute(
        "SELECT kind, coin, store_value, venue_value, action FROM reconciliations"
        " WHERE run_id = ? ORDER BY ts", [run_id]).fetchall()


def test_at_start_a_venue_position_is_adopted_and_a_foreign_order_cancelled(
        fake: FakeHyperliquid, tmp_path, capsys) -> None:
    fake.accounts[ACCOUNT].positions["ETH"] = (Decimal("0.25"), Decimal("1990"))
    config = scenario()
    bars = bars_of(config)[:30]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        other = HyperliquidVenue(make_config(fake), Credentials(CREDENTIALS.signer))
        await other.load_markets()
        foreign = await other.limit("ETH", True, 0.01, 1500.0)  # not the run's
        btc = await other.limit("BTC", True, 0.001, 30000.0)  # not the run's coin
        await other.aclose()
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        return await asyncio.wait_for(task, 30), foreign, btc

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result, foreign, btc = asyncio.run(go(store))
        found = rows(store, result.run_id)
        adjustment = store.con.execute(
            "SELECT o.role, o.status, f.quantity, f.fee, f.liquidity FROM orders o"
            " JOIN fills f USING (run_id, order_id) WHERE o.run_id = ? AND o.role ="
            " 'adjustment'", [result.run_id]).fetchall()
        venue_once_each(fake, store, result.run_id, frozenset((foreign.cloid, btc.cloid)))
        health = store.con.execute(
            "SELECT state, reason FROM health WHERE run_id = ? AND component ="
            " 'reconciliation' ORDER BY seq", [result.run_id]).fetchall()
        alerts = store.con.execute(
            "SELECT severity, message FROM alerts WHERE run_id = ? AND kind ="
            " 'reconciliation_mismatch' ORDER BY alert_id", [result.run_id]).fetchall()
    # the watched session's monitor: the reconciliation's health and an alert for each
    # mismatch that began (the foreign order, cancelled: degraded; the position: critical)
    assert [h[0] for h in health] == ["degraded", "critical"]
    assert "unknown_order: open order" in health[0][1]
    assert "position: the venue holds 0.25 ETH, the store 0" in health[1][1]
    assert [a[0] for a in alerts] == ["warning", "critical"]
    assert ("unknown_order", "ETH", None, 0.01, "cancelled at the venue") in found
    assert found[[k for k, *_ in found].index("position")][:4] == ("position", "ETH", 0.0, 0.25)
    assert adjustment == [("adjustment", "filled", 0.25, 0.0, "adjustment")]
    states = {o.oid: o.status for o in fake.user_orders(ACCOUNT)}
    assert states[foreign.oid] == "canceled" and states[btc.oid] == "open"
    err = capsys.readouterr().err
    assert "RECONCILIATION ALERT unknown_order ETH" in err
    assert "RECONCILIATION ALERT position ETH" in err


def test_a_position_changed_behind_the_runs_back_is_found_periodically(
        fake: FakeHyperliquid, tmp_path) -> None:
    config = scenario(live={"reconcile_every": "1s"}, agents=QUIET)
    bars = bars_of(config)[:12]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0, stop_after=4)
        portfolio = session.runner.engine.portfolio
        with fake.lock:  # someone traded the account elsewhere (sold at the store's mark,
            # which is where rule 4 books it: the account value agrees, no rule 5 alert)
            acct = fake.accounts[ACCOUNT]
            acct.positions["ETH"] = (Decimal("-0.5"), Decimal("2010"))
            acct.raw_usd += Decimal("0.5") * Decimal(repr(portfolio.price[0]))
        await wait_for(lambda: portfolio.qty[0] == -0.5, 5)
        quote_at(fake, bars[3])
        await drive(fake, session, clock, bars, 4)
        return await asyncio.wait_for(task, 30)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = asyncio.run(go(store))
        found = rows(store, result.run_id)
        venue_once_each(fake, store, result.run_id)
    assert [r[:4] for r in found] == [("position", "ETH", 0.0, -0.5)]


def test_an_order_the_venue_never_got_ends_rejected_on_resume(
        fake: FakeHyperliquid, tmp_path) -> None:
    """The store has a leg written ahead (status "sent") whose request never left: on
    resume it is looked up by cloid, unknown there, and ends rejected ("never placed")."""
    config = scenario(agents=QUIET)
    bars = bars_of(config)[:10]
    clock = history(fake, bars, 0)

    async def first(store: DuckDBStore) -> str:
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=4)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars[:5], 0)
        return (await asyncio.wait_for(task, 30)).run_id

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(first(store))
        cloid = client_order_id(run_id, 7, 1)
        store.con.execute(
            "INSERT INTO venue_orders VALUES (?, 7, 1, ?, 'hl', 'ETH', 'ETH', 0.1, 0.1, 2000,"
            " 'ioc', false, 3, 0, 0, 2000, 'market', 'gtc', NULL, NULL, false, 'entry', 0, 0,"
            " 'sent', NULL, 0, NULL, 0, 0)", [run_id, cloid])
        store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", [run_id])

        async def second() -> None:
            later = history(fake, bars, 5)
            session = await open_session(fake, store, config, later, tmp_path, max_bars=2,
                                         resume=run_id)
            assert session.recovered == 1
            task = asyncio.create_task(session.run())
            await drive(fake, session, later, bars[5:8], 0)
            await asyncio.wait_for(task, 30)

        asyncio.run(second())
        order = store.con.execute("SELECT status, reason FROM orders WHERE run_id = ? AND"
                                  " order_id = 7", [run_id]).fetchone()
        leg = store.con.execute("SELECT status FROM venue_orders WHERE cloid = ?",
                                [cloid]).fetchone()
        assert store.con.execute("SELECT status FROM runs").fetchone() == ("completed",)
    assert order[0] == "rejected" and "never placed" in order[1]
    assert leg == ("rejected",)


def test_which_run_a_session_continues(tmp_path) -> None:
    """Automatic resume: the scenario's last live run when it is still marked running (or
    has legs of unknown outcome), and only with the configuration it started with."""
    config = scenario()
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        assert run_to_resume(store, config, None) is None
        store.create_run("paper1", config.name, config.model_dump(mode="json"), 1, "v", "h",
                         "paper")
        store.create_run("live1", config.name, config.model_dump(mode="json"), 1, "v", "h",
                         "live")
        assert run_to_resume(store, config, None) == "live1"  # its process died
        store.finish_run("live1", "completed", 10, None)
        assert run_to_resume(store, config, None) is None
        assert run_to_resume(store, config, "live") == "live1"  # explicit, by prefix
        with pytest.raises(ConfigError, match="paper run, not live"):
            run_to_resume(store, config, "paper1")
        store.finish_run("live1", "failed", 10, "boom")
        store.con.execute(
            "INSERT INTO venue_orders (run_id, order_id, leg, cloid, venue, symbol, coin,"
            " quantity, size, venue_type, reduce_only, decision_id, ts, decision_ts,"
            " ref_price, kind, tif, post_only, role, parent_id, replaces, status, sent_ns,"
            " updated_ns) VALUES ('live1', 1, 1, '0x00', 'hl', 'ETH', 'ETH', 1, 1, 'ioc',"
            " false, 1, 0, 0, 1, 'market', 'gtc', false, 'entry', 0, 0, 'unresolved', 0, 0)")
        assert run_to_resume(store, config, None) == "live1"  # an order of unknown outcome
        changed = scenario(policy={"exposure": 0.9, "allow_short": True})
        with pytest.raises(ConfigError, match="started with another configuration"):
            run_to_resume(store, changed, None)
        relabelled = scenario(live={"reconcile_every": "5m"})  # [live] may change
        assert run_to_resume(store, relabelled, None) == "live1"
