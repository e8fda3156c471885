"""A venue session on the fake Hyperliquid whose faults are known, for ``quorum parity``.

The fake stamps its fills on the session's own (manual) clock, so a fill's time minus the
time its order was sent is the venue's latency as the store sees it. Two faults can be
injected per bar: ``lag_ms`` (the venue executes that much after the request, as a slow
matching engine or a network hop would) and ``depth`` (the book at that bar holds only
this many units, so a market order, an IOC, fills part and the venue cancels the rest).
Bar times sit a few hours before the wall clock: the fake checks each request's nonce
(wall time) against its own clock, within two days.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from live.hyperliquid.signing import Signer
from live.hyperliquid.stream import candle
from sim.config import ScenarioConfig
from sim.messages import Bar
from sim.runner import RunResult, run_scenario
from sim.store import DuckDBStore
from tests.fakes.clock import ManualClock
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import DEPOSIT, KEY
from .test_faults import wait_for
from .venue_session import (
    ACCOUNT,
    INTERVAL_NS,
    SCENARIO,
    bars_of,
    open_session,
    push,
    scenario,
    settled,
)

HOURS_BEFORE_NOW = 6


def recent_start() -> str:
    """A bar grid starting a few hours ago (whole minutes)."""
    now = time.time_ns() // INTERVAL_NS * INTERVAL_NS - HOURS_BEFORE_NOW * 3_600 * 10**9
    return datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parity_scenario(**overrides: Any) -> ScenarioConfig:
    data = [{**SCENARIO["data"][0], "start": recent_start()}]
    return scenario(data=data, **overrides)


@dataclass
class Faults:
    """Per bar index k (the bar whose open the order meets): what the venue does."""

    lag_ms: dict[int, int] = field(default_factory=dict)
    depth: dict[int, float] = field(default_factory=dict)
    offset: dict[int, float] = field(default_factory=dict)  # the book this much wider
    refuse: set[int] = field(default_factory=set)  # the account drained: margin refused
    funding: dict[int, float] = field(default_factory=dict)  # paid at the bar's open
    held: float = 0.0  # an ETH position the account holds before the session (adopted)


async def _drive(fake: FakeHyperliquid, session: Any, clock: ManualClock, bars: list[Bar],
                 faults: Faults, lag: list[int], start: int) -> None:
    await wait_for(lambda: fake.subscribed(candle("ETH", "1m")) == 1, 10)
    account = fake.accounts[ACCOUNT.lower()]
    for k in range(start, len(bars)):
        clock.set(bars[k].ts)
        held = None
        if k > start:
            j = k - 1  # bar j closes now: its open is what the orders of this step meet
            lag[0] = faults.lag_ms.get(j, 0)
            _quote(fake, bars[j], faults.depth.get(j), faults.offset.get(j, 0.0))
            if j in faults.funding:
                fake.pay_funding(bars[j].symbol, faults.funding[j], bars[j].ts // 1_000_000)
            if j in faults.refuse:
                held, account.raw_usd = account.raw_usd, Decimal(1)
        push(fake, bars[k])
        if k > start:
            await settled(session, k)
        if held is not None:
            account.raw_usd = held
    lag[0] = faults.lag_ms.get(len(bars) - 1, 0)
    _quote(fake, bars[-1], None)
    clock.set(bars[-1].ts + INTERVAL_NS + 2 * 10**9)


def _quote(fake: FakeHyperliquid, bar: Bar, size: float | None, offset: float = 0.0) -> None:
    """The book around ``bar``'s open on the price grid, ``size`` units a side (None:
    deep), ``offset`` wider on each side."""
    bid = math.floor(bar.open * 10 + 1e-9) / 10 - offset
    ask = math.ceil(bar.open * 10 - 1e-9) / 10 + offset
    fake.quote(bar.symbol, round(bid, 1), round(ask, 1),
               **({} if size is None else {"size": size}))


def run_session(tmp_path: Path, config: ScenarioConfig, faults: Faults | None = None,
                db: Path | None = None) -> tuple[str, Path]:
    """Run the venue session over the scenario's bars; (run id, store path). The first
    ``live.warmup_bars`` bars are history when it starts (their orders are held)."""
    faults = faults or Faults()
    bars = bars_of(config)
    warmup = config.live.warmup_bars
    clock = ManualClock(bars[warmup].ts + INTERVAL_NS // 2)
    lag = [0]
    fake = FakeHyperliquid(mainnet=False,
                           now_ms=lambda: clock.now_ns() // 1_000_000 + lag[0]).start()
    fake.open_account(Signer(KEY, mainnet=False).address, usdc=DEPOSIT)
    for bar in bars[:warmup]:
        push(fake, bar)
    if faults.held:
        entry = Decimal(repr(round(bars[warmup].open, 1)))
        fake.accounts[ACCOUNT.lower()].positions["ETH"] = (Decimal(repr(faults.held)), entry)
        _quote(fake, bars[warmup], None)  # a mark for the adoption
    db = db or tmp_path / "runs.duckdb"

    async def go(store: DuckDBStore) -> RunResult:
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars) - warmup)
        task = asyncio.create_task(session.run())
        await _drive(fake, session, clock, bars, faults, lag, warmup)
        return await asyncio.wait_for(task, 60)

    try:
        with DuckDBStore(db) as store:
            result = asyncio.run(go(store))
    finally:
        fake.stop()
    return result.run_id, db


def order_times(config: ScenarioConfig) -> list[int]:
    """The bar times of the backtest's filled orders (where faults can go)."""
    with DuckDBStore(":memory:") as store:
        run = run_scenario(config, store)
        return [t for (t,) in store.con.execute(
            "SELECT epoch_ns(ts) FROM orders WHERE run_id = ? AND status = 'filled'"
            " ORDER BY order_id", [run.run_id]).fetchall()]


def main(argv: list[str] | None = None) -> int:
    """A venue session on the fake, into ``--db`` (docs/dev/live-adapter.md: "The parity
    report on injected faults")."""
    parser = argparse.ArgumentParser(prog="python -m tests.integration.hyperliquid."
                                     "parity_session", description=main.__doc__)
    parser.add_argument("--db", default="runs.duckdb")
    parser.add_argument("--thin-order", type=int, action="append", default=[],
                        help="the book holds 1.5 units when the n-th order (from 1) fills")
    parser.add_argument("--slow-order", type=int, action="append", default=[],
                        help="the venue fills the n-th order 750 ms after it was sent")
    args = parser.parse_args(argv)
    config = parity_scenario()
    times = order_times(config)
    index = {b.ts: k for k, b in enumerate(bars_of(config))}
    faults = Faults(lag_ms={index[times[n - 1]]: 750 for n in args.slow_order},
                    depth={index[times[n - 1]]: 1.5 for n in args.thin_order})
    db = Path(args.db).resolve()
    run_id, _ = run_session(db.parent, config, faults, db=db)
    print(f"venue session {run_id} on the fake Hyperliquid stored in {args.db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
