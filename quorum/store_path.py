"""Which run store a command uses when ``--db`` is not given: one per project, not one per
directory the command happened to start in.

A researcher who ran ``quorum run scenarios/x.toml`` at the project's root and then
``cd research && quorum run rsi.toml`` got a second ``runs.duckdb`` in ``research/``,
silently, and ``quorum runs`` there no longer listed the first run. Now, first match wins:

1. ``$QUORUM_DB``;
2. ``.quorum/runs.duckdb`` in the nearest directory, from here up, that has a ``.quorum/``
   folder (the project's store);
3. a ``runs.duckdb`` already made in the nearest directory, from here up (a store made
   before there was a ``.quorum/``, kept in use rather than forked);
4. ``.quorum/runs.duckdb`` beside the nearest ``scenarios/`` folder, from here up (the
   project's root; made on first use);
5. ``runs.duckdb`` here (a directory in no project).

The store chosen so is printed on stderr, so where a run went is never a guess.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV = "QUORUM_DB"
PROJECT_DIR = ".quorum"
STORE_NAME = "runs.duckdb"


@dataclass(frozen=True, slots=True)
class ChosenStore:
    path: Path
    why: str  # printed: which rule chose it


def _here_and_up(start: Path) -> list[Path]:
    start = start.resolve()
    return [start, *start.parents]


def default_store(cwd: Path | None = None,
                  environ: Mapping[str, str] | None = None) -> ChosenStore:
    """The store a command without ``--db`` uses, by the rules of this module."""
    environ = os.environ if environ is None else environ
    from_env = environ.get(ENV, "").strip()
    if from_env:
        return ChosenStore(Path(from_env), f"${ENV}")
    here = Path.cwd() if cwd is None else cwd
    dirs = _here_and_up(here)
    for d in dirs:
        if (d / PROJECT_DIR).is_dir():
            return ChosenStore(d / PROJECT_DIR / STORE_NAME, f"the project's store ({d})")
    for d in dirs:
        if (d / STORE_NAME).is_file():
            why = "here" if d == dirs[0] else f"the store already in {d}"
            return ChosenStore(d / STORE_NAME, why)
    for d in dirs:
        if (d / "scenarios").is_dir():
            return ChosenStore(d / PROJECT_DIR / STORE_NAME,
                               f"the project's store, beside {d / 'scenarios'}")
    return ChosenStore(here / STORE_NAME, "here")


def shown(path: Path, cwd: Path | None = None) -> str:
    """``path`` relative to the current directory when it is below it, else absolute."""
    here = (Path.cwd() if cwd is None else cwd).resolve()
    try:
        return str(path.resolve().relative_to(here))
    except ValueError:
        return str(path.resolve())
