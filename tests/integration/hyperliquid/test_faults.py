"""Faults injected by the fake server: each is survived, every order ends in a definite
state, and nothing is duplicated (one order at the venue per cloid, one fill per trade)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from live.hyperliquid.errors import SubmissionUnresolved, TransportFailed
from live.hyperliquid.stream import FillDeduper, HyperliquidStream, order_updates, user_fills
from live.hyperliquid.venue import FILLED, RESTING
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import open_venue


def run(coro):
    return asyncio.run(coro)


def assert_once_each(fake: FakeHyperliquid, user: str, cloids: list[str]) -> None:
    at_venue = Counter(o.cloid for o in fake.user_orders(user) if o.cloid)
    assert all(at_venue[c] == 1 for c in cloids), at_venue
    orders_sent = [o for _, a in fake.actions_run if a["type"] == "order" for o in a["orders"]]
    assert Counter(o.get("c") for o in orders_sent) == Counter(cloids)


@pytest.mark.parametrize("fault", ["http_429", "http_5xx"])
def test_refused_requests_are_retried_and_land_once(fake: FakeHyperliquid, fault: str) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            setattr(fake.faults, fault, 3)  # info (meta is loaded) and exchange alike
            a = await venue.limit("ETH", True, 0.1, 1990.0)
            setattr(fake.faults, fault, 2)
            b = await venue.market("ETH", True, 0.5, reference_px=2000.0)
            assert (a.status, b.status) == (RESTING, FILLED)
            assert venue.rest.retries >= 5
            assert_once_each(fake, venue.account, [a.cloid, b.cloid])
            assert fake.position(venue.account, "ETH") == 0.5

    run(go())


@pytest.mark.parametrize("fault", ["exchange_5xx_after_run", "exchange_hold_after_run"])
def test_lost_replies_are_settled_by_cloid_not_resubmitted(fake, fault: str) -> None:
    """The venue ran the order and the reply was lost (502 after running, or held past
    the client's timeout): the client finds it by cloid and reports its real state."""
    fake.faults.hold_s = 1.0  # client timeout 0.5 s

    async def go():
        async with await open_venue(fake) as venue:
            setattr(fake.faults, fault, 1)
            gtc = await venue.limit("ETH", True, 0.1, 1990.0)
            setattr(fake.faults, fault, 1)
            ioc = await venue.market("ETH", True, 0.5, reference_px=2000.0)
            assert gtc.status == RESTING and gtc.oid is not None
            assert ioc.status == FILLED and ioc.filled_size == 0.5 and ioc.avg_price == 2001.0
            assert_once_each(fake, venue.account, [gtc.cloid, ioc.cloid])
            assert len(fake.fills_of(venue.account)) == 1
            assert fake.position(venue.account, "ETH") == 0.5
            # cancel whose reply is lost: settled by asking, state definite
            setattr(fake.faults, fault, 1)
            canceled = await venue.cancel("ETH", gtc.oid)
            assert canceled.status == "canceled"

    run(go())


def test_replay_after_a_timeout_is_refused_by_nonce_and_settled(fake: FakeHyperliquid) -> None:
    """Added latency longer than the timeout: the first attempt is still running when the
    client retries; the identical replay is refused (same nonce) and the client settles."""
    async def go():
        async with await open_venue(fake, timeout_s=0.2) as venue:
            fake.faults.latency_s = 0.3
            fake.faults.only_path = "/exchange"
            state = await venue.limit("ETH", True, 0.1, 1990.0)
            fake.faults.latency_s = 0.0
            assert state.status == RESTING
            assert_once_each(fake, venue.account, [state.cloid])
            assert fake.requests["/exchange"] >= 2  # it was retried

    run(go())


def test_latency_below_the_timeout_is_just_slower(fake: FakeHyperliquid) -> None:
    fake.faults.latency_s = 0.05

    async def go():
        async with await open_venue(fake) as venue:
            state = await venue.limit("ETH", True, 0.1, 1990.0)
            assert state.status == RESTING and venue.rest.retries == 0

    run(go())


def test_an_outage_longer_than_the_retry_budget_is_unresolved_then_settled(fake) -> None:
    """Every attempt fails: the client says so with the cloid (never a guess); once the
    venue answers again, the cloid settles it and a resubmission under it lands once."""
    async def go():
        async with await open_venue(fake, max_attempts=3) as venue:
            fake.faults.only_path = "/exchange"
            fake.faults.http_5xx = 10
            order = venue.prepare_limit("ETH", True, 0.1, 1990.0)
            with pytest.raises(SubmissionUnresolved) as err:
                await venue.place(order)
            assert err.value.cloid == order.cloid
            fake.faults.http_5xx = 0
            assert await venue.order_state(order.cloid) is None  # it never landed
            state = await venue.place(order)  # same cloid
            assert state.status == RESTING
            assert_once_each(fake, venue.account, [order.cloid])
            fake.faults.only_path = "/info"
            fake.faults.http_5xx = 10
            with pytest.raises(TransportFailed, match="no answer after 3 attempts"):
                await venue.mids()

    run(go())


def test_mixed_faults_never_duplicate(fake: FakeHyperliquid) -> None:
    """A run of orders with a different fault before each: all end definite, once each."""
    faults = ["http_429", "http_5xx", "exchange_5xx_after_run", "exchange_hold_after_run",
              None] * 2
    fake.faults.hold_s = 0.7

    async def go():
        async with await open_venue(fake) as venue:
            states = []
            for i, fault in enumerate(faults):
                if fault:
                    setattr(fake.faults, fault, 1)
                states.append(await venue.limit("ETH", True, 0.1, 1980.0 - i))
            assert all(s.status == RESTING for s in states)
            assert len({s.oid for s in states}) == len(states)
            assert_once_each(fake, venue.account, [s.cloid for s in states])
            assert len(await venue.open_orders()) == len(states)

    run(go())


def test_rate_limiter_holds_the_client_under_its_budget(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake, weight_budget=60) as venue:  # meta: 20 spent
            await venue.mids()  # 2
            await venue.open_orders()  # 20
            assert venue.rest.limiter.spent == 42
            # the next weight-20 read fits (62 > 60 would not): check without waiting
            venue.rest.limiter.charge(18)
            task = asyncio.create_task(venue.open_orders())
            await asyncio.sleep(0.2)
            assert not task.done()  # held by the client, nothing sent
            task.cancel()
            assert fake.requests["/info"] == 3

    run(go())


def test_dropped_websocket_reconnects_resubscribes_and_dedupes(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            stream = HyperliquidStream(fake.ws_url, [order_updates(venue.account),
                                                     user_fills(venue.account)],
                                       ping_s=0.05, backoff_s=0.01)
            dedupe = FillDeduper()
            fills: list[dict] = []
            updates: list[dict] = []
            channels: list[str] = []
            first = await venue.market("ETH", True, 0.2, reference_px=2000.0)  # before

            async def consume():
                async for msg in stream:
                    channels.append(msg["channel"])
                    if msg["channel"] == "userFills":
                        fills.extend(dedupe.new(msg["data"]["fills"]))
                    elif msg["channel"] == "orderUpdates":
                        updates.extend(msg["data"])

            task = asyncio.create_task(consume())
            await wait_for(lambda: len(fills) == 1)  # the snapshot
            await venue.market("ETH", True, 0.2, reference_px=2000.0)
            await wait_for(lambda: len(fills) == 2)
            await asyncio.sleep(0.15)
            assert fake.pings >= 1  # keep-alive went out
            fake.drop_websockets()
            await wait_for(lambda: "reconnected" in channels)
            await wait_for(lambda: fake.connections == 1 and channels.count("userFills") >= 3)
            third = await venue.limit("ETH", True, 0.1, 1990.0)
            await wait_for(lambda: any(u["order"].get("cloid") == third.cloid for u in updates))
            await venue.market("ETH", True, 0.2, reference_px=2000.0)
            await wait_for(lambda: len(fills) == 3)
            await asyncio.sleep(0.05)
            await stream.close()
            task.cancel()
            # each trade once, though the snapshot after the reconnect repeated them all
            assert len({f["tid"] for f in fills}) == len(fills) == 3
            assert fills[0]["cloid"] == first.cloid
            assert stream.connects == 2

    run(go())


async def wait_for(condition, timeout: float = 5.0) -> None:
    """Poll until true (event-driven code under test; the timeout only stops a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("fault", [None, "http_429", "http_5xx", "exchange_5xx_after_run",
                                   "exchange_hold_after_run"])
def test_an_order_written_in_its_step_survives_each_fault_and_lands_once(fake, fault) -> None:
    """``rest.dispatch`` writes the signed request before the caller yields (the port's
    path for every order); its reply, or the fault instead of one, is handled as for a
    request sent from the task."""
    fake.faults.hold_s = 1.0  # client timeout 0.5 s

    async def go():
        async with await open_venue(fake) as venue:
            await venue.rest.warm()  # the session opens the lane at start
            prepared = venue.prepare_limit("ETH", True, 0.1, 1990.0)
            if fault:
                setattr(fake.faults, fault, 1)
            dispatched = venue.rest.dispatch(prepared.action)
            assert dispatched.sent is not None
            if fault is None:  # with the kernel already: the fake (its own thread) runs it
                deadline = time.monotonic() + 5  # while this loop has not yielded once
                while not fake.actions_run and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert [a["orders"][0]["c"] for _, a in fake.actions_run] == [prepared.cloid]
            state = await venue.place(prepared, dispatched)
            assert state.status == RESTING and state.oid is not None
            assert_once_each(fake, venue.account, [prepared.cloid])
            assert venue.rest.retries == (0 if fault is None else 1)

    run(go())
