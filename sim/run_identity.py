"""A run's identity: what it is, not when or where it ran.

A run is its config, the data it reads and the code that computes it. ``config_id``
hashes the config (as ``runs.config`` stores it, fields at their default left out, so a
Quorum that adds a setting does not rename every run) with every file it reads standing
for the digest of its content. ``code_id`` is ``sim.code_identity``: Quorum's source and
the user modules its agents are loaded from, by content. The run id hashes both.

The same combination gets the same id whenever, wherever and by whichever worker it runs
(a checkout at another path included); editing a data file or an agent's module makes a
new run instead of reusing a stale one. A stored run made by other code has the same
``config_id`` and another ``code_id``: that is how a sweep finds stale runs
(``--reuse-stale``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.code_identity import CodeIdentity, code_identity, file_digest
from sim.config import ScenarioConfig
from sim.config_base import ConfigError
from sim.config_sources import CalibratedSourceConfig, FileSourceConfig, as_stored

IDENTITY_VERSION = "quorum-run/3"  # 3: the code counts; 2: files by content, not path

__all__ = ["IDENTITY_VERSION", "RunIdentity", "canonical_json", "config_identity",
           "file_digest", "identify", "legacy_run_id", "run_identity"]


@dataclass(frozen=True, slots=True)
class RunIdentity:
    run_id: str
    config_id: str
    code: CodeIdentity


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_identity(config: ScenarioConfig) -> str:
    """16 hex digits of sha256 over the config with every file it reads replaced by the
    digest of its content, so the same files give the same id wherever they lie. A
    missing file is an error here, before anything runs."""
    dump = as_stored(config.model_dump(mode="json", exclude_defaults=True))
    for source, raw in zip(config.data, dump.get("data", []), strict=True):
        if isinstance(source, FileSourceConfig):
            raw["path"] = _content(config, source.path)
            if source.funding:
                raw["funding"] = _content(config, source.funding)
        elif isinstance(source, CalibratedSourceConfig):
            raw["model"] = _content(config, source.model)  # a refitted model: a new run
    for agent, raw in zip(config.agents, dump.get("agents", []), strict=True):
        path = agent.params.get("path")
        if isinstance(path, str) and os.path.isfile(path):
            raw["params"]["path"] = _content(config, path)
    payload = canonical_json({"v": IDENTITY_VERSION, "config": dump})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def identify(config: ScenarioConfig) -> RunIdentity:
    """The config's id, the code's, and the run id made of both."""
    config_id = config_identity(config)
    code = code_identity(a.model_dump(mode="json") for a in config.agents)
    payload = canonical_json({"v": IDENTITY_VERSION, "config": config_id,
                              "code": code.code_id})
    return RunIdentity(hashlib.sha256(payload.encode()).hexdigest()[:16], config_id, code)


def run_identity(config: ScenarioConfig) -> str:
    """The run id of a resolved config: 16 hex digits (``identify``)."""
    return identify(config).run_id


LEGACY_VERSION = "quorum-run/2"  # sweep runs stored before the code counted


def legacy_run_id(stored: Mapping[str, Any]) -> str | None:
    """The id a Quorum before ``quorum-run/3`` gave the run whose ``runs.config`` is
    ``stored``: that config with its files by their content now. It equals the stored
    run's id only if the run was a sweep's and its files have not changed since (None
    when a file is gone), which is what makes such a run recognisable as the same
    combination made by unknown code."""
    dump = json.loads(json.dumps(stored))
    try:
        for raw in dump.get("data", []):
            if raw.get("kind") == "file":
                raw["path"] = "sha256:" + file_digest(raw["path"])
                if raw.get("funding"):
                    raw["funding"] = "sha256:" + file_digest(raw["funding"])
        for raw in dump.get("agents", []):
            path = (raw.get("params") or {}).get("path")
            if isinstance(path, str) and os.path.isfile(path):
                raw["params"]["path"] = "sha256:" + file_digest(path)
        payload = canonical_json({"v": LEGACY_VERSION, "config": dump})
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _content(config: ScenarioConfig, path: str) -> str:
    try:
        return "sha256:" + file_digest(path)
    except OSError as exc:
        raise ConfigError(f"{config.name}: cannot read {path}: {exc.strerror}") from None
