"""The Ostium adapter when the venue misbehaves (the fake's faults): each outcome is the
neutral report the core acts on. A refusal is a rejection with the contract's reason; a
send whose outcome is unknown raises, and the cloid's lookup then finds what landed (or
says it never did); a venue down raises; a reply of the wrong shape is one line."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from live.ostium.venue import OstiumVenue
from live.ostium.wire import OstiumWireError
from live.venue_types import CANCELED, FILLED, REJECTED, RESTING, OrderState
from tests.fakes.ostium import FakeOstium

from .conftest import ACCOUNT, DEPOSIT, cloid, place, run


async def landed(venue: OstiumVenue, n: int) -> OrderState:
    """The cloid's state once the venue knows it (the test's time limit bounds it)."""
    while (state := await venue.order_state(cloid(n))) is None:
        await asyncio.sleep(0.02)
    return state


def test_a_refused_transaction_is_a_rejection_with_its_reason(fake: FakeOstium) -> None:
    fake.faults.reject = 1
    fake.faults.reject_reason = "execution reverted: MAX_TRADES_PER_PAIR"

    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        assert (state.status, state.message, state.venue_status) == (
            REJECTED, "execution reverted: MAX_TRADES_PER_PAIR", "reverted")
        assert await venue.fills() == [] and fake.wallet(ACCOUNT) == DEPOSIT
        assert (await place(venue, "ETH", True, 0.5, "market", 2000.0, 2)).status == FILLED

    run(fake, check)


def test_a_refused_rest_leaves_what_was_sent_standing(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        # closes the long, then the short's collateral (39,800 USDC) is more than the wallet
        state = await place(venue, "ETH", False, 100.0, "market", 2000.0, 2)
        assert state.status == CANCELED and state.filled_size == pytest.approx(0.5)
        assert "exceeds balance" in (state.message or "")
        assert await venue.positions() == []

    run(fake, check)


def test_a_lost_reply_is_unknown_then_found_by_the_cloid(fake: FakeOstium) -> None:
    fake.faults.lost_reply = 1

    async def check(venue: OstiumVenue) -> None:
        with pytest.raises(RuntimeError, match="HTTP 502"):
            await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        state = await venue.order_state(cloid(1))
        assert state is not None and state.status == FILLED
        assert state.filled_size == pytest.approx(0.5)
        (fill,) = await venue.fills()
        assert fill.cloid == cloid(1) and fill.oid == state.oid
        # a second order of the same shape is not mistaken for the first
        assert (await place(venue, "ETH", True, 0.5, "market", 2000.0, 2)).oid != state.oid

    run(fake, check)


def test_a_limit_whose_reply_was_lost_is_found_among_the_limits(fake: FakeOstium) -> None:
    fake.faults.lost_reply = 1

    async def check(venue: OstiumVenue) -> None:
        with pytest.raises(RuntimeError):
            await place(venue, "ETH", True, 0.5, "limit", 1900.0, 1)
        state = await venue.order_state(cloid(1))
        assert state is not None and state.status == RESTING
        (listed,) = await venue.open_orders()
        assert (listed.cloid, listed.oid) == (cloid(1), state.oid)

    run(fake, check)


def test_a_slow_venue_times_out_and_the_order_is_found_later(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        fake.faults.latency_s, fake.faults.latency_only = 0.6, "chain"  # client: 0.3 s
        with pytest.raises(httpx.TimeoutException):
            await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        state = await landed(venue, 1)  # the venue ran it after the client gave up
        assert state.status == FILLED

    run(fake, check, timeout_s=0.3)


def test_a_venue_down_raises_and_nothing_landed(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        fake.faults.down = True
        with pytest.raises(OstiumWireError, match=r"^Ostium subgraph: HTTP 503"):
            await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        for read in (venue.account_state, venue.fills, venue.open_orders, venue.mids):
            with pytest.raises(OstiumWireError, match="HTTP 503"):
                await read()
        fake.faults.down = False
        assert await venue.order_state(cloid(1)) is None  # never placed
        assert fake.wallet(ACCOUNT) == DEPOSIT

    run(fake, check)


def test_a_slow_read_is_one_line_naming_the_timeout(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        fake.faults.latency_s, fake.faults.latency_only = 0.6, "prices"
        with pytest.raises(OstiumWireError) as err:
            await venue.mids()
        assert str(err.value) == "Ostium price service: no answer within 0.3 s"

    run(fake, check, timeout_s=0.3)


def test_a_reply_that_is_not_json_is_one_line(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        fake.faults.garbage = 1
        with pytest.raises(OstiumWireError) as err:
            await venue.positions()
        assert str(err.value) == "Ostium subgraph: the reply is not JSON"
        assert await venue.positions() == []  # the next reply is fine

    run(fake, check)


def test_an_unknown_pair_in_an_open_trade_keeps_its_own_name(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        venue._coin_of = {}  # a pair listed after load_markets
        (pos,) = await venue.positions()
        assert pos.coin == "ETH"  # from the trade's own pair record

    run(fake, check)


def test_a_lost_close_ends_the_order_there(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        fake.faults.lost_reply = 1  # the close runs, its answer is lost; no open is sent
        with pytest.raises(RuntimeError):
            await place(venue, "ETH", False, 1.5, "market", 2000.0, 2)
        state = await venue.order_state(cloid(2))
        assert state is not None and state.status == CANCELED
        assert state.filled_size == pytest.approx(0.5)  # the close, found by its fields
        assert await venue.positions() == []
        sells = [f for f in await venue.fills() if f.cloid == cloid(2)]
        assert [f.size for f in sells] == [pytest.approx(-0.5)]

    run(fake, check)


def test_a_lost_last_close_is_the_whole_order(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        fake.faults.lost_reply = 1
        with pytest.raises(RuntimeError):
            await place(venue, "ETH", False, 0.5, "market", 2000.0, 2, reduce_only=True)
        state = await venue.order_state(cloid(2))
        assert state is not None and state.status == FILLED
        assert state.filled_size == pytest.approx(0.5)

    run(fake, check)
