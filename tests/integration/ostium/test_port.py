"""The live core's order manager (``live.orders.OrderManager``) driving the Ostium adapter
on the fake Ostium: legs go from submission to the desk's terminal state through the
neutral reports alone. Ostium pushes nothing, so the manager polls resting legs; these
tests wait for the outcome (bounded), they assert no timing."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from live.orders import OrderManager, OrderPort
from sim import orders as lifecycle
from sim.orders import LIMIT, MARKET, STOP, Leg, Order
from tests.fakes.ostium import FakeOstium

from .conftest import ACCOUNT, BOUND_S


class RecordingDesk:
    """The desk's side of an external venue, recorded."""

    symbols = ["ETH-PERP"]

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []
        self.views = [SimpleNamespace(close=2000.0)]

    def external_accepted(self, leg: Leg, now: int) -> None:
        self.events.append(("accepted", leg.order.order_id))

    def external_fill(self, leg: Leg, ts: int, size: float, price: float, fee: float,
                      liquidity: str) -> int:
        self.events.append(("fill", leg.order.order_id, size, price, fee))
        return len(self.events)

    def external_closed(self, leg: Leg, now: int, code: str, reason: str) -> None:
        self.events.append(("closed", leg.order.order_id, code, reason))


def leg_of(order_id: int, quantity: float, kind: str = MARKET, **kw: Any) -> Leg:
    life = Order(order_id, order_id, 0, 0, "ETH-PERP", 0, quantity, 2000.0, kind=kind, **kw)
    return Leg(life, SimpleNamespace(name="ostium"), quantity, quantity, 0, 0)


async def drive(fake: FakeOstium, steps: Any) -> tuple[RecordingDesk, OrderManager]:
    """Run ``steps(port, queue)`` (an async function) with the port started, applying what
    comes off the queue until the port is idle; returns the desk and the port."""
    venue = fake.venue(ACCOUNT)
    await venue.load_markets()
    desk = RecordingDesk()
    port = OrderManager(venue, desk, "run-1", {"ETH-PERP": "ETH"},  # type: ignore[arg-type]
                      refresh_s=0.01, poll_s=0.02)
    _: OrderPort = port
    queue: asyncio.Queue[object] = asyncio.Queue()
    await port.start(queue)

    async def apply_until(done: Any) -> None:
        while not done():
            try:
                msg = await asyncio.wait_for(queue.get(), 0.05)
            except TimeoutError:
                continue
            port.apply(msg)  # type: ignore[arg-type]
            port.start_requests()

    try:
        await steps(port, apply_until)
    finally:
        await port.close()
        await venue.aclose()
    return desk, port


def run(fake: FakeOstium, steps: Any) -> tuple[RecordingDesk, OrderManager]:
    return asyncio.run(asyncio.wait_for(drive(fake, steps), BOUND_S))


def closed(desk: RecordingDesk, order_id: int) -> tuple[str, str] | None:
    return next(((e[2], e[3]) for e in desk.events if e[0] == "closed" and e[1] == order_id),
                None)


def test_a_market_leg_is_placed_filled_booked_once_and_closed(fake: FakeOstium) -> None:
    async def steps(port: OrderManager, apply_until: Any) -> None:
        port.submit(leg_of(1, 0.5), 0)
        port.start_requests()
        await apply_until(lambda: port.idle)

    desk, port = run(fake, steps)
    fills = [e for e in desk.events if e[0] == "fill"]
    assert len(fills) == 1 and fills[0][2] == pytest.approx(0.5)
    assert fills[0][4] == pytest.approx(200 * 5 * 0.001 + 0.1)
    assert closed(desk, 1) == (lifecycle.FILLED, "")
    (row,) = port.take_records().orders
    assert row["venue_type"] == "market"


def test_a_limit_leg_rests_then_fills_when_the_oracle_crosses(fake: FakeOstium) -> None:
    async def steps(port: OrderManager, apply_until: Any) -> None:
        port.submit(leg_of(2, 0.5, LIMIT, limit_price=1900.0), 0)
        port.start_requests()
        await apply_until(lambda: any(t.status == "resting" for t in port.by_cloid.values()))
        fake.set_price("ETH", 1880.0)
        await apply_until(lambda: port.idle)

    desk, _ = run(fake, steps)
    assert closed(desk, 2) == (lifecycle.FILLED, "")
    (fill,) = [e for e in desk.events if e[0] == "fill"]
    assert fill[3] == pytest.approx(1880.0)


def test_a_resting_stop_canceled_by_the_desk_ends_in_its_state(fake: FakeOstium) -> None:
    async def steps(port: OrderManager, apply_until: Any) -> None:
        leg = leg_of(3, 0.5, STOP, stop_price=2200.0)
        port.submit(leg, 0)
        port.start_requests()
        await apply_until(lambda: any(t.status == "resting" for t in port.by_cloid.values()))
        port.cancel(leg, lifecycle.CANCELLED, "replaced")
        port.start_requests()
        await apply_until(lambda: port.idle)

    desk, _ = run(fake, steps)
    assert closed(desk, 3) == (lifecycle.CANCELLED, "replaced")
    assert fake.wallet(ACCOUNT) == pytest.approx(10_000.0)


def test_a_market_leg_the_keeper_holds_is_settled_by_polling(fake: FakeOstium) -> None:
    fake.faults.keeper_hold = True

    async def steps(port: OrderManager, apply_until: Any) -> None:
        port.submit(leg_of(4, -0.5), 0)
        port.start_requests()
        await apply_until(lambda: any(t.status == "resting" for t in port.by_cloid.values()))
        polls = port.polls
        await apply_until(lambda: port.polls > polls + 2)  # polled, still pending
        assert not port.idle
        fake.run_keeper()
        await apply_until(lambda: port.idle)

    desk, _ = run(fake, steps)
    assert closed(desk, 4) == (lifecycle.FILLED, "")
    assert fake.position(ACCOUNT, "ETH") == pytest.approx(-0.5)


def test_a_refused_leg_is_rejected_with_the_contract_reason(fake: FakeOstium) -> None:
    fake.faults.reject = 1

    async def steps(port: OrderManager, apply_until: Any) -> None:
        port.submit(leg_of(5, 0.5), 0)
        port.start_requests()
        await apply_until(lambda: port.idle)

    desk, _ = run(fake, steps)
    assert closed(desk, 5) == (lifecycle.REJECTED, "execution reverted: BELOW_MIN_POS")


def test_a_leg_whose_reply_was_lost_is_found_and_booked_once(fake: FakeOstium) -> None:
    fake.faults.lost_reply = 1

    async def steps(port: OrderManager, apply_until: Any) -> None:
        port.submit(leg_of(6, 0.5), 0)
        port.start_requests()
        await apply_until(lambda: port.idle)

    desk, port = run(fake, steps)
    assert closed(desk, 6) == (lifecycle.FILLED, "")
    assert len([e for e in desk.events if e[0] == "fill"]) == 1
    assert any(u["status"] == "unresolved" for u in port.take_records().updates)
