"""The adapter against the fake server, no faults: market data, every order type, cancels,
leverage, account state, and the venue's rules arriving as rejections with its message."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from live.hyperliquid.config import Credentials
from live.hyperliquid.errors import VenueRejected
from live.hyperliquid.signing import Signature, Signer, recover_l1_signer
from live.hyperliquid.venue import CANCELED, FILLED, REJECTED, RESTING
from live.hyperliquid.wire import limit_type, order_action, order_wire
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import KEY, open_venue


def run(coro):
    return asyncio.run(coro)


def test_market_data(fake: FakeHyperliquid) -> None:
    fake.push_candle("ETH", "1m", {"t": 60_000, "T": 119_999, "s": "ETH", "i": "1m",
                                   "o": "2000", "h": "2010", "l": "1990", "c": "2005",
                                   "v": "12.5", "n": 3})

    async def go():
        async with await open_venue(fake) as venue:
            assert venue.assets["ETH"].sz_decimals == 4 and venue.assets["ETH"].index == 1
            assert venue.assets["BTC"].max_leverage == 40
            mids = await venue.mids()
            assert mids["ETH"] == 2000.0 and mids["BTC"] == 60000.0
            bids, asks = await venue.l2_book("ETH")
            assert bids[0] == (1999.0, 5.0) and asks == [(2001.0, 1.0), (2002.0, 5.0)]
            (bar,) = await venue.candles("ETH", "1m", 0, 200_000)
            assert (bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
                60_000_000_000, 2000.0, 2010.0, 1990.0, 2005.0, 12.5)

    run(go())


def test_gtc_rests_and_cancels_by_oid_and_cloid(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            a = await venue.limit("ETH", True, 0.5, 1990.0)
            assert a.status == RESTING and a.oid is not None and not a.done
            b = await venue.limit("ETH", False, 0.5, 2100.0, cloid="0x" + "07" * 16)
            assert b.status == RESTING and b.cloid == "0x" + "07" * 16
            assert len(await venue.open_orders()) == 2
            got = await venue.cancel("ETH", a.oid)
            assert got.status == CANCELED and got.oid == a.oid
            got = await venue.cancel_by_cloid("ETH", b.cloid)
            assert got.status == CANCELED and got.cloid == b.cloid
            assert await venue.open_orders() == []
            again = await venue.cancel("ETH", a.oid)  # already canceled: the venue says so
            assert again.status == CANCELED
            assert again.message and "already canceled" in again.message

    run(go())


def test_market_ioc_fills_within_the_slippage_bound(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            # bound 2000 * 1.0011 = 2002.2: 1 @ 2001 and 2 @ 2002
            state = await venue.market("ETH", True, 3.0, slippage=0.0011)
            assert state.status == FILLED and state.filled_size == 3.0
            assert state.avg_price == pytest.approx((2001 + 2 * 2002) / 3, rel=1e-12)
            (pos,) = await venue.positions()
            assert pos.coin == "ETH" and pos.size == 3.0
            fills = await venue.fills()
            assert sorted(f.price for f in fills) == [2001.0, 2002.0]
            assert sum(f.size for f in fills) == 3.0
            assert {f.cloid for f in fills} == {state.cloid}
            # 2000 * 1.001 is 2001.9999999999998: rounded inward to 2001.9, never past the
            # bound, and nothing is left at or below it
            none = await venue.market("ETH", True, 1.0, slippage=0.001, reference_px=2000.0)
            assert none.status == REJECTED
            assert none.message.startswith("Order could not immediately match")

    run(go())


def test_partial_ioc_reports_filled_size_and_cancels_the_rest(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            state = await venue.limit("ETH", True, 2.0, 2001.0, tif="Ioc")
            assert state.status == CANCELED and state.filled_size == 1.0
            assert state.avg_price == 2001.0

    run(go())


def test_venue_rules_come_back_as_rejections_with_its_message(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            alo = await venue.limit("ETH", True, 0.1, 2001.0, tif="Alo")
            assert alo.status == REJECTED
            assert alo.message.startswith("Post only order would have immediately matched")
            ro = await venue.limit("ETH", False, 0.1, 2100.0, reduce_only=True)
            assert ro.status == REJECTED and "Reduce only order would increase" in ro.message
            small = await venue.limit("ETH", True, 0.001, 1000.0)
            assert small.status == REJECTED and small.message.startswith("quorum: order value")
            zero = await venue.limit("BTC", True, 0.000001, 60000.0)
            assert zero.status == REJECTED and "rounds to 0" in zero.message
            with pytest.raises(VenueRejected, match=r"outside 1\.\.25"):
                await venue.set_leverage("ETH", 50)
            await venue.set_leverage("ETH", 5, cross=False)
            assert fake.accounts[venue.account].leverage["ETH"] == (5, False)

    run(go())


def raw_order(px: str, sz: str, reduce_only: bool = False) -> dict:
    return order_action([order_wire(1, True, px, sz, reduce_only, limit_type("Gtc"), None)])


@pytest.mark.parametrize(("px", "sz", "message"), [
    ("1999.123", "0.1", "Price must be divisible by tick size."),     # 3 decimals > 2
    ("1999.5", "0.12345", "Order has invalid size."),                 # 5 decimals > 4
    ("1000", "0.005", "Order must have minimum value of $10."),
])
def test_the_server_enforces_tick_lot_and_minimum_itself(fake, px, sz, message) -> None:
    """Bypassing the client's own checks: the fake refuses, with the venue's wording."""
    async def go():
        async with await open_venue(fake) as venue:
            reply = await venue.rest.exchange(raw_order(px, sz))
            (status,) = reply["response"]["data"]["statuses"]
            assert status["error"].startswith(message)

    run(go())


def test_triggers_fire_when_the_mark_crosses(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            await venue.market("ETH", True, 1.0, slippage=0.01)
            sl = await venue.trigger("ETH", False, 1.0, 1950.0, "sl")
            assert sl.status == RESTING
            tp = await venue.trigger("ETH", False, 1.0, 2100.0, "tp")
            fake.set_mark("ETH", 1960.0)
            assert (await venue.order_state(sl.cloid)).status == RESTING
            fake.set_mark("ETH", 1949.0)  # stop fires: a market sell into the bids
            fired = await venue.order_state(sl.cloid)
            # the same order (oid, cloid) went triggered, then filled; its fill names it
            assert (fired.status, fired.oid, fired.filled_size) == (FILLED, sl.oid, 1.0)
            statuses = [status for oid, status in fake.order_log if oid == sl.oid]
            assert statuses == ["open", "triggered", "filled"]
            (fill,) = [f for f in await venue.fills() if f.oid == sl.oid]
            assert (fill.cloid, fill.size, fill.price) == (sl.cloid, -1.0, 1999.0)
            assert await venue.positions() == []
            assert (await venue.order_state(tp.cloid)).status == RESTING

    run(go())


def test_signature_network_nonce_and_agent_rules(fake: FakeHyperliquid) -> None:
    async def go():
        async with await open_venue(fake) as venue:
            body = venue.rest.signed_body(raw_order("1990", "0.1"))
            async with httpx.AsyncClient(base_url=fake.base_url) as http:
                first = (await http.post("/exchange", content=body)).json()
                assert first["status"] == "ok"
                again = (await http.post("/exchange", content=body)).json()
                assert again == {"status": "err", "response": "Invalid nonce: duplicate nonce"}
                tampered = json.loads(body)
                tampered["action"]["orders"][0]["s"] = "0.2"  # signed 0.1: someone else signed
                refused = (await http.post("/exchange", json=tampered)).json()
                assert refused["status"] == "err" and "does not exist" in refused["response"]
        # a mainnet signature recovers to a different address on testnet
        main = Signer(KEY, mainnet=True)
        nonce = 1_700_000_000_000 + 10**9
        sig = main.sign_l1_action(raw_order("1990", "0.1"), nonce)
        async with httpx.AsyncClient(base_url=fake.base_url) as http:
            fake.now_ms = lambda: nonce
            reply = (await http.post("/exchange", json={
                "action": raw_order("1990", "0.1"), "nonce": nonce,
                "signature": sig.to_wire()})).json()
            assert reply["status"] == "err" and "does not exist" in reply["response"]
        # an API wallet approved for the account trades for it
        agent = Signer("0x" + "22" * 32, mainnet=False)
        fake.now_ms = lambda: 1_700_000_000_000 + 2 * 10**9
        fake.approve_agent(agent.address, Signer(KEY, mainnet=False).address)
        venue = await open_venue(fake, key="0x" + "22" * 32)
        venue.credentials = Credentials(agent, account=Signer(KEY, mainnet=False).address)
        venue.rest.credentials = venue.credentials
        venue.rest.nonces._now_ms = fake.now_ms
        state = await venue.limit("ETH", True, 0.1, 1990.0)
        assert state.status == RESTING
        assert fake.orders[state.oid].user == Signer(KEY, mainnet=False).address
        await venue.aclose()

    run(go())


def test_the_key_never_shows_in_reprs_or_logs(fake: FakeHyperliquid, caplog) -> None:
    caplog.set_level("DEBUG")
    fake.faults.http_429 = 1

    async def go():
        venue = await open_venue(fake)
        await venue.limit("ETH", True, 0.1, 1990.0)
        texts = [repr(venue), str(venue), repr(venue.rest), repr(venue.credentials),
                 repr(venue.credentials.signer), caplog.text]
        await venue.aclose()
        return texts

    texts = run(go())
    assert "429" in texts[-1]  # something was logged
    for text in texts:
        assert KEY.removeprefix("0x") not in text.lower()


def test_a_rehearsal_signs_and_encodes_an_order_and_sends_nothing(fake: FakeHyperliquid) -> None:
    """``rest.rehearse`` (the port's dry run between market events) runs the real signing
    and encoding but uses up no nonce, no rate-limit weight, and reaches no server."""
    async def go():
        async with await open_venue(fake) as venue:
            rest = venue.rest
            await rest.warm()
            prepared = venue.prepare_market("ETH", True, 0.5, 2000.0)
            before = (rest.nonces.last, rest.limiter.spent, len(fake.actions_run))
            raw = rest.rehearse(prepared.action)
            head, body = raw.split(b"\r\n\r\n", 1)
            assert head.startswith(b"POST /exchange HTTP/1.1\r\n")
            assert b"content-length: %d" % len(body) in head.lower()
            payload = json.loads(body)
            assert payload["nonce"] == 0 and payload["action"] == prepared.action
            signer = recover_l1_signer(payload["action"],
                                       Signature.from_wire(payload["signature"]), 0,
                                       mainnet=False)
            assert signer == rest.credentials.signer.address
            await asyncio.sleep(0.05)
            assert (rest.nonces.last, rest.limiter.spent, len(fake.actions_run)) == before
            state = await venue.place(prepared)  # the real one still goes, once
            assert state.status == FILLED and len(fake.actions_run) == before[2] + 1

    run(go())


def test_an_order_the_account_cannot_margin_is_rejected_with_the_venues_message(
        fake: FakeHyperliquid) -> None:
    """Cross margin as at Hyperliquid: a position's initial margin is size x mark /
    leverage, a resting order that would add to it reserves size x price / leverage, and
    an order adding exposure beyond what is left is refused ("Insufficient margin to
    place order."); an order that only reduces is never refused for margin."""
    account = Credentials(Signer(KEY, mainnet=False)).account

    async def go():
        async with await open_venue(fake) as venue:
            # 10,000 USDC at the default 20x: 100 ETH at the 5% bound (2100) needs 10,500
            big = await venue.market("ETH", True, 100.0)
            assert big.status == REJECTED
            assert big.message == "Insufficient margin to place order. asset=1"
            await venue.set_leverage("ETH", 1)
            rest = await venue.limit("ETH", True, 4.0, 1990.0)  # reserves 7,960 at 1x
            assert rest.status == RESTING
            state = await venue.account_state()
            assert state.account_value == 10_000.0
            over = await venue.market("ETH", True, 2.0)  # 2 x 2100 > 10,000 - 7,960
            assert over.status == REJECTED and over.message.startswith("Insufficient margin")
            await venue.cancel("ETH", rest.oid)
            two = await venue.market("ETH", True, 2.0)  # 4,200 of 10,000: fills
            assert two.status == FILLED and two.filled_size == 2.0
            summary = (await venue.rest.info({"type": "clearinghouseState",
                                              "user": account}))["marginSummary"]
            mark = (1999.0 + 2002.0) / 2  # the book's mid after the fills
            assert float(summary["totalMarginUsed"]) == pytest.approx(2 * mark)
            with fake.lock:  # most of the USDC withdrawn: the position is under-margined
                fake.accounts[account].raw_usd -= 9_000
            add = await venue.market("ETH", True, 0.01)
            assert add.status == REJECTED and "Insufficient margin" in add.message
            flip = await venue.market("ETH", False, 5.0)  # closes 2, would open 3 short
            assert flip.status == REJECTED and "Insufficient margin" in flip.message
            cut = await venue.market("ETH", False, 1.5)  # only reduces: never refused
            assert cut.status == FILLED and cut.filled_size == 1.5
            assert fake.position(account, "ETH") == 0.5

    run(go())
