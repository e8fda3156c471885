"""L1 action signing: what Hyperliquid's /exchange checks before it runs an action.

The scheme (Hyperliquid docs, "Signing"; the official SDK's ``sign_l1_action``):

1. ``action_hash = keccak256(msgpack(action) || nonce as 8 bytes big-endian ||
   vault flag)``, where the vault flag is ``0x00`` without a vault and ``0x01 ||
   20-byte vault address`` with one; when ``expiresAfter`` is used,
   ``0x00 || expiresAfter as 8 bytes`` follows.
2. A "phantom agent" ``{source: "a" (mainnet) | "b" (testnet), connectionId: action_hash}``.
3. It is signed as the EIP-712 message ``Agent(string source,bytes32 connectionId)`` in
   the domain ``{name: "Exchange", version: "1", chainId: 1337, verifyingContract: 0x0}``.

The EIP-712 digest of that fixed, two-field struct is built here directly (two keccaks
over constant prefixes) and signed with libsecp256k1 (coincurve): the generic typed-data
encoder costs about ten times more, and order signing is on the latency path. The tests
check this digest against eth-account's generic encoder and the SDK's published vectors.

The secret key is held by ``Signer`` only; its ``repr`` and ``str`` show the address.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import coincurve
import msgpack
from eth_account import Account
from eth_hash.auto import keccak

CHAIN_ID_L1 = 1337
_DOMAIN_TYPE = b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_AGENT_TYPE_HASH = keccak(b"Agent(string source,bytes32 connectionId)")
_DOMAIN_SEPARATOR = keccak(
    keccak(_DOMAIN_TYPE) + keccak(b"Exchange") + keccak(b"1")
    + CHAIN_ID_L1.to_bytes(32, "big") + bytes(32)
)
_SOURCE_HASH = {True: keccak(b"a"), False: keccak(b"b")}  # mainnet, testnet
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


@dataclass(frozen=True, slots=True)
class Signature:
    """An ECDSA signature as /exchange takes it: r, s as 0x-hex, v 27 or 28."""

    r: int
    s: int
    v: int

    def to_wire(self) -> dict[str, Any]:
        return {"r": hex(self.r), "s": hex(self.s), "v": self.v}

    @classmethod
    def from_wire(cls, sig: dict[str, Any]) -> Signature:
        return cls(int(str(sig["r"]), 16), int(str(sig["s"]), 16), int(sig["v"]))


def action_hash(action: dict[str, Any], vault_address: str | None, nonce: int,
                expires_after: int | None = None) -> bytes:
    data = msgpack.packb(action) + nonce.to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + _address_bytes(vault_address)
    if expires_after is not None:
        data += b"\x00" + expires_after.to_bytes(8, "big")
    return keccak(data)


def phantom_agent(connection_id: bytes, mainnet: bool) -> dict[str, Any]:
    """The message that is actually signed (as a dict, for generic EIP-712 encoders)."""
    return {"source": "a" if mainnet else "b", "connectionId": connection_id}


def l1_digest(connection_id: bytes, mainnet: bool) -> bytes:
    """The EIP-712 digest of the phantom agent for ``connection_id``."""
    struct_hash = keccak(_AGENT_TYPE_HASH + _SOURCE_HASH[mainnet] + connection_id)
    return keccak(b"\x19\x01" + _DOMAIN_SEPARATOR + struct_hash)


def l1_typed_data(connection_id: bytes, mainnet: bool) -> dict[str, Any]:
    """The full EIP-712 typed data (what a wallet would show); used to cross-check."""
    return {
        "domain": {"chainId": CHAIN_ID_L1, "name": "Exchange", "version": "1",
                   "verifyingContract": "0x0000000000000000000000000000000000000000"},
        "types": {
            "Agent": [{"name": "source", "type": "string"},
                      {"name": "connectionId", "type": "bytes32"}],
            "EIP712Domain": [{"name": "name", "type": "string"},
                             {"name": "version", "type": "string"},
                             {"name": "chainId", "type": "uint256"},
                             {"name": "verifyingContract", "type": "address"}],
        },
        "primaryType": "Agent",
        "message": phantom_agent(connection_id, mainnet),
    }


def recover_l1_signer(action: dict[str, Any], signature: Signature, nonce: int, *,
                      mainnet: bool, vault_address: str | None = None,
                      expires_after: int | None = None) -> str:
    """The address (0x, lower-case) whose key made ``signature`` over this action."""
    if signature.v not in (27, 28) or not (0 < signature.r < _SECP256K1_N
                                           and 0 < signature.s < _SECP256K1_N):
        raise ValueError("malformed signature")
    digest = l1_digest(action_hash(action, vault_address, nonce, expires_after), mainnet)
    raw = (signature.r.to_bytes(32, "big") + signature.s.to_bytes(32, "big")
           + bytes([signature.v - 27]))
    public = coincurve.PublicKey.from_signature_and_message(raw, digest, hasher=None)
    return "0x" + keccak(public.format(compressed=False)[1:])[-20:].hex()


class Signer:
    """Signs L1 actions for one key on one network (mainnet or testnet, explicitly).

    The key never leaves this object: no attribute exposes it and ``repr`` shows only the
    address and network.
    """

    __slots__ = ("__key", "address", "mainnet")

    def __init__(self, secret_key: str | bytes, *, mainnet: bool) -> None:
        raw = bytes.fromhex(secret_key.removeprefix("0x")) if isinstance(secret_key, str) \
            else bytes(secret_key)
        if len(raw) != 32:
            raise ValueError("secret key must be 32 bytes (64 hex digits)")
        self.__key = coincurve.PrivateKey(raw)
        self.address: str = Account.from_key(raw).address.lower()
        self.mainnet = mainnet

    def __repr__(self) -> str:
        return f"Signer(address={self.address}, {'mainnet' if self.mainnet else 'testnet'})"

    __str__ = __repr__

    def __reduce__(self) -> Any:  # never pickled (a pickle would carry the key)
        raise TypeError("a Signer cannot be pickled")

    def sign_digest(self, digest: bytes) -> Signature:
        raw = self.__key.sign_recoverable(digest, hasher=None)
        return Signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"),
                         27 + raw[64])

    def sign_l1_action(self, action: dict[str, Any], nonce: int, *,
                       vault_address: str | None = None,
                       expires_after: int | None = None) -> Signature:
        connection_id = action_hash(action, vault_address, nonce, expires_after)
        return self.sign_digest(l1_digest(connection_id, self.mainnet))


def _address_bytes(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"address must be 20 bytes, got {address!r}")
    return raw
