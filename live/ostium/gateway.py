"""Ostium's I/O: reads over HTTP, writes through a ``Trader`` (the SDK's signed transactions).

Reads need no key: the subgraph (GraphQL over HTTP POST), the price service (HTTP GET)
and the chain's JSON-RPC (``eth_call`` of USDC's ``balanceOf``), each with a timeout.
Writes are transactions to Ostium's trading contract; the official ``ostium-python-sdk``
signs and sends them (``SdkTrader``, optional: ``pip install 'quorum-harness[ostium]'``,
imported only when built). A transaction that reverted is a definite refusal (``TradeRefused``);
any other failure leaves the outcome unknown and is raised as it is.

Credentials from the environment only, never logged or stored:
``QUORUM_OSTIUM_PRIVATE_KEY`` (the trader's key) and ``QUORUM_OSTIUM_RPC_URL``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx

from live.ostium.wire import PRICES_PATH, OstiumWireError

ENV_PRIVATE_KEY = "QUORUM_OSTIUM_PRIVATE_KEY"
ENV_RPC_URL = "QUORUM_OSTIUM_RPC_URL"

# Public endpoints and contracts, as the SDK's ``NetworkConfig`` (3.x) names them.
_PRICE_URL = "https://metadata-backend.prod.bedrock.ostium.io"
_NETWORKS = {
    "mainnet": ("https://api.subgraph.ormilabs.com/api/public/67a599d5-c8d2-4cc4-9c4d-"
                "2975a97bc5d8/subgraphs/ost-prod/live/gn",
                "0xaf88d065e77c8cC2239327C5EDb3A432268e5831"),
    "testnet": ("https://api.subgraph.ormilabs.com/api/public/67a599d5-c8d2-4cc4-9c4d-"
                "2975a97bc5d8/subgraphs/ost-sep/live/gn",
                "0xe73B11Fb1e3eeEe8AF2a23079A4410Fe1B370548"),
}


class OstiumUnavailable(ImportError):
    """The optional SDK is not installed."""


class TradeRefused(Exception):
    """The trading contract refused the transaction (it reverted): nothing happened."""


@dataclass(frozen=True, slots=True)
class OstiumConfig:
    """Where an Ostium account is read and traded. ``base_url`` (a fake Ostium, or a
    proxy) replaces all three read endpoints: ``/subgraph``, the price service's path,
    ``/rpc``."""

    network: Literal["mainnet", "testnet"] = "mainnet"
    subgraph_url: str = ""
    price_url: str = _PRICE_URL
    rpc_url: str = ""
    usdc: str = ""
    timeout_s: float = 10.0
    leverage: float = 5.0  # of every trade opened: collateral = notional / leverage
    slippage_pct: float = 2.0  # a market order's bound at the keeper (the SDK's default)

    def __post_init__(self) -> None:
        if not self.leverage >= 1:
            raise ValueError(f"Ostium leverage must be >= 1, got {self.leverage}")
        if not 0 <= self.slippage_pct < 100:
            raise ValueError(f"Ostium slippage_pct must be in [0, 100), got {self.slippage_pct}")

    @property
    def rest_url(self) -> str:
        """Where a session's prices come from (stored with it: ``live_sessions.data_url``)."""
        return self.price_url

    @classmethod
    def for_network(cls, network: Literal["mainnet", "testnet"], *,
                    rpc_url: str = "", base_url: str | None = None, **kw: Any) -> OstiumConfig:
        graph, usdc = _NETWORKS[network]
        if base_url:
            base = base_url.rstrip("/")
            return cls(network, f"{base}/subgraph", base, rpc_url or f"{base}/rpc", usdc, **kw)
        return cls(network, graph, _PRICE_URL, rpc_url, usdc, **kw)


class Trader(Protocol):
    """The trading contract's calls an adapter makes (blocking: run in a thread). Each
    raises ``TradeRefused`` when the transaction reverted; anything else raised leaves
    the outcome unknown."""

    address: str

    def open_trade(self, pair_id: int, is_long: bool, collateral: float, leverage: float,
                   kind: Literal["MARKET", "LIMIT", "STOP"], price: float,
                   slippage_pct: float) -> dict[str, Any]:
        """``{"order_id": int}`` for a market open, ``{"limit_index": int}`` for a limit
        or stop open (either may be None when the receipt did not say)."""
        ...

    def close_trade(self, pair_id: int, index: int, price: float, percentage: float,
                    slippage_pct: float) -> dict[str, Any]:
        """``{"order_id": int | None}``: the keeper order that closes it."""
        ...

    def cancel_limit(self, pair_id: int, index: int) -> None: ...


class OstiumGateway:
    """The read side of one Ostium account (the trader's address), plus its ``Trader``."""

    def __init__(self, config: OstiumConfig, address: str, trader: Trader | None = None, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        self.address = address.lower()
        self.trader = trader
        self.http = httpx.AsyncClient(timeout=config.timeout_s, transport=transport)
        self._rpc_id = 0

    def __repr__(self) -> str:
        return f"OstiumGateway({self.config.network}, {self.address})"

    async def aclose(self) -> None:
        await self.http.aclose()

    async def query(self, query: str, variables: Mapping[str, Any] | None = None) -> Any:
        """One subgraph query; its ``data`` or ``OstiumWireError`` (errors, bad JSON)."""
        name = query.split("(", 1)[0].split("{", 1)[0].removeprefix("query").strip()
        reply = await self._json("POST", self.config.subgraph_url, "subgraph", json={
            "query": query, "operationName": name, "variables": dict(variables or {})})
        if not isinstance(reply, Mapping):
            raise OstiumWireError(f"Ostium subgraph ({name}): expected an object")
        if reply.get("errors"):
            first = reply["errors"][0]
            text = first.get("message") if isinstance(first, Mapping) else first
            raise OstiumWireError(f"Ostium subgraph ({name}): {text}")
        if not isinstance(reply.get("data"), Mapping):
            raise OstiumWireError(f"Ostium subgraph ({name}): the reply has no data")
        return reply["data"]

    async def latest_prices(self) -> Any:
        return await self._json("GET", self.config.price_url.rstrip("/") + PRICES_PATH,
                                "price service")

    async def eth_call(self, call: Mapping[str, Any]) -> Any:
        self._rpc_id += 1
        reply = await self._json("POST", self.config.rpc_url, "RPC", json={
            "jsonrpc": "2.0", "id": self._rpc_id, "method": "eth_call",
            "params": [dict(call), "latest"]})
        if not isinstance(reply, Mapping) or "result" not in reply:
            error = reply.get("error") if isinstance(reply, Mapping) else reply
            raise OstiumWireError(f"Ostium RPC: eth_call failed: {error}")
        return reply["result"]

    async def _json(self, method: str, url: str, what: str, **kw: Any) -> Any:
        if not url:
            raise OstiumWireError(f"Ostium {what}: no URL configured")
        try:
            response = await self.http.request(method, url, **kw)
        except httpx.TimeoutException:
            raise OstiumWireError(f"Ostium {what}: no answer within "
                                  f"{self.config.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise OstiumWireError(f"Ostium {what}: {type(exc).__name__}: {exc}".strip()
                                  ) from None
        if response.status_code != 200:
            text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
            raise OstiumWireError(f"Ostium {what}: HTTP {response.status_code} {text}".strip())
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OstiumWireError(f"Ostium {what}: the reply is not JSON") from None

    async def trade(self, call: str, *args: Any) -> Any:
        """A ``Trader`` call, off the event loop (the SDK blocks until the receipt)."""
        if self.trader is None:
            raise OstiumWireError("Ostium: no trader key configured (read only)")
        return await asyncio.to_thread(getattr(self.trader, call), *args)


# -- the real trader: the official SDK -------------------------------------------------------

def _import_sdk() -> Any:
    try:
        import ostium_python_sdk
    except ImportError:
        raise OstiumUnavailable(
            "the Ostium adapter needs the optional SDK: pip install 'quorum-harness[ostium]' "
            "(ostium-python-sdk)") from None
    return ostium_python_sdk


class SdkTrader:
    """``Trader`` over an ``OstiumSDK``'s ``ostium`` client (3.x): ``perform_trade``
    (``{"receipt", "order_id"}``), ``close_trade``, ``cancel_limit_order``. The SDK
    re-raises every failure as a plain ``Exception`` with the contract's reason: a
    message naming a revert is a refusal, anything else is unknown."""

    def __init__(self, sdk: Any, address: str) -> None:
        self.sdk = sdk
        self.address = address

    def __repr__(self) -> str:
        return f"SdkTrader({self.address})"

    def open_trade(self, pair_id: int, is_long: bool, collateral: float, leverage: float,
                   kind: Literal["MARKET", "LIMIT", "STOP"], price: float,
                   slippage_pct: float) -> dict[str, Any]:
        client = self.sdk.ostium
        client.set_slippage_percentage(slippage_pct)
        params = {"collateral": collateral, "leverage": leverage, "asset_type": pair_id,
                  "direction": is_long, "order_type": kind}
        result = _refusals(client.perform_trade, params, at_price=price)
        order_id = result.get("order_id") if isinstance(result, Mapping) else None
        index = None
        if kind != "MARKET":
            index = _limit_index(client, result.get("receipt") if isinstance(
                result, Mapping) else result)
        return {"order_id": order_id, "limit_index": index}

    def close_trade(self, pair_id: int, index: int, price: float, percentage: float,
                    slippage_pct: float) -> dict[str, Any]:
        client = self.sdk.ostium
        client.set_slippage_percentage(slippage_pct)
        result = _refusals(client.close_trade, pair_id, index, price, percentage)
        return {"order_id": result.get("order_id") if isinstance(result, Mapping) else None}

    def cancel_limit(self, pair_id: int, index: int) -> None:
        _refusals(self.sdk.ostium.cancel_limit_order, pair_id, index)

    @classmethod
    def from_env(cls, network: Literal["mainnet", "testnet"], *,
                 environ: Mapping[str, str] | None = None) -> SdkTrader:
        env = os.environ if environ is None else environ
        key = env.get(ENV_PRIVATE_KEY, "").strip()
        rpc = env.get(ENV_RPC_URL, "").strip()
        if not key or not rpc:
            raise ValueError(f"set {ENV_PRIVATE_KEY} and {ENV_RPC_URL} (never put them in a "
                             "file)")
        module = _import_sdk()
        from eth_account import Account

        try:
            address = Account.from_key(key).address
        except (ValueError, TypeError):
            raise ValueError(f"{ENV_PRIVATE_KEY} is not a 32-byte hex key") from None
        config = (module.NetworkConfig.mainnet() if network == "mainnet"
                  else module.NetworkConfig.testnet())
        return cls(module.OstiumSDK(config, key, rpc), address)


def _refusals(call: Any, *args: Any, **kw: Any) -> Any:
    try:
        return call(*args, **kw)
    except Exception as exc:
        text = str(exc).strip() or type(exc).__name__
        if "revert" in text.lower():
            raise TradeRefused(text.splitlines()[0]) from None
        raise


def _limit_index(client: Any, receipt: Any) -> int | None:
    """The index of the limit a receipt opened (the trading contract's
    ``OpenLimitPlaced`` event), if the SDK's contract object can decode it."""
    try:
        events = client.ostium_trading_contract.events.OpenLimitPlaced().process_receipt(
            receipt)
        return int(events[0]["args"]["index"]) if events else None
    except Exception:  # not decodable with this ABI: looked up by its fields instead
        return None
