"""One live session trading two venue accounts (``quorum live --venues``): the fake
Hyperliquid and the fake Ostium, each bound to a scenario venue. The router's preference
sends orders to Hyperliquid; when its order path goes down mid-session, an order that
never reached it is routed to Ostium (a ``routing_decisions`` row says why) and later
orders skip it while it is down. Every order ends in a definite state, nothing is booked
twice, and each venue's part of the store equals that fake's account."""

from __future__ import annotations

import asyncio

import duckdb
import pytest

from live.clock import AcceleratedClock
from live.feeds import PacedReplayFeed
from live.records import OPEN_STATUSES, create_tables
from live.runner import LiveRunner
from quorum.cli import main
from quorum.parity import replay
from reports.parity import parity
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.hyperliquid.conftest import fake  # noqa: F401 - the fixture
from tests.integration.hyperliquid.venue_session import (
    ACCOUNT,
    INTERVAL_NS,
    bars_of,
    history,
)
from tests.integration.two_venues import (
    OST_ACCOUNT,
    SCENARIO,
    drive,
    each_once_and_equal,
    open_two,
    scenario,
    start_ostium,
)

DOWN_AT = 30  # the bar from which Hyperliquid answers every order with HTTP 502


@pytest.fixture
def ost():
    server = start_ostium()
    yield server
    server.stop()


def test_hyperliquid_down_mid_session_sends_the_orders_to_ostium(
        fake: FakeHyperliquid, ost, tmp_path) -> None:  # noqa: F811 - the fixture
    config = scenario()
    bars = bars_of(config)
    clock = history(fake, bars, 0)

    async def on_step(k: int) -> None:
        if k == DOWN_AT:
            fake.faults.only_path = "/exchange"
            fake.faults.http_5xx = 10**6

    async def go(store: DuckDBStore):
        session = await open_two(fake, ost, store, config, clock, tmp_path,
                                 max_bars=len(bars))
        task = asyncio.create_task(session.run())
        await drive(fake, ost, session, clock, bars, 0, on_step=on_step)
        return await asyncio.wait_for(task, 60)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = asyncio.run(go(store))
        con = store.con
        run_id = result.run_id
        assert result.status == "completed"
        assert con.execute("SELECT venue FROM live_sessions WHERE run_id = ?",
                           [run_id]).fetchone() == ("hyperliquid+ostium",)
        # every order ended; every leg sent ended at its venue
        statuses = dict(con.execute("SELECT status, count(*) FROM orders WHERE run_id = ?"
                                    " GROUP BY ALL", [run_id]).fetchall())
        assert set(statuses) <= {"filled", "denied", "rejected", "cancelled"}, statuses
        legs = con.execute("SELECT venue, status, message FROM venue_orders WHERE run_id = ?"
                           " ORDER BY order_id, leg", [run_id]).fetchall()
        assert not {s for _, s, _ in legs} & set(OPEN_STATUSES)
        by_venue = {v: [s for w, s, _ in legs if w == v] for v in ("hl", "ost")}
        assert by_venue["hl"].count("filled") >= 2 and by_venue["ost"].count("filled") >= 2
        # the leg Hyperliquid never got ended rejected there, and the order went to Ostium
        refused = [m for v, s, m in legs if v == "hl" and s == "rejected"]
        assert refused and all("venue unreachable" in m for m in refused), refused
        routes = con.execute("SELECT order_id, venue, reason FROM routing_decisions WHERE"
                             " run_id = ? ORDER BY order_id, ts", [run_id]).fetchall()
        fallbacks = [r for r in routes if r[2].startswith("fallback: hl venue unreachable")]
        assert fallbacks and all(v == "ost" for _, v, _ in fallbacks), routes
        later = [r for r in routes if r[0] > fallbacks[0][0]]
        assert later and all(v == "ost" and "skipped down: hl" in why for _, v, why in later)
        # the order that fell back: one leg rejected at hl, one filled at ost, filled
        (order_id, *_) = fallbacks[0]
        assert con.execute("SELECT venue, status FROM venue_orders WHERE run_id = ? AND"
                           " order_id = ? ORDER BY leg", [run_id, order_id]).fetchall() == [
            ("hl", "rejected"), ("ost", "filled")]
        assert con.execute("SELECT status FROM orders WHERE run_id = ? AND order_id = ?",
                           [run_id, order_id]).fetchone() == ("filled",)
        # nothing booked twice; each venue's position is its fake's; no alert
        each_once_and_equal(fake, ost, store, run_id)
        assert con.execute("SELECT count(*) FROM reconciliations WHERE run_id = ?",
                           [run_id]).fetchone() == (0,)
        accounts = con.execute("SELECT venue FROM venue_accounts WHERE run_id = ? ORDER BY"
                               " venue", [run_id]).fetchall()
        assert accounts == [("hl",), ("ost",)]
        assert fake.position(ACCOUNT, "ETH") != 0.0 or ost.position(OST_ACCOUNT, "ETH") != 0.0


def test_an_older_store_gains_the_venue_columns_and_keeps_its_rows(tmp_path) -> None:
    """``venue_fills``, ``venue_funding`` and ``venue_accounts`` of a store from before
    the ``venue`` column are rebuilt with it (their rows one-account sessions': ''), and
    ``funding`` and ``reconciliations`` gain it (NULL)."""
    path = tmp_path / "old.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("""CREATE TABLE venue_fills (
            run_id VARCHAR NOT NULL, tid BIGINT NOT NULL, fill_id BIGINT NOT NULL,
            order_id BIGINT NOT NULL, cloid VARCHAR, oid BIGINT NOT NULL,
            coin VARCHAR NOT NULL, quantity DOUBLE NOT NULL, price DOUBLE NOT NULL,
            fee DOUBLE NOT NULL, time_ms BIGINT NOT NULL, PRIMARY KEY (run_id, tid))""")
        con.execute("""CREATE TABLE venue_funding (
            run_id VARCHAR NOT NULL, coin VARCHAR NOT NULL, time_ms BIGINT NOT NULL,
            symbol VARCHAR NOT NULL, usdc DOUBLE NOT NULL, szi DOUBLE NOT NULL,
            rate DOUBLE NOT NULL, hash VARCHAR, PRIMARY KEY (run_id, coin, time_ms))""")
        con.execute("""CREATE TABLE venue_accounts (
            run_id VARCHAR PRIMARY KEY, ts BIGINT NOT NULL, account_value DOUBLE NOT NULL,
            store_equity DOUBLE NOT NULL, outside DOUBLE NOT NULL)""")
        con.execute("""CREATE TABLE reconciliations (
            run_id VARCHAR NOT NULL, ts BIGINT NOT NULL, kind VARCHAR NOT NULL,
            symbol VARCHAR, coin VARCHAR, store_value DOUBLE, venue_value DOUBLE,
            action VARCHAR NOT NULL, detail VARCHAR NOT NULL)""")
        con.execute("INSERT INTO venue_fills VALUES ('r', 7, 1, 1, '0x1', 9, 'ETH', 0.5,"
                    " 2000.0, 0.45, 1000)")
        con.execute("INSERT INTO venue_funding VALUES ('r', 'ETH', 3600000, 'ETH', -1.5,"
                    " 0.5, 0.0001, NULL)")
        con.execute("INSERT INTO venue_accounts VALUES ('r', 1, 10000.0, 9000.0, 1000.0)")
        con.execute("INSERT INTO reconciliations VALUES ('r', 1, 'fill', 'ETH', 'ETH', NULL,"
                    " 0.5, 'booked', 'x')")
    with DuckDBStore(path) as store:
        create_tables(store.con)
        con = store.con
        assert con.execute("SELECT tid, venue FROM venue_fills").fetchall() == [(7, "")]
        assert con.execute("SELECT usdc, venue FROM venue_funding").fetchall() == [(-1.5, "")]
        assert con.execute("SELECT outside, venue FROM venue_accounts").fetchall() == [
            (1000.0, "")]
        assert con.execute("SELECT kind, venue FROM reconciliations").fetchall() == [
            ("fill", None)]
        assert "venue" in [r[0] for r in con.execute("DESCRIBE funding").fetchall()]
        # the same trade id at another venue of the run is another row now
        con.execute("INSERT INTO venue_fills VALUES ('r', 7, 2, 2, '0x2', 9, 'ETH', 0.1,"
                    " 2000.0, 0.1, 2000, 'ost')")
        create_tables(con)  # idempotent once migrated
        assert con.execute("SELECT count(*) FROM venue_fills").fetchone() == (2,)


def test_a_two_venue_paper_session_diffs_to_nothing_against_its_backtest(
        tmp_path, capsys) -> None:
    """The same scenario as a paper session (both venues simulated, the router splitting
    orders by cost, Hyperliquid down for a while by a scenario event): ``quorum parity``
    replays it through the backtest engine with no divergence, fills on both venues."""
    start = "2024-03-01T00:00:00Z"
    config = scenario(
        data=[{**SCENARIO["data"][0], "start": start}],
        venues=[{**SCENARIO["venues"][0], "max_order_notional": 1_500.0},
                SCENARIO["venues"][1]],
        router={"policy": "split"},
        events=[{"at": "2024-03-01T00:20:00Z", "kind": "venue_down", "venue": "hl"},
                {"at": "2024-03-01T00:40:00Z", "kind": "venue_up", "venue": "hl"}])
    bars = bars_of(config)
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store:
        clock = AcceleratedClock(start_ns=bars[0].ts, speed=30_000.0)
        feed = PacedReplayFeed(bars, clock, INTERVAL_NS)
        live = asyncio.run(LiveRunner(config, store).run([feed]))
        by_venue = dict(store.con.execute(
            "SELECT venue, count(*) FROM fills WHERE run_id = ? GROUP BY ALL",
            [live.run_id]).fetchall())
        down = store.con.execute(
            "SELECT count(*) FROM routing_decisions WHERE run_id = ? AND venue = 'ost' AND"
            " reason LIKE '%skipped down: hl%'", [live.run_id]).fetchone()[0]
    assert by_venue.get("hl", 0) >= 2 and by_venue.get("ost", 0) >= 2, by_venue
    assert down >= 1  # while it was down, orders went to Ostium whole
    with duckdb.connect(str(db), read_only=True) as con:
        rep = replay(con, live.run_id)
        try:
            result = parity(rep.store.con, rep.live_run, rep.replay_run, rep.mode)
        finally:
            rep.store.close()
    assert result.divergences == [] and result.mode == "paper"
    assert main(["parity", live.run_id, "--db", str(db), "--out", str(tmp_path / "r")]) == 0
    assert ": 0 divergence(s), 0 explained, 0 unexplained" in capsys.readouterr().out
