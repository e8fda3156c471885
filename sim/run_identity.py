"""A run's identity: what it is, not when or where it ran.

The run id of a resolved scenario is a hash of its config (as ``runs.config`` stores it)
in which every file it reads stands for the digest of its content. The same combination
gets the same id whenever, wherever and by whichever worker it runs (a checkout at
another path included), and editing a data file makes a new run instead of reusing a
stale one.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from typing import Any

from sim.config import CalibratedSourceConfig, ConfigError, FileSourceConfig, ScenarioConfig

IDENTITY_VERSION = "quorum-run/2"  # 2: files by content only, not by path


def file_digest(path: str) -> str:
    """sha256 of a file's bytes; read once per (path, size, modification time)."""
    st = os.stat(path)
    return _digest(path, st.st_size, st.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_identity(config: ScenarioConfig) -> str:
    """The run id of a resolved config: 16 hex digits of sha256 over the config (as stored
    in ``runs.config``) with every file it reads replaced by the digest of its content,
    so the same files give the same id wherever they lie. A missing file is an error
    here, before anything runs."""
    dump = config.model_dump(mode="json")
    for source, raw in zip(config.data, dump["data"], strict=True):
        if isinstance(source, FileSourceConfig):
            raw["path"] = _content(config, source.path)
            if source.funding:
                raw["funding"] = _content(config, source.funding)
        elif isinstance(source, CalibratedSourceConfig):
            raw["model"] = _content(config, source.model)  # a refitted model: a new run
    for agent, raw in zip(config.agents, dump["agents"], strict=True):
        path = agent.params.get("path")
        if isinstance(path, str) and os.path.isfile(path):
            raw["params"]["path"] = _content(config, path)
    payload = canonical_json({"v": IDENTITY_VERSION, "config": dump})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _content(config: ScenarioConfig, path: str) -> str:
    try:
        return "sha256:" + file_digest(path)
    except OSError as exc:
        raise ConfigError(f"{config.name}: cannot read {path}: {exc.strerror}") from None
