"""Hyperliquid's adapter folder; it registers its venue kind (``live.venues``)."""

from live.venues import register

register("hyperliquid", "live.hyperliquid.kind:KIND")
