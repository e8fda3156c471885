"""A sweep worker's data cache (sim.data_cache): runs that share generated data store the
same rows as runs that generate their own, and nothing a run does reaches the next."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from research.sweep_worker import CollectingStore
from sim.config import load_scenario
from sim.data_cache import DataCache
from sim.runner import run_scenario

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config():  # type: ignore[no-untyped-def]
    base = load_scenario(ROOT / "scenarios/regimes/trend_up.toml")
    data = [base.data[0].model_copy(update={"bars": 300})]
    return base.model_copy(update={"data": data})


def _rows(config, cache):  # type: ignore[no-untyped-def]
    store = CollectingStore()
    run_scenario(config, store, run_id="r", data_cache=cache)
    return store


def _timeless(batch: pa.Table) -> pa.Table:
    """Without the router's wall-clock ``elapsed_ns`` (no result: it differs run to run)."""
    return batch.drop_columns([c for c in ("elapsed_ns",) if c in batch.column_names])


def test_cached_runs_store_the_rows_of_uncached_ones(config) -> None:  # type: ignore[no-untyped-def]
    plain = _rows(config, None)
    cache = DataCache()
    first, second = _rows(config, cache), _rows(config, cache)
    assert (cache.misses, cache.hits) == (1, 1)
    for got in (first, second):
        assert got.created == plain.created  # the data hash among them
        assert [t for t, _ in got.batches] == [t for t, _ in plain.batches]
        for (_, a), (_, b) in zip(got.batches, plain.batches, strict=True):
            assert _timeless(a).equals(_timeless(b))


def test_another_seed_is_another_data_set(config) -> None:  # type: ignore[no-untyped-def]
    cache = DataCache(size=1)
    _rows(config, cache)
    other = _rows(config.model_copy(update={"seed": config.seed + 1}), cache)
    assert (cache.misses, cache.hits) == (2, 0)
    assert other.created[4] != _rows(config, None).created[4]  # data_hash


def test_cached_columns_are_read_only(config) -> None:  # type: ignore[no-untyped-def]
    cache = DataCache()
    key = DataCache.key(config)
    assert key is not None
    from sim.runner import RandomStreams, load_market_data

    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    prepared = cache.get(key, lambda: load_market_data(config, streams.data))
    with pytest.raises(ValueError, match="read-only"):
        prepared.data.bars[0].close[0] = np.nan


def test_file_sources_are_not_kept() -> None:
    demo = load_scenario(ROOT / "scenarios/demo.toml")
    assert DataCache.key(demo) is None
