"""Trigger orders on the wire, against the documented shape: the Python SDK's
``order_type_to_wire`` sends ``{"trigger": {"isMarket", "triggerPx", "tpsl"}}`` (that key
order: the action is hashed as msgpack), ``examples/basic_tpsl.py`` places brackets as
reduce-only market triggers; a market trigger's limit price bounds its slippage and may
not be beyond its trigger on the wrong side ("Invalid TP/SL price")."""

from __future__ import annotations

import pytest

from live.hyperliquid.config import HyperliquidConfig
from live.hyperliquid.venue import HyperliquidVenue
from live.hyperliquid.wire import AssetInfo

CLOID = "0x" + "ab" * 16


@pytest.fixture
def venue() -> HyperliquidVenue:
    v = HyperliquidVenue(HyperliquidConfig(network="testnet", market_slippage=0.05))
    v.assets = {"ETH": AssetInfo("ETH", 1, 4, 25)}  # 0.01 grid below 10,000 at 5 sig figs
    return v


@pytest.mark.parametrize(("is_buy", "tpsl", "asked", "trigger", "limit"), [
    # a long's stop-loss: a sell, its trigger rounded up (fires a tick early, never late)
    (False, "sl", 1950.372, "1950.4", "1852.9"),   # 1950.4 * 0.95 = 1852.88, rounded up
    # a long's take-profit: a sell, rounded up (never takes less than asked)
    (False, "tp", 2100.051, "2100.1", "1995.1"),   # 1995.095 rounded up
    # a short's stop-loss and take-profit: buys, rounded down
    (True, "sl", 2049.996, "2049.9", "2152.3"),    # 2152.395 rounded down
    (True, "tp", 1800.06, "1800", "1890"),
])
def test_tp_and_sl_triggers_have_the_documented_wire_shape(
        venue: HyperliquidVenue, is_buy: bool, tpsl: str, asked: float, trigger: str,
        limit: str) -> None:
    prepared = venue.prepare_trigger("ETH", is_buy, 0.51234, asked,
                                     tpsl, reduce_only=True, cloid=CLOID)  # type: ignore[arg-type]
    assert prepared.rejection is None
    (wire,) = prepared.action["orders"]
    assert wire == {"a": 1, "b": is_buy, "p": limit, "s": "0.5123", "r": True,
                    "t": {"trigger": {"isMarket": True, "triggerPx": trigger, "tpsl": tpsl}},
                    "c": CLOID}
    assert list(wire) == ["a", "b", "p", "s", "r", "t", "c"]
    assert list(wire["t"]["trigger"]) == ["isMarket", "triggerPx", "tpsl"]
    assert prepared.action["type"] == "order" and prepared.action["grouping"] == "na"
    # the slippage bound is on the allowed side of the trigger, within market_slippage
    px, trig = float(limit), float(trigger)
    assert (px >= trig) if is_buy else (px <= trig)
    assert abs(px / trig - 1) <= 0.05 + 1e-12


def test_a_stop_entry_is_not_reduce_only_and_meets_the_minimum(venue: HyperliquidVenue
                                                               ) -> None:
    entry = venue.prepare_trigger("ETH", True, 0.004, 2010.0, "sl", reduce_only=False,
                                  cloid=CLOID)
    assert entry.rejection is not None and "minimum" in entry.rejection  # about $8 < $10
    entry = venue.prepare_trigger("ETH", True, 0.1, 2010.0, "sl", reduce_only=False,
                                  cloid=CLOID)
    (wire,) = entry.action["orders"]
    assert wire["r"] is False and wire["t"]["trigger"]["tpsl"] == "sl"
