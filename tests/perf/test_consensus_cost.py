"""Cost of one consensus decision over 10 agents, per method and conflict rule.

Disabled by default like every benchmark here (``--benchmark-disable``: one smoke run);
measure with ``pytest tests/perf/test_consensus_cost.py --benchmark-enable``. One round
decides ``VOTES`` different vote vectors, so per decision = round time / VOTES.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.agents.risk_manager import REDUCE_PREFIX, VETO_PREFIX
from sim.consensus import CONFLICT_RULES, METHODS, VotingConsensus
from sim.messages import Side, Signal
from sim.performance import AgentPerformance

AGENTS = 10
VOTES = 1_000


def vote_vectors(seed: int = 7) -> list[tuple[Signal | None, ...]]:
    rng = np.random.default_rng(seed)
    pool: list[Signal | None] = [None, Signal(Side.HOLD, 0.0),
                                 Signal(Side.FLAT, 0.9, 0.0, VETO_PREFIX + "dd"),
                                 Signal(Side.HOLD, 0.9, 0.4, REDUCE_PREFIX + "var")]
    pool += [Signal(side, round(c, 2), t)
             for side in (Side.LONG, Side.SHORT, Side.FLAT)
             for c in (0.2, 0.5, 0.8) for t in (None, 0.5)]
    # mostly directional votes, some abstentions and, rarely, a risk signal
    p = np.array([4, 2, 0.1, 0.3] + [1.0] * (len(pool) - 4))
    picks = rng.choice(len(pool), size=(VOTES, AGENTS), p=p / p.sum())
    return [tuple(pool[i] for i in row) for row in picks]


@pytest.mark.parametrize("conflict", CONFLICT_RULES)
@pytest.mark.parametrize("method", METHODS)
def test_consensus_decision_cost(benchmark, method: str, conflict: str) -> None:
    perf = AgentPerformance([AGENTS], decay=0.9)
    consensus = VotingConsensus(method, conflict=conflict, quorum=3, performance=perf)
    votes = vote_vectors()
    resolve = consensus.resolve

    def decide_all() -> int:
        n = 0
        for v in votes:
            n += resolve(v, 0)[0] is not Side.HOLD
        return n

    assert benchmark(decide_all) >= 0
