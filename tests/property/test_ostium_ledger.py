"""What the Ostium adapter reports explains the account, whatever was traded, at any scale.

Random sequences of market orders (opens, closes, flips, reduce-only), limits and stops,
cancels, oracle moves and funding/rollover accrual (then closed flat, or not), on
the fake Ostium, with prices from
1e-6 to 1e6 and deposits from 1e3 to 1e9 USDC. Booking only what the adapter reported
the way the live core books it (each fill: cash -= size x price + fee; each funding
payment: cash += usdc; equity = cash + position x mark) must give:

* the adapter's account value (and the fake's own figure): no cash created from nothing,
  none lost (Ostium's collateral, fees, PnL, funding and rollover all accounted);
* the fake's position, per coin: the sum of the fills;
* every fill once (trade ids unique), every order the adapter sent in a terminal or
  resting state it can name.

Tolerance: the subgraph stores USDC with 6 decimals, so each reported amount may be off
by 5e-7; the bound is 1e-6 per operation plus 1e-9 of the account.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from live.venue_types import OrderRequest
from tests.fakes.ostium import FakeOstium

COIN = "ETH"
_accounts = itertools.count(1)

step = st.one_of(
    st.tuples(st.just("market"), st.booleans(), st.floats(0.0, 1.0), st.booleans()),
    st.tuples(st.just("limit"), st.booleans(), st.floats(0.0, 1.0), st.floats(-0.05, 0.05)),
    st.tuples(st.just("stop"), st.booleans(), st.floats(0.0, 1.0), st.floats(0.0, 0.05)),
    st.tuples(st.just("move"), st.floats(0.9, 1.1)),
    st.tuples(st.just("accrue"), st.floats(-0.002, 0.002), st.floats(1e-5, 1e-3)),
    st.just(("cancel",)),
)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOstium]:
    """One server for every example: each trades its own account."""
    server = FakeOstium(pairs=(("ETH", 1, 50.0, 5.0),)).start()
    yield server
    server.stop()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(price=st.floats(1e-6, 1e6), deposit=st.floats(1e3, 1e9),
       steps=st.lists(step, min_size=1, max_size=10), flatten=st.booleans())
@example(price=2000.0, deposit=10_000.0, flatten=True, steps=[
    ("market", True, 0.5, False), ("accrue", 0.001, 0.0005), ("move", 1.05),
    ("market", False, 0.2, False), ("accrue", -0.001, 0.0002)])
@example(price=1e-6, deposit=1e9, flatten=True, steps=[
    ("limit", False, 0.3, 0.02), ("move", 1.03), ("accrue", 0.002, 0.001),
    ("stop", True, 0.1, 0.01), ("move", 0.95), ("market", True, 0.9, False)])
def test_reported_fills_and_funding_explain_the_account(
        fake: FakeOstium, price: float, deposit: float, steps: list[tuple],
        flatten: bool) -> None:
    asyncio.run(asyncio.wait_for(_session(fake, price, deposit, steps, flatten), 60))


async def _session(fake: FakeOstium, price: float, deposit: float, steps: list[tuple],
                   flatten: bool) -> None:
    address = "0x" + f"{next(_accounts):040x}"
    fake.open_account(address, deposit)
    fake.set_price(COIN, price)
    venue = fake.venue(address)
    await venue.load_markets()
    sent = []
    try:
        for n, s in enumerate(steps):
            mid = fake.prices[COIN]
            cloid = "0x" + f"{n + 1:032x}"
            if s[0] in ("market", "limit", "stop"):
                # an order of 0..40% of the account's notional capacity at 5x
                size = max(s[2], 0.01) * deposit * 2.0 / mid
                if s[0] == "market":
                    req = OrderRequest(COIN, s[1], size, "market", mid, cloid,
                                       reduce_only=s[3])
                elif s[0] == "limit":
                    req = OrderRequest(COIN, s[1], size, "limit", mid * (1 + s[3]), cloid)
                else:
                    level = mid * (1 + s[3] if s[1] else 1 - s[3])
                    req = OrderRequest(COIN, s[1], size, "trigger", level, cloid,
                                       trigger="sl")
                placed = await venue.place(venue.prepare(req))
                sent.append((cloid, placed.status))
            elif s[0] == "move":
                fake.set_price(COIN, mid * s[1])
            elif s[0] == "accrue":
                fake.accrue(COIN, s[1], s[2])
            else:
                for order in await venue.open_orders():
                    await venue.cancel(COIN, order.oid)
        if flatten and (held := sum(p.size for p in await venue.positions())):
            # a close settles what the trades accrued
            await venue.place(venue.prepare(OrderRequest(
                COIN, held < 0, abs(held), "market", fake.prices[COIN], "0x" + "f" * 32,
                reduce_only=True)))
        fills = await venue.fills()
        funding = await venue.funding(0)
        state = await venue.account_state()
        later = [(await venue.order_state(c), status) for c, status in sent]
    finally:
        await venue.aclose()

    assert max(Counter(f.tid for f in fills).values(), default=1) == 1
    position = sum(f.size for f in fills)
    cash = deposit - sum(f.size * f.price + f.fee for f in fills) + sum(
        p.usdc for p in funding)
    mark = fake.prices[COIN]
    equity = cash + position * mark
    tolerance = 1e-6 * (len(steps) * 4 + 2) + 1e-9 * deposit
    assert math.isclose(state.account_value, equity, rel_tol=1e-9, abs_tol=tolerance), (
        state.account_value, equity)
    assert math.isclose(fake.account_value(address), equity, rel_tol=1e-9,
                        abs_tol=tolerance)
    held = sum(p.size for p in state.positions)
    assert math.isclose(held, fake.position(address, COIN), rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(position, held, rel_tol=1e-9, abs_tol=1e-9 * abs(held) + 1e-12)
    for now, at_placing in later:  # a refused order is unknown; the rest name their state
        if at_placing == "rejected":
            assert now is None
        else:
            assert now is not None and now.status in ("resting", "filled", "canceled")
