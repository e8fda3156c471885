"""Driving one live session over two venue accounts: the fake Hyperliquid (whose candles
feed the session) and the fake Ostium, each bound to a scenario venue (``hl``, ``ost``).

Each bar, both venues are priced at the bar's open before the candle that closes it is
pushed (Hyperliquid's book on its price grid, Ostium's oracle at the open), and the next
bar waits until every order of both accounts has settled, as in
``tests.integration.hyperliquid.venue_session``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from live.hyperliquid.stream import candle
from live.ostium.gateway import OstiumConfig
from quorum.live import Account, VenueSession, open_venue_session
from sim.config import ScenarioConfig, parse_scenario
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.fakes.ostium import FakeChainTrader, FakeOstium
from tests.integration.hyperliquid.conftest import DEPOSIT, make_config
from tests.integration.hyperliquid.test_faults import wait_for
from tests.integration.hyperliquid.venue_session import (
    ACCOUNT,
    CREDENTIALS,
    GRACE_NS,
    INTERVAL_NS,
    VERDICT,
    push,
    quote_at,
)

OST_ACCOUNT = "0x" + "ab" * 20
SCENARIO: dict[str, Any] = {
    "name": "two-venues",
    "seed": 11,
    "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 60, "interval": "1m",
              "price": 2_000.0, "volatility": 1.5}],
    "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "hl", "symbols": ["ETH"], "fee_bps": 4.5, "tick_size": 0.1,
                "lot_size": 0.0001},
               {"name": "ost", "preset": "ostium", "symbols": ["ETH"]}],
    "router": {"policy": "preference", "preference": ["hl", "ost"]},
    # the two accounts hold 20,000 together: the session trades the scenario's 10,000
    "live": {"capital": 10_000.0, "reconcile_every": "1h",
             "venues": {"hl": {"kind": "hyperliquid", "testnet": True},
                        "ost": {"kind": "ostium", "testnet": True}}},
}


def scenario(**overrides: Any) -> ScenarioConfig:
    return parse_scenario({**SCENARIO, **overrides})


def start_ostium() -> FakeOstium:
    fake = FakeOstium(pairs=(("ETH", 1, 50.0, 5.0),)).start()
    fake.open_account(OST_ACCOUNT, DEPOSIT)
    fake.set_price("ETH", 2_000.0)
    return fake


def accounts(hl: FakeHyperliquid, ost: FakeOstium) -> list[Account]:
    ost_settings = OstiumConfig.for_network("testnet", base_url=ost.base_url, timeout_s=2.0)
    return [Account(make_config(hl), CREDENTIALS, ("hl",)),
            Account(ost_settings, FakeChainTrader(ost.base_url, OST_ACCOUNT), ("ost",))]


async def open_two(hl: FakeHyperliquid, ost: FakeOstium, store: DuckDBStore,
                   config: ScenarioConfig, clock: ManualClock, tmp_path: Path, *,
                   max_bars: int, resume: str | None = None) -> VenueSession:
    both = accounts(hl, ost)
    return await open_venue_session(
        config, store, both[0].settings, VERDICT, override_reason=None,
        kill_file=tmp_path / "runs.kill", credentials=both[0].credentials,
        max_bars=max_bars, clock=clock, resume_run=resume, settle_s=5.0, refresh_s=0.05,
        accounts=both)


async def settled(session: VenueSession, bars_seen: int, timeout: float = 15.0) -> None:
    runner = session.runner

    def quiet() -> bool:
        return all(p.settled for p in session.ports) and runner.queue.empty()

    try:
        await wait_for(lambda: runner.bars_seen >= bars_seen and quiet(), timeout)
        await asyncio.sleep(0.01)
        await wait_for(quiet, timeout)
    except AssertionError:
        legs = [(p.venue_name, t.cloid[:10], t.status, t.placing, t.done)
                for p in session.ports for t in p.by_cloid.values()]
        raise AssertionError(f"waiting for {bars_seen} bars: seen {runner.bars_seen}, "
                             f"legs {legs}") from None


async def drive(hl: FakeHyperliquid, ost: FakeOstium, session: VenueSession,
                clock: ManualClock, bars: list[Any], start: int, *, on_step: Any = None,
                stop_after: int | None = None) -> None:
    """As ``venue_session.drive``, both venues priced at each bar's open."""
    await wait_for(lambda: hl.subscribed(candle("ETH", "1m")) == 1, 10)
    end = len(bars) if stop_after is None else stop_after
    for k in range(start, end):
        if on_step is not None:
            await on_step(k)
        clock.set(bars[k].ts)
        if k > start:
            quote_at(hl, bars[k - 1])
            ost.set_price("ETH", bars[k - 1].open)
        push(hl, bars[k])
        if k > start:
            await settled(session, k)
    if stop_after is None:
        quote_at(hl, bars[-1])
        ost.set_price("ETH", bars[-1].open)
        clock.set(bars[-1].ts + INTERVAL_NS + GRACE_NS)


def ostium_fills(ost: FakeOstium) -> list[tuple[int, float]]:
    """(order id, signed units) of every keeper order the fake executed for the account."""
    return [(o.id, o.units if o.is_long == (o.action == "Open") else -o.units)
            for o in ost.orders.values()
            if o.trader == OST_ACCOUNT.lower() and o.executed is not None]


def each_once_and_equal(hl: FakeHyperliquid, ost: FakeOstium, store: DuckDBStore,
                        run_id: str) -> None:
    """Every fill of each fake booked exactly once, at its venue; each venue's position
    in the store (its fills) equals the fake's."""
    con = store.con
    for venue, tids in (("hl", [f["tid"] for f in hl.fills_of(ACCOUNT)]),
                        ("ost", [i for i, _ in ostium_fills(ost)])):
        booked = [r[0] for r in con.execute(
            "SELECT tid FROM venue_fills WHERE run_id = ? AND venue = ?",
            [run_id, venue]).fetchall()]
        assert Counter(booked) == Counter(tids), (
            f"{venue}: a fill lost or booked twice: booked {sorted(booked)}, at the venue "
            f"{sorted(tids)}")
    (hl_held,) = con.execute("SELECT coalesce(sum(quantity), 0) FROM fills WHERE run_id = ?"
                             " AND venue = 'hl'", [run_id]).fetchone()
    (ost_held,) = con.execute("SELECT coalesce(sum(quantity), 0) FROM fills WHERE run_id = ?"
                              " AND venue = 'ost'", [run_id]).fetchone()
    assert abs(hl_held - hl.position(ACCOUNT, "ETH")) < 1e-9
    assert abs(ost_held - ost.position(OST_ACCOUNT, "ETH")) < 1e-9
