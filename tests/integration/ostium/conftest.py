"""A fake Ostium on a loopback port per test, and the adapter pointed at it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from live.ostium.venue import OstiumVenue
from live.venue_types import OrderRequest, OrderState
from tests.fakes.ostium import FakeOstium

ACCOUNT = "0x" + "ab" * 20
DEPOSIT = 10_000.0
BOUND_S = 30.0  # every test's time limit: a hung venue fails, never blocks the suite


@pytest.fixture
def fake() -> Iterator[FakeOstium]:
    server = FakeOstium().start()
    server.open_account(ACCOUNT, DEPOSIT)
    server.set_price("ETH", 2000.0)
    server.set_price("BTC", 60_000.0)
    yield server
    server.stop()


def run(fake: FakeOstium, check: Callable[[OstiumVenue], Awaitable[None]], **kw: Any) -> None:
    """``check`` on a fresh adapter for ``ACCOUNT`` (markets loaded), bounded in time."""
    async def go() -> None:
        venue = fake.venue(ACCOUNT, **kw)
        await venue.load_markets()
        try:
            await check(venue)
        finally:
            await venue.aclose()

    asyncio.run(asyncio.wait_for(go(), BOUND_S))


def cloid(n: int) -> str:
    return "0x" + f"{n:02x}" * 16


async def place(venue: OstiumVenue, coin: str, is_buy: bool, size: float, kind: str,
                price: float, n: int, **kw: Any) -> OrderState:
    return await venue.place(venue.prepare(OrderRequest(coin, is_buy, size, kind,  # type: ignore[arg-type]
                                                        price, cloid(n), **kw)))


async def status_of(venue: OstiumVenue, n: int) -> str | None:
    """The status of order ``cloid(n)``, None if the venue does not know it."""
    state = await venue.order_state(cloid(n))
    return None if state is None else state.status
