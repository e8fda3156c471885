"""A run's identity: what it is, not when or where it ran.

The run id of a resolved scenario is a hash of its config (as ``runs.config`` stores it)
and of the content of every file it reads. The same combination gets the same id whenever
and by whichever worker it runs, and editing a data file makes a new run instead of
reusing a stale one. The config holds data paths resolved to absolute ones, so a checkout
at another path gets other ids for scenarios that read files.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from typing import Any

from sim.config import ConfigError, FileSourceConfig, ScenarioConfig

IDENTITY_VERSION = "quorum-run/1"


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


def referenced_files(config: ScenarioConfig) -> list[str]:
    """Every file a run of ``config`` reads: recorded data, funding, an agent's ``path``."""
    files = []
    for source in config.data:
        if isinstance(source, FileSourceConfig):
            files.append(source.path)
            if source.funding:
                files.append(source.funding)
    for agent in config.agents:
        path = agent.params.get("path")
        if isinstance(path, str) and os.path.isfile(path):
            files.append(path)
    return files


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_identity(config: ScenarioConfig) -> str:
    """The run id of a resolved config: 16 hex digits of sha256 over the config (as stored
    in ``runs.config``) and the digests of the files it reads. A missing file is an error
    here, before anything runs."""
    files = {}
    for path in referenced_files(config):
        try:
            files[path] = file_digest(path)
        except OSError as exc:
            raise ConfigError(f"{config.name}: cannot read {path}: {exc.strerror}") from None
    payload = canonical_json({"v": IDENTITY_VERSION, "config": config.model_dump(mode="json"),
                              "files": files})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
