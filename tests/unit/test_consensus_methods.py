"""Every consensus method and conflict rule, table-driven (sim.consensus docstring)."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sim.agents.risk_manager import REDUCE_PREFIX, VETO_PREFIX
from sim.consensus import CONFLICT_RULES, METHODS, VotingConsensus, expire
from sim.messages import Side, Signal

L, S, F, H = Side.LONG, Side.SHORT, Side.FLAT, Side.HOLD
VETO = Signal(F, 0.9, 0.0, VETO_PREFIX + "drawdown")
REDUCE = Signal(H, 0.9, 0.25, REDUCE_PREFIX + "var")


def sig(side: Side, conf: float = 1.0, target: float | None = None) -> Signal:
    return Signal(side, conf, target)


class FixedWeights:
    """A performance source with given weights per symbol."""

    def __init__(self, *per_symbol: list[float]) -> None:
        self.per_symbol = per_symbol

    def weights(self, symbol: int) -> list[float]:
        return self.per_symbol[symbol]


# (id, method, conflict, quorum, min_agreement, votes, perf weights,
#  expected (side, confidence, target, rule, agreement))
CASES = [
    # --- majority
    ("maj-clear", "majority", "hold", 0, 0.0, [sig(L), sig(L), sig(S)], None,
     (L, 2 / 3, None, "none", 2 / 3)),
    ("maj-tie-hold", "majority", "hold", 0, 0.0, [sig(L), sig(S)], None,
     (H, 0.0, None, "hold", 0.5)),
    ("maj-three-way-tie", "majority", "hold", 0, 0.0, [sig(L), sig(S), sig(F)], None,
     (H, 0.0, None, "hold", 1 / 3)),
    ("maj-all-hold", "majority", "hold", 0, 0.0, [sig(H), sig(H), sig(H)], None,
     (H, 0.0, None, "no_votes", 0.0)),
    ("maj-all-none", "majority", "hold", 0, 0.0, [None, None], None,
     (H, 0.0, None, "no_votes", 0.0)),
    ("maj-no-agents", "majority", "hold", 0, 0.0, [], None,
     (H, 0.0, None, "no_votes", 0.0)),
    ("maj-single", "majority", "hold", 0, 0.0, [sig(S, 0.3, 0.5)], None,
     (S, 1.0, 0.5, "none", 1.0)),
    ("maj-none-abstains", "majority", "hold", 0, 0.0, [None, sig(H), sig(S, 0.2)], None,
     (S, 1.0, None, "none", 1.0)),
    ("maj-min-agreement", "majority", "hold", 0, 0.6, [sig(L), sig(L), sig(S), sig(F)],
     None, (H, 0.5, None, "min_agreement", 0.5)),
    ("maj-target-mean", "majority", "hold", 0, 0.0,
     [sig(L, 1, 0.2), sig(L, 1, 0.4), sig(L), sig(S)], None, (L, 0.75, 0.3, "none", 0.75)),
    # --- quorum
    ("quorum-short", "majority", "hold", 3, 0.0, [sig(L), sig(L), None, sig(H)], None,
     (H, 0.0, None, "quorum", 1.0)),
    ("quorum-met", "majority", "hold", 2, 0.0, [sig(L), sig(L), None, sig(H)], None,
     (L, 1.0, None, "none", 1.0)),
    ("quorum-single", "majority", "hold", 1, 0.0, [sig(F)], None,
     (F, 1.0, None, "none", 1.0)),
    # --- confidence weighted
    ("cw-conviction", "confidence_weighted", "hold", 0, 0.0,
     [sig(L, 0.9), sig(S, 0.3), sig(S, 0.3)], None, (L, 0.6, None, "none", 2 / 3)),
    ("cw-tie", "confidence_weighted", "hold", 0, 0.0, [sig(L, 0.5), sig(S, 0.5)], None,
     (H, 0.0, None, "hold", 0.5)),
    ("cw-zero-confidence", "confidence_weighted", "hold", 1, 0.0, [sig(L, 0.0)], None,
     (H, 0.0, None, "quorum", 0.0)),  # no weight, no opinion
    # --- unanimous
    ("un-agree", "unanimous", "hold", 0, 0.0, [sig(L), None, sig(L), sig(H)], None,
     (L, 1.0, None, "none", 1.0)),
    ("un-dissent", "unanimous", "highest_confidence", 0, 0.0,
     [sig(L), sig(L), sig(F, 0.1)], None, (H, 0.0, None, "dissent", 2 / 3)),
    ("un-single", "unanimous", "hold", 0, 0.0, [sig(S)], None, (S, 1.0, None, "none", 1.0)),
    # --- performance weighted
    ("pw-skill-beats-numbers", "performance_weighted", "hold", 0, 0.0,
     [sig(L), sig(S), sig(S)], [0.9, 0.3, 0.4], (L, 0.9 / 1.6, None, "none", 2 / 3)),
    ("pw-tie", "performance_weighted", "hold", 0, 0.0, [sig(L), sig(S)], [0.5, 0.5],
     (H, 0.0, None, "hold", 0.5)),
    ("pw-ignores-hold", "performance_weighted", "hold", 0, 0.0,
     [sig(H), sig(S), None], [0.9, 0.2, 0.7], (S, 1.0, None, "none", 1.0)),
    # --- highest_confidence
    ("hc-tie", "majority", "highest_confidence", 0, 0.0,
     [sig(L, 0.6), sig(S, 0.8), sig(L, 0.7), sig(S, 0.1)], None,
     (S, 0.5, None, "highest_confidence", 0.5)),
    ("hc-tie-of-tops", "majority", "highest_confidence", 0, 0.0,
     [sig(L, 0.8), sig(S, 0.8)], None, (H, 0.0, None, "highest_confidence", 0.5)),
    ("hc-no-tie", "majority", "highest_confidence", 0, 0.0,
     [sig(L, 0.1), sig(L, 0.1), sig(S, 1.0)], None, (L, 2 / 3, None, "none", 2 / 3)),
    # --- conservative
    ("cons-long-short", "majority", "conservative", 0, 0.0, [sig(L), sig(S)], None,
     (F, 0.0, None, "conservative", 0.5)),
    ("cons-with-flat", "majority", "conservative", 0, 0.0, [sig(L), sig(F, 1, 0.0)], None,
     (F, 0.5, 0.0, "conservative", 0.5)),
    ("cons-no-tie", "majority", "conservative", 0, 0.0, [sig(L), sig(L), sig(S)], None,
     (L, 2 / 3, None, "none", 2 / 3)),
    # --- risk_override
    ("risk-veto-wins", "majority", "risk_override", 0, 0.0,
     [sig(L), sig(L), sig(L), VETO], None, (F, 0.9, 0.0, "risk_veto", 0.75)),
    ("risk-veto-beats-quorum", "majority", "risk_override", 5, 0.0, [VETO], None,
     (F, 0.9, 0.0, "risk_veto", 1.0)),
    ("risk-reduce-caps", "majority", "risk_override", 0, 0.0,
     [sig(L, 1, 0.8), sig(L), REDUCE], None, (L, 1.0, 0.25, "risk_reduce", 1.0)),
    ("risk-reduce-no-target", "majority", "risk_override", 0, 0.0, [sig(S), REDUCE], None,
     (S, 1.0, 0.25, "risk_reduce", 1.0)),
    ("risk-reduce-under-cap", "majority", "risk_override", 0, 0.0,
     [sig(L, 1, 0.1), REDUCE], None, (L, 1.0, 0.1, "risk_reduce", 1.0)),
    ("risk-reduce-flat", "majority", "risk_override", 0, 0.0, [sig(F), REDUCE], None,
     (F, 1.0, None, "none", 1.0)),
    ("risk-reduce-alone", "majority", "risk_override", 0, 0.0, [None, REDUCE], None,
     (H, 0.0, None, "no_votes", 0.0)),
    ("risk-tie-holds", "majority", "risk_override", 0, 0.0, [sig(L), sig(S), REDUCE], None,
     (H, 0.0, None, "risk_override", 0.5)),
    ("veto-is-a-vote-elsewhere", "majority", "hold", 0, 0.0, [sig(L), sig(L), VETO], None,
     (L, 2 / 3, None, "none", 2 / 3)),
    ("reduce-abstains-elsewhere", "majority", "hold", 0, 0.0, [sig(L, 1, 0.8), REDUCE],
     None, (L, 1.0, 0.8, "none", 1.0)),
    # --- weighted_target
    ("wt-long-wins", "majority", "weighted_target", 0, 0.0,
     [sig(L, 1, 0.8), sig(S, 1, 0.2)], None, (L, 0.5, 0.3, "weighted_target", 0.5)),
    ("wt-missing-target-is-one", "majority", "weighted_target", 0, 0.0,
     [sig(L, 1, 0.5), sig(S)], None, (S, 0.5, 0.25, "weighted_target", 0.5)),
    ("wt-cancel-to-flat", "majority", "weighted_target", 0, 0.0, [sig(L), sig(S)], None,
     (F, 0.0, 0.0, "weighted_target", 0.5)),
    ("wt-flat-dilutes", "confidence_weighted", "weighted_target", 0, 0.0,
     [sig(L, 0.5, 1.0), sig(F, 0.5)], None, (L, 0.5, 0.5, "weighted_target", 0.5)),
]


@pytest.mark.parametrize(("method", "conflict", "quorum", "min_agreement", "votes", "perf",
                          "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_consensus_table(method: str, conflict: str, quorum: int, min_agreement: float,
                         votes: list[Signal | None], perf: list[float] | None,
                         expected: tuple) -> None:
    consensus = VotingConsensus(
        method, conflict=conflict, quorum=quorum, min_agreement=min_agreement,
        performance=FixedWeights(perf or [0.5] * len(votes)),
    )
    side, conf, target, weights, rule, agreement = consensus.resolve(votes)
    want_side, want_conf, want_target, want_rule, want_agreement = expected
    assert side is want_side
    assert conf == pytest.approx(want_conf)
    assert target == (None if want_target is None else pytest.approx(want_target))
    assert rule == want_rule
    assert agreement == pytest.approx(want_agreement)
    assert len(weights) == len(votes)
    assert consensus.decide(votes) == (side, conf, target, weights)


@pytest.mark.parametrize(("method", "votes", "weights"), [
    ("majority", [sig(L, 0.3), None, sig(H), sig(S, 0.9)], (1.0, 0.0, 0.0, 1.0)),
    ("unanimous", [sig(L, 0.3), None, sig(H), sig(S, 0.9)], (1.0, 0.0, 0.0, 1.0)),
    ("confidence_weighted", [sig(L, 0.3), None, sig(H), sig(S, 0.9)], (0.3, 0.0, 0.0, 0.9)),
    ("performance_weighted", [sig(L, 0.3), None, sig(H), sig(S, 0.9)], (0.1, 0.0, 0.0, 0.4)),
])
def test_vote_weights_per_method(method: str, votes: list, weights: tuple) -> None:
    perf = FixedWeights([0.1, 0.2, 0.3, 0.4])
    assert VotingConsensus(method, performance=perf).resolve(votes)[3] == weights


def test_performance_weights_are_read_per_symbol() -> None:
    perf = FixedWeights([0.9, 0.1], [0.1, 0.9])
    consensus = VotingConsensus("performance_weighted", performance=perf)
    votes = [sig(L), sig(S)]
    assert consensus.resolve(votes, 0)[0] is L
    assert consensus.resolve(votes, 1)[0] is S


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "plurality"}, "unknown consensus method"),
    ({"conflict": "coin"}, "unknown conflict rule"),
    ({"quorum": -1}, "quorum"),
    ({"min_agreement": 1.5}, "min_agreement"),
    ({"method": "performance_weighted"}, "performance tracker"),
])
def test_bad_settings_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VotingConsensus(**kwargs)


# -- staleness ------------------------------------------------------------------------
MIN = 60 * 10**9


@pytest.mark.parametrize(("ages_min", "expected"), [
    ((0, 4, 5, 6), (True, True, False, False)),  # age >= max_age (5m) is stale
    ((10, 10), (False, False)),                  # all stale
    ((0,), (True,)),                             # a single fresh agent
])
def test_expire_drops_stale_signals(ages_min: tuple, expected: tuple) -> None:
    now = 100 * MIN
    signals = [sig(L)] * len(ages_min)
    given = [now - a * MIN for a in ages_min]
    kept = expire(signals, given, now, 5 * MIN)
    assert tuple(s is not None for s in kept) == expected


def test_expire_keeps_missing_as_missing() -> None:
    assert expire([None, sig(S)], [0, 0], 1, 5) == (None, sig(S))


def test_stale_agents_do_not_vote_or_count_for_quorum() -> None:
    now, age = 10 * MIN, 5 * MIN
    signals = [sig(L), sig(S), sig(S)]
    given = [now, now - 7 * MIN, now - 6 * MIN]  # both shorts are stale
    consensus = VotingConsensus("majority", quorum=1)
    assert consensus.resolve(expire(signals, given, now, age))[0] is L
    assert VotingConsensus("majority", quorum=2).resolve(
        expire(signals, given, now, age))[4] == "quorum"
    assert consensus.resolve(signals)[0] is S  # without expiry the shorts win


# -- invariants -----------------------------------------------------------------------
_SIGNALS = st.lists(st.one_of(
    st.none(), st.just(VETO), st.just(REDUCE),
    st.builds(Signal, st.sampled_from(list(Side)), st.floats(0.0, 1.0),
              st.one_of(st.none(), st.floats(0.0, 1.0)))), max_size=10)


@given(_SIGNALS, st.sampled_from(METHODS), st.sampled_from(CONFLICT_RULES),
       st.integers(0, 4))
def test_every_outcome_is_valid(signals: list, method: str, conflict: str, quorum: int) -> None:
    perf = FixedWeights([0.25 + 0.05 * i for i in range(len(signals))])
    side, conf, target, weights, rule, agreement = VotingConsensus(
        method, conflict=conflict, quorum=quorum, performance=perf).resolve(signals)
    assert side in Side
    assert 0.0 <= conf <= 1.0
    assert target is None or 0.0 <= target <= 1.0
    assert 0.0 <= agreement <= 1.0
    assert len(weights) == len(signals)
    assert all(w >= 0.0 for w in weights)
    if side is H:
        assert target is None
    if conflict == "risk_override" and VETO in signals:
        assert (side, target, rule) == (F, 0.0, "risk_veto")


@given(st.one_of(st.none(), st.just(VETO), st.just(REDUCE), st.builds(
           Signal, st.sampled_from(list(Side)), st.floats(0.0, 1.0),
           st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.0]), st.floats(0.0, 1.0)))),
       st.sampled_from(METHODS), st.sampled_from(CONFLICT_RULES), st.integers(0, 3),
       st.sampled_from([0.0, 0.5, 1.0]))
@example(Signal(Side.LONG, 0.5, -0.0), "majority", "hold", 0, 0.0)
@example(Signal(Side.FLAT, 0.0, 0.5), "confidence_weighted", "hold", 1, 1.0)
@example(Signal(Side.SHORT, 1.0, None), "unanimous", "highest_confidence", 2, 0.5)
def test_a_lone_voter_gets_the_general_passs_verdict(
        signal: Signal | None, method: str, conflict: str, quorum: int,
        min_agreement: float) -> None:
    """One signal takes a shortcut past the general pass; the verdict (and its float
    values' signs: a target of -0.0 comes out 0.0) is the general pass's, and the same as
    beside an agent with no signal (which votes 0 and counts for nothing)."""
    def make() -> VotingConsensus:
        return VotingConsensus(method, conflict=conflict, quorum=quorum,
                               min_agreement=min_agreement, performance=FixedWeights([0.5]))
    shortcut, general = make(), make()
    general._lone_voter_wins = False
    got = shortcut.resolve([signal])
    assert repr(got) == repr(general.resolve([signal]))
    beside = shortcut.resolve([signal, None])
    assert repr(got[:3] + got[4:]) == repr(beside[:3] + beside[4:])
    assert beside[3] == got[3] + (0.0,)
