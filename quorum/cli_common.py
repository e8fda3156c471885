"""What every ``quorum`` command shares: the usage error (exit 2), the console and its
tables, ``--interval`` values, and a store opened for a command that reads it."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
from rich.console import Console
from rich.table import Table

from sim.store import DuckDBStore, StoreError, one_line


class UsageError(Exception):
    """Bad input found by the CLI itself."""


def _console(stream: Any = None) -> Console:
    stream = stream or sys.stdout
    width = None if stream.isatty() else 160  # pipes and CI logs: do not squeeze to 80
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.2f}"
    return "" if value is None else str(value)


def _print_table(rows: Sequence[dict[str, Any]], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    if not rows:
        _console().print("(no rows)")
        return
    for name in rows[0]:
        table.add_column(str(name))
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    _console().print(table)


def interval_option(value: str | None) -> int | None:
    """An ``--interval`` option in nanoseconds (None: not given); bad input is one line."""
    from sim.config_base import parse_duration

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"--interval: {exc}") from None


@contextmanager
def _open_existing(db: str, *, write: bool = False) -> Iterator[DuckDBStore]:
    """The store, read-only unless ``write``: a store the user may not write can be read,
    and so can one another reader has open. A damaged file often opens and fails on the
    first block read: one line naming the store (exit 2), not DuckDB's traceback."""
    if not Path(db).is_file():
        raise UsageError(f"no run store at {db} (run a scenario first, or pass --db PATH)")
    with DuckDBStore(db, read_only=not write) as store:
        try:
            yield store
        except duckdb.Error as exc:
            raise StoreError(f"cannot read run store {db}: {one_line(exc)}") from None
