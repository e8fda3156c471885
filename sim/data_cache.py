"""Generated market data kept between runs of one process (a sweep worker's).

A sweep runs each parameter set on the same few data sets (the bundled one: 72 parameter
sets on 6 regimes x 3 seeds), and each run used to generate its bars again, label their
regimes, hash them and build the ``bars`` batch: a quarter of a short run's cost, the same
result every time. Generated data is a pure function of its source configs and the
scenario seed (``RandomStreams``: a source's stream depends only on the seed and the
source's place), so runs that agree on both can share it.

Only generated sources are kept (``gbm``, ``regime``): a file, or a calibrated model
file, could change on disk between two runs. The cached columns are made read-only, so
nothing can change what a later run sees.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sim.config import ScenarioConfig
from sim.config_sources import GbmSourceConfig, RegimeSourceConfig
from sim.data import MarketData


@dataclass(frozen=True, slots=True)
class PreparedData:
    """Market data with what every run derives from it: its hash and its ``bars`` batch."""

    data: MarketData
    content_hash: str
    bars_table: pa.Table


def prepare(data: MarketData) -> PreparedData:
    return PreparedData(data, data.content_hash(), data.bars_table())


class DataCache:
    """The last ``size`` generated data sets, by (seed, source configs)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._kept: OrderedDict[str, PreparedData] = OrderedDict()
        self.hits = self.misses = 0

    @staticmethod
    def key(config: ScenarioConfig) -> str | None:
        """The cache key of ``config``'s data; None when any source is not generated."""
        if not config.data or not all(isinstance(s, GbmSourceConfig | RegimeSourceConfig)
                                      for s in config.data):
            return None
        return json.dumps([config.seed, [s.model_dump(mode="json") for s in config.data]],
                          sort_keys=True)

    def get(self, key: str, load: Callable[[], MarketData]) -> PreparedData:
        """The data of ``key``, made by ``load`` the first time."""
        found = self._kept.get(key)
        if found is not None:
            self.hits += 1
            self._kept.move_to_end(key)
            return found
        self.misses += 1
        prepared = prepare(load())
        _freeze(prepared.data)
        self._kept[key] = prepared
        if len(self._kept) > self.size:
            self._kept.popitem(last=False)
        return prepared

    def holds(self, table: pa.Table) -> bool:
        """Whether ``table`` is the ``bars`` batch of a data set kept here (the same
        object: what every run on that data set stores)."""
        return any(p.bars_table is table for p in self._kept.values())


def _freeze(data: MarketData) -> None:
    """Every array of ``data`` read-only: a run that wrote into one would fail there,
    not change the next run's bars."""
    arrays: list[np.ndarray | None] = [data.order_symbol, data.order_pos]
    for b in data.bars:
        arrays += [b.ts, b.open, b.high, b.low, b.close, b.volume, b.source_regime, b.filled]
        if b.funding is not None:
            arrays += [b.funding.ts, b.funding.rate]
    for a in arrays:
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
