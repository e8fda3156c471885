"""Connection settings and credentials for the Hyperliquid adapter.

The network is always explicit (``mainnet`` or ``testnet``): it decides the URLs and is
part of what every action signs, so a testnet signature cannot trade on mainnet.

Credentials come from the environment only and are never logged or stored:

- ``QUORUM_HL_SECRET_KEY``: the signing key (an API wallet's key is recommended);
- ``QUORUM_HL_ACCOUNT_ADDRESS``: the account traded (default: the key's own address;
  set it when the key is an API wallet approved for another account);
- ``QUORUM_HL_VAULT_ADDRESS``: optional, trade on behalf of a vault or subaccount.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from live.hyperliquid.signing import Signer

ENV_SECRET_KEY = "QUORUM_HL_SECRET_KEY"
ENV_ACCOUNT = "QUORUM_HL_ACCOUNT_ADDRESS"
ENV_VAULT = "QUORUM_HL_VAULT_ADDRESS"

URLS = {
    "mainnet": ("https://api.hyperliquid.xyz", "wss://api.hyperliquid.xyz/ws"),
    "testnet": ("https://api.hyperliquid-testnet.xyz", "wss://api.hyperliquid-testnet.xyz/ws"),
}


class HyperliquidConfig(BaseModel):
    """``base_url``/``ws_url`` override the network's URLs (tests point them at a fake)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: Literal["mainnet", "testnet"]
    base_url: str | None = None
    ws_url: str | None = None
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    backoff_s: float = Field(default=0.25, ge=0)  # first retry delay, doubled each time
    max_backoff_s: float = Field(default=8.0, ge=0)
    weight_budget: int = Field(default=1000, gt=0, le=1200)
    market_slippage: float = Field(default=0.05, gt=0, lt=1)  # IOC bound around the mid
    ws_ping_s: float = Field(default=30.0, gt=0)  # the server drops idle sockets at 60 s
    ws_give_up_s: float = Field(default=60.0, gt=0)  # failing to (re)connect this long: fail

    @property
    def mainnet(self) -> bool:
        return self.network == "mainnet"

    @property
    def rest_url(self) -> str:
        return self.base_url or URLS[self.network][0]

    @property
    def stream_url(self) -> str:
        return self.ws_url or URLS[self.network][1]


class Credentials:
    """A signer plus the addresses it acts for. ``repr`` never shows the key."""

    __slots__ = ("account", "signer", "vault")

    def __init__(self, signer: Signer, account: str | None = None,
                 vault: str | None = None) -> None:
        self.signer = signer
        self.account = (account or signer.address).lower()
        self.vault = vault.lower() if vault else None

    def __repr__(self) -> str:
        return f"Credentials(account={self.account}, signer={self.signer!r}, vault={self.vault})"

    @classmethod
    def from_env(cls, mainnet: bool, environ: Mapping[str, str] | None = None) -> Credentials:
        env = os.environ if environ is None else environ
        secret = env.get(ENV_SECRET_KEY, "").strip()
        if not secret:
            raise ValueError(f"set {ENV_SECRET_KEY} to the signing key (never put it in a file)")
        try:
            signer = Signer(secret, mainnet=mainnet)
        except ValueError:
            raise ValueError(f"{ENV_SECRET_KEY} is not a 32-byte hex key") from None
        return cls(signer, env.get(ENV_ACCOUNT) or None, env.get(ENV_VAULT) or None)
