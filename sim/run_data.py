"""The market data a scenario describes: its ``[[data]]`` sources loaded or generated
(files, regime and calibrated generators, GBM) and merged into one ``MarketData``, each
source with its own random stream; for tick replay, the trades of its one file and the bars
they make, with the hash that names them.

Split from ``sim.runner`` along that seam: the runner wires components and runs them;
this turns a scenario's data sources into bars. ``sim.runner`` re-exports the names.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from sim.config import ScenarioConfig
from sim.config_base import ConfigError, parse_duration, parse_timestamp
from sim.config_sources import CalibratedSourceConfig, FileSourceConfig, RegimeSourceConfig
from sim.data import MarketData, SymbolBars, gbm_bars, merge
from sim.loaders import Trades, load_file, load_funding, load_trades, trades_to_bars
from sim.regimes.generators import generate
from sim.regimes.shocks import apply_shocks


def load_market_data(config: ScenarioConfig, rngs: list[np.random.Generator]) -> MarketData:
    bars: list[SymbolBars] = []
    for source, rng in zip(config.data, rngs, strict=True):
        if isinstance(source, FileSourceConfig):
            bars.append(load_file(
                source.path, source.symbol, format=source.format,
                interval_ns=parse_duration(source.interval) if source.interval else None,
                timezone=source.timezone, gaps=source.gaps, funding=source.funding,
                resample_ns=parse_duration(source.resample) if source.resample else None,
            ))
        elif isinstance(source, RegimeSourceConfig):
            generated = generate(
                source.regime, source.bars, rng, params=source.params, symbols=source.symbols,
                correlation=source.correlation, price=source.price,
                start_ns=parse_timestamp(source.start),
                interval_ns=parse_duration(source.interval), substeps=source.substeps,
                version=source.generator_version,
            )
            bars.extend(apply_shocks(generated, source.shocks, rng) if source.shocks
                        else generated)
        elif isinstance(source, CalibratedSourceConfig):
            from sim.regimes.calibrated import generate_calibrated, load_model

            bars.extend(generate_calibrated(
                load_model(source.model), source.bars, rng, symbols=source.symbols,
                prices=source.prices, start_ns=parse_timestamp(source.start),
                source=f"generated:calibrated({Path(source.model).name})",
            ))
        else:
            bars.append(gbm_bars(
                source.symbol, source.bars, rng, start_ns=parse_timestamp(source.start),
                interval_ns=parse_duration(source.interval), s0=source.price,
                drift=source.drift, volatility=source.volatility,
            ))
    return merge(bars)


def load_ticks(config: ScenarioConfig) -> tuple[Trades, MarketData]:
    """The trades of a tick-replay scenario, and the bars they make (what agents see and
    the ``bars`` table stores: the same aggregation ``run_ticks`` performs on the fly)."""
    source = config.data[0]
    assert isinstance(source, FileSourceConfig) and source.interval is not None
    trades = load_trades(source.path)
    gaps = "skip" if source.gaps == "fail" else source.gaps
    if gaps == "ffill":
        raise ConfigError(f"data.0.gaps: tick replay builds bars from trades; an interval "
                          f"without trades is no bar ({source.path}): use 'skip' or 'fail'")
    if source.gaps == "fail":  # checked as the bar loader would, then walked as is
        trades_to_bars(trades, source.symbol, parse_duration(source.interval), gaps="fail")
    bars = trades_to_bars(trades, source.symbol, parse_duration(source.interval), gaps=gaps)
    if source.funding is not None:
        bars = replace(bars, funding=load_funding(source.funding))
    return trades, merge([bars])

def ticks_hash(data: MarketData, trades: Trades) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(data.content_hash().encode())
    for column in (trades.ts, trades.price, trades.amount):
        digest.update(np.ascontiguousarray(column).tobytes())
    return digest.hexdigest()
