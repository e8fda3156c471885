"""Consensus: many agents' standing signals on one symbol become one decision.

Votes are the agents' current signals. An agent **has an opinion** when its signal is
LONG, SHORT or FLAT and weighs more than 0 (a zero confidence under
``confidence_weighted`` weighs nothing); HOLD, no signal yet (None) and a stale signal
(older than ``max_signal_age``, see ``expire``) abstain. What a vote weighs depends on
``method``:

* ``majority`` -- 1 per opinion; ``unanimous`` -- 1 per opinion, and every opinion must
  be on the same side (any dissent -> HOLD, rule ``"dissent"``);
* ``confidence_weighted`` -- the signal's confidence;
* ``performance_weighted`` -- the agent's decayed hit rate on that symbol, from
  ``sim.performance.AgentPerformance`` (0.5 before its first scored signal).

Steps, in order (the first that applies decides; ``rule`` names it in the decisions table):

1. ``conflict = "risk_override"`` and a signal is a risk veto (``is_veto``) -> FLAT,
   target 0, whatever the votes and the quorum say (rule ``"risk_veto"``).
2. Fewer than ``quorum`` opinions -> HOLD (``"quorum"``). No weight at all -> HOLD
   (``"no_votes"``).
3. The heaviest side wins. A tie at the top is a **conflict**, resolved by ``conflict``:

   - ``hold`` -- HOLD;
   - ``highest_confidence`` -- the tied side holding the single most confident vote; HOLD
     if that maximum is itself tied;
   - ``conservative`` -- FLAT (exit: the conservative reading of a split vote);
   - ``risk_override`` -- HOLD (the override concerns vetoes and caps, not ties);
   - ``weighted_target`` -- the weighted mean of every opinion's signed target exposure
     (LONG +target, SHORT -target, FLAT 0; a missing target counts as 1): LONG if
     positive, SHORT if negative, FLAT if zero, with ``target = |mean|``.

   A clear winner (no tie) whose share of the weight is below ``min_agreement`` -> HOLD
   (``"min_agreement"``); a tie's resolution is final.
4. The target is the mean of the winners' targets (None if none gave one). Under
   ``risk_override`` a risk reduce (``is_reduce``) caps it: ``min(target, cap)``, or
   ``cap`` when there was none (rule ``"risk_reduce"``); with several, the lowest cap.

``confidence`` is the decided side's share of the total weight (0 for HOLD by tie or
quorum). ``agreement`` is outcome-independent: the share of the opinions on the side
with the most opinions (by count), 0 with none. ``rule`` is ``"none"`` when a clear
winner was decided without any of the above.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sim.agents.risk_manager import is_reduce, is_veto
from sim.messages import FLAT, HOLD, LONG, SHORT, Side, Signal

Outcome = tuple[Side, float, float | None, tuple[float, ...]]
# (side, confidence, target, weight per vote, rule applied, agreement ratio)
Verdict = tuple[Side, float, float | None, tuple[float, ...], str, float]

METHODS = ("majority", "confidence_weighted", "unanimous", "performance_weighted")
CONFLICT_RULES = ("hold", "highest_confidence", "conservative", "risk_override",
                  "weighted_target")


class Consensus(Protocol):
    name: str

    def decide(self, signals: Sequence[Signal | None]) -> Outcome:
        """Return (side, confidence, target, weight per vote) for agents in a fixed order."""
        ...

    def resolve(self, signals: Sequence[Signal | None], symbol: int = 0) -> Verdict:
        """``decide`` plus the rule applied and the agreement ratio; ``symbol`` indexes
        per-symbol state (performance weights)."""
        ...


class PerformanceSource(Protocol):
    def weights(self, symbol: int) -> Sequence[float]:
        """Current weight of each agent trading ``symbol``, in its listed order."""
        ...


def expire(
    signals: Sequence[Signal | None], signal_ts: Sequence[int], now: int, max_age: int
) -> tuple[Signal | None, ...]:
    """Standing signals with every stale one replaced by None.

    A signal given at ``ts`` is stale once ``now - ts >= max_age``: with 1-minute bars and
    ``max_age`` of 5 minutes it votes on the bar it was given and the next four.
    """
    return tuple([None if sig is None or now - ts >= max_age else sig
                  for sig, ts in zip(signals, signal_ts, strict=True)])


class VotingConsensus:
    """Every method and conflict rule of the module docstring, in one object."""

    def __init__(
        self, method: str = "majority", *, min_agreement: float = 0.0,
        conflict: str = "hold", quorum: int = 0,
        performance: PerformanceSource | None = None,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown consensus method {method!r}; one of {METHODS}")
        if conflict not in CONFLICT_RULES:
            raise ValueError(f"unknown conflict rule {conflict!r}; one of {CONFLICT_RULES}")
        if not 0.0 <= min_agreement <= 1.0:
            raise ValueError(f"min_agreement must be in [0, 1], got {min_agreement}")
        if quorum < 0:
            raise ValueError(f"quorum must be >= 0, got {quorum}")
        if method == "performance_weighted" and performance is None:
            raise ValueError("performance_weighted needs a performance tracker")
        self.name = method
        self.method = method
        self.conflict = conflict
        self.quorum = quorum
        self.min_agreement = min_agreement
        self.performance = performance
        self._risk = conflict == "risk_override"
        self._by_confidence = method == "confidence_weighted"
        self._by_performance = method == "performance_weighted"
        self._unanimous = method == "unanimous"
        # A lone voter's signal is the verdict (see ``resolve``) unless a rule could
        # overrule it: a risk override, a quorum above one, or performance weights.
        self._lone_voter_wins = not self._risk and quorum <= 1 and not self._by_performance

    def decide(self, signals: Sequence[Signal | None]) -> Outcome:
        return self.resolve(signals)[:4]  # type: ignore[return-value]

    def resolve(self, signals: Sequence[Signal | None], symbol: int = 0) -> Verdict:
        # Runs on every vote (most signal changes): one pass over the signals makes the
        # votes, the sides' weights and counts, and the targets given for each side.
        by_confidence = self._by_confidence
        if len(signals) == 1 and self._lone_voter_wins:
            # One agent with an opinion of positive weight: the general pass below ends
            # in this verdict (share w / w, agreement 1 / 1, its target as the mean of
            # one: ``sum`` starts at 0, so -0.0 comes out 0.0 there and here).
            sig = signals[0]
            if sig is not None and (side := sig.side) is not HOLD:
                w = sig.confidence if by_confidence else 1.0
                if w > 0.0:
                    t = sig.target
                    return side, 1.0, None if t is None else t + 0.0, (w,), "none", 1.0
        perf = (self.performance.weights(symbol)  # type: ignore[union-attr]
                if self._by_performance else None)
        weights: list[float] = []
        vote = weights.append
        long = short = flat = 0.0
        n_long = n_short = n_flat = 0
        targets: list[tuple[Any, float]] = []  # (side, target), in signal order
        for i, sig in enumerate(signals):
            if sig is None or (side := sig.side) is HOLD:
                vote(0.0)
                continue
            w = sig.confidence if by_confidence else 1.0 if perf is None else perf[i]
            vote(w)
            if (t := sig.target) is not None:  # a target counts even at zero weight
                targets.append((side, t))
            if w:
                if side is LONG:
                    long += w
                    n_long += 1
                elif side is SHORT:
                    short += w
                    n_short += 1
                else:
                    flat += w
                    n_flat += 1
        votes = tuple(weights)
        veto: Signal | None = None
        cap: float | None = None
        if self._risk:
            for sig in signals:
                if veto is None and is_veto(sig):
                    veto = sig
                elif is_reduce(sig):
                    cap = sig.target if cap is None else min(cap, sig.target)  # type: ignore[union-attr,type-var]
        voters = n_long + n_short + n_flat
        agreement = max(n_long, n_short, n_flat) / voters if voters else 0.0
        if veto is not None:
            return FLAT, veto.confidence, 0.0, votes, "risk_veto", agreement
        if voters < self.quorum:
            return HOLD, 0.0, None, votes, "quorum", agreement
        total = long + short + flat
        if total <= 0.0:
            return HOLD, 0.0, None, votes, "no_votes", agreement
        if self._unanimous and (n_long > 0) + (n_short > 0) + (n_flat > 0) > 1:
            return HOLD, 0.0, None, votes, "dissent", agreement
        rule = "none"
        if long > short and long > flat:
            best, top = LONG, long
        elif short > long and short > flat:
            best, top = SHORT, short
        elif flat > long and flat > short:
            best, top = FLAT, flat
        else:  # a tie at the top: the conflict rule decides
            rule = self.conflict
            best = self._break_tie(signals, votes, long, short, flat, total)  # type: ignore[assignment]
            if best is None:
                return HOLD, 0.0, None, votes, rule, agreement
            if rule == "weighted_target":
                best, target = best  # type: ignore[misc]
                top = long if best is LONG else short if best is SHORT else flat
                return best, top / total, target, votes, rule, agreement
            top = long if best is LONG else short if best is SHORT else flat
        share = top / total
        if rule == "none" and share < self.min_agreement:
            return HOLD, share, None, votes, "min_agreement", agreement
        mine = [t for side, t in targets if side is best] if targets else None
        target = sum(mine) / len(mine) if mine else None
        if cap is not None and best is not FLAT:
            target = cap if target is None else min(target, cap)
            if rule == "none":
                rule = "risk_reduce"
        return best, share, target, votes, rule, agreement

    def _break_tie(
        self, signals: Sequence[Signal | None], votes: tuple[float, ...],
        long: float, short: float, flat: float, total: float,
    ) -> Any:
        """The side a conflict resolves to, None for HOLD; for ``weighted_target`` the
        pair (side, target)."""
        rule = self.conflict
        top = max(long, short, flat)
        tied = [side for side, w in ((SHORT, short), (FLAT, flat), (LONG, long)) if w == top]
        if rule == "highest_confidence":
            confs = [max(s.confidence for s, w in zip(signals, votes, strict=False)
                         if w and s is not None and s.side is side)
                     for side in tied]
            most = max(confs)
            return None if confs.count(most) > 1 else tied[confs.index(most)]
        if rule == "conservative":
            return FLAT
        if rule == "weighted_target":
            net = 0.0
            for sig, w in zip(signals, votes):  # noqa: B905 (same length)
                if w and sig.side is not FLAT:  # type: ignore[union-attr]
                    t = sig.target  # type: ignore[union-attr]
                    net += w * (1.0 if t is None else t) * sig.side  # type: ignore[union-attr]
            net /= total
            return (LONG if net > 0.0 else SHORT if net < 0.0 else FLAT), abs(net)
        return None  # "hold", and "risk_override" (which concerns vetoes and caps only)


class MajorityConsensus(VotingConsensus):
    """One agent, one vote; confidence = the winning side's share of the votes."""

    def __init__(self, min_agreement: float = 0.0, **kw: Any) -> None:
        super().__init__("majority", min_agreement=min_agreement, **kw)


class ConfidenceWeightedConsensus(VotingConsensus):
    """Votes weigh their confidence; confidence = the winner's share of total confidence."""

    def __init__(self, min_agreement: float = 0.0, **kw: Any) -> None:
        super().__init__("confidence_weighted", min_agreement=min_agreement, **kw)


# Kept for callers that look a method up by name; every name builds a VotingConsensus.
CONSENSUS_METHODS: dict[str, Any] = {name: name for name in METHODS}
