"""The promotion gate: which configurations may trade live, and the record of why.

``quorum validate SCENARIO`` runs the regime suite with the scenario's trading
configuration (agents, consensus, policy, risk, router, venues, execution, initial cash)
on each regime's data and seeds, checks the results against thresholds, and stores one
row in ``validations``: the config hash and the config itself, the data hash of every
suite run, the code version, the thresholds, the per-run metrics, pass/fail and what
failed. ``check_promotion`` is what live mode asks before trading:

- a config whose hash has a passing validation is allowed, if the suite's data still
  hash the same (regenerated from the stored suite files and seeds);
- otherwise it is refused, naming why: the validation failed (and which thresholds), the
  config changed since the last validation of that scenario (the changed fields, e.g.
  ``policy.exposure``), the suite data changed (which regime and seed), or it was never
  validated;
- an explicit override (a reason is required) lets a refused config through, logs a
  warning and stores an ``override`` row naming what was overridden.

A different code version is reported as a warning, not a refusal (every commit changes
it; re-validate after changes to the pipeline).

**What the gate requires** (``GateRequirement``): the suite and thresholds the scenario
names under ``[validation]``, else the default suite and ``Thresholds()``. A validation
counts only if it ran that suite with thresholds at least as strict, in every regime of
the suite (passing stricter limits implies passing these). Any other validation, one
with ``--thresholds`` looser than required or another ``--suite``, is stored as kind
``override`` with the deviations as its reason, and the gate does not accept it: it is
the user overriding the gate, and says so. The requirement is checked again when the
gate is asked, so tightening a scenario's thresholds retires validations that passed
looser ones.

Default thresholds (``Thresholds``), meant as a floor that catches a configuration that
blows up or loses steadily, not as proof of an edge:

- ``max_drawdown = 0.30``: no suite run may draw down more than 30% from its peak;
- ``min_sharpe = -1.0``: in each regime, the mean annualised Sharpe over seeds is at
  least -1 (some regimes, a crash, are expected to cost something);
- ``min_mean_sharpe = 0.0``: averaged over the regimes, the Sharpe is not negative;
- a run with no return variation (it never traded) has no Sharpe and fails ``min_sharpe``.

Per-regime overrides go under ``[regimes.NAME]`` (NAME: the regime scenario's file stem).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tomllib
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sim.config import ScenarioConfig, _describe, load_scenario, parse_scenario
from sim.config_base import ConfigError
from sim.config_sources import source_symbols
from sim.provenance import code_version
from sim.runner import RandomStreams, load_market_data
from sim.store import DuckDBStore

log = logging.getLogger(__name__)

DEFAULT_SUITE = Path(__file__).resolve().parent.parent / "scenarios" / "regimes" / "suite.toml"

# What decides how a configuration trades: its hash is what a validation certifies.
TRADING_FIELDS = ("initial_cash", "agents", "consensus", "policy", "risk", "router",
                  "venues", "execution")


class RegimeThresholds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_drawdown: float | None = Field(default=None, gt=0, le=1)
    min_sharpe: float | None = None


class Thresholds(BaseModel):
    """Pass/fail limits for a suite validation (defaults: see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_drawdown: float = Field(default=0.30, gt=0, le=1)
    min_sharpe: float = -1.0
    min_mean_sharpe: float = 0.0
    regimes: dict[str, RegimeThresholds] = Field(default_factory=dict)

    def for_regime(self, regime: str) -> tuple[float, float]:
        """(max drawdown, min Sharpe) that apply to ``regime``."""
        own = self.regimes.get(regime, RegimeThresholds())
        return (own.max_drawdown if own.max_drawdown is not None else self.max_drawdown,
                own.min_sharpe if own.min_sharpe is not None else self.min_sharpe)


def load_thresholds(path: str | Path | None) -> Thresholds:
    if path is None:
        return Thresholds()
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        return Thresholds.model_validate(raw)
    except FileNotFoundError:
        raise ConfigError(f"{path}: thresholds file not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read thresholds: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from None


def describe_thresholds(t: Thresholds) -> str:
    """``max_drawdown 0.3, min_sharpe -1, min_mean_sharpe 0; crash: max_drawdown 0.45``."""
    text = (f"max_drawdown {t.max_drawdown:g}, min_sharpe {t.min_sharpe:g}, "
            f"min_mean_sharpe {t.min_mean_sharpe:g}")
    for name, own in sorted(t.regimes.items()):
        parts = [f"{k} {v:g}" for k, v in (("max_drawdown", own.max_drawdown),
                                            ("min_sharpe", own.min_sharpe)) if v is not None]
        if parts:
            text += f"; {name}: {', '.join(parts)}"
    return text


@dataclass(frozen=True, slots=True)
class GateRequirement:
    """The suite (resolved path) and thresholds a validation must have run with to count,
    from the scenario's ``[validation]`` or the defaults."""

    suite: str
    thresholds: Thresholds
    named_by: str  # "the scenario" or "the defaults", for messages

    def describe(self) -> str:
        return (f"suite {self.suite}, thresholds {describe_thresholds(self.thresholds)} "
                f"({self.named_by})")


def gate_requirement(config: ScenarioConfig) -> GateRequirement:
    """What ``config``'s promotion gate requires (ConfigError for a missing file)."""
    gate = config.validation
    suite = gate.suite if gate is not None and gate.suite else None
    thresholds = gate.thresholds if gate is not None else None
    return GateRequirement(
        str(Path(suite or DEFAULT_SUITE).resolve()), load_thresholds(thresholds),
        "named by the scenario" if suite or thresholds else "the defaults")


def deviations(suite: str, thresholds: Thresholds, regimes: Sequence[str],
               required: GateRequirement) -> list[str]:
    """How a validation of ``regimes`` (suite scenario stems) with ``suite`` and
    ``thresholds`` falls short of ``required``: another suite, or any limit looser than
    required in a regime it covers. Empty: the gate accepts it."""
    out = []
    if str(Path(suite).resolve()) != required.suite:
        out.append(f"suite {suite} instead of {required.suite}")
    need = required.thresholds
    if thresholds.min_mean_sharpe < need.min_mean_sharpe:
        out.append(f"min_mean_sharpe {thresholds.min_mean_sharpe:g} < "
                   f"{need.min_mean_sharpe:g}")
    for regime in sorted(set(regimes)):
        (dd, sharpe), (need_dd, need_sharpe) = (thresholds.for_regime(regime),
                                                need.for_regime(regime))
        if dd > need_dd:
            out.append(f"{regime}: max_drawdown {dd:g} > {need_dd:g}")
        if sharpe < need_sharpe:
            out.append(f"{regime}: min_sharpe {sharpe:g} < {need_sharpe:g}")
    return out


@dataclass(frozen=True, slots=True)
class RunMetrics:
    """One suite run: the regime (scenario file stem), seed, its run id and results."""

    regime: str
    seed: int
    run_id: str
    data_hash: str
    sharpe: float
    max_drawdown: float
    total_return: float


@dataclass(frozen=True, slots=True)
class PromotionVerdict:
    allowed: bool
    reason: str
    config_hash: str
    validation_id: str | None = None  # the passing validation, or the override row
    changed: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    overridden: bool = False
    warnings: tuple[str, ...] = field(default=())


def trading_config(config: ScenarioConfig) -> dict[str, Any]:
    dumped = config.model_dump(mode="json")
    return {name: dumped[name] for name in TRADING_FIELDS}


def config_hash(config: ScenarioConfig) -> str:
    text = json.dumps(trading_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def changed_fields(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where ``new`` differs from ``old``; lists of named items (agents,
    venues) are matched by name: ``agents[sma].params.fast``."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(path)
            else:
                out.extend(changed_fields(old[key], new[key], path))
        return out
    if isinstance(old, list) and isinstance(new, list) and _named(old) and _named(new):
        return _named_diff(old, new, prefix)
    return [] if old == new else [prefix or "(config)"]


def _named(items: list[Any]) -> bool:
    return all(isinstance(x, dict) and "name" in x for x in items)


def _named_diff(old: list[dict[str, Any]], new: list[dict[str, Any]], prefix: str) -> list[str]:
    a, b = {x["name"]: x for x in old}, {x["name"]: x for x in new}
    out = []
    for name in sorted(set(a) | set(b)):
        path = f"{prefix}[{name}]"
        if name not in a or name not in b:
            out.append(path)
        else:
            out.extend(changed_fields(a[name], b[name], path))
    if not out and [x["name"] for x in old] != [x["name"] for x in new]:
        out.append(f"{prefix} (order)")
    return out


def suite_run_config(config: ScenarioConfig, regime: ScenarioConfig) -> ScenarioConfig:
    """``config``'s trading setup on ``regime``'s data and seed. Symbol lists are
    re-pointed at the regime's symbols (agents and venues trade all of them; a risk
    ``allowed_symbols`` list is dropped) and scheduled events are left out: both are
    tied to the scenario's own market, not to how it trades."""
    symbols = [s for d in regime.data for s in source_symbols(d)]
    raw = config.model_dump(mode="json")
    raw["agents"] = [{**a, "symbols": None} for a in raw["agents"]]
    raw["venues"] = [{**v, "symbols": symbols} for v in raw["venues"]]
    raw["risk"] = {**raw["risk"], "allowed_symbols": None,
                   "agents": {k: {**p, "allowed_symbols": None}
                              for k, p in raw["risk"]["agents"].items()}}
    raw["events"] = []
    raw["data"] = regime.model_dump(mode="json")["data"]
    raw["seed"] = regime.seed
    raw["name"] = f"validate:{config.name}:{regime.name}"
    raw["description"] = f"promotion-gate run of {config.name!r} on {regime.name!r}"
    return parse_scenario(raw, f"validation of {config.name!r} on {regime.name!r}")


def suite_data_hash(regime: ScenarioConfig) -> str:
    """The content hash of the data a suite run of ``regime`` (at its seed) sees."""
    streams = RandomStreams.spawn(regime.seed, len(regime.data), 0)
    return load_market_data(regime, streams.data).content_hash()


def evaluate(metrics: Sequence[RunMetrics], thresholds: Thresholds) -> list[str]:
    """Every threshold breached, in words naming the regime and seed."""
    failures = []
    by_regime: dict[str, list[RunMetrics]] = {}
    for m in metrics:
        by_regime.setdefault(m.regime, []).append(m)
        max_dd, _ = thresholds.for_regime(m.regime)
        if m.max_drawdown > max_dd:
            failures.append(f"{m.regime}@{m.seed}: max drawdown {m.max_drawdown:.1%} > "
                            f"{max_dd:.1%}")
    means = []
    for regime, runs in by_regime.items():
        _, min_sharpe = thresholds.for_regime(regime)
        sharpes = [m.sharpe for m in runs]
        if any(math.isnan(s) for s in sharpes):
            failures.append(f"{regime}: no Sharpe ratio (no return variation: never traded?)")
            continue
        mean = sum(sharpes) / len(sharpes)
        means.append(mean)
        if mean < min_sharpe:
            failures.append(f"{regime}: mean Sharpe {mean:.2f} < {min_sharpe:.2f}")
    if means and sum(means) / len(means) < thresholds.min_mean_sharpe:
        failures.append(f"all regimes: mean Sharpe {sum(means) / len(means):.2f} < "
                        f"{thresholds.min_mean_sharpe:.2f}")
    return failures


def record_validation(store: DuckDBStore, config: ScenarioConfig, suite: str,
                      suite_files: dict[str, tuple[str, int]], metrics: Sequence[RunMetrics],
                      thresholds: Thresholds, failures: Sequence[str],
                      overrides: Sequence[str] = ()) -> str:
    """Store a suite validation; ``suite_files`` maps "regime@seed" to (file, seed).
    With ``overrides`` (its ``deviations`` from the gate's requirement) it is stored as
    kind ``override``, the deviations as its reason: the gate does not accept it."""
    data_hashes = {f"{m.regime}@{m.seed}": {"file": suite_files[f"{m.regime}@{m.seed}"][0],
                                            "seed": m.seed, "hash": m.data_hash}
                   for m in metrics}
    return _insert(store, "override" if overrides else "suite", config, suite, data_hashes,
                   thresholds.model_dump(), [_json_safe(asdict(m)) for m in metrics],
                   not failures, list(failures),
                   f"not the gate's requirement: {'; '.join(overrides)}" if overrides else None)


def check_promotion(store: DuckDBStore, config: ScenarioConfig, *,
                    override_reason: str | None = None,
                    check_data: bool = True) -> PromotionVerdict:
    """May ``config`` trade live? See the module docstring for the rules."""
    verdict = _verdict(store, config, check_data)
    if verdict.allowed or override_reason is None:
        return verdict
    if not override_reason.strip():
        raise ValueError("an override needs a reason")
    vid = _insert(store, "override", config, None, {}, {}, [], False,
                  [verdict.reason, *verdict.failures], override_reason.strip())
    log.warning("PROMOTION GATE OVERRIDDEN for %r (config %s): %s -- reason given: %s "
                "(recorded as validation %s)", config.name, verdict.config_hash,
                verdict.reason, override_reason.strip(), vid)
    return PromotionVerdict(True, f"OVERRIDDEN: {verdict.reason}", verdict.config_hash, vid,
                            verdict.changed, verdict.failures, overridden=True,
                            warnings=verdict.warnings)


def _verdict(store: DuckDBStore, config: ScenarioConfig, check_data: bool) -> PromotionVerdict:
    h = config_hash(config)
    con = store.con
    required = gate_requirement(config)
    rows = con.execute(
        "SELECT validation_id, passed, failures, data_hashes, code_version, suite, thresholds"
        " FROM validations WHERE kind = 'suite' AND config_hash = ?"
        " ORDER BY created_at DESC, validation_id", [h]).fetchall()
    short = {r[0]: _short_of(r[5], r[6], r[3], required) for r in rows}
    passing = [r for r in rows if r[1]]
    accepted = [r for r in passing if not short[r[0]]]
    if accepted:
        vid, _, _, data_hashes, version, *_ = accepted[0]
        warnings = () if version == code_version() else (
            f"validated with code {version}, running {code_version()}",)
        if check_data:
            stale = _stale_data(json.loads(data_hashes))
            if stale:
                return PromotionVerdict(
                    False, f"suite data changed since validation {vid}: {', '.join(stale)}",
                    h, vid, changed=tuple(stale), warnings=warnings)
        return PromotionVerdict(True, f"validation {vid} passed: {required.describe()}", h,
                                vid, warnings=warnings)
    if passing:
        vid = passing[0][0]
        return PromotionVerdict(
            False, f"validation {vid} passed with {'; '.join(short[vid])}, not what the gate "
                   f"requires ({required.describe()}): validate again", h, vid,
            failures=tuple(short[vid]))
    if rows:
        vid, _, failures, *_ = rows[0]
        failed = tuple(json.loads(failures))
        return PromotionVerdict(False, f"validation {vid} failed: {'; '.join(failed)}", h, vid,
                                failures=failed)
    loosened = con.execute(
        "SELECT validation_id, reason FROM validations WHERE kind = 'override'"
        " AND config_hash = ? AND suite IS NOT NULL ORDER BY created_at DESC, validation_id"
        " LIMIT 1", [h]).fetchone()
    if loosened is not None:
        return PromotionVerdict(
            False, f"validation {loosened[0]} is an override ({loosened[1]}), which the gate "
                   f"does not accept: validate with {required.describe()}, or pass "
                   "--override-gate REASON", h, loosened[0])
    last = con.execute(
        "SELECT validation_id, config FROM validations WHERE kind = 'suite' AND scenario = ?"
        " ORDER BY passed DESC, created_at DESC, validation_id LIMIT 1",
        [config.name]).fetchone()
    if last is not None:
        changed = tuple(changed_fields(json.loads(last[1]), trading_config(config)))
        return PromotionVerdict(
            False, f"config changed since validation {last[0]}: {', '.join(changed)}", h,
            changed=changed)
    return PromotionVerdict(
        False, f"config {h} of scenario {config.name!r} has no validation: run "
               "`quorum validate` on it first", h)


def _short_of(suite: str | None, thresholds: str, data_hashes: str,
              required: GateRequirement) -> list[str]:
    """``deviations`` of a stored suite validation (JSON columns as stored)."""
    try:
        used = Thresholds.model_validate(json.loads(thresholds))
    except ValidationError:
        return ["thresholds this version cannot read"]
    regimes = [key.rsplit("@", 1)[0] for key in json.loads(data_hashes)]
    return deviations(suite or "(no suite recorded)", used, regimes, required)


def _stale_data(data_hashes: dict[str, dict[str, Any]]) -> list[str]:
    stale = []
    for key, entry in sorted(data_hashes.items()):
        try:
            regime = load_scenario(entry["file"]).with_seed(int(entry["seed"]))
            now = suite_data_hash(regime)
        except (ConfigError, OSError) as exc:
            stale.append(f"{key} ({exc})")
            continue
        if now != entry["hash"]:
            stale.append(key)
    return stale


def _insert(store: DuckDBStore, kind: str, config: ScenarioConfig, suite: str | None,
            data_hashes: dict[str, Any], thresholds: dict[str, Any],
            metrics: list[dict[str, Any]], passed: bool, failures: list[str],
            reason: str | None) -> str:
    vid = uuid.uuid4().hex[:12]
    store.con.execute(
        "INSERT INTO validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
        [vid, kind, config.name, config_hash(config),
         json.dumps(trading_config(config), sort_keys=True), suite,
         json.dumps(data_hashes, sort_keys=True), code_version(),
         json.dumps(thresholds, sort_keys=True), json.dumps(metrics), passed,
         json.dumps(failures), reason])
    return vid


def _json_safe(row: dict[str, Any]) -> dict[str, Any]:
    """NaN is not JSON: stored as null."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
