"""The fast path's bulk votes (``sim.fast_votes``) store the rows the per-bar loop stores,
for every consensus method, conflict rule and sizing they take, with agents whose drawn
signals reach every branch of ``resolve`` (``_drawn_signals``); and they are taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.config import parse_scenario
from sim.engine import Engine
from sim.runner import run_scenario
from sim.store import DuckDBStore
from sim.vote_rows import RULES
from tests.integration.test_fast_path import both_paths, engine_path, table_hashes

DRAWN = "tests.integration._drawn_signals:DrawnSignals"


def _scenario(consensus: dict[str, Any], policy: dict[str, Any] | None = None,
              symbols: int = 1, agents: int = 3, **extra: Any) -> dict[str, Any]:
    names = ["AAA", "BBB"][:symbols]
    return {
        "name": "bulk", "seed": 5,
        "data": [{"kind": "gbm", "symbol": s, "bars": 1500 - 100 * i, "interval": "1m"}
                 for i, s in enumerate(names)],
        "agents": [{"name": f"d{i}", "kind": DRAWN, "params": {"seed": i, "every": 2 + i}}
                   for i in range(agents)]
                  + [{"name": "sma", "kind": "sma_crossover",
                      "params": {"fast": 5, "slow": 20}}],
        "consensus": consensus, "policy": policy or {"allow_short": True},
        "venues": [{"name": "v", "symbols": names}], **extra}


CASES = {
    "majority": ({"method": "majority"}, None),
    "confidence": ({"method": "confidence_weighted"}, None),
    "unanimous": ({"method": "unanimous", "quorum": 2}, None),
    "conservative": ({"method": "majority", "conflict": "conservative"}, None),
    "agreement": ({"method": "confidence_weighted", "min_agreement": 0.6, "quorum": 2},
                  None),
    "scaled": ({"method": "confidence_weighted"},
               {"exposure": 0.8, "scale_by_confidence": True, "max_leverage": 0.5}),
    "long-only": ({"method": "majority", "conflict": "conservative"},
                  {"allow_short": False}),
    "kelly": ({"method": "confidence_weighted"}, {"sizing": "kelly", "allow_short": True}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("symbols", [1, 2])
def test_bulk_votes_store_the_per_bar_rows(
    case: str, symbols: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    consensus, policy = CASES[case]
    votes: list[int] = []
    vote = Engine._vote

    def counted(self: Engine, *args: Any) -> None:
        votes.append(1)
        vote(self, *args)

    monkeypatch.setattr(Engine, "_vote", counted)
    config = parse_scenario(_scenario(consensus, policy, symbols))
    with DuckDBStore(tmp_path / "one.duckdb") as store:
        run_scenario(config, store)
    assert not votes  # the fast run took every vote in bulk
    fast, slow, (which, _), status = both_paths(config, tmp_path)
    assert which == "fast" and status[0] == "completed"
    assert fast == slow
    assert fast["decisions"][0] > 100 and fast["orders"][0] > 10


def test_fills_at_the_close_and_a_kill_switch_store_the_per_bar_rows(tmp_path: Path) -> None:
    raw = _scenario({"method": "confidence_weighted"}, symbols=2,
                    execution={"fill_at": "close"},
                    events=[{"at": "2024-01-01T10:00:00", "kind": "kill_switch"}],
                    risk={"flatten_on_trip": True})
    fast, slow, (which, _), status = both_paths(parse_scenario(raw), tmp_path)
    assert which == "fast" and status[0] == "completed"
    assert fast == slow


def test_a_vote_per_event_bar_where_bulk_votes_are_not_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stale signals re-vote: those runs keep ``Engine._vote`` (and the same rows)."""
    votes: list[int] = []
    vote = Engine._vote

    def counted(self: Engine, *args: Any) -> None:
        votes.append(1)
        vote(self, *args)

    monkeypatch.setattr(Engine, "_vote", counted)
    raw = _scenario({"method": "majority", "max_signal_age": "5m"})
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_scenario(parse_scenario(raw), store)
    assert votes


def test_the_rule_codes_name_what_resolve_returns() -> None:
    """``sim.vote_rows.RULES`` names what ``VotingConsensus.resolve`` calls each rule."""
    from sim.consensus import VotingConsensus
    from sim.messages import FLAT, LONG, Signal

    split = (Signal(LONG, 0.5), Signal(FLAT, 0.5))
    assert VotingConsensus("majority", quorum=3).resolve(split)[4] == RULES[1]
    assert VotingConsensus("majority").resolve((None, None))[4] == RULES[2]
    assert VotingConsensus("unanimous").resolve(split)[4] == RULES[3]
    assert VotingConsensus("majority").resolve(split)[4] == RULES[4]
    assert VotingConsensus("majority", conflict="conservative").resolve(split)[4] == RULES[5]
    lone = (Signal(LONG, 0.5), Signal(LONG, 0.5), Signal(FLAT, 0.5))
    assert VotingConsensus("majority", min_agreement=0.9).resolve(lone)[4] == RULES[6]
    assert VotingConsensus("majority").resolve(lone)[4] == RULES[0]


@pytest.mark.parametrize("symbols", [1, 2])
def test_a_run_that_fails_mid_walk_stores_the_rows_the_per_bar_loop_stored(
    symbols: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failure at the 7th decision sent to the desk (the bulk votes' ``act``): both
    paths fail there, and the fast run's store holds exactly the per-bar run's rows up to
    it (``BulkVotes.record_upto``: the signals, decisions and votes of the rows walked,
    the failing row's included)."""
    from sim.execution import ExecutionDesk

    submit = ExecutionDesk.submit_decision
    calls = [0]

    def failing(self: ExecutionDesk, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 7:
            raise RuntimeError("desk broke at the 7th decision")
        return submit(self, *args, **kwargs)

    monkeypatch.setattr(ExecutionDesk, "submit_decision", failing)
    config = parse_scenario(_scenario({"method": "confidence_weighted"}, symbols=symbols))
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runs: list[tuple[str, str]] = []
        for fast_path in (True, False):
            calls[0] = 0
            with pytest.raises(RuntimeError, match="7th decision"):
                run_scenario(config, store, fast_path=fast_path)
            row = store.con.execute(
                "SELECT run_id, status FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
            assert row is not None
            runs.append((row[0], row[1]))
        (fast_id, fast_status), (slow_id, slow_status) = runs
        assert fast_status == slow_status == "failed"
        assert engine_path(store, fast_id)[0] == "fast"
        fast, slow = table_hashes(store, fast_id), table_hashes(store, slow_id)
    assert fast == slow
    assert fast["decisions"][0] >= 7 and fast["votes"][0] > 0


def test_the_walks_state_is_freed_before_the_last_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The bulk votes' state (candidates, standing signals) lives through every flush of
    the walk but not through the run's last one, where the store's appends need the
    memory; the columns the recorder was handed are its own until written."""
    import weakref

    import sim.fast_path
    import sim.fast_votes
    from sim.recorder import Recorder

    alive: list[Any] = []
    init = sim.fast_votes.BulkVotes.__init__

    def tracked(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        alive.extend(weakref.ref(a) for a in (self, self.standing[0], self.cand_record[0],
                                               self.cand_rows[0]))

    seen: list[list[bool]] = []
    flush = Recorder.flush

    def watched(self: Recorder) -> None:
        seen.append([ref() is not None for ref in alive])
        flush(self)

    monkeypatch.setattr(sim.fast_votes.BulkVotes, "__init__", tracked)
    monkeypatch.setattr(Recorder, "flush", watched)
    # chunks of 500 rows (of 2,900), a flush at 1,800 buffered: one flush mid-walk
    monkeypatch.setattr(sim.fast_path.run_fast, "__defaults__", (500, None))
    config = parse_scenario(_scenario({"method": "confidence_weighted"}, symbols=2))
    with DuckDBStore(tmp_path / "one.duckdb") as store:
        run_scenario(config, store, flush_rows=1800)
    assert len(seen) == 2 and len(alive) == 4
    assert all(seen[0])  # the walk's flush
    assert not any(seen[1])  # the last one
    monkeypatch.undo()
    fast, slow, (which, _), _ = both_paths(config, tmp_path, flush_rows=1800)
    assert which == "fast" and fast == slow
