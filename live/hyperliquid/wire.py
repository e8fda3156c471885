"""Hyperliquid wire formats: number strings, price/size rules, client ids, action shapes.

Everything here is pure (no I/O, no clock) and shared by the client and the fake server,
so both sides apply the same rules.

Rules (Hyperliquid docs, "Tick and lot size"; implemented once in ``sim.instruments``,
which the simulation's Hyperliquid preset uses too):
- a size has at most ``szDecimals`` decimals (per asset, from ``meta``);
- a price has at most 5 significant figures and at most ``6 - szDecimals`` decimals for
  perpetuals (``8 - szDecimals`` for spot); an integer price is always allowed, whatever
  its number of significant figures.

Numbers go on the wire as strings with at most 8 decimals, trailing zeros dropped
(``float_to_wire``). A value that would need more than 8 decimals is refused rather than
silently rounded: prices and sizes must be rounded by the rules above first.

Action dicts keep the exact key order the exchange hashes (msgpack preserves it), so the
builders below are the only place actions are shaped.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from sim.instruments import (
    HL_MIN_NOTIONAL,
    HL_PERP_DECIMALS,
    HL_SIG_FIGS,
    HL_SPOT_DECIMALS,
    Instrument,
    Rounding,
    floor_decimals,
    hyperliquid_instrument,
    round_decimal_price,
)

PERP_MAX_DECIMALS = HL_PERP_DECIMALS
SPOT_MAX_DECIMALS = HL_SPOT_DECIMALS
MAX_SIG_FIGS = HL_SIG_FIGS
MIN_NOTIONAL = HL_MIN_NOTIONAL  # USD; "Order must have minimum value of $10."

Tif = Literal["Gtc", "Ioc", "Alo"]
Tpsl = Literal["tp", "sl"]


class WireError(ValueError):
    """A number that cannot be sent as given (it would be rounded on the way)."""


@dataclass(frozen=True, slots=True)
class AssetInfo:
    """One tradable asset from ``meta``: its index is what orders name (``a``)."""

    name: str
    index: int
    sz_decimals: int
    max_leverage: int
    spot: bool = False

    @property
    def price_decimals(self) -> int:
        return (SPOT_MAX_DECIMALS if self.spot else PERP_MAX_DECIMALS) - self.sz_decimals

    def instrument(self, venue: str, symbol: str) -> Instrument:
        """This asset's rules as the simulation's instrument (a live session replaces the
        scenario's with it)."""
        return hyperliquid_instrument(venue, symbol, self.sz_decimals, spot=self.spot,
                                      max_leverage=float(self.max_leverage),
                                      source="hyperliquid meta")


def float_to_wire(x: float) -> str:
    """``x`` as the exchange's number string: at most 8 decimals, no trailing zeros."""
    text = f"{x:.8f}"
    if abs(float(text) - x) >= 1e-12:
        raise WireError(f"{x!r} needs more than 8 decimals: round it first")
    if text.startswith("-") and float(text) == 0.0:
        text = text[1:]
    value = Decimal(text).normalize()
    return f"{value:f}"


def round_price(px: float, asset: AssetInfo, mode: Rounding = "nearest") -> float:
    """``px`` on the asset's price grid: 5 significant figures, at most
    ``price_decimals`` decimals; integer prices are always valid, so a price of 100,000 or
    more is rounded to a whole number, never to 5 significant figures. The rule is
    ``sim.instruments``' (one implementation for simulated and real fills)."""
    if not px > 0 or not math.isfinite(px):
        raise WireError(f"price must be positive and finite, got {px!r}")
    return round_decimal_price(px, MAX_SIG_FIGS, asset.price_decimals, mode)


def round_size(sz: float, asset: AssetInfo) -> float:
    """``sz`` rounded toward zero to ``szDecimals`` decimals (never more than asked)."""
    if not sz >= 0 or not math.isfinite(sz):
        raise WireError(f"size must be non-negative and finite, got {sz!r}")
    return floor_decimals(sz, asset.sz_decimals)


def price_error(px_text: str, asset: AssetInfo) -> str | None:
    """Why a wire price breaks the tick rules, or None when it is valid."""
    d = Decimal(px_text)
    if not d.is_finite() or d <= 0:
        return "Order has invalid price."
    if d == d.to_integral_value():
        return None
    digits = d.normalize().as_tuple()
    decimals = -int(digits.exponent)
    if len(digits.digits) > MAX_SIG_FIGS or decimals > asset.price_decimals:
        return "Price must be divisible by tick size."
    return None


def size_error(sz_text: str, asset: AssetInfo) -> str | None:
    """Why a wire size breaks the lot rule, or None when it is valid."""
    d = Decimal(sz_text)
    if not d.is_finite() or d <= 0:
        return "Order has invalid size."
    if -int(d.normalize().as_tuple().exponent) > asset.sz_decimals:
        return "Order has invalid size."
    return None


def new_cloid() -> str:
    """A fresh client order id: 16 random bytes as 0x + 32 hex digits."""
    return "0x" + secrets.token_hex(16)


def check_cloid(cloid: str) -> str:
    """The cloid in canonical form (lower-case), or WireError if it is not 16 bytes hex."""
    text = cloid.lower()
    if len(text) != 34 or not text.startswith("0x"):
        raise WireError(f"cloid must be 0x + 32 hex digits, got {cloid!r}")
    try:
        bytes.fromhex(text[2:])
    except ValueError:
        raise WireError(f"cloid must be 0x + 32 hex digits, got {cloid!r}") from None
    return text


def limit_type(tif: Tif) -> dict[str, Any]:
    return {"limit": {"tif": tif}}


def trigger_type(trigger_px: str, is_market: bool, tpsl: Tpsl) -> dict[str, Any]:
    return {"trigger": {"isMarket": is_market, "triggerPx": trigger_px, "tpsl": tpsl}}


def order_wire(asset: int, is_buy: bool, px: str, sz: str, reduce_only: bool,
               order_type: dict[str, Any], cloid: str | None) -> dict[str, Any]:
    """One order as hashed and sent; ``px``/``sz`` are already wire strings."""
    wire = {"a": asset, "b": is_buy, "p": px, "s": sz, "r": reduce_only, "t": order_type}
    if cloid is not None:
        wire["c"] = cloid
    return wire


def order_action(orders: list[dict[str, Any]], grouping: str = "na") -> dict[str, Any]:
    return {"type": "order", "orders": orders, "grouping": grouping}


def cancel_action(cancels: list[tuple[int, int]]) -> dict[str, Any]:
    """Cancel by exchange order id: ``(asset, oid)`` pairs."""
    return {"type": "cancel", "cancels": [{"a": a, "o": o} for a, o in cancels]}


def cancel_by_cloid_action(cancels: list[tuple[int, str]]) -> dict[str, Any]:
    """Cancel by client order id: ``(asset, cloid)`` pairs."""
    return {"type": "cancelByCloid",
            "cancels": [{"asset": a, "cloid": check_cloid(c)} for a, c in cancels]}


def update_leverage_action(asset: int, leverage: int, is_cross: bool) -> dict[str, Any]:
    return {"type": "updateLeverage", "asset": asset, "isCross": is_cross,
            "leverage": leverage}


def action_weight(action: dict[str, Any]) -> int:
    """REST weight of an exchange action: 1 + floor(batch length / 40)."""
    batch = action.get("orders") or action.get("cancels") or ()
    return 1 + len(batch) // 40


def to_decimal_text(x: float) -> str:
    """A float as a plain decimal string (for messages and the fake server's book)."""
    return f"{Decimal(repr(x)).quantize(Decimal('1e-8'), rounding=ROUND_HALF_EVEN).normalize():f}"
