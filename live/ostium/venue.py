"""An Ostium adapter (perpetuals on Arbitrum) over the official ``ostium-python-sdk``.

Optional: ``pip install 'quorum-harness[ostium]'``. The SDK is imported only when a venue is built
from the environment, so nothing else needs it. It talks to an Arbitrum RPC endpoint (for
transactions) and Ostium's subgraph and price service (for reads).

Answers in the neutral reports of ``live.venue_types``, the same shape as
``HyperliquidVenue`` where the venues agree: ``load_markets``, ``mids``,
``positions``, ``market`` (size in units of the asset, returning an ``OrderState``) and a
close. Where they differ, Ostium's own terms show: a trade is opened with USDC collateral
and a leverage (size x price = collateral x leverage), is identified by (pair id, trade
index), and is executed by Ostium's keeper after the transaction: a market order that
was accepted is ``resting`` with ``venue_status="pending"`` and the transaction hash as
its id, not ``filled``. What it was filled at shows in ``positions`` once executed.

SDK calls used (3.x): ``subgraph.get_pairs``, ``price.get_price(from, to)``,
``ostium.perform_trade(params, at_price=...)``, ``ostium.close_trade(pair_id, index,
market_price, close_percentage)``, ``subgraph.get_open_trades(address)``. Fixed-point
fields of open trades are read as the subgraph stores them: collateral with 6 decimals
(USDC), leverage with 2, prices with 18.

Credentials from the environment only, never logged or stored:
``QUORUM_OSTIUM_PRIVATE_KEY`` and ``QUORUM_OSTIUM_RPC_URL``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from live.venue_types import REJECTED, RESTING, OrderState, Position

ENV_PRIVATE_KEY = "QUORUM_OSTIUM_PRIVATE_KEY"
ENV_RPC_URL = "QUORUM_OSTIUM_RPC_URL"
COLLATERAL_SCALE = 10**6
LEVERAGE_SCALE = 10**2
PRICE_SCALE = 10**18


class OstiumUnavailable(ImportError):
    """The optional SDK is not installed."""


def _import_sdk() -> Any:
    try:
        import ostium_python_sdk
    except ImportError:
        raise OstiumUnavailable(
            "the Ostium adapter needs the optional SDK: pip install 'quorum-harness[ostium]' "
            "(ostium-python-sdk)") from None
    return ostium_python_sdk


@dataclass(frozen=True, slots=True)
class OstiumPair:
    coin: str  # the base asset, e.g. "BTC" of BTC/USD
    pair_id: int
    base: str
    quote: str


@dataclass(frozen=True, slots=True)
class OstiumTrade:
    """One open trade: Ostium's unit of position."""

    coin: str
    pair_id: int
    index: int
    is_long: bool
    collateral: float  # USDC
    leverage: float
    open_price: float

    @property
    def size(self) -> float:
        """Signed units of the asset (positive long)."""
        units = self.collateral * self.leverage / self.open_price if self.open_price else 0.0
        return units if self.is_long else -units


class OstiumVenue:
    """An adapter over one account. ``sdk``: an ``OstiumSDK`` (or a test double with the
    same calls); ``account``: the trader address. ``leverage``: used to turn a size into
    collateral for orders."""

    name = "ostium"

    def __init__(self, sdk: Any, account: str, *, leverage: float = 5.0,
                 slippage_pct: float | None = None) -> None:
        if not leverage >= 1:
            raise ValueError(f"leverage must be >= 1, got {leverage}")
        self.sdk = sdk
        self.account = account
        self.leverage = leverage
        if slippage_pct is not None:
            sdk.ostium.set_slippage_percentage(slippage_pct)
        self.pairs: dict[str, OstiumPair] = {}

    def __repr__(self) -> str:
        return f"OstiumVenue(account={self.account}, leverage={self.leverage})"

    @classmethod
    def from_env(cls, network: Literal["mainnet", "testnet"], *,
                 environ: Mapping[str, str] | None = None, **kw: Any) -> OstiumVenue:
        env = os.environ if environ is None else environ
        key = env.get(ENV_PRIVATE_KEY, "").strip()
        rpc = env.get(ENV_RPC_URL, "").strip()
        if not key or not rpc:
            raise ValueError(f"set {ENV_PRIVATE_KEY} and {ENV_RPC_URL} (never put them in a "
                             "file)")
        module = _import_sdk()
        from eth_account import Account

        try:
            account = Account.from_key(key).address
        except (ValueError, TypeError):
            raise ValueError(f"{ENV_PRIVATE_KEY} is not a 32-byte hex key") from None
        config = (module.NetworkConfig.mainnet() if network == "mainnet"
                  else module.NetworkConfig.testnet())
        return cls(module.OstiumSDK(config, key, rpc), account, **kw)

    # -- market data -----------------------------------------------------------------------

    async def load_markets(self) -> dict[str, OstiumPair]:
        """Pairs quoted in USD, keyed by their base asset (BTC, ETH, EUR, XAU, ...)."""
        pairs = {}
        for p in await self.sdk.subgraph.get_pairs():
            base, quote = str(p["from"]), str(p["to"])
            if quote == "USD":
                pairs[base] = OstiumPair(base, int(p["id"]), base, quote)
        self.pairs = pairs
        return pairs

    def pair(self, coin: str) -> OstiumPair:
        try:
            return self.pairs[coin]
        except KeyError:
            hint = "" if self.pairs else " (call load_markets first)"
            raise ValueError(f"unknown Ostium pair {coin!r}{hint}") from None

    async def mid(self, coin: str) -> float:
        p = self.pair(coin)
        price = await self.sdk.price.get_price(p.base, p.quote)
        return float(price[0] if isinstance(price, tuple | list) else price)

    async def mids(self) -> dict[str, float]:
        return {coin: await self.mid(coin) for coin in self.pairs}

    # -- account ---------------------------------------------------------------------------

    async def trades(self) -> list[OstiumTrade]:
        by_id = {p.pair_id: p.coin for p in self.pairs.values()}
        out = []
        for t in await self.sdk.subgraph.get_open_trades(self.account):
            pair_id = int(t["pair"]["id"])
            out.append(OstiumTrade(
                coin=by_id.get(pair_id, str(t["pair"].get("from", pair_id))),
                pair_id=pair_id, index=int(t["index"]), is_long=bool(t["isBuy"]),
                collateral=int(t["collateral"]) / COLLATERAL_SCALE,
                leverage=int(t["leverage"]) / LEVERAGE_SCALE,
                open_price=int(t["openPrice"]) / PRICE_SCALE))
        return out

    async def positions(self) -> list[Position]:
        """Net position per coin over its open trades; entry: the size-weighted open price
        (unrealized PnL is left at 0: the SDK's trade metrics are not read)."""
        totals: dict[str, list[float]] = {}  # coin -> [net size, gross size, gross notional]
        for t in await self.trades():
            row = totals.setdefault(t.coin, [0.0, 0.0, 0.0])
            row[0] += t.size
            row[1] += abs(t.size)
            row[2] += abs(t.size) * t.open_price
        return [Position(coin, net, notional / gross if gross else None, 0.0, self.leverage,
                         None) for coin, (net, gross, notional) in totals.items()]

    # -- orders ----------------------------------------------------------------------------

    async def market(self, coin: str, is_buy: bool, size: float, *,
                     reference_px: float | None = None) -> OrderState:
        """Open a trade of ``size`` units at market: collateral = size x price / leverage.
        Accepted: ``resting`` (pending the keeper), id = the transaction hash."""
        p = self.pair(coin)
        px = reference_px if reference_px is not None else await self.mid(coin)
        if size <= 0 or px <= 0:
            return OrderState("", coin, REJECTED, size,
                              message=f"quorum: size {size} at price {px} is not tradable")
        collateral = round(size * px / self.leverage, 6)
        params = {"collateral": collateral, "leverage": self.leverage,
                  "asset_type": p.pair_id, "direction": is_buy, "order_type": "MARKET"}
        try:
            receipt = await asyncio.to_thread(self.sdk.ostium.perform_trade, params,
                                              at_price=px)
        except Exception as exc:  # the SDK raises on a refused or failed transaction
            return OrderState("", coin, REJECTED, size, message=str(exc) or type(exc).__name__,
                              venue_status="error")
        return OrderState(_tx_hash(receipt), coin, RESTING, size, venue_status="pending")

    async def close(self, trade: OstiumTrade, *, fraction: float = 1.0,
                    market_price: float | None = None) -> OrderState:
        """Close ``fraction`` of an open trade at market."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        px = market_price if market_price is not None else await self.mid(trade.coin)
        try:
            receipt = await asyncio.to_thread(self.sdk.ostium.close_trade, trade.pair_id,
                                              trade.index, px, round(fraction * 100, 2))
        except Exception as exc:
            return OrderState("", trade.coin, REJECTED, abs(trade.size) * fraction,
                              message=str(exc) or type(exc).__name__, venue_status="error")
        return OrderState(_tx_hash(receipt), trade.coin, RESTING, abs(trade.size) * fraction,
                          venue_status="pending")


def _tx_hash(receipt: Any) -> str:
    tx = receipt["transactionHash"] if isinstance(receipt, Mapping) else receipt
    return tx.hex() if hasattr(tx, "hex") and not isinstance(tx, str) else str(tx)
