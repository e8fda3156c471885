"""Where a scenario's ``module:Class`` agents are imported from: its directory, then here.

A researcher keeps ``my_agents.py`` beside ``rsi.toml`` and runs ``quorum run rsi.toml``.
The ``quorum`` console script, unlike ``python -m``, puts neither directory on the import
path, so the module was not found. The command now puts the scenario's directory (for a
sweep: the sweep file's and its base scenario's), then the current directory, ahead of the
installed packages. It changes ``sys.path`` before anything is imported by name, so the
run's code identity (``sim.code_identity``, which finds modules the same way) hashes the
module that runs; sweep workers are spawned with the same path.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def agent_dirs(args: argparse.Namespace) -> list[str]:
    """The directories to import agents from, first match wins."""
    dirs: list[Path] = []
    scenario = getattr(args, "scenario", None)
    if isinstance(scenario, str):
        dirs.append(Path(scenario).parent)
    sweep = getattr(args, "sweep", None)
    if isinstance(sweep, str):
        dirs.append(Path(sweep).parent)
        base = _sweep_base(Path(sweep))
        if base is not None:
            dirs.append(base.parent)
    dirs.append(Path.cwd())
    return list(dict.fromkeys(os.path.abspath(d) for d in dirs))


def _sweep_base(sweep: Path) -> Path | None:
    """The sweep's base scenario, resolved against the sweep file as ``load_sweep`` does;
    None when it cannot be read (``load_sweep`` then says why)."""
    try:
        scenario = tomllib.loads(sweep.read_text(encoding="utf-8")).get("scenario")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return sweep.parent / scenario if isinstance(scenario, str) else None


@contextmanager
def agent_import_path(args: argparse.Namespace) -> Iterator[None]:
    """``agent_dirs(args)`` first on ``sys.path``, in order (one already there stays where
    it is), for the command; the path is restored after it (``main`` may run in-process)."""
    saved = list(sys.path)
    for d in reversed(agent_dirs(args)):
        if d not in sys.path:
            sys.path.insert(0, d)
    try:
        yield
    finally:
        sys.path[:] = saved
