"""Wire numbers and the tick/lot rules: hand-computed cases from the docs' rules, and
hypothesis invariants (a rounded price always passes the server-side check, and moves by at
most half a grid step)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.hyperliquid.wire import (
    AssetInfo,
    WireError,
    action_weight,
    cancel_action,
    check_cloid,
    float_to_wire,
    new_cloid,
    order_action,
    price_error,
    round_price,
    round_size,
    size_error,
)

BTC = AssetInfo("BTC", 0, sz_decimals=5, max_leverage=40)   # 1 price decimal
ETH = AssetInfo("ETH", 1, sz_decimals=4, max_leverage=25)   # 2 price decimals
MEME = AssetInfo("MEME", 7, sz_decimals=0, max_leverage=3)  # 6 price decimals
PURR = AssetInfo("PURR/USDC", 10000, sz_decimals=0, max_leverage=1, spot=True)  # 8


@pytest.mark.parametrize(("x", "text"), [
    (100, "100"), (100.0, "100"), (1670.1, "1670.1"), (0.0147, "0.0147"), (-0.0, "0"),
    (0.00000001, "0.00000001"), (123456.125, "123456.125"), (-2.5, "-2.5"),
    (1e-9 * 0, "0"),
])
def test_float_to_wire(x: float, text: str) -> None:
    assert float_to_wire(x) == text


@pytest.mark.parametrize("x", [1e-9, 0.123456789, 1.000000001])
def test_float_to_wire_refuses_hidden_rounding(x: float) -> None:
    with pytest.raises(WireError, match="more than 8 decimals"):
        float_to_wire(x)


@pytest.mark.parametrize(("asset", "px", "mode", "want"), [
    (BTC, 61234.56, "nearest", 61235.0),     # 5 significant figures
    (BTC, 61234.56, "down", 61234.0),
    (BTC, 123456.7, "nearest", 123457.0),    # integers always allowed: not 123460
    (BTC, 9999.96, "nearest", 10000.0),
    (BTC, 1234.56, "nearest", 1234.6),       # 5 sig figs and 1 decimal agree
    (ETH, 1670.123, "nearest", 1670.1),
    (ETH, 3.14159, "up", 3.15),              # 2 decimals bind before 5 sig figs
    (MEME, 0.000123456, "nearest", 0.000123),  # 6 decimals bind
    (MEME, 0.0000004, "down", 0.000001),     # never rounded to zero: the smallest tick
    (PURR, 0.000123456, "nearest", 0.00012346),  # spot: 8 decimals
])
def test_round_price_hand_computed(asset: AssetInfo, px: float, mode: str, want: float) -> None:
    got = round_price(px, asset, mode)  # type: ignore[arg-type]
    assert got == want
    assert price_error(float_to_wire(got), asset) is None


@pytest.mark.parametrize(("asset", "text", "ok"), [
    (BTC, "61234", True), (BTC, "61234.5", False), (BTC, "123456", True),
    (BTC, "1234.5", True), (BTC, "1234.55", False), (ETH, "0.12345", False),
    (ETH, "0.12", True), (MEME, "0.000123", True), (MEME, "0.0001234", False),
    (BTC, "0", False), (BTC, "-1", False),
])
def test_price_rule(asset: AssetInfo, text: str, ok: bool) -> None:
    assert (price_error(text, asset) is None) is ok


@pytest.mark.parametrize(("asset", "text", "ok"), [
    (BTC, "0.00001", True), (BTC, "0.000001", False), (ETH, "1.2345", True),
    (MEME, "12", True), (MEME, "12.5", False), (ETH, "0", False),
])
def test_size_rule(asset: AssetInfo, text: str, ok: bool) -> None:
    assert (size_error(text, asset) is None) is ok


def test_round_size_never_rounds_up() -> None:
    assert round_size(0.123456, BTC) == 0.12345
    assert round_size(0.99999, ETH) == 0.9999
    assert round_size(12.9, MEME) == 12.0


assets = st.sampled_from([BTC, ETH, MEME, PURR])


@given(asset=assets, px=st.floats(min_value=1e-6, max_value=1e7, allow_nan=False),
       mode=st.sampled_from(["nearest", "down", "up"]))
def test_rounded_prices_always_pass_and_move_at_most_one_step(asset, px, mode) -> None:
    got = round_price(px, asset, mode)
    assert price_error(float_to_wire(got), asset) is None
    d = Decimal(repr(px))
    exponent = min(max(d.adjusted() - 4, -asset.price_decimals), 0)
    step = 10.0 ** exponent
    if got != step:  # not lifted to the smallest tick
        bound = step / 2 if mode == "nearest" else step
        assert abs(got - px) <= bound * (1 + 1e-9)
        if mode == "down":
            assert got <= px
        if mode == "up":
            assert got >= px * (1 - 1e-15)


@given(asset=assets, sz=st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_rounded_sizes_pass_and_never_exceed(asset, sz) -> None:
    got = round_size(sz, asset)
    assert got <= sz
    assert sz - got < 10.0 ** -asset.sz_decimals
    if got > 0:
        assert size_error(float_to_wire(got), asset) is None


def test_cloids() -> None:
    a, b = new_cloid(), new_cloid()
    assert a != b and check_cloid(a) == a and len(a) == 34
    assert check_cloid("0x" + "AB" * 16) == "0x" + "ab" * 16
    for bad in ("0x12", "ab" * 17, "0x" + "zz" * 16):
        with pytest.raises(WireError):
            check_cloid(bad)


def test_action_weight_follows_the_batch_rule() -> None:
    assert action_weight(order_action([{}])) == 1
    assert action_weight(order_action([{}] * 79)) == 2
    assert action_weight(cancel_action([(0, 1)] * 80)) == 3
    assert action_weight({"type": "updateLeverage"}) == 1
