"""The recorder turns the order path's rows into Arrow chunks every ``COMPACT_ORDERS``
orders (``Recorder.compact``), and the signals, decisions and votes given one by one every
``COMPACT_DECISIONS`` decisions, and joins them at the next flush: the stored rows are the
ones a flush of the buffered rows stores, in the same order, whatever the chunk size:
for every bundled scenario, hypothesis-drawn ones (brackets, limit and stop orders,
latency, venue outages, perps, risk trips, both paths), a flush cut short, a live
writer's hand-over and a warm-up's discard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sim.recorder
from sim.config import load_scenario, parse_scenario
from sim.recorder import Recorder
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.integration.test_fast_path import ROOT, SCENARIOS, scenarios, table_hashes

ORDER_TABLES = ("orders", "order_events", "routing_decisions", "fills")
NEVER = 10**12


def _hashes(config: Any, db: Path, every: int, monkeypatch: pytest.MonkeyPatch,
            **kwargs: Any) -> tuple[dict[str, Any], str]:
    monkeypatch.setattr(sim.recorder, "COMPACT_ORDERS", every)
    monkeypatch.setattr(sim.recorder, "COMPACT_DECISIONS", every)
    with DuckDBStore(db) as store:
        result = run_scenario(config, store, **kwargs)
        (status,) = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                      [result.run_id]).fetchone()
        return table_hashes(store, result.run_id), status


@pytest.mark.parametrize("path", SCENARIOS)
def test_compacting_after_every_order_stores_the_same_rows(
        path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_scenario(ROOT / path)
    never, _ = _hashes(config, tmp_path / "never.duckdb", NEVER, monkeypatch)
    every, _ = _hashes(config, tmp_path / "every.duckdb", 1, monkeypatch)
    assert every == never
    # compacted more than once (the risk-manager template's run makes no order)
    assert every["orders"][0] > 1 or path.endswith("risk_manager.toml")
    assert every["decisions"][0] > 1


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=scenarios(), every=st.sampled_from([1, 2, 3, 7]), fast=st.booleans())
def test_drawn_scenarios_store_the_same_rows_whatever_the_chunk(
        raw: dict[str, Any], every: int, fast: bool,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    config = parse_scenario(raw, "drawn")
    tmp = tmp_path_factory.mktemp("compaction")
    with pytest.MonkeyPatch.context() as mp:
        never, status = _hashes(config, tmp / "never.duckdb", NEVER, mp, fast_path=fast)
        chunked, _ = _hashes(config, tmp / "chunked.duckdb", every, mp, fast_path=fast)
    assert status == "completed"
    assert chunked == never


# -- the recorder alone ----------------------------------------------------------------
class _Store:
    """Keeps what it is given; fails the first append of ``fail_on`` once."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.batches: list[tuple[str, pa.Table]] = []
        self.fail_on = fail_on

    def append(self, run_id: str, table: str, batch: pa.Table) -> None:
        if table == self.fail_on:
            self.fail_on = None
            raise OSError("disk full")
        self.batches.append((table, batch))

    def rows(self, table: str) -> list[dict[str, Any]]:
        return [row for t, b in self.batches if t == table for row in b.to_pylist()]


def _event_rows(rec: Recorder, start: int, n: int) -> None:
    for i in range(start, start + n):
        rec.order_event_row((i, 1_000 + i, 0, "submitted", None, float(i), None, "entry"))
        rec.fill_row((i, i, 1_000 + i, 0, "v", float(i), 100.0 + i, 0.1, 100.0, "taker",
                      1e5 - i, float(i), 0.0))


def test_compacted_chunks_and_buffered_rows_are_written_once_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.recorder, "COMPACT_ORDERS", NEVER)
    store = _Store(fail_on="fills")
    rec = Recorder(store, "r", ["AAA"], ["a"], "majority")  # type: ignore[arg-type]
    _event_rows(rec, 0, 5)
    rec.compact()
    _event_rows(rec, 5, 3)  # buffered after the chunk
    rec.compact()
    _event_rows(rec, 8, 2)
    with pytest.raises(OSError, match="disk full"):
        rec.flush()  # fills fails: kept for the next flush, the chunks with it
    rec.flush()
    assert [r["order_id"] for r in store.rows("order_events")] == list(range(10))
    assert [r["fill_id"] for r in store.rows("fills")] == list(range(10))
    assert [r["price"] for r in store.rows("fills")] == [100.0 + i for i in range(10)]
    assert [t for t, _ in store.batches].count("fills") == 1  # one batch: chunks joined
    rec.flush()  # nothing left: nothing written twice
    assert len(store.rows("fills")) == 10


def test_a_hand_over_takes_the_chunks_and_a_discard_drops_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sim.recorder, "COMPACT_ORDERS", NEVER)
    rec = Recorder(_Store(), "r", ["AAA"], ["a"], "majority")  # type: ignore[arg-type]
    _event_rows(rec, 0, 4)
    rec.compact()
    _event_rows(rec, 4, 1)
    taken = dict(rec.take_batches())
    assert taken["fills"].column("fill_id").to_pylist() == [0, 1, 2, 3, 4]
    assert rec.take_batches() == []
    _event_rows(rec, 5, 2)
    rec.compact()
    rec.discard()  # a resumed session's warm-up: its rows are not written
    assert rec.take_batches() == []
