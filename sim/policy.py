"""Policy: the "how much". A decision becomes a target exposure, then an order quantity.

Target exposure is a signed fraction of equity. The policy acts on a decision only when
its target differs from the last target it acted on, so a standing decision does not churn
the book as prices drift, and HOLD keeps whatever is held.
"""

from __future__ import annotations

from sim.messages import FLAT, HOLD, LONG, SHORT, Side


class TargetExposurePolicy:
    __slots__ = ("allow_short", "exposure", "min_notional", "scale_by_confidence")

    def __init__(
        self,
        exposure: float = 1.0,
        allow_short: bool = False,
        scale_by_confidence: bool = False,
        min_notional: float = 0.0,
    ) -> None:
        self.exposure = exposure
        self.allow_short = allow_short
        self.scale_by_confidence = scale_by_confidence
        self.min_notional = min_notional

    def target_exposure(
        self, side: Side, confidence: float, target: float | None
    ) -> float | None:
        """Signed fraction of equity a decision asks for, or None to leave the position be.

        Takes the decision's fields rather than a ``Decision``: it runs on every change of
        consensus, most of which never become an order.
        """
        if side is HOLD:
            return None
        if side is FLAT or (side is SHORT and not self.allow_short):
            return 0.0
        size = self.exposure if target is None else min(target, self.exposure)
        if self.scale_by_confidence:
            size *= confidence
        return size if side is LONG else -size

    def order_quantity(
        self, target: float, position: float, equity: float, price: float
    ) -> float:
        """Signed quantity that moves ``position`` to ``target`` x equity at ``price``.

        Zero when the trade would be smaller than ``min_notional``. Fees are left to the
        venue's fill, which trims buys to the cash available (as a cash account must).
        """
        delta = (target * equity / price if target else 0.0) - position
        if abs(delta) * price <= self.min_notional:
            return 0.0
        return delta
