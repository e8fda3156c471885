"""Ostium as a venue kind of ``quorum live`` (``live.venues``): its settings from the
command line, its bar intervals, market data, price-sampled bars and account adapter.

Ostium publishes oracle prices, not candles (``live.ostium.feed``): a session's bars are
sampled from its price service as they form, so there is no history to warm up on
(``live.warmup_bars`` must be 0). The account trades through a ``Trader``
(``credentials``): the official SDK signing with ``QUORUM_OSTIUM_PRIVATE_KEY`` over
``QUORUM_OSTIUM_RPC_URL`` (the optional ``ostium`` extra); or, against a fake Ostium at
``--url`` (``live.ostium.fake``, offline), the unsigned trader of the address in
``QUORUM_OSTIUM_SANDBOX_ACCOUNT``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from live.clock import PacingClock, WallClock
from live.ostium.feed import OstiumPriceFeed
from live.ostium.gateway import (
    ENV_PRIVATE_KEY,
    ENV_RPC_URL,
    OstiumConfig,
    OstiumGateway,
    SdkTrader,
    Trader,
)
from live.ostium.venue import OstiumVenue
from live.ostium.wire import OstiumWireError
from sim.config_base import ConfigError
from sim.messages import Bar

ENV_URL = "QUORUM_OSTIUM_URL"  # one base URL for the subgraph, prices and RPC (a fake)
ENV_SANDBOX_ACCOUNT = "QUORUM_OSTIUM_SANDBOX_ACCOUNT"  # the address traded on a fake
_READ_ONLY = "0x" + "00" * 20  # market data needs no account
_NS = 1_000_000_000


class OstiumKind:
    name = "ostium"
    title = "Ostium"
    retry_log = "live.ostium.gateway"
    key_env = ENV_PRIVATE_KEY

    def settings(self, *, testnet: bool, url: str | None) -> OstiumConfig:
        """The network's public endpoints, or ``url`` (else ``$QUORUM_OSTIUM_URL``) for
        all three reads (a fake Ostium, a proxy)."""
        url = url or os.environ.get(ENV_URL) or None
        if url and not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url {url!r}: expected http://HOST[:PORT] or https://...")
        return OstiumConfig.for_network("testnet" if testnet else "mainnet", base_url=url)

    def owns(self, settings: object) -> bool:
        return isinstance(settings, OstiumConfig)

    def interval_name(self, interval_ns: int) -> str:
        """Any whole number of seconds from 1 s (bars are sampled, not fetched)."""
        if interval_ns < _NS or interval_ns % _NS:
            raise ValueError(f"Ostium bars are sampled from its prices: the interval must "
                             f"be a whole number of seconds >= 1s, got {interval_ns} ns")
        seconds = interval_ns // _NS
        for unit, size in (("h", 3600), ("m", 60)):
            if seconds % size == 0:
                return f"{seconds // size}{unit}"
        return f"{seconds}s"

    def credentials(self, settings: OstiumConfig,
                    environ: Mapping[str, str] | None = None) -> Trader:
        """The account's trader (see the module); ValueError naming what to set."""
        env = os.environ if environ is None else environ
        if env.get(ENV_PRIVATE_KEY, "").strip():
            return SdkTrader.from_env(settings.network, environ=env)
        sandbox = env.get(ENV_SANDBOX_ACCOUNT, "").strip()
        if sandbox and settings.subgraph_url.startswith(settings.price_url):  # a base URL
            from live.ostium.fake.exchange import FakeChainTrader

            return FakeChainTrader(settings.price_url, sandbox, settings.timeout_s)
        raise ValueError(f"set {ENV_PRIVATE_KEY} and {ENV_RPC_URL} (never put them in a "
                         f"file); or, on a fake Ostium at --url, {ENV_SANDBOX_ACCOUNT}")

    def connect(self, settings: OstiumConfig, credentials: Trader | None = None,
                ) -> OstiumVenue:
        config = settings
        if isinstance(credentials, SdkTrader) and not config.rpc_url:
            config = dataclasses.replace(config, rpc_url=os.environ.get(ENV_RPC_URL, ""))
        address = credentials.address if credentials is not None else _READ_ONLY
        return OstiumVenue(OstiumGateway(config, address, credentials))

    def candle_feed(self, settings: OstiumConfig, coins: Mapping[str, str],
                    interval_ns: int, *, warmup_bars: int, close_grace_ns: int,
                    max_bars: int | None = None, clock: PacingClock | None = None,
                    connection: Any = None) -> OstiumBars:
        return OstiumBars(self, settings, coins, interval_ns, warmup_bars=warmup_bars,
                          max_bars=max_bars, clock=clock)

    def adapter(self, connection: Any, *, coins: Mapping[str, str],
                rehearse_every_s: float | None = None) -> OstiumVenue:
        assert isinstance(connection, OstiumVenue)
        return connection  # the venue answers the core's contract itself

    def unreachable(self, settings: OstiumConfig, exc: Exception) -> OstiumWireError:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return OstiumWireError(f"Ostium {settings.network} at {settings.rest_url} could not "
                               f"be used: {first}")


class OstiumBars:
    """A session's bars sampled from Ostium's prices (``OstiumPriceFeed``, polled four
    times a bar or every second, whichever is more often), ``max_bars`` per symbol (None:
    until cancelled). It holds its own read-only connection."""

    def __init__(self, kind: OstiumKind, settings: OstiumConfig, coins: Mapping[str, str],
                 interval_ns: int, *, warmup_bars: int, max_bars: int | None,
                 clock: PacingClock | None) -> None:
        self.kind, self.settings, self.coins = kind, settings, dict(coins)
        self.interval_ns, self.warmup_bars, self.max_bars = interval_ns, warmup_bars, max_bars
        self.clock = clock or WallClock()

    async def check_warmup(self) -> None:
        if self.warmup_bars:
            raise ConfigError(f"live.warmup_bars = {self.warmup_bars}: Ostium publishes "
                              "prices, not candles, so there is no history to warm up on "
                              "(set it to 0)")

    async def __aiter__(self) -> AsyncIterator[Bar]:
        venue = self.kind.connect(self.settings)
        poll_s = min(1.0, self.interval_ns / _NS / 4)
        feed = OstiumPriceFeed(venue.prices, self.coins, self.interval_ns, self.clock,
                               poll_s=poll_s)
        seen: dict[str, int] = dict.fromkeys(self.coins, 0)
        try:
            async for bar in feed:
                if self.max_bars is not None and seen[bar.symbol] >= self.max_bars:
                    continue
                seen[bar.symbol] += 1
                yield bar
                if self.max_bars is not None and min(seen.values()) >= self.max_bars:
                    return
        finally:
            await venue.aclose()


KIND = OstiumKind()
