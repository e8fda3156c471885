"""The Ostium adapter on the fake Ostium: what each neutral order becomes (opens, closes,
limits, stops), what it costs, and how the account reads.

Expected figures are computed here from the fake's documented model: units = collateral x
leverage / execution price, collateral = size x reference / leverage (floored to USDC's
6 decimals), opening fee = 10 bps of collateral x leverage plus a 0.10 USDC oracle fee,
a close pays the oracle fee."""

from __future__ import annotations

import math

import pytest

from live.ostium.venue import OstiumVenue
from live.venue_types import CANCELED, FILLED, REJECTED, RESTING, OrderRequest
from tests.fakes.ostium import FakeOstium

from .conftest import ACCOUNT, DEPOSIT, cloid, place, run, status_of

ORACLE_FEE = 0.1


def test_a_market_buy_opens_a_trade_at_the_ask_with_its_fees(fake: FakeOstium) -> None:
    fake.spread = 0.0005  # ask = 2001

    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        collateral = 0.5 * 2000.0 / 5  # 200 USDC at 5x
        units = collateral * 5 / 2001.0
        assert state.status == FILLED and state.oid is not None
        assert state.filled_size == pytest.approx(units, rel=1e-12)
        assert state.avg_price == pytest.approx(2001.0)
        (fill,) = await venue.fills()
        assert (fill.cloid, fill.oid, fill.coin) == (cloid(1), state.oid, "ETH")
        assert fill.size == pytest.approx(units, rel=1e-12) and fill.price == pytest.approx(2001)
        assert fill.fee == pytest.approx(collateral * 5 * 0.001 + ORACLE_FEE, abs=1e-6)
        (pos,) = await venue.positions()
        assert pos.size == pytest.approx(units, rel=1e-12)
        assert pos.entry_price == pytest.approx(2001.0)
        assert pos.unrealized_pnl == pytest.approx((2000.0 - 2001.0) * units, rel=1e-9)
        assert fake.wallet(ACCOUNT) == pytest.approx(DEPOSIT - collateral)
        assert await venue.account_value() == pytest.approx(
            DEPOSIT - fill.fee + pos.unrealized_pnl, abs=1e-6)

    run(fake, check)


def test_a_sale_against_a_long_closes_trades_oldest_first(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 1.0, "market", 2000.0, 1)
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 2)
        fake.set_price("ETH", 2100.0)
        state = await place(venue, "ETH", False, 1.25, "market", 2100.0, 3)
        assert state.status == FILLED
        assert state.filled_size == pytest.approx(1.25, rel=1e-9)
        trades = await venue._trades()
        assert [(t.index, round(t.units, 9)) for t in trades] == [(1, 0.25)]  # first closed
        (pos,) = await venue.positions()
        assert pos.size == pytest.approx(0.25, rel=1e-9)
        sells = [f for f in await venue.fills() if f.cloid == cloid(3)]
        assert len(sells) == 2 and sum(f.size for f in sells) == pytest.approx(-1.25)
        assert all(f.fee == pytest.approx(ORACLE_FEE) for f in sells)
        assert {f.oid for f in sells} == {state.oid}  # one neutral order, two keeper orders

    run(fake, check)


def test_a_sale_beyond_the_long_flips_it_short(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        state = await place(venue, "ETH", False, 1.5, "market", 2000.0, 2)
        assert state.status == FILLED and state.filled_size == pytest.approx(1.5)
        (pos,) = await venue.positions()
        assert pos.size == pytest.approx(-1.0, rel=1e-9)
        assert fake.position(ACCOUNT, "ETH") == pytest.approx(-1.0, rel=1e-9)

    run(fake, check)


def test_reduce_only_never_opens(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        nothing = await place(venue, "ETH", False, 0.5, "market", 2000.0, 1,
                              reduce_only=True)
        assert nothing.status == REJECTED and "no ETH position" in (nothing.message or "")
        await place(venue, "ETH", True, 0.5, "market", 2000.0, 2)
        state = await place(venue, "ETH", False, 2.0, "market", 2000.0, 3, reduce_only=True)
        assert state.status == CANCELED and state.filled_size == pytest.approx(0.5)
        assert "reduce-only: the rest (1.5) would open a trade" in (state.message or "")
        assert await venue.positions() == []

    run(fake, check)


def test_what_ostium_cannot_take_is_refused_before_sending(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        cases = [
            OrderRequest("ETH", False, 0.5, "trigger", 1900.0, cloid(1), trigger="sl",
                         reduce_only=True),  # a bracket's stop: set on the trade at Ostium
            OrderRequest("ETH", False, 0.5, "limit", 2100.0, cloid(2), reduce_only=True),
            OrderRequest("SOL", True, 1.0, "market", 150.0, cloid(3)),  # not listed
            OrderRequest("ETH", True, 0.001, "market", 2000.0, cloid(4)),  # 2 USDC < 5
            OrderRequest("ETH", True, math.nan, "market", 2000.0, cloid(5)),
        ]
        for request in cases:
            prepared = venue.prepare(request)
            assert prepared.rejection and prepared.rejection.startswith("quorum:"), request
            assert (await venue.place(prepared)).status == REJECTED
        assert fake.requests.get("chain", 0) == 0

    run(fake, check)


def test_order_kinds_map_to_ostium_opens() -> None:
    venue = OstiumVenue.__new__(OstiumVenue)
    from live.ostium.gateway import OstiumConfig
    from live.ostium.wire import OstiumPair

    venue.config = OstiumConfig(slippage_pct=1.5)
    venue.pairs = {"ETH": OstiumPair("ETH", 1, 50.0, 5.0)}
    c = cloid(1)
    shapes = {
        OrderRequest("ETH", True, 1.0, "market", 2000.0, c): ("MARKET", 1.5),
        OrderRequest("ETH", True, 1.0, "limit", 1990.0, c): ("LIMIT", 0.0),
        OrderRequest("ETH", True, 1.0, "limit", 1990.0, c, tif="alo"): ("LIMIT", 0.0),
        OrderRequest("ETH", True, 1.0, "limit", 2010.0, c, tif="ioc"): ("MARKET", 0.0),
        OrderRequest("ETH", True, 1.0, "trigger", 2100.0, c, trigger="sl"): ("STOP", 0.0),
        OrderRequest("ETH", False, 1.0, "trigger", 2100.0, c, trigger="tp"): ("LIMIT", 0.0),
    }
    for request, (kind, slip) in shapes.items():
        p = venue.prepare(request)
        assert (p.kind, p.slippage_pct, p.rejection) == (kind, slip, None), request
        assert (p.size, p.price, p.is_buy, p.cloid) == (request.size, request.price,
                                                        request.is_buy, c)


def test_a_limit_rests_then_executes_when_the_oracle_crosses_it(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", True, 0.5, "limit", 1900.0, 1)
        assert state.status == RESTING and state.venue_status == "open"
        assert fake.wallet(ACCOUNT) == pytest.approx(DEPOSIT - 0.5 * 1900 / 5)
        assert await venue.account_value() == pytest.approx(DEPOSIT)  # collateral held
        fake.set_price("ETH", 1950.0)
        assert await status_of(venue, 1) == RESTING
        fake.set_price("ETH", 1890.0)
        done = await venue.order_state(cloid(1))
        assert done is not None and done.status == FILLED and done.oid == state.oid
        assert done.avg_price == pytest.approx(1890.0)
        assert done.filled_size == pytest.approx(0.5 * 1900 / 1890, rel=1e-9)
        (fill,) = await venue.fills()
        assert fill.cloid == cloid(1) and fill.oid == state.oid
        assert await venue.open_orders() == []

    run(fake, check)


def test_a_stop_entry_opens_once_the_price_rises_through_it(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", True, 0.5, "trigger", 2100.0, 1, trigger="sl")
        assert state.status == RESTING
        fake.set_price("ETH", 2050.0)
        assert await status_of(venue, 1) == RESTING
        fake.set_price("ETH", 2110.0)
        assert await status_of(venue, 1) == FILLED
        (pos,) = await venue.positions()
        assert pos.size > 0 and pos.entry_price == pytest.approx(2110.0)

    run(fake, check)


def test_an_ioc_limit_the_market_passed_is_canceled_by_the_keeper(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", True, 0.5, "limit", 1990.0, 1, tif="ioc")
        assert state.status == CANCELED and state.message == "SLIPPAGE"
        assert state.filled_size == 0.0
        assert fake.wallet(ACCOUNT) == pytest.approx(DEPOSIT)  # collateral refunded
        assert await venue.fills() == [] and await venue.positions() == []

    run(fake, check)


def test_a_closed_market_cancels_a_market_order(fake: FakeOstium) -> None:
    fake.set_price("EUR", 1.1, market_open=False)

    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "EUR", True, 100.0, "market", 1.1, 1)
        assert state.status == CANCELED and state.message == "MARKET_CLOSED"

    run(fake, check)


def test_a_market_order_pending_at_the_keeper(fake: FakeOstium) -> None:
    fake.faults.keeper_hold = True

    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", True, 0.5, "market", 2000.0, 1)
        assert state.status == RESTING and state.venue_status == "pending"
        after = await venue.cancel_by_cloid("ETH", cloid(1))
        assert after.status == RESTING and "cannot be canceled" in (after.message or "")
        fake.run_keeper()
        assert await status_of(venue, 1) == FILLED

    run(fake, check)


def test_a_limit_canceled_returns_its_collateral(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        state = await place(venue, "ETH", False, 0.5, "limit", 2200.0, 1)
        (listed,) = await venue.open_orders()
        assert (listed.oid, listed.cloid, listed.size) == (state.oid, cloid(1),
                                                           pytest.approx(-0.5))
        canceled = await venue.cancel_by_cloid("ETH", cloid(1))
        assert canceled.status == CANCELED
        assert fake.wallet(ACCOUNT) == pytest.approx(DEPOSIT)
        # a second cancel finds nothing resting: the state stays canceled
        assert (await venue.cancel_by_cloid("ETH", cloid(1))).status == CANCELED

    run(fake, check)


def test_a_foreign_limit_is_canceled_by_its_neutral_id(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        other = fake.venue(ACCOUNT)  # another client of the same account
        await other.load_markets()
        await place(other, "ETH", True, 0.5, "limit", 1800.0, 9)
        await other.aclose()
        (listed,) = await venue.open_orders()
        assert listed.cloid is None  # this client did not send it
        state = await venue.cancel("ETH", listed.oid)
        assert state.status == CANCELED and await venue.open_orders() == []
        refused = await venue.cancel("ETH", 7_000)  # a keeper order id
        assert refused.status == REJECTED

    run(fake, check)


def test_funding_and_rollover_are_paid_when_the_trade_closes(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", True, 1.0, "market", 2000.0, 1)
        fake.accrue("ETH", funding_rate=0.001, rollover_rate=0.0002)  # 2.0 + 0.4 USDC
        before = await venue.account_value()
        assert await venue.accrued() == {"ETH": pytest.approx(2.4)}
        assert await venue.funding(0) == []  # accrued, not settled
        assert fake.account_value(ACCOUNT, settled=False) == pytest.approx(before - 2.4)
        await place(venue, "ETH", False, 0.25, "market", 2000.0, 2)
        (pay,) = await venue.funding(0)
        assert pay.usdc == pytest.approx(-0.6) and pay.szi == pytest.approx(0.25)
        assert pay.usdc == pytest.approx(-pay.rate * pay.szi * 2000.0)
        assert await venue.accrued() == {"ETH": pytest.approx(1.8)}
        assert await venue.account_value() == pytest.approx(before - 0.6 - ORACLE_FEE)
        assert await venue.account_value() == pytest.approx(fake.account_value(ACCOUNT))

    run(fake, check)


def test_a_short_receives_funding_a_long_pays(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        await place(venue, "ETH", False, 1.0, "market", 2000.0, 1)
        fake.accrue("ETH", funding_rate=0.001)
        await place(venue, "ETH", True, 1.0, "market", 2000.0, 2, reduce_only=True)
        (pay,) = await venue.funding(0)
        assert pay.usdc == pytest.approx(2.0) and pay.szi == pytest.approx(-1.0)
        assert pay.rate == pytest.approx(0.001)

    run(fake, check)


def test_fills_are_read_from_a_cursor_across_pages(fake: FakeOstium, monkeypatch) -> None:
    import live.ostium.venue as module

    monkeypatch.setattr(module, "PAGE", 2)
    clock = iter(range(1_000, 2_000))
    fake.now_s = lambda: next(clock)

    async def check(venue: OstiumVenue) -> None:
        for n in range(5):
            await place(venue, "ETH", n % 2 == 0, 0.5, "market", 2000.0, n + 1)
        fills = await venue.fills()
        assert len(fills) == 5 and len({f.tid for f in fills}) == 5
        assert [f.time_ms for f in fills] == sorted(f.time_ms for f in fills)
        third = fills[2].time_ms
        assert [f.tid for f in await venue.fills(since_ms=third)] == [
            f.tid for f in fills[2:]]
        assert await venue.fills(since_ms=fills[-1].time_ms + 1) == []

    run(fake, check)


def test_instrument_is_the_pair_rules(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        inst = venue.instrument("ETH", "ost", "ETH-USD")
        assert (inst.tick, inst.lot, inst.min_notional, inst.max_leverage) == (
            0.0, 0.0, 5.0, 50.0)
        with pytest.raises(ValueError, match="unknown Ostium pair 'SOL'"):
            venue.instrument("SOL", "ost", "SOL-USD")

    run(fake, check)


def test_leverage_above_the_pair_maximum_is_refused(fake: FakeOstium) -> None:
    async def check(venue: OstiumVenue) -> None:
        p = venue.prepare(OrderRequest("ETH", True, 1.0, "market", 2000.0, cloid(1)))
        assert p.rejection is not None and "above ETH's maximum 50" in p.rejection

    run(fake, check, leverage=60.0)
