"""L1 action signing: known answers from the official SDK's published test vectors
(hyperliquid-python-sdk, tests/signing_test.py), a cross-check of the hand-built EIP-712
digest against eth-account's generic encoder, and signer recovery for every action we send.
"""

from __future__ import annotations

import pickle

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given
from hypothesis import strategies as st

from live.hyperliquid.nonce import NonceSource
from live.hyperliquid.signing import (
    Signature,
    Signer,
    action_hash,
    l1_typed_data,
    recover_l1_signer,
)
from live.hyperliquid.wire import (
    cancel_action,
    cancel_by_cloid_action,
    float_to_wire,
    limit_type,
    order_action,
    order_wire,
    trigger_type,
    update_leverage_action,
)

# The SDK tests' key (a published test key, holds nothing).
KEY = "0x0123456789012345678901234567890123456789012345678901234567890123"
VAULT = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"


def eth_order(cloid: str | None = None, order_type=None) -> dict:
    """The SDK vectors' order: buy 100 ETH (asset 1) at 100, GTC unless told."""
    return order_action([order_wire(1, True, float_to_wire(100), float_to_wire(100), False,
                                    order_type or limit_type("Gtc"), cloid)])


DUMMY = {"type": "dummy", "num": 100_000_000_000}  # SDK: float_to_int_for_hashing(1000)

# (action, vault, mainnet?, r, s, v): copied from the SDK's signing_test.py, nonce 0.
VECTORS = [
    (eth_order(), None, True,
     "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
     "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e", 28),
    (eth_order(), None, False,
     "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
     "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5", 27),
    (eth_order("0x00000000000000000000000000000001"), None, True,
     "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",
     "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da", 27),
    (eth_order("0x00000000000000000000000000000001"), None, False,
     "0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
     "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988", 28),
    (eth_order(order_type=trigger_type(float_to_wire(103), True, "sl")), None, True,
     "0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
     "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405", 27),
    (eth_order(order_type=trigger_type(float_to_wire(103), True, "sl")), None, False,
     "0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
     "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac", 28),
    (DUMMY, None, True,
     "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
     "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8", 27),
    (DUMMY, None, False,
     "0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
     "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613", 28),
    (DUMMY, VAULT, True,
     "0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",
     "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c", 28),
    (DUMMY, VAULT, False,
     "0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
     "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60", 27),
]


@pytest.mark.parametrize(("action", "vault", "mainnet", "r", "s", "v"), VECTORS,
                         ids=[f"{a['type']}-{'vault' if vt else 'own'}-{'main' if m else 'test'}"
                              f"-{i}" for i, (a, vt, m, *_) in enumerate(VECTORS)])
def test_known_answers_from_the_sdk(action, vault, mainnet, r, s, v) -> None:
    sig = Signer(KEY, mainnet=mainnet).sign_l1_action(action, 0, vault_address=vault)
    assert sig.to_wire() == {"r": r, "s": s, "v": v}


def test_phantom_agent_connection_id_matches_the_sdk() -> None:
    action = order_action([order_wire(4, True, float_to_wire(1670.1), float_to_wire(0.0147),
                                      False, limit_type("Ioc"), None)])
    assert action_hash(action, None, 1677777606040).hex() == (
        "0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908")


def test_expires_after_changes_the_hash_and_is_recoverable() -> None:
    signer = Signer(KEY, mainnet=True)
    assert action_hash(DUMMY, None, 5) != action_hash(DUMMY, None, 5, expires_after=10)
    sig = signer.sign_l1_action(DUMMY, 5, expires_after=10)
    assert recover_l1_signer(DUMMY, sig, 5, mainnet=True, expires_after=10) == signer.address
    assert recover_l1_signer(DUMMY, sig, 5, mainnet=True) != signer.address


@pytest.mark.parametrize("mainnet", [True, False])
def test_digest_agrees_with_eth_account_generic_eip712(mainnet: bool) -> None:
    """Independent reference: eth-account's typed-data encoder and signer."""
    signer = Signer(KEY, mainnet=mainnet)
    connection = action_hash(eth_order(), None, 1234)
    ours = signer.sign_l1_action(eth_order(), 1234)
    message = encode_typed_data(full_message=l1_typed_data(connection, mainnet))
    theirs = Account.sign_message(message, KEY)
    assert (ours.r, ours.s, ours.v) == (theirs.r, theirs.s, theirs.v)
    assert Account.recover_message(message, vrs=(ours.v, ours.r, ours.s)).lower() == \
        signer.address


ACTIONS = {
    "order": order_action([order_wire(0, False, "61234", "0.015", True, limit_type("Alo"),
                                      "0x" + "ab" * 16)]),
    "cancel": cancel_action([(0, 123456789)]),
    "cancelByCloid": cancel_by_cloid_action([(3, "0x" + "cd" * 16)]),
    "updateLeverage": update_leverage_action(2, 7, is_cross=False),
}


@pytest.mark.parametrize("kind", list(ACTIONS))
@pytest.mark.parametrize("mainnet", [True, False])
def test_signer_recovers_for_every_action(kind: str, mainnet: bool) -> None:
    secret = "0x" + "5a" * 32
    signer = Signer(secret, mainnet=mainnet)
    assert signer.address == Account.from_key(secret).address.lower()
    action = ACTIONS[kind]
    sig = signer.sign_l1_action(action, 1_700_000_000_123)
    wire = Signature.from_wire(sig.to_wire())
    assert recover_l1_signer(action, wire, 1_700_000_000_123, mainnet=mainnet) == signer.address
    # Any change to what was signed recovers someone else: network, nonce, action, vault.
    assert recover_l1_signer(action, wire, 1_700_000_000_123, mainnet=not mainnet) != \
        signer.address
    assert recover_l1_signer(action, wire, 1_700_000_000_124, mainnet=mainnet) != signer.address
    assert recover_l1_signer(action, wire, 1_700_000_000_123, mainnet=mainnet,
                             vault_address=VAULT) != signer.address
    assert recover_l1_signer({**action, "type": action["type"] + "x"}, wire,
                             1_700_000_000_123, mainnet=mainnet) != signer.address


@given(st.integers(min_value=1, max_value=2**63 - 1), st.booleans())
def test_recovery_round_trips_for_any_nonce(nonce: int, mainnet: bool) -> None:
    signer = Signer(KEY, mainnet=mainnet)
    sig = signer.sign_l1_action(ACTIONS["cancel"], nonce)
    assert recover_l1_signer(ACTIONS["cancel"], sig, nonce, mainnet=mainnet) == signer.address


def test_the_key_never_shows() -> None:
    signer = Signer(KEY, mainnet=False)
    key_hex = KEY.removeprefix("0x")
    for text in (repr(signer), str(signer), f"{signer}", repr(vars(type(signer)))):
        assert key_hex not in text.lower()
    assert signer.address in repr(signer) and "testnet" in repr(signer)
    assert not hasattr(signer, "key") and not hasattr(signer, "__dict__")
    with pytest.raises(TypeError):
        pickle.dumps(signer)


def test_bad_keys_and_signatures_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Signer("0x1234", mainnet=True)
    with pytest.raises(ValueError, match="malformed"):
        recover_l1_signer(DUMMY, Signature(1, 1, 29), 0, mainnet=True)


def test_nonces_strictly_increase_even_when_the_clock_stalls_or_steps_back() -> None:
    times = iter([1000, 1000, 1000, 999, 500, 2000, 2000])
    source = NonceSource(lambda: next(times))
    got = [source.next() for _ in range(7)]
    assert got == [1000, 1001, 1002, 1003, 1004, 2000, 2001]
    assert source.last == 2001
