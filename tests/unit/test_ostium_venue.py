"""The Ostium adapter against a fake SDK object (the real SDK is never installed in CI and
no test touches a network). What this exercises: our mapping of pairs, prices, orders,
closes and open trades onto the SDK calls, and the error paths. What it cannot: that the
real SDK, RPC, subgraph and keeper behave as its documentation says."""

from __future__ import annotations

import asyncio
import sys

import pytest

from live.ostium.venue import OstiumTrade, OstiumUnavailable, OstiumVenue

ADDRESS = "0x" + "ab" * 20


class FakeSDK:
    """The handful of ``OstiumSDK`` calls the adapter makes, recording what it was asked."""

    def __init__(self) -> None:
        self.trades_sent: list[tuple[dict, float]] = []
        self.closes: list[tuple[int, int, float, float]] = []
        self.refuse: str | None = None
        self.open: list[dict] = []
        self.slippage = 2.0
        sdk = self

        class Subgraph:
            async def get_pairs(self):
                return [{"id": "0", "from": "BTC", "to": "USD"},
                        {"id": "1", "from": "ETH", "to": "USD"},
                        {"id": "5", "from": "EUR", "to": "GBP"}]

            async def get_open_trades(self, address):
                assert address == ADDRESS
                return sdk.open

        class Price:
            async def get_price(self, base, quote):
                return ({"BTC": 60_000.0, "ETH": 2_000.0}[base], True, False)

        class Trading:
            def set_slippage_percentage(self, pct):
                sdk.slippage = pct

            def perform_trade(self, params, at_price):
                if sdk.refuse:
                    raise ValueError(sdk.refuse)
                sdk.trades_sent.append((params, at_price))
                return {"transactionHash": bytes.fromhex("12" * 32)}

            def close_trade(self, pair_id, index, market_price, close_percentage=100):
                sdk.closes.append((pair_id, index, market_price, close_percentage))
                return {"transactionHash": "0x" + "34" * 32}

        self.subgraph, self.price, self.ostium = Subgraph(), Price(), Trading()


def venue(sdk: FakeSDK, **kw) -> OstiumVenue:
    v = OstiumVenue(sdk, ADDRESS, **kw)
    asyncio.run(v.load_markets())
    return v


def test_pairs_and_prices() -> None:
    v = venue(FakeSDK())
    assert sorted(v.pairs) == ["BTC", "ETH"]  # USD-quoted only
    assert v.pair("ETH").pair_id == 1
    assert asyncio.run(v.mids()) == {"BTC": 60_000.0, "ETH": 2_000.0}
    with pytest.raises(ValueError, match="unknown Ostium pair 'SOL'"):
        v.pair("SOL")


def test_market_order_becomes_collateral_and_leverage() -> None:
    sdk = FakeSDK()
    v = venue(sdk, leverage=10.0, slippage_pct=0.5)
    state = asyncio.run(v.market("ETH", True, 0.5))
    params, px = sdk.trades_sent[0]
    assert params == {"collateral": 100.0, "leverage": 10.0, "asset_type": 1,
                      "direction": True, "order_type": "MARKET"}  # 0.5 x 2000 / 10
    assert px == 2_000.0 and sdk.slippage == 0.5
    assert (state.status, state.venue_status, state.cloid) == ("resting", "pending", "12" * 32)
    short = asyncio.run(v.market("BTC", False, 0.01, reference_px=59_000.0))
    assert sdk.trades_sent[1][0]["direction"] is False
    assert sdk.trades_sent[1][0]["collateral"] == pytest.approx(0.01 * 59_000 / 10)
    assert short.status == "resting"


def test_refusals_are_rejections_with_the_message() -> None:
    sdk = FakeSDK()
    v = venue(sdk)
    sdk.refuse = "execution reverted: BELOW_MIN_POS"
    state = asyncio.run(v.market("ETH", True, 0.5))
    assert state.status == "rejected" and state.message == "execution reverted: BELOW_MIN_POS"
    assert asyncio.run(v.market("ETH", True, 0.0)).message.startswith("quorum: size 0.0")
    assert sdk.trades_sent == []


def test_open_trades_positions_and_close() -> None:
    sdk = FakeSDK()
    v = venue(sdk, leverage=5.0)
    sdk.open = [  # fixed point as the subgraph stores it
        {"pair": {"id": "1", "from": "ETH"}, "index": "0", "isBuy": True,
         "collateral": str(200 * 10**6), "leverage": "1000", "openPrice": str(2000 * 10**18)},
        {"pair": {"id": "1", "from": "ETH"}, "index": "2", "isBuy": False,
         "collateral": str(100 * 10**6), "leverage": "500", "openPrice": str(2500 * 10**18)},
    ]
    trades = asyncio.run(v.trades())
    assert trades[0] == OstiumTrade("ETH", 1, 0, True, 200.0, 10.0, 2000.0)
    assert trades[0].size == pytest.approx(1.0)  # 200 x 10 / 2000
    assert trades[1].size == pytest.approx(-0.2)  # 100 x 5 / 2500
    (pos,) = asyncio.run(v.positions())
    assert pos.coin == "ETH" and pos.size == pytest.approx(0.8)
    assert pos.entry_price == pytest.approx((1.0 * 2000 + 0.2 * 2500) / 1.2)
    state = asyncio.run(v.close(trades[1], fraction=0.5))
    assert sdk.closes == [(1, 2, 2_000.0, 50.0)]
    assert state.status == "resting" and state.size == pytest.approx(0.1)
    with pytest.raises(ValueError, match="fraction"):
        asyncio.run(v.close(trades[1], fraction=0))


def test_missing_sdk_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ostium_python_sdk", None)  # import fails
    env = {"QUORUM_OSTIUM_PRIVATE_KEY": "0x" + "22" * 32, "QUORUM_OSTIUM_RPC_URL": "http://x"}
    with pytest.raises(OstiumUnavailable, match=r"pip install 'quorum-harness\[ostium\]'"):
        OstiumVenue.from_env("testnet", environ=env)
    with pytest.raises(ValueError, match="set QUORUM_OSTIUM_PRIVATE_KEY") as err:
        OstiumVenue.from_env("testnet", environ={"QUORUM_OSTIUM_RPC_URL": "http://x"})
    assert "22" * 8 not in str(err.value)


def test_from_env_builds_the_sdk_without_leaking_the_key(monkeypatch) -> None:
    built = {}

    class Module:
        class NetworkConfig:
            @staticmethod
            def testnet():
                return "testnet-config"

            @staticmethod
            def mainnet():
                return "mainnet-config"

        @staticmethod
        def OstiumSDK(config, key, rpc):  # the SDK class, as a factory
            built.update(config=config, key=key, rpc=rpc)
            return FakeSDK()

    monkeypatch.setitem(sys.modules, "ostium_python_sdk", Module)
    key = "0x" + "22" * 32
    v = OstiumVenue.from_env("testnet", environ={"QUORUM_OSTIUM_PRIVATE_KEY": key,
                                                 "QUORUM_OSTIUM_RPC_URL": "http://rpc"})
    assert built == {"config": "testnet-config", "key": key, "rpc": "http://rpc"}
    assert v.account.startswith("0x") and "22" * 8 not in repr(v)
