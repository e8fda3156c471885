"""The live core is venue-neutral: a second adapter that implements only the contract of
``live.port`` (``tests.fakes.loopback``: no stream, no names for order types, nothing of
Hyperliquid) runs a whole live session through the same runner, order manager and
reconciliation. Orders are placed, rest, fill, expire, are cancelled and are refused
while the venue is down; the store ends equal to the venue's own books. Registered as a
venue kind (``live.venues``), it is traded by ``quorum live``'s own session code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from live.orders import OrderManager
from live.port import DescribingAdapter, PushingAdapter, VenueAdapter
from live.records import OPEN_STATUSES, create_tables
from live.runner import LiveRunner
from live.venues import kind_of, register, venue_kind
from quorum.live import VenueSession, open_venue_session
from research.validation import PromotionVerdict
from sim.config import parse_scenario
from sim.config_base import parse_duration
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.fakes.loopback import LoopbackVenue
from tests.integration.test_live_seam import _bars

SCENARIO: dict[str, Any] = {
    "name": "loopback",
    "seed": 5,
    "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 120, "interval": "1m",
              "price": 2_000.0, "volatility": 1.5}],
    "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "lb", "symbols": ["ETH"], "fee_bps": 5.0, "lot_size": 0.001}],
}
DOWN = range(60, 75)  # bars during which every place request fails: OrderNotSent


class Feed:
    """Each bar: the venue's price moves to its close (resting limits it reaches fill
    there: the core learns it by polling, the adapter pushes nothing), the bar is
    released, and the next waits until the runner took it and nothing of ours is in flux
    at the venue. Every 10 bars, at such a quiet point, the account is reconciled."""

    def __init__(self, bars: list[Bar], venue: LoopbackVenue, runner: LiveRunner,
                 port: OrderManager) -> None:
        self.bars, self.venue, self.runner, self.port = bars, venue, runner, port
        self.compared_holding = 0  # reconciliations that compared a position held

    def quiet(self) -> bool:
        return (self.port.settled and self.runner.queue.empty()
                and {f.tid for f in self.venue.trades} <= self.port.booked)

    async def __aiter__(self) -> AsyncIterator[Bar]:
        runner, port, venue = self.runner, self.port, self.venue
        for k, bar in enumerate(self.bars):
            venue.down = k in DOWN
            venue.move(bar.symbol, bar.close)
            await until(self.quiet)
            yield bar
            await until(lambda k=k: runner.bars_seen > k and self.quiet())
            if k % 10 == 9:
                snapshots = venue.snapshots
                port.request_snapshot()
                await until(lambda s=snapshots: venue.snapshots > s and self.quiet())
                self.compared_holding += runner.reconciled and bool(venue.held.get("ETH"))


async def until(condition: Any, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "the session did not settle"
        await asyncio.sleep(0.002)


def run_session(tmp_path: Any, execution: dict[str, Any]) -> tuple[LoopbackVenue, Any, str]:
    config = parse_scenario({**SCENARIO, "execution": execution})
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    bars = _bars(load_market_data(config, streams.data))
    venue = LoopbackVenue()
    venue.price["ETH"] = bars[0].open
    store = DuckDBStore(tmp_path / "runs.duckdb")
    create_tables(store.con)
    runner = LiveRunner(config, store, mode="live")
    port = OrderManager(venue, runner.engine.desk, runner.run_id, {"ETH": "ETH"},
                        now_ns=lambda: bars[0].ts, refresh_s=0.01, poll_s=0.005)
    runner.attach_port(port, hold_until_ns=bars[0].ts, interval_ns=parse_duration("1m"),
                       settle_s=5.0)
    feed = Feed(bars, venue, runner, port)
    result = asyncio.run(runner.run([feed]))
    assert result.status == "completed"
    assert feed.compared_holding, "no reconciliation compared a position"
    return venue, store, runner.run_id


@pytest.mark.parametrize("execution", [
    {"order_type": "limit", "offset_bps": 5.0, "order_ttl": "3m"},  # rest, fill, cancel
    {"order_type": "limit", "offset_bps": 5.0, "time_in_force": "ioc"},  # fill or expire
    {"order_type": "market"},
], ids=["gtc-ttl", "ioc", "market"])
def test_a_session_on_an_adapter_that_knows_only_the_contract(tmp_path, execution) -> None:
    venue, store, run_id = run_session(tmp_path, execution)
    assert isinstance(venue, VenueAdapter)
    assert not isinstance(venue, PushingAdapter | DescribingAdapter)  # the bare contract
    con = store.con
    legs = con.execute("SELECT cloid, status, message, venue_type FROM venue_orders"
                       " WHERE run_id = ?", [run_id]).fetchall()
    statuses = {status for _, status, _, _ in legs}
    assert legs and not statuses & set(OPEN_STATUSES), statuses  # every leg ended
    assert {t for *_, t in legs} <= {"order", "none"}  # the core's neutral default

    # placed once each, and only while the venue was up; refused ones never looked up
    unreachable = [c for c, s, m, _ in legs if m and "venue unreachable" in m]
    assert unreachable and all(venue.placed[c] == 0 and venue.lookups[c] == 0
                               for c in unreachable)
    assert all(n == 1 for n in venue.placed.values())
    assert set(venue.placed) == {c for c, *_ in legs} - set(unreachable)

    # every trade of the venue booked exactly once, to its leg, at its price and fee
    booked = con.execute("SELECT tid, cloid, quantity, price, fee FROM venue_fills"
                         " WHERE run_id = ? ORDER BY tid", [run_id]).fetchall()
    assert booked == [(f.tid, f.cloid, f.size, f.price, f.fee) for f in venue.trades]
    assert booked, "nothing traded"
    fills = con.execute("SELECT quantity, liquidity FROM fills WHERE run_id = ?",
                        [run_id]).fetchall()
    assert len(fills) == len(venue.trades) and all(liq != "adjustment" for _, liq in fills)
    assert sorted(liq for _, liq in fills) == sorted(
        "taker" if f.crossed else "maker" for f in venue.trades)

    # the store equals the venue's own books: position and cash; no reconciliation alert
    (position,) = con.execute("SELECT coalesce(sum(quantity), 0) FROM fills WHERE run_id = ?",
                              [run_id]).fetchone()
    assert position == pytest.approx(venue.held.get("ETH", 0.0), abs=1e-12)
    (cash,) = con.execute("SELECT cash_after FROM fills WHERE run_id = ? ORDER BY fill_id DESC"
                          " LIMIT 1", [run_id]).fetchone()
    assert cash == pytest.approx(venue.cash, rel=1e-9)
    assert con.execute("SELECT kind, detail FROM reconciliations WHERE run_id = ?",
                       [run_id]).fetchall() == []

    by_status = {s: [c for c, st, *_ in legs if st == s] for s in statuses}
    if execution.get("order_ttl"):  # resting limits were cancelled at the venue by cloid
        assert by_status.get("cancelled") and set(by_status["cancelled"]) <= set(venue.cancels)
        assert any(not f.crossed for f in venue.trades)  # and some rested, then filled
    if execution.get("time_in_force") == "ioc":  # the venue's "expired": the leg expired
        assert by_status.get("expired")
        assert all(venue.states[c].status == "expired" for c in by_status["expired"]
                   if c in venue.states)


# -- the same adapter as a venue kind: ``quorum live``'s session code builds it by kind --


@dataclass(frozen=True)
class LoopbackSettings:
    network: str = "loop"
    rest_url: str = "memory://loopback"


class LoopbackConnection(LoopbackVenue):
    """The loopback account as a connection: markets, and the account value."""

    async def load_markets(self) -> dict[str, object]:
        return {"ETH": object()}

    async def aclose(self) -> None:
        self.closed = True


class LoopbackKind:
    """A venue kind registered by this test (``live.venues``): nothing in quorum.live or
    the core names it."""

    name = "loopback"
    title = "Loopback"
    retry_log = "tests.loopback"

    def __init__(self) -> None:
        self.bars: list[Bar] = []
        self.feeds: list[SessionFeed] = []
        self.connections: list[LoopbackConnection] = []

    def settings(self, *, testnet: bool, url: str | None) -> LoopbackSettings:
        return LoopbackSettings()

    def owns(self, settings: object) -> bool:
        return isinstance(settings, LoopbackSettings)

    def interval_name(self, interval_ns: int) -> str:
        return f"{interval_ns // 60_000_000_000}m"

    def connect(self, settings: Any, credentials: Any = None) -> LoopbackConnection:
        connection = LoopbackConnection()
        connection.price["ETH"] = self.bars[0].open
        self.connections.append(connection)
        return connection

    def candle_feed(self, settings: Any, coins: Any, interval_ns: int, **kw: Any
                    ) -> SessionFeed:
        feed = SessionFeed(self.bars, self.connections[-1])
        self.feeds.append(feed)
        return feed

    def adapter(self, connection: Any, *, coins: Any, rehearse_every_s: Any = None
                ) -> LoopbackConnection:
        return connection  # the connection answers the contract itself

    def unreachable(self, settings: Any, exc: Exception) -> Exception:
        return RuntimeError(f"loopback: {exc}")


class SessionFeed(Feed):
    """``Feed`` once the session exists (``session``: its runner and order manager)."""

    def __init__(self, bars: list[Bar], venue: LoopbackVenue) -> None:
        self.bars, self.venue, self.compared_holding = bars, venue, 0

    async def check_warmup(self) -> None:
        return None

    def attach(self, session: VenueSession) -> None:
        self.runner, self.port = session.runner, session.port


KIND = LoopbackKind()
register("loopback", f"{__name__}:KIND")


def test_quorum_live_builds_a_session_on_any_registered_venue_kind(tmp_path) -> None:
    """``open_venue_session`` finds the kind by the settings it made and builds the
    connection, candle feed and adapter through it: the loopback venue is traded, and
    the session is recorded as its own."""
    config = parse_scenario({**SCENARIO, "execution": {"order_type": "market"}})
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    KIND.bars = _bars(load_market_data(config, streams.data))
    assert venue_kind("loopback") is KIND and kind_of(LoopbackSettings()) is KIND

    async def go(store: DuckDBStore) -> str:
        session = await open_venue_session(
            config, store, LoopbackSettings(), PromotionVerdict(True, "test", "cafe"),
            override_reason=None, kill_file=tmp_path / "runs.kill", credentials=None,
            clock=ManualClock(KIND.bars[0].ts), settle_s=5.0, refresh_s=0.01)
        feed = KIND.feeds[-1]
        feed.attach(session)
        assert session.port.venue is KIND.connections[-1]
        return (await session.run()).run_id

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(go(store))
        venue = KIND.connections[-1]
        assert venue.closed and venue.trades
        (kind, network, status) = store.con.execute(
            "SELECT s.venue, s.network, r.status FROM live_sessions s JOIN runs r USING"
            " (run_id) WHERE run_id = ?", [run_id]).fetchone()
        assert (kind, network, status) == ("loopback", "loop", "completed")
        booked = store.con.execute("SELECT tid FROM venue_fills WHERE run_id = ? ORDER BY tid",
                                   [run_id]).fetchall()
        assert [t for (t,) in booked] == [f.tid for f in venue.trades]
