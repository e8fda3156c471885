"""Agent performance (sim.performance), hand-computed, and what a run stores of it and of
each decision's rule, agreement and signal expiry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.config import parse_scenario
from sim.data import merge
from sim.messages import Side, Signal
from sim.performance import AgentPerformance
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests._agents import MINUTE, symbol_bars

L, S, F, H = Side.LONG, Side.SHORT, Side.FLAT, Side.HOLD
OPENS = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
CLOSES = [10.5, 11.5, 12.5, 12.0, 14.5, 15.5]


def tracker() -> AgentPerformance:
    """One symbol, three agents, six bars (OPENS/CLOSES), decay 0.5."""
    p = AgentPerformance([3], decay=0.5)
    p.on_signal(0, 0, L, 1, CLOSES[0])  # bar 1: agent 0 LONG
    p.on_signal(0, 2, L, 2, CLOSES[1])  # bar 2: agent 2 LONG, never replaced
    p.on_signal(0, 0, S, 4, CLOSES[3])  # bar 4: agent 0 LONG -> SHORT (12.0 > 10.5: hit)
    p.on_signal(0, 0, F, 5, CLOSES[4])  # bar 5: agent 0 SHORT -> FLAT (14.5 > 12: miss)
    p.on_signal(0, 1, S, 6, CLOSES[5])  # bar 6 (the last): agent 1 SHORT
    return p


def test_hit_rate_weights_decay_per_scored_episode() -> None:
    p = tracker()
    # hit: H=1, N=1 -> 2/3; miss: H=0.5, N=1.5 -> 1.5/3.5; unscored agents keep the prior
    assert p.weights(0) == pytest.approx([1.5 / 3.5, 0.5, 0.5])


@pytest.mark.parametrize("upto", [1, 2, 4, 5, 6])
def test_bulk_rows_match_the_online_tracker(upto: int) -> None:
    online, bulk = tracker(), tracker()
    bulk.online = False
    opens, closes = OPENS[:upto], CLOSES[:upto]
    want = online.rows(0, opens, closes) if upto == 6 else None
    got = bulk.rows(0, opens, closes)
    if want is not None:
        assert got == [(*w[:7], pytest.approx(w[7])) for w in want]
    assert all(len(row) == 8 for row in got)


def test_weight_after_first_hit_is_known_before_the_next_vote() -> None:
    p = AgentPerformance([1])
    p.on_signal(0, 0, L, 1, 100.0)
    assert p.weights(0) == [0.5]
    p.on_signal(0, 0, S, 3, 101.0)  # the LONG episode ended up: hit, decay 1 -> 2/3
    assert p.weights(0) == pytest.approx([2 / 3])
    p.on_signal(0, 0, L, 4, 101.0)  # SHORT episode flat price: not a hit -> 2/4
    assert p.weights(0) == pytest.approx([0.5])


def test_rows_score_the_open_episode_and_shadow_trade_next_opens() -> None:
    rows = tracker().rows(0, OPENS, CLOSES)
    a0, a1, a2 = rows
    # agent 0: LONG opens[1]=11 -> opens[4]=14, SHORT opens[4]=14 -> opens[5]=15, then FLAT
    assert a0[:6] == (0, 0, 3, 2, 1, 0.5)
    assert a0[6] == pytest.approx(14 / 11 - 1 - (15 / 14 - 1))
    # agent 1: SHORT on the last bar: no next open, nothing scored or traded
    assert a1[:7] == (0, 1, 1, 0, 0, None, 0.0)
    # agent 2: LONG from bar 2, entered at opens[2]=12, marked at the last close 15.5;
    # scored at the end (15.5 > 11.5: hit) without moving its weight
    assert a2[:6] == (0, 2, 1, 1, 1, 1.0)
    assert a2[6] == pytest.approx(15.5 / 12 - 1)
    assert a2[7] == 0.5
    assert tracker().rows(0, OPENS, CLOSES) == rows  # asking changes nothing


def test_bad_decay_is_refused() -> None:
    for decay in (0.0, 1.5):
        with pytest.raises(ValueError, match="decay"):
            AgentPerformance([1], decay=decay)


# -- a whole run ------------------------------------------------------------------------
class Scripted:
    """Says ``script[n]`` (side name, confidence) at bar n, nothing otherwise."""

    def __init__(self, script: dict[str, list[Any]]) -> None:
        self.script = {int(k): Signal(Side[v[0]], float(v[1])) for k, v in script.items()}

    def on_bar(self, view: Any) -> Signal | None:
        return self.script.get(view.n)


def run(tmp_path: Path, consensus: dict[str, Any]) -> tuple[list[tuple], list[tuple]]:
    closes = [100.0, 101.0, 102.0, 103.0, 104.0, 103.0, 102.0, 101.0]
    data = merge([symbol_bars(closes, closes, closes, closes, symbol="X")])
    kind = f"{__name__}:Scripted"
    raw = {
        "name": "perf", "seed": 1, "initial_cash": 10_000.0,
        "agents": [
            {"name": "a", "kind": kind, "params": {"script": {"1": ["LONG", 1.0]}}},
            {"name": "b", "kind": kind,
             "params": {"script": {"2": ["LONG", 1.0], "7": ["SHORT", 1.0]}}},
        ],
        "consensus": consensus,
        "venues": [{"name": "v", "symbols": ["X"]}],
    }
    tmp_path.mkdir(parents=True, exist_ok=True)
    with DuckDBStore(tmp_path / "r.duckdb") as store:
        run_id = run_scenario(parse_scenario(raw), store, data=data).run_id
        decisions = store.con.execute(
            "SELECT epoch_ns(ts) // ?, side, rule, agreement FROM decisions"
            " WHERE run_id = ? ORDER BY decision_id", [MINUTE, run_id]).fetchall()
        perf = store.con.execute(
            "SELECT symbol, agent, signals, scored, hits, hit_rate, shadow_pnl, votes,"
            " in_majority, overruled FROM agent_performance WHERE run_id = ?"
            " ORDER BY agent", [run_id]).fetchall()
    return decisions, perf


def test_run_stores_rule_agreement_and_agent_performance(tmp_path: Path) -> None:
    decisions, perf = run(tmp_path, {"quorum": 2})
    # bar 1 (0m): only a -> quorum; bar 2: both LONG; bar 7 (6m): a LONG vs b SHORT, a tie
    assert decisions == [(0, "HOLD", "quorum", 1.0), (1, "LONG", "none", 1.0),
                         (6, "HOLD", "hold", 0.5)]
    # a: LONG from bar 1 (close 100) to the end (101): hit; entered at open[1]=101
    # b: LONG bar 2 -> SHORT bar 7 (102 > 101: hit), entry open[2]=102, exit open[7]=101;
    #    its SHORT from bar 7 (102) marked at 101: hit; entered at open[7]=101, out at 101
    assert perf == [
        ("X", "a", 1, 1, 1, 1.0, pytest.approx(101 / 101 - 1), 3, 1, 0),
        ("X", "b", 2, 2, 2, 1.0, pytest.approx(101 / 102 - 1), 2, 1, 0),
    ]


def test_stale_signals_stop_voting_and_trigger_a_vote(tmp_path: Path) -> None:
    # a's LONG (0m) is stale from 3m, b's (1m) from 4m: at bar 4 (3m) only b is left,
    # short of the quorum of 2, although no agent changed its signal then.
    decisions, _ = run(tmp_path, {"quorum": 2, "max_signal_age": "3m"})
    assert decisions == [(0, "HOLD", "quorum", 1.0), (1, "LONG", "none", 1.0),
                         (3, "HOLD", "quorum", 1.0)]
    # without a quorum: b carries it until it goes stale too (4m), then nobody votes;
    # b's fresh SHORT at 6m votes alone
    decisions, _ = run(tmp_path / "2", {"max_signal_age": "3m"})
    assert decisions == [(0, "LONG", "none", 1.0), (4, "HOLD", "no_votes", 0.0),
                         (6, "SHORT", "none", 1.0)]


def test_performance_weighted_run_and_conflict_rule_are_stored(tmp_path: Path) -> None:
    decisions, perf = run(tmp_path, {"method": "performance_weighted",
                                     "conflict": "conservative"})
    # bar 1: a LONG alone; bar 2: b LONG too (same decision, not stored); at bar 7 b's
    # LONG episode scores a hit (weight 2/3) while a is unscored (0.5): b's SHORT wins
    assert decisions == [(0, "LONG", "none", 1.0), (6, "SHORT", "none", 0.5)]
    # votes, in the majority, overruled: a agreed once and was overruled at bar 7
    assert [row[7:] for row in perf] == [(2, 1, 1), (1, 1, 0)]


def test_vote_counts_follow_the_votes_table() -> None:
    from sim.recorder import Recorder

    class Sink:
        def append(self, run_id: str, table: str, batch: Any) -> None:
            pass

    rec = Recorder(Sink(), "r", ["X", "Y"], ["a", "b", "c", "d"], "majority")  # type: ignore[arg-type]
    rec.decision(1, 0, 0, L, 1.0, None, (0, 1, 2, 3),
                 (Signal(L, 1), None, Signal(S, 1), Signal(H, 0)), (1, 0, 1, 0))
    rec.decision(2, 0, 1, H, 0.0, None, (0, 1), (Signal(L, 1), Signal(S, 1)), (1, 1))
    rec.decision(3, 1, 0, F, 1.0, None, (0, 2), (Signal(L, 1), Signal(F, 1)), (1, 1))
    rec.flush()
    assert rec.vote_counts.tolist() == [[2, 0, 2, 0], [1, 1, 0, 0]]
    assert rec.majority_counts.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]
    assert rec.overruled_counts.tolist() == [[1, 0, 1, 0], [0, 0, 0, 0]]


def test_offline_weight_is_the_same_on_any_number_of_blas_threads() -> None:
    """60,000 scored episodes: a BLAS dot product that long is split across threads, and
    the weight's last digit moved with the thread count. The offline weight agrees with
    the online recurrence and is the same with one thread or all."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    rng = np.random.default_rng(7)
    n = 60_000
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n + 1)))
    sides = np.where(np.arange(n) % 2 == 0, 1, -1).astype(np.int64)  # one episode a bar
    bars = np.arange(1, n + 1, dtype=np.int64)
    online, bulk = AgentPerformance([1], decay=0.9999), AgentPerformance([1], decay=0.9999,
                                                                         online=False)
    for k in range(n):
        online.on_signal(0, 0, L if sides[k] == 1 else S, int(bars[k]), float(closes[k]))
    bulk.on_signals(0, 0, bars, sides)
    weights = []
    for limit in (1, None):
        with threadpoolctl.threadpool_limits(limits=limit):
            weights.append(bulk.rows(0, closes, closes)[0][7])
    assert weights[0] == weights[1]
    assert weights[0] == pytest.approx(online.weights(0)[0], rel=1e-12)
