"""Policy: the "how much". A decision becomes a target exposure, then an order quantity.

Target exposure is a signed fraction of equity. The policy acts on a decision only when
its target differs from the last target it acted on, so a standing decision does not churn
the book as prices drift, and HOLD keeps whatever is held.
"""

from __future__ import annotations

from sim.messages import Decision, Side


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

    def target_exposure(self, decision: Decision) -> float | None:
        """Signed fraction of equity to hold, or None to leave the position alone."""
        side = decision.side
        if side is Side.HOLD:
            return None
        if side is Side.FLAT or (side is Side.SHORT and not self.allow_short):
            return 0.0
        size = self.exposure if decision.target is None else min(decision.target, self.exposure)
        if self.scale_by_confidence:
            size *= decision.confidence
        return size if side is Side.LONG else -size

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
