"""Every venue adapter fulfils the live core's contract (``live.port.VenueAdapter``) the
same way, each on its own fake venue: the checks below are written against the Protocol
and the neutral reports only (``live.venue_types``); what differs per venue (how its fake
is started, moved and charged) is in its ``Driver``.

What is checked, for Hyperliquid and Ostium alike: an order too small for the venue is
refused locally (nothing sent); a resting limit is listed with its cloid and canceled by
it; a market order fills, its fills carry the cloid and sum to what the state says, the
fill cursor is inclusive; a round trip leaves no position; funding charged on a long is a
payment the long paid, with payment = -rate x size x mark; the account value is the
fake's; an unknown cloid is unknown; an unreachable venue raises, never answers."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from live.hyperliquid.config import Credentials, HyperliquidConfig
from live.hyperliquid.signing import Signer
from live.hyperliquid.venue import HyperliquidVenue
from live.port import VenueAdapter
from live.venue_types import (
    CANCELED,
    FILLED,
    REJECTED,
    RESTING,
    AccountState,
    FundingPayment,
    OpenOrder,
    OrderRequest,
    OrderState,
    Position,
    VenueFill,
)
from sim.instruments import Instrument
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.fakes.ostium import FakeOstium

HL_KEY = "0x" + "11" * 32
OSTIUM_ACCOUNT = "0x" + "ab" * 20
DEPOSIT = 10_000.0
COIN, PRICE = "ETH", 2000.0
BOUND_S = 30.0  # every test's time limit: a hung venue fails, never blocks the suite


@dataclass
class Driver:
    """One venue and its fake, as the contract checks need them."""

    name: str
    open: Callable[[], Awaitable[Any]]
    close: Callable[[Any], Awaitable[None]]
    charge_funding: Callable[[float], None]  # on the account's open ETH position
    account_value: Callable[[], float]  # the fake's own figure
    go_down: Callable[[], None]


def _hyperliquid() -> Iterator[Driver]:
    fake = FakeHyperliquid(mainnet=False).start()
    signer = Signer(HL_KEY, mainnet=False)
    fake.open_account(signer.address, usdc=DEPOSIT)
    fake.seed_book(COIN, bids=[(PRICE - 1, 50.0)], asks=[(PRICE + 1, 50.0)])

    async def open_() -> HyperliquidVenue:
        config = HyperliquidConfig(network="testnet", base_url=fake.base_url,
                                   ws_url=fake.ws_url, timeout_s=0.5, backoff_s=0.01,
                                   max_backoff_s=0.05, max_attempts=3)
        venue = HyperliquidVenue(config, Credentials(signer))
        await venue.load_markets()
        return venue

    def down() -> None:
        fake.faults.http_5xx = 1_000

    yield Driver("hyperliquid", open_, lambda v: v.aclose(),
                 lambda rate: fake.pay_funding(COIN, rate),
                 lambda: fake.account_value(signer.address), down)
    fake.stop()


def _ostium() -> Iterator[Driver]:
    fake = FakeOstium().start()
    fake.open_account(OSTIUM_ACCOUNT, DEPOSIT)
    fake.set_price(COIN, PRICE)

    async def open_() -> Any:
        venue = fake.venue(OSTIUM_ACCOUNT, timeout_s=2.0)
        await venue.load_markets()
        return venue

    def down() -> None:
        fake.faults.down = True

    def charge(rate: float) -> None:
        fake.accrue(COIN, rate)  # accrued on the trade; settled when it is closed

    yield Driver("ostium", open_, lambda v: v.aclose(), charge,
                 lambda: fake.account_value(OSTIUM_ACCOUNT), down)
    fake.stop()


@pytest.fixture(params=["hyperliquid", "ostium"])
def driver(request: pytest.FixtureRequest) -> Iterator[Driver]:
    yield from {"hyperliquid": _hyperliquid, "ostium": _ostium}[request.param]()


def run(driver: Driver, check: Callable[[Any], Awaitable[None]]) -> None:
    async def go() -> None:
        venue = await driver.open()
        try:
            await check(venue)
        finally:
            await driver.close(venue)

    asyncio.run(asyncio.wait_for(go(), BOUND_S))


def cloid(n: int) -> str:
    return "0x" + f"{n:02x}" * 16


async def settled(venue: VenueAdapter, ref: str) -> OrderState:
    """The order's state once the venue says it is done (bounded by the test's limit)."""
    while True:
        state = await venue.order_state(ref, COIN)
        assert state is not None, ref
        if state.done:
            return state
        await asyncio.sleep(0.01)


async def market(venue: VenueAdapter, is_buy: bool, size: float, n: int, **kw: Any
                 ) -> OrderState:
    state = await venue.place(venue.prepare(OrderRequest(COIN, is_buy, size, "market",
                                                         PRICE, cloid(n), **kw)))
    return state if state.done else await settled(venue, cloid(n))


def net(positions: list[Position]) -> float:
    return sum(p.size for p in positions if p.coin == COIN)


def test_it_is_a_venue_adapter_with_the_venue_rules(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        assert isinstance(venue, VenueAdapter)
        inst = venue.instrument(COIN, "v1", "ETH-PERP")
        assert isinstance(inst, Instrument) and (inst.venue, inst.symbol) == ("v1", "ETH-PERP")
        assert inst.min_notional > 0 and inst.max_leverage is not None
        assert venue.lot_size(COIN) > 0

    run(driver, check)


def test_an_order_too_small_is_refused_locally(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        prepared = venue.prepare(OrderRequest(COIN, True, 0.001, "market", PRICE, cloid(1)))
        assert prepared.rejection is not None and prepared.rejection.startswith("quorum:")
        state = await venue.place(prepared)
        assert (state.status, state.message) == (REJECTED, prepared.rejection)
        assert await venue.fills() == [] and await venue.open_orders() == []
        assert await venue.order_state(cloid(1), COIN) is None  # never sent

    run(driver, check)


def test_a_resting_limit_is_listed_and_canceled_by_cloid(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        c = cloid(2)
        state = await venue.place(venue.prepare(OrderRequest(COIN, True, 0.5, "limit",
                                                             PRICE * 0.9, c)))
        assert state.status == RESTING and not state.done and state.oid is not None
        assert await venue.open_orders() == [OpenOrder(COIN, state.oid, c, 0.5)]
        looked_up = await venue.order_state(c, COIN)
        assert looked_up is not None and looked_up.status == RESTING
        canceled = await venue.cancel_by_cloid(COIN, c)
        assert canceled.status == CANCELED and canceled.done
        assert await venue.open_orders() == []
        assert await venue.fills() == []

    run(driver, check)


def test_a_market_round_trip_fills_books_and_leaves_no_position(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        buy = await market(venue, True, 0.5, 3)
        assert buy.status == FILLED and math.isclose(buy.filled_size, 0.5, rel_tol=0.01)
        assert buy.avg_price is not None and abs(buy.avg_price / PRICE - 1) < 0.01
        fills = await venue.fills()
        assert fills and all(isinstance(f, VenueFill) for f in fills)
        mine = [f for f in fills if f.cloid == cloid(3)]
        assert math.isclose(sum(f.size for f in mine), buy.filled_size, rel_tol=1e-9)
        assert all(f.fee > 0 for f in mine)
        assert math.isclose(net(await venue.positions()), buy.filled_size, rel_tol=1e-9)
        last = max(f.time_ms for f in fills)
        assert await venue.fills(since_ms=last + 1) == []
        assert {f.tid for f in await venue.fills(since_ms=last)} == {
            f.tid for f in fills if f.time_ms == last}
        state = await venue.account_state()
        assert isinstance(state, AccountState) and COIN in state.marks
        assert math.isclose(state.account_value, driver.account_value(), rel_tol=1e-9)
        assert state.account_value < DEPOSIT  # fees were paid
        sell = await market(venue, False, buy.filled_size, 4, reduce_only=True)
        assert sell.status == FILLED
        assert abs(net(await venue.positions())) < 1e-9
        assert math.isclose(await venue.account_value(), driver.account_value(),
                            rel_tol=1e-9)

    run(driver, check)


def test_funding_charged_on_a_long_is_paid_by_it(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        buy = await market(venue, True, 0.5, 5)
        start = max(f.time_ms for f in await venue.fills())
        driver.charge_funding(0.001)
        await market(venue, False, buy.filled_size, 6, reduce_only=True)  # settles Ostium's
        payments = await venue.funding(start)
        assert payments and all(isinstance(p, FundingPayment) for p in payments)
        (pay,) = [p for p in payments if p.coin == COIN]
        assert pay.usdc < 0 and pay.szi > 0 and pay.rate > 0  # a long paid a positive rate
        mark = -pay.usdc / (pay.rate * pay.szi)
        assert abs(mark / PRICE - 1) < 0.01  # payment = -rate x size x mark
        assert math.isclose(pay.usdc, -0.001 * buy.filled_size * PRICE, rel_tol=0.01)
        assert await venue.funding(pay.time_ms + 1) == []

    run(driver, check)


def test_an_unknown_cloid_is_unknown(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        assert await venue.order_state(cloid(0x7e), COIN) is None

    run(driver, check)


def test_an_unreachable_venue_raises(driver: Driver) -> None:
    async def check(venue: Any) -> None:
        driver.go_down()
        with pytest.raises(Exception) as err:  # each venue its own error type
            await venue.account_state()
        assert str(err.value) and "\n" not in str(err.value).strip()

    run(driver, check)
