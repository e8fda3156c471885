"""The Ostium adapter's real trader (``SdkTrader``) against a stand-in for the official SDK
(the real SDK is never installed in CI and no test touches a network). What this
exercises: our mapping of opens, closes and cancels onto the SDK's calls (3.x:
``perform_trade(params, at_price)`` returning ``{"receipt", "order_id"}``,
``close_trade(pair, index, price, percentage)``, ``cancel_limit_order(pair, index)``),
which failures are refusals, and building it from the environment. What it cannot: that
the SDK, the RPC, the subgraph and the keeper behave as documented."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from live.ostium.gateway import (
    OstiumConfig,
    OstiumGateway,
    OstiumUnavailable,
    SdkTrader,
    TradeRefused,
)
from live.ostium.venue import OstiumVenue

KEY = "0x" + "22" * 32


class FakeSDK:
    """The ``sdk.ostium`` calls the trader makes, recording what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.fail: Exception | None = None
        sdk = self

        class Client:
            slippage = 2.0

            def set_slippage_percentage(self, pct: float) -> None:
                self.slippage = pct

            def perform_trade(self, params: dict[str, Any], at_price: float) -> Any:
                if sdk.fail:
                    raise sdk.fail
                sdk.calls.append(("open", params, at_price, self.slippage))
                return {"receipt": {"logs": []}, "order_id": 41}

            def close_trade(self, pair: int, index: int, price: float, pct: float) -> Any:
                sdk.calls.append(("close", pair, index, price, pct, self.slippage))
                return {"receipt": {}, "order_id": 42}

            def cancel_limit_order(self, pair: int, index: int) -> Any:
                if sdk.fail:
                    raise sdk.fail
                sdk.calls.append(("cancel", pair, index))
                return {}

        self.ostium = Client()


def test_opens_and_closes_map_onto_the_sdk_calls() -> None:
    sdk = FakeSDK()
    trader = SdkTrader(sdk, "0x" + "ab" * 20)
    assert trader.open_trade(1, True, 200.0, 5.0, "MARKET", 2000.0, 0.5) == {
        "order_id": 41, "limit_index": None}
    assert sdk.calls[-1] == ("open", {"collateral": 200.0, "leverage": 5.0, "asset_type": 1,
                                      "direction": True, "order_type": "MARKET"}, 2000.0, 0.5)
    limit = trader.open_trade(0, False, 100.0, 10.0, "LIMIT", 65_000.0, 0.0)
    assert limit["limit_index"] is None  # not decodable from this receipt: found by fields
    assert sdk.calls[-1][1]["order_type"] == "LIMIT"
    assert trader.close_trade(1, 3, 2100.0, 25.0, 1.0) == {"order_id": 42}
    assert sdk.calls[-1] == ("close", 1, 3, 2100.0, 25.0, 1.0)
    trader.cancel_limit(0, 2)
    assert sdk.calls[-1] == ("cancel", 0, 2)


def test_a_revert_is_a_refusal_anything_else_is_unknown() -> None:
    sdk = FakeSDK()
    trader = SdkTrader(sdk, "0x" + "ab" * 20)
    sdk.fail = Exception("execution reverted: BELOW_MIN_POS\n\nRaise the collateral")
    with pytest.raises(TradeRefused, match=r"^execution reverted: BELOW_MIN_POS$"):
        trader.open_trade(1, True, 1.0, 5.0, "MARKET", 2000.0, 2.0)
    sdk.fail = TimeoutError("receipt not found in 120 s")
    with pytest.raises(TimeoutError):  # it may have landed: the cloid's lookup settles it
        trader.open_trade(1, True, 1.0, 5.0, "MARKET", 2000.0, 2.0)
    sdk.fail = Exception("execution reverted: NO_LIMIT")
    with pytest.raises(TradeRefused):
        trader.cancel_limit(1, 0)


def test_missing_sdk_or_environment_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ostium_python_sdk", None)  # import fails
    env = {"QUORUM_OSTIUM_PRIVATE_KEY": KEY, "QUORUM_OSTIUM_RPC_URL": "http://x"}
    with pytest.raises(OstiumUnavailable, match=r"pip install 'quorum-harness\[ostium\]'"):
        OstiumVenue.from_env("testnet", environ=env)
    with pytest.raises(ValueError, match="set QUORUM_OSTIUM_PRIVATE_KEY") as err:
        OstiumVenue.from_env("testnet", environ={"QUORUM_OSTIUM_RPC_URL": "http://x"})
    assert "22" * 8 not in str(err.value)


def test_from_env_builds_the_sdk_without_leaking_the_key(monkeypatch) -> None:
    built: dict[str, Any] = {}

    class Module:
        class NetworkConfig:
            @staticmethod
            def testnet() -> str:
                return "testnet-config"

            @staticmethod
            def mainnet() -> str:
                return "mainnet-config"

        @staticmethod
        def OstiumSDK(config: str, key: str, rpc: str) -> FakeSDK:  # the SDK class
            built.update(config=config, key=key, rpc=rpc)
            return FakeSDK()

    monkeypatch.setitem(sys.modules, "ostium_python_sdk", Module)
    venue = OstiumVenue.from_env("testnet", environ={"QUORUM_OSTIUM_PRIVATE_KEY": KEY,
                                                     "QUORUM_OSTIUM_RPC_URL": "http://rpc"})
    assert built == {"config": "testnet-config", "key": KEY, "rpc": "http://rpc"}
    assert venue.account.startswith("0x") and len(venue.account) == 42
    assert venue.config.rpc_url == "http://rpc" and venue.config.network == "testnet"
    assert venue.config.usdc.lower() == "0xe73b11fb1e3eeee8af2a23079a4410fe1b370548"
    for text in (repr(venue), repr(venue.gateway), repr(venue.gateway.trader)):
        assert "22" * 8 not in text


def test_config_checks_its_settings() -> None:
    with pytest.raises(ValueError, match="leverage must be >= 1"):
        OstiumConfig(leverage=0.5)
    with pytest.raises(ValueError, match="slippage_pct"):
        OstiumConfig(slippage_pct=-1)
    cfg = OstiumConfig.for_network("mainnet", base_url="http://127.0.0.1:9/")
    assert (cfg.subgraph_url, cfg.price_url, cfg.rpc_url) == (
        "http://127.0.0.1:9/subgraph", "http://127.0.0.1:9", "http://127.0.0.1:9/rpc")


def test_a_read_only_gateway_refuses_to_trade() -> None:
    import asyncio

    from live.ostium.wire import OstiumWireError

    async def go() -> None:
        gateway = OstiumGateway(OstiumConfig.for_network("testnet"), "0x" + "ab" * 20)
        with pytest.raises(OstiumWireError, match="read only"):
            await gateway.trade("cancel_limit", 0, 0)
        await gateway.aclose()

    asyncio.run(go())
