"""``sim.fast_votes._kept``: an agent's accepted signal changes are the same whether its
batch form gives its signals as codes into a table (``SignalChanges.codes``, read in bulk)
or only as objects (read one by one, by identity)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from sim.agents.base import build_agent
from sim.agents.batch import SignalChanges, changes
from sim.fast_votes import _kept
from sim.messages import Side, Signal
from tests._agents import symbol_bars


def _accepted(got: Any) -> tuple[list[int], list[int]]:
    """The bars of the accepted changes and, per change, its object's id."""
    assert got is not None
    return got.index.tolist(), [id(got.objects[c]) for c in got.codes.tolist()]


def _both(given: SignalChanges) -> None:
    assert given.codes is not None
    bare = SignalChanges(given.index, given.signals)
    assert _accepted(_kept(given)) == _accepted(_kept(bare))


@pytest.mark.parametrize(("kind", "params"), [
    ("sma_crossover", {"fast": 3, "slow": 8}),
    ("sma_crossover", {"fast": 3, "slow": 8, "long_only": True}),
    ("zscore_reversion", {"window": 20, "entry": 1.0, "exit": 0.2, "confidence_step": 0.1}),
    ("momentum", {"window": 5}),
    ("momentum", {"window": 5, "long_only": True}),  # two codes name one object
])
def test_batch_forms_codes_give_the_accepted_changes_of_their_objects(
        kind: str, params: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, 3000)))
    bars = symbol_bars(close, close * 1.001, close * 0.999, close)
    agent = build_agent(kind, params, np.random.default_rng(0))
    _both(agent.batch_signals(bars))  # type: ignore[attr-defined]


def test_value_equal_objects_and_shared_entries_in_a_table() -> None:
    a = Signal(Side.LONG, 0.5, reason="a")
    a2 = Signal(Side.LONG, 0.5, reason="a")  # equal to a, another object: no change
    b = Signal(Side.SHORT, 0.7, reason="b")
    table = [a, b, a2, b, Signal(Side.FLAT, 1.0, reason="unused")]
    codes = np.array([-1, 0, 0, 2, 1, 3, 1, 2, 0, 2, 3, 1, 0], dtype=np.int64)
    given = changes(codes, 0, table)
    _both(given)
    index, ids = _accepted(_kept(given))
    # 3: a2 == a, dropped; 5, 6: b again; 8: a == a2 standing; 9: a2 again; 11: b again
    assert index == [1, 4, 7, 10, 12]
    assert ids == [id(a), id(b), id(a2), id(b), id(a)]
