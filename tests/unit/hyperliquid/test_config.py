"""Credentials come only from the environment; errors and reprs never echo the key."""

from __future__ import annotations

import pytest

from live.hyperliquid.config import ENV_ACCOUNT, ENV_SECRET_KEY, Credentials, HyperliquidConfig
from live.hyperliquid.rest import HyperliquidRest

KEY = "0x" + "44" * 32


def test_credentials_from_env() -> None:
    creds = Credentials.from_env(False, {ENV_SECRET_KEY: KEY})
    assert creds.account == creds.signer.address and not creds.signer.mainnet
    other = "0x" + "ab" * 20
    assert Credentials.from_env(True, {ENV_SECRET_KEY: KEY, ENV_ACCOUNT: other}).account == other
    assert "44" * 32 not in repr(creds)
    with pytest.raises(ValueError, match=ENV_SECRET_KEY):
        Credentials.from_env(False, {})
    with pytest.raises(ValueError) as err:
        Credentials.from_env(False, {ENV_SECRET_KEY: "0x" + "44" * 31 + "zz"})
    assert "44" * 31 not in str(err.value)


def test_network_is_explicit_and_must_match_the_key() -> None:
    with pytest.raises(ValueError):
        HyperliquidConfig()  # type: ignore[call-arg]
    assert HyperliquidConfig(network="testnet").rest_url.endswith("hyperliquid-testnet.xyz")
    with pytest.raises(ValueError, match="config is mainnet"):
        HyperliquidRest(HyperliquidConfig(network="mainnet"),
                        Credentials.from_env(False, {ENV_SECRET_KEY: KEY}))
