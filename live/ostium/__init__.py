"""Ostium's adapter folder; it registers its venue kind (``live.venues``)."""

from live.venues import register

register("ostium", "live.ostium.kind:KIND")
