"""``quorum validate``: run the regime suite with a scenario's trading configuration and
record the verdict (``research.validation``). Metrics come from ``reports.metrics``, the same
functions every report uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reports.metrics import max_drawdown, periods_per_year, sharpe_ratio, total_return
from research.suite import load_suite
from research.validation import (
    DEFAULT_SUITE,
    RunMetrics,
    Thresholds,
    config_hash,
    deviations,
    evaluate,
    gate_requirement,
    record_validation,
    suite_run_config,
)
from sim.config import ScenarioConfig, load_scenario
from sim.runner import new_run_id, run_scenario
from sim.sql import one_row
from sim.store import DuckDBStore

__all__ = ["DEFAULT_SUITE", "SuiteRunError", "ValidationOutcome", "run_validation"]


class SuiteRunError(Exception):
    """A suite run raised (``__cause__``): no verdict is recorded."""

    def __init__(self, run_id: str, where: str) -> None:
        super().__init__(f"suite run {where} (run {run_id})")
        self.run_id = run_id
        self.where = where


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    validation_id: str
    config_hash: str
    passed: bool
    failures: list[str]
    metrics: list[RunMetrics]
    # how the suite or thresholds fall short of what the gate requires: non-empty, the
    # validation is stored as an override that the gate does not accept
    overrides: list[str] = field(default_factory=list)


def run_validation(config: ScenarioConfig, store: DuckDBStore, *,
                   suite_path: str | Path | None = None,
                   thresholds: Thresholds | None = None,
                   on_run: Callable[[RunMetrics], None] | None = None) -> ValidationOutcome:
    """The suite with ``config``'s trading configuration, checked against ``thresholds``.
    Suite and thresholds default to what the scenario's gate requires
    (``research.validation.gate_requirement``); others make the validation an override."""
    required = gate_requirement(config)
    suite_path = suite_path or required.suite
    thresholds = thresholds or required.thresholds
    suite = load_suite(suite_path)
    metrics: list[RunMetrics] = []
    files: dict[str, tuple[str, int]] = {}
    for path in suite.scenarios:
        regime = load_scenario(path)
        for seed in suite.seeds or [regime.seed]:
            run_cfg = suite_run_config(config, regime.with_seed(seed))
            run_id = new_run_id()
            try:
                result = run_scenario(run_cfg, store, run_id=run_id)
            except Exception as exc:
                raise SuiteRunError(run_id, f"{Path(path).stem}@{seed}") from exc
            m = _run_metrics(store, Path(path).stem, seed, result.run_id, config.initial_cash)
            metrics.append(m)
            files[f"{m.regime}@{seed}"] = (str(path), seed)
            if on_run is not None:
                on_run(m)
    failures = evaluate(metrics, thresholds)
    overrides = deviations(str(suite_path), thresholds,
                           [Path(p).stem for p in suite.scenarios], required)
    vid = record_validation(store, config, str(Path(suite_path).resolve()), files, metrics,
                            thresholds, failures, overrides)
    return ValidationOutcome(vid, config_hash(config), not failures, failures, metrics,
                             overrides)


def _run_metrics(store: DuckDBStore, regime: str, seed: int, run_id: str,
                 initial: float) -> RunMetrics:
    con = store.con
    ts, equity = one_row(
        con, "SELECT list(epoch_ns(ts) ORDER BY ts), list(equity ORDER BY ts) FROM equity"
        " WHERE run_id = ?", [run_id])
    data_hash = one_row(con, "SELECT data_hash FROM runs WHERE run_id = ?",
                        [run_id])[0]
    eq = np.asarray(equity or [], dtype=np.float64)
    per_year = periods_per_year(np.asarray(ts or [], dtype=np.int64))
    return RunMetrics(regime, seed, run_id, data_hash, sharpe_ratio(eq, initial, per_year),
                      max_drawdown(eq, initial), total_return(eq, initial))
