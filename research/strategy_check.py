"""``quorum data strategy-check``: do strategies fare on calibrated paths as on the source?

Stylized facts are what generated bars must share with real ones; this is the check that
matters to a researcher: each agent of a scenario that trades recorded bars is run alone
on those bars and on ``paths`` calibrated series of the same length (seeds 0..paths-1),
and its Sharpe ratio on the source is placed in the distribution over the paths. A
source far in a tail says the model misses something that agent trades on.

Runs are in memory (``research.sweep_worker``), never stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sim.config import ScenarioConfig, parse_scenario
from sim.config_base import ConfigError
from sim.config_sources import FileSourceConfig


@dataclass(frozen=True, slots=True)
class AgentCheck:
    """One agent's Sharpe ratio on the source and over the calibrated paths."""

    agent: str
    source: float
    paths: np.ndarray  # one Sharpe ratio per path (NaN where undefined)

    @property
    def percentile(self) -> float:
        """Share of paths whose Sharpe ratio is below the source's (ties count half)."""
        p = self.paths[np.isfinite(self.paths)]
        if p.size == 0 or not np.isfinite(self.source):
            return float("nan")
        return float((np.sum(p < self.source) + 0.5 * np.sum(p == self.source)) / p.size)

    def row(self) -> dict[str, str]:
        p = self.paths[np.isfinite(self.paths)]
        q = np.quantile(p, [0.05, 0.5, 0.95]) if p.size else [np.nan] * 3
        return {"agent": self.agent, "sharpe on source": f"{self.source:.2f}",
                "paths": str(p.size), "path median": f"{q[1]:.2f}",
                "path 5%-95%": f"{q[0]:.2f} .. {q[2]:.2f}",
                "source percentile": f"{self.percentile:.0%}"}


def _calibrated_data(config: ScenarioConfig, model: str) -> list[dict[str, Any]]:
    """The scenario's file sources replaced by one calibrated source of the same length
    and symbols."""
    from sim.regimes.calibrated import load_model
    from sim.runner import RandomStreams, load_market_data

    if not config.data or not all(isinstance(d, FileSourceConfig) for d in config.data):
        raise ConfigError(f"{config.name}: strategy-check needs a scenario whose data are "
                          "recorded files (kind = 'file')")
    loaded = load_market_data(config, RandomStreams.spawn(config.seed, len(config.data), 0).data)
    n_model = len(load_model(model).symbols)
    if n_model != len(loaded.bars):
        raise ConfigError(f"{model}: the model has {n_model} symbol(s), the scenario's data "
                          f"{len(loaded.bars)}")
    return [{"kind": "calibrated", "model": str(Path(model).resolve()),
             "bars": max(len(b) for b in loaded.bars), "symbols": list(loaded.symbols),
             "prices": [float(b.close[0]) for b in loaded.bars]}]


def strategy_check(config: ScenarioConfig, model: str, paths: int = 50) -> list[AgentCheck]:
    """Every agent of ``config`` alone, on the source and on ``paths`` calibrated paths."""
    from research.sweep_worker import RunTask, execute_run

    generated = _calibrated_data(config, model)
    raw = config.model_dump(mode="json")
    checks = []
    for agent in raw["agents"]:
        alone = {**raw, "agents": [agent], "name": f"{config.name}:{agent['name']}"}

        def sharpe(data: list[dict[str, Any]], seed: int, alone: dict[str, Any] = alone) -> float:
            cfg = parse_scenario({**alone, "data": data, "seed": seed}, "strategy-check")
            outcome = execute_run(RunTask(f"check-{seed}", cfg))
            if outcome.status != "completed":
                raise ConfigError(f"{cfg.name}: run failed: {outcome.error}")
            return float(outcome.metrics.get("sharpe", float("nan")))

        source = sharpe(raw["data"], config.seed)
        sharpes = np.array([sharpe(generated, seed) for seed in range(paths)])
        checks.append(AgentCheck(agent["name"], source, sharpes))
    return checks
