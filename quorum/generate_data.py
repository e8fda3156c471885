"""``quorum data generate``: a regime series written to CSV or Parquet.

The series comes from the same data stream a scenario with this one source and seed uses
(``RandomStreams``), so a generated file and a scenario run see identical bars.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from sim.config import ScenarioConfig
from sim.data import DataError
from sim.runner import RandomStreams, load_market_data


def write_generated(config: ScenarioConfig, out: Path) -> Iterator[tuple[Path, int]]:
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"{out}: write .csv or .parquet")
    streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
    data = load_market_data(config, streams.data)
    out.parent.mkdir(parents=True, exist_ok=True)
    for bars in data.bars:
        path = out if len(data.bars) == 1 else out.with_name(f"{out.stem}_{bars.symbol}{suffix}")
        frame = pd.DataFrame({
            "timestamp": pd.to_datetime(bars.ts, unit="ns", utc=True),
            "open": bars.open, "high": bars.high, "low": bars.low, "close": bars.close,
            "volume": bars.volume, "regime": bars.source_regime,
        })
        if suffix == ".csv":
            frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            frame.to_csv(path, index=False, float_format="%.17g")
        else:
            frame.to_parquet(path, index=False)
        yield path, len(frame)
