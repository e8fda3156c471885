"""Hyperliquid as a venue kind of ``quorum live`` (``live.venues``): its settings from the
command line, its candle intervals, market data, candle feed and account adapter."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from live.clock import PacingClock
from live.hyperliquid.candles import HyperliquidCandleFeed, hyperliquid_interval
from live.hyperliquid.config import ENV_SECRET_KEY, Credentials, HyperliquidConfig
from live.hyperliquid.errors import TransportFailed
from live.hyperliquid.port import HyperliquidPort
from live.hyperliquid.venue import HyperliquidVenue
from sim.config_base import ConfigError

ENV_URL = "QUORUM_HL_URL"  # REST base URL override (the WebSocket is its /ws)


class HyperliquidKind:
    name = "hyperliquid"
    title = "Hyperliquid"
    retry_log = "live.hyperliquid.rest"
    key_env = ENV_SECRET_KEY

    def settings(self, *, testnet: bool, url: str | None) -> HyperliquidConfig:
        """The network's public URLs, or ``url`` (else ``$QUORUM_HL_URL``) for REST with
        its ``/ws`` for the stream."""
        url = url or os.environ.get(ENV_URL) or None
        ws = None
        if url:
            url = url.rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"--url {url!r}: expected http://HOST[:PORT] or https://...")
            ws = "ws" + url.removeprefix("http") + "/ws"
        return HyperliquidConfig(network="testnet" if testnet else "mainnet", base_url=url,
                                 ws_url=ws)

    def owns(self, settings: object) -> bool:
        return isinstance(settings, HyperliquidConfig)

    def interval_name(self, interval_ns: int) -> str:
        return hyperliquid_interval(interval_ns)

    def credentials(self, settings: HyperliquidConfig,
                    environ: Mapping[str, str] | None = None) -> Credentials:
        """The signing key of the account (``QUORUM_HL_SECRET_KEY``); ValueError if unset."""
        return Credentials.from_env(settings.mainnet, environ)

    def connect(self, settings: HyperliquidConfig,
                credentials: Credentials | None = None) -> HyperliquidVenue:
        return HyperliquidVenue(settings, credentials)

    def candle_feed(self, settings: HyperliquidConfig, coins: Mapping[str, str],
                    interval_ns: int, *, warmup_bars: int, close_grace_ns: int,
                    max_bars: int | None = None, clock: PacingClock | None = None,
                    connection: Any = None) -> HyperliquidCandleFeed:
        return HyperliquidCandleFeed(settings, coins, interval_ns, warmup_bars=warmup_bars,
                                     close_grace_ns=close_grace_ns, max_bars=max_bars,
                                     clock=clock, venue=connection)

    def adapter(self, connection: Any, *, coins: Mapping[str, str],
                rehearse_every_s: float | None = None) -> HyperliquidPort:
        assert isinstance(connection, HyperliquidVenue)
        return HyperliquidPort(connection, rehearse_coin=next(iter(coins.values())),
                               rehearse_every_s=rehearse_every_s)

    def unreachable(self, settings: HyperliquidConfig, exc: Exception) -> TransportFailed:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TransportFailed(f"Hyperliquid {settings.network} at {settings.rest_url} could "
                               f"not be used: {first}")


KIND = HyperliquidKind()
