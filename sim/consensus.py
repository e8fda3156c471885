"""Consensus: many agents' standing signals on one symbol become one decision.

Votes are the agents' current signals (HOLD or no signal yet = abstain). A tie between the
strongest sides is a conflict and resolves to HOLD, as does a winner short of
``min_agreement`` (the winner's share of votes, or of confidence for the weighted method).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sim.messages import FLAT, HOLD, LONG, SHORT, Side, Signal

Outcome = tuple[Side, float, float | None, tuple[float, ...]]


class Consensus(Protocol):
    name: str

    def decide(self, signals: Sequence[Signal | None]) -> Outcome:
        """Return (side, confidence, target, weight per vote) for agents in a fixed order."""
        ...


class _Scored:
    """Shared scoring; a method only says how much one vote weighs (``_by_confidence``)."""

    name = "abstract"
    _by_confidence = False

    def __init__(self, min_agreement: float = 0.0) -> None:
        if not 0.0 <= min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in [0, 1], got {min_agreement}")
        self.min_agreement = min_agreement

    def decide(self, signals: Sequence[Signal | None]) -> Outcome:
        if self._by_confidence:
            weights = tuple([0.0 if s is None or s.side is HOLD else s.confidence
                             for s in signals])
        else:
            weights = tuple([0.0 if s is None or s.side is HOLD else 1.0 for s in signals])
        long = short = flat = 0.0
        for sig, w in zip(signals, weights):  # noqa: B905 (same length by construction)
            if w:
                side = sig.side  # type: ignore[union-attr]
                if side is LONG:
                    long += w
                elif side is SHORT:
                    short += w
                else:
                    flat += w
        total = long + short + flat
        if total <= 0.0:
            return HOLD, 0.0, None, weights
        # Pick the heaviest side; any tie at the top is a conflict.
        if long > short and long > flat:
            best, top = LONG, long
        elif short > long and short > flat:
            best, top = SHORT, short
        elif flat > long and flat > short:
            best, top = FLAT, flat
        else:
            return HOLD, 0.0, None, weights
        share = top / total
        if share < self.min_agreement:
            return HOLD, share, None, weights
        targets = [
            s.target for s in signals if s is not None and s.side is best and s.target is not None
        ]
        target = sum(targets) / len(targets) if targets else None
        return best, share, target, weights


class MajorityConsensus(_Scored):
    """One agent, one vote; confidence = the winning side's share of the votes."""

    name = "majority"


class ConfidenceWeightedConsensus(_Scored):
    """Votes weigh their confidence; confidence = the winner's share of total confidence."""

    name = "confidence_weighted"
    _by_confidence = True


CONSENSUS_METHODS: dict[str, type[_Scored]] = {
    "majority": MajorityConsensus,
    "confidence_weighted": ConfidenceWeightedConsensus,
}
