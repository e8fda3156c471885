"""Sweeps: a base scenario run over parameter sets, regimes and seeds, one run per combination.

A sweep file (TOML) names a base scenario and what to vary::

    name = "sma_grid"
    scenario = "../regimes/trend_up.toml"   # the base: agents, consensus, policy, risk, venues
    suite = "../regimes/suite.toml"         # optional: run on each regime scenario's data
    regimes = ["trend_up", "crash"]         # optional: a subset of the suite (file stems)
    seeds = [1, 2, 3]                       # optional: default the data scenario's own seed
    rank_by = ["sharpe", "max_drawdown"]    # first ranks, the rest break ties
    aggregate = "mean"                      # over regimes x seeds: mean, median or worst

    [grid]                                  # every combination of these values
    "agents.sma.params.fast" = [6, 12]
    "agents.sma.params.slow" = [48, 96]

    [random]                                # seeded random samples, crossed with the grid
    samples = 8
    seed = 3
    params = { "policy.exposure" = { uniform = [0.2, 0.6] } }

    [walk_forward]                          # optional: rolling train/test windows
    train = "30d"
    test = "10d"

Parameters are addressed by dotted paths into the scenario config (``sim.config_paths``):
``agents.0.params.fast`` and ``agents.sma.params.fast`` are the same parameter. A path that
names nothing in the scenario's models is a one-line error naming the path.

With a suite, each regime scenario contributes its ``data`` (and its seed, unless ``seeds``
is given); everything else comes from the base, so one configuration meets every regime.

Each combination is resolved to a full ``ScenarioConfig``; its run id is a hash of that
config, the content digests of the files it reads and the code that runs it
(``sim.run_identity``), so a finished run is recognised by what it is, not by when or
where it ran, and a run made by other code is not taken for it. This module only
describes and expands sweeps; ``research.sweep_driver`` runs them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from research.suite import load_suite
from sim.config import ScenarioConfig, _describe, load_scenario
from sim.config_base import ConfigError, parse_duration
from sim.config_paths import PathError, resolve_path, set_value, short_name
from sim.config_sources import FileSourceConfig, source_interval
from sim.run_identity import RunIdentity, canonical_json, identify

# Metrics a sweep may rank by, with the better direction ("max" or "min"). The values are
# computed per run by ``reports.sweep.run_metrics``; WINDOW_METRICS need only the equity
# curve, so walk-forward can score them on any window of a run.
RANK_METRICS: dict[str, Literal["max", "min"]] = {
    "sharpe": "max", "sortino": "max", "calmar": "max", "total_return": "max", "cagr": "max",
    "max_drawdown": "min", "volatility": "min", "win_rate": "max", "profit_factor": "max",
}
WINDOW_METRICS = ("sharpe", "sortino", "calmar", "total_return", "cagr", "max_drawdown",
                  "volatility")
Seed = Annotated[int, Field(ge=0, lt=2**63)]


class SweepError(ConfigError):
    """A sweep file that cannot be used; one line naming the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Distribution(_Model):
    """One of: ``uniform = [lo, hi]``, ``log_uniform = [lo, hi]`` (lo > 0), ``integers =
    [lo, hi]`` (both included) or ``choice = [a, b, ...]``."""

    uniform: tuple[float, float] | None = None
    log_uniform: tuple[float, float] | None = None
    integers: tuple[int, int] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [k for k in ("uniform", "log_uniform", "integers", "choice")
                 if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, log_uniform, integers, choice")
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice: empty list")
            return self
        lo, hi = getattr(self, kind)
        if lo > hi:
            raise ValueError(f"{kind}: low {lo} is above high {hi}")
        if kind == "log_uniform" and lo <= 0:
            raise ValueError("log_uniform: bounds must be > 0")
        return self

    def draw(self, rng: np.random.Generator) -> Any:
        if self.uniform is not None:
            return float(rng.uniform(*self.uniform))
        if self.log_uniform is not None:
            lo, hi = self.log_uniform
            return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if self.integers is not None:
            return int(rng.integers(self.integers[0], self.integers[1] + 1))
        assert self.choice is not None
        return self.choice[int(rng.integers(len(self.choice)))]


class RandomConfig(_Model):
    """``samples`` draws of every parameter in ``params``, from ``numpy`` seeded by ``seed``
    (parameters drawn in sorted path order, so the file's line order does not matter)."""

    samples: int = Field(ge=1)
    seed: Seed = 0
    params: dict[str, Distribution] = Field(min_length=1)


class WalkForwardConfig(_Model):
    """Rolling windows: choose parameters on ``train``, score them on the ``test`` window
    after it, move on by ``step`` (default: ``test``). ``anchored``: the train window always
    starts at the first bar (expanding). ``metric``: default the first of ``rank_by``."""

    train: str
    test: str
    step: str | None = None
    anchored: bool = False
    metric: str | None = None

    @field_validator("train", "test", "step")
    @classmethod
    def _duration(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str | None) -> str | None:
        if v is not None and v not in WINDOW_METRICS:
            raise ValueError(f"{v!r} cannot be scored on a window; use one of "
                             f"{', '.join(WINDOW_METRICS)}")
        return v


class SweepConfig(_Model):
    """A sweep file, with ``scenario`` and ``suite`` resolved against it by ``load_sweep``."""

    name: str = Field(min_length=1)
    description: str = ""
    scenario: str
    suite: str | None = None
    regimes: list[str] | None = None
    seeds: list[Seed] | None = None
    grid: dict[str, list[Any]] | None = None
    random: RandomConfig | None = None
    rank_by: list[str] = Field(default_factory=lambda: ["sharpe"], min_length=1)
    aggregate: Literal["mean", "median", "worst"] = "mean"
    skip_invalid: bool = False
    walk_forward: WalkForwardConfig | None = None

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if grid is None:
            return grid
        if not grid:
            raise ValueError("empty: give at least one parameter, or leave [grid] out")
        for path, values in grid.items():
            if not values:
                raise ValueError(f"{path!r}: empty list of values")
            seen: list[str] = []
            for v in values:
                key = json.dumps(v, sort_keys=True)
                if key in seen:
                    raise ValueError(f"{path!r}: value {v!r} listed twice")
                seen.append(key)
        return grid

    @field_validator("regimes")
    @classmethod
    def _regimes(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            if not names:
                raise ValueError("empty list (leave it out to use the whole suite)")
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"listed twice: {', '.join(dupes)}")
        return names

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None:
            if not seeds:
                raise ValueError("empty list (leave it out to use each scenario's seed)")
            dupes = sorted({s for s in seeds if seeds.count(s) > 1})
            if dupes:
                raise ValueError(f"listed twice: {', '.join(map(str, dupes))}")
        return seeds

    @field_validator("rank_by")
    @classmethod
    def _rank_by(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in RANK_METRICS:
                raise ValueError(f"unknown metric {name!r}; use one of "
                                 f"{', '.join(RANK_METRICS)}")
        if len(set(names)) != len(names):
            raise ValueError("a metric is listed twice")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> SweepConfig:
        if self.regimes is not None and self.suite is None:
            raise ValueError("regimes: needs suite = PATH (the suite the names come from)")
        if self.grid and self.random:
            both = sorted(set(self.grid) & set(self.random.params))
            if both:
                raise ValueError(f"random.params: {both[0]!r} is also in grid")
        wf = self.walk_forward
        if wf is not None and wf.metric is None and self.rank_by[0] not in WINDOW_METRICS:
            raise ValueError(f"walk_forward.metric: rank_by[0] {self.rank_by[0]!r} "
                                 "needs trades, not only equity; name a window metric")
        return self

    @property
    def window_metric(self) -> str:
        wf = self.walk_forward
        return (wf.metric if wf is not None and wf.metric else None) or self.rank_by[0]

    def swept_paths(self) -> list[str]:
        return [*(self.grid or {}), *sorted(self.random.params if self.random else {})]


@dataclass(frozen=True, slots=True)
class SweepRun:
    """One combination: parameter set ``param_set`` (its values in ``params``), on the
    data of ``regime`` (None: the base's own data), with ``seed``."""

    idx: int
    run_id: str
    param_set: int
    params: dict[str, Any]
    regime: str | None
    seed: int
    config: ScenarioConfig
    identity: RunIdentity


@dataclass(frozen=True, slots=True)
class Sweep:
    """An expanded sweep: every valid combination in a fixed order, plus what was left out
    (``skipped``: (parameter values, regime, reason), only with ``skip_invalid``)."""

    config: SweepConfig
    source: str
    sweep_id: str
    runs: tuple[SweepRun, ...]
    skipped: tuple[tuple[dict[str, Any], str | None, str], ...]

    def unique_runs(self) -> list[SweepRun]:
        """One entry per distinct run id, first occurrence first (random draws may repeat
        a parameter set; that run is made once)."""
        seen: set[str] = set()
        out = []
        for run in self.runs:
            if run.run_id not in seen:
                seen.add(run.run_id)
                out.append(run)
        return out


# -- loading and expanding --------------------------------------------------------------
def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SweepError(f"{path}: sweep file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SweepError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SweepError(f"{path}: malformed TOML: {exc}") from None


def _against(base: Path, value: Any) -> Any:
    if isinstance(value, str) and not Path(value).is_absolute():
        return str((base / value).resolve())
    return value


def _load_config(path: Path) -> SweepConfig:
    """Validate; ``scenario``, ``suite`` and swept file paths (parameters named ``path`` or
    ``funding``) are resolved against the sweep file, as a scenario's are against it."""
    raw = _read_toml(path)
    for key in ("scenario", "suite"):
        raw[key] = _against(path.parent, raw.get(key))
    grid = raw.get("grid")
    for name, values in grid.items() if isinstance(grid, dict) else ():
        assert grid is not None  # narrowed by the isinstance above, for the type checker
        if name.rsplit(".", 1)[-1] in ("path", "funding") and isinstance(values, list):
            grid[name] = [_against(path.parent, v) for v in values]
    params = raw.get("random", {}).get("params") if isinstance(raw.get("random"), dict) else None
    for name, dist in params.items() if isinstance(params, dict) else ():
        if (name.rsplit(".", 1)[-1] in ("path", "funding") and isinstance(dist, dict)
                and isinstance(dist.get("choice"), list)):
            dist["choice"] = [_against(path.parent, v) for v in dist["choice"]]
    try:
        return SweepConfig.model_validate(raw)
    except ValidationError as exc:
        raise SweepError(_describe(exc, str(path))) from None


def _regime_scenarios(cfg: SweepConfig, source: str) -> list[tuple[str | None, ScenarioConfig
                                                                   | None]]:
    if cfg.suite is None:
        return [(None, None)]
    try:
        suite = load_suite(cfg.suite)
    except ConfigError as exc:
        raise SweepError(f"{source}: suite: {exc}") from None
    by_name = {Path(p).stem: p for p in suite.scenarios}
    names = cfg.regimes or list(by_name)
    for name in names:
        if name not in by_name:
            raise SweepError(f"{source}: regimes: unknown regime {name!r} (the suite "
                             f"{suite.name!r} has: {', '.join(by_name)})")
    out: list[tuple[str | None, ScenarioConfig | None]] = []
    for name in names:
        try:
            out.append((name, load_scenario(by_name[name])))
        except ConfigError as exc:
            raise SweepError(f"{source}: regime {name!r}: {exc}") from None
    return out


def _param_sets(cfg: SweepConfig) -> list[dict[str, Any]]:
    grid = cfg.grid or {}
    points = [dict(zip(grid, values, strict=True))
              for values in itertools.product(*grid.values())] if grid else [{}]
    if cfg.random is None:
        return points
    rng = np.random.default_rng(cfg.random.seed)
    paths = sorted(cfg.random.params)
    samples = [{p: cfg.random.params[p].draw(rng) for p in paths}
               for _ in range(cfg.random.samples)]
    return [{**point, **sample} for point in points for sample in samples]


def describe_params(params: Mapping[str, Any]) -> str:
    """Short label: ``sma.fast=12 policy.exposure=0.3`` (``agents.``/``params.`` dropped)."""
    return " ".join(f"{short_name(p)}={_short_value(v)}" for p, v in params.items()) or "base"


def _short_value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _resolved(base: dict[str, Any], data_scenario: ScenarioConfig | None, regime: str | None,
              seed: int, keys: Mapping[str, tuple[str | int, ...]],
              params: Mapping[str, Any]) -> ScenarioConfig:
    raw = json.loads(json.dumps(base))  # a deep copy of plain data
    if data_scenario is not None:
        raw["data"] = data_scenario.model_dump(mode="json")["data"]
        raw["name"] = f"{base['name']}@{regime}"
    raw["seed"] = seed
    for path, value in params.items():
        set_value(raw, keys[path], value)
    return ScenarioConfig.model_validate(raw)


def _check_sweepable(config: ScenarioConfig, source: str) -> None:
    for agent in config.agents:
        if agent.kind == "external" and agent.params.get("mode", "record") != "live":
            raise SweepError(
                f"{source}: agents.{agent.name}: an external agent in record or replay mode "
                "keeps its call log in the run store, which sweep workers never open; use "
                "mode = \"live\" or run the scenario with quorum run")


def load_sweep(path: str | Path) -> Sweep:
    """Read, validate and expand a sweep file. Every combination is validated here, so a
    bad parameter value fails before anything runs (or, with ``skip_invalid``, is listed
    in ``Sweep.skipped``)."""
    path = Path(path)
    source = str(path)
    cfg = _load_config(path)
    try:
        base = load_scenario(cfg.scenario)
    except ConfigError as exc:
        raise SweepError(f"{source}: scenario: {exc}") from None
    regimes = _regime_scenarios(cfg, source)
    # Paths are checked against the config they will be applied to: the base with the
    # first regime's data (data.* paths then address the regime's sources).
    first = regimes[0][1]
    probe = base if first is None else base.model_copy(update={"data": first.data})
    keys = {}
    for p in cfg.swept_paths():
        try:
            keys[p] = resolve_path(probe, p)
        except PathError as exc:
            section = "grid" if p in (cfg.grid or {}) else "random.params"
            raise SweepError(f"{source}: {section}: {exc}") from None
    base_raw = base.model_dump(mode="json")
    runs: list[SweepRun] = []
    skipped: list[tuple[dict[str, Any], str | None, str]] = []
    for param_set, params in enumerate(_param_sets(cfg)):
        for regime, scenario in regimes:
            own_seed = (scenario or base).seed
            try:  # validity does not depend on the seed: validate once, then copy
                config = _resolved(base_raw, scenario, regime, own_seed, keys, params)
            except ValidationError as exc:
                reason = _describe(exc, "").removeprefix(": ")
                if not cfg.skip_invalid:
                    where = f" in regime {regime!r}" if regime else ""
                    raise SweepError(
                        f"{source}: combination {describe_params(params)}{where}: {reason} "
                        "(skip_invalid = true leaves such combinations out)") from None
                skipped.append((params, regime, reason))
                continue
            _check_sweepable(config, source)
            for seed in cfg.seeds or [own_seed]:
                seeded = config.model_copy(update={"seed": seed})
                identity = identify(seeded)
                runs.append(SweepRun(len(runs), identity.run_id, param_set, dict(params),
                                     regime, seed, seeded, identity))
    if not runs:
        raise SweepError(f"{source}: every combination is invalid, e.g. {skipped[0][2]}")
    if cfg.walk_forward is not None:
        _check_windows(cfg.walk_forward, runs, source)
    return Sweep(cfg, source, sweep_identity(cfg, runs), tuple(runs), tuple(skipped))


def _span_ns(config: ScenarioConfig) -> int | None:
    """Time covered by generated data (None when any source is a file: known after loading)."""
    spans = []
    for d in config.data:
        if isinstance(d, FileSourceConfig):
            return None
        spans.append(d.bars * parse_duration(source_interval(d) or ""))
    return max(spans) if spans else None


def _check_windows(wf: WalkForwardConfig, runs: Iterable[SweepRun], source: str) -> None:
    need = parse_duration(wf.train) + parse_duration(wf.test)
    for run in runs:
        span = _span_ns(run.config)
        if span is not None and span < need:
            raise SweepError(f"{source}: walk_forward: train + test ({wf.train} + {wf.test}) "
                             f"is longer than the data of {run.config.name!r}")


def sweep_identity(cfg: SweepConfig, runs: Sequence[SweepRun]) -> str:
    """Same sweep file content (members and analysis options) => same sweep id."""
    members = [[r.idx, r.run_id, r.param_set, r.params, r.regime, r.seed] for r in runs]
    options = cfg.model_dump(mode="json", include={"name", "rank_by", "aggregate",
                                                   "walk_forward"})
    return hashlib.sha256(canonical_json({"members": members, "options": options})
                          .encode()).hexdigest()[:16]
