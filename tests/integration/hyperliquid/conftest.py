"""A fake Hyperliquid on a loopback port per test, and clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from live.hyperliquid.config import Credentials, HyperliquidConfig
from live.hyperliquid.signing import Signer
from live.hyperliquid.venue import HyperliquidVenue
from tests.fakes.hyperliquid import FakeHyperliquid

KEY = "0x" + "11" * 32  # a throwaway test key
DEPOSIT = 10_000.0  # the test account's USDC: the test scenarios' initial_cash


@pytest.fixture
def fake() -> Iterator[FakeHyperliquid]:
    server = FakeHyperliquid(mainnet=False).start()
    server.open_account(Signer(KEY, mainnet=False).address, usdc=DEPOSIT)
    server.seed_book("ETH", bids=[(1999.0, 5.0), (1998.0, 5.0)],
                     asks=[(2001.0, 1.0), (2002.0, 5.0)])
    server.seed_book("BTC", bids=[(59990.0, 1.0)], asks=[(60010.0, 1.0)])
    yield server
    server.stop()


def make_config(fake: FakeHyperliquid, **overrides: Any) -> HyperliquidConfig:
    settings: dict[str, Any] = {"network": "testnet", "base_url": fake.base_url,
                                "ws_url": fake.ws_url, "timeout_s": 0.5, "backoff_s": 0.01,
                                "max_backoff_s": 0.05, "max_attempts": 6}
    return HyperliquidConfig(**{**settings, **overrides})


async def open_venue(fake: FakeHyperliquid, key: str = KEY, **overrides: Any
                     ) -> HyperliquidVenue:
    venue = HyperliquidVenue(make_config(fake, **overrides),
                             Credentials(Signer(key, mainnet=False)))
    await venue.load_markets()
    return venue
