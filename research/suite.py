"""Scenario suites: a named list of scenario files run together (e.g. one per regime).

A suite is a TOML file; scenario paths are relative to it (or absolute)::

    # scenarios/regimes/suite.toml
    name = "regimes"
    description = "every built-in agent in each named market regime"
    scenarios = ["trend_up.toml", "trend_down.toml", "ranging.toml",
                 "high_volatility.toml", "crash.toml", "regime_switching.toml"]
    seeds = [1, 2, 3]        # optional: run every scenario once per seed

Every scenario file must exist when the suite is loaded; a path listed twice or a seed
listed twice is an error. Without ``seeds`` each scenario runs with its own seed. This
module only describes and validates suites; nothing runs them yet.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from sim.config import _describe
from sim.config_base import ConfigError

Seed = Annotated[int, Field(ge=0, lt=2**63)]


class SuiteConfig(BaseModel):
    """A suite of scenarios; ``scenarios`` holds resolved paths once loaded by ``load_suite``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = ""
    scenarios: list[str] = Field(min_length=1)
    seeds: list[Seed] | None = Field(default=None, min_length=1)

    @field_validator("scenarios")
    @classmethod
    def _scenarios_exist(cls, paths: list[str]) -> list[str]:
        seen: set[Path] = set()
        for text in paths:
            path = Path(text)
            if not path.is_file():
                raise ValueError(f"scenario file not found: {text}")
            key = path.resolve()
            if key in seen:
                raise ValueError(f"scenario listed twice: {text}")
            seen.add(key)
        return paths

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None:
            dupes = sorted({s for s in seeds if seeds.count(s) > 1})
            if dupes:
                raise ValueError(f"seed listed twice: {', '.join(map(str, dupes))}")
        return seeds


def load_suite(path: str | Path) -> SuiteConfig:
    """Read and validate a suite TOML; scenario paths are resolved against the file."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: suite file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    scenarios = raw.get("scenarios")
    if isinstance(scenarios, list):
        raw["scenarios"] = [
            str((path.parent / s).resolve()) if isinstance(s, str) and not Path(s).is_absolute()
            else s
            for s in scenarios
        ]
    try:
        return SuiteConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, str(path))) from None
