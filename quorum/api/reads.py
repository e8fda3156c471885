"""What the API reads from a run store, through one connection, bounded in time.

In a session the API shares the session's own DuckDB connection (DuckDB has one writer;
another process cannot open the file while a session holds it): each read takes its own
cursor (a connection to the same database that may be used from another thread) and is
interrupted past ``timeout_s``, so a heavy read never holds the store. ``quorum serve``
opens the file read-only and reads the same way.
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb


class ReadTimeout(RuntimeError):
    """A read ran past its time limit and was interrupted."""


class UnknownRun(LookupError):
    """No run has that id (or prefix)."""


class StoreReader:
    def __init__(self, con: duckdb.DuckDBPyConnection, *, timeout_s: float = 5.0,
                 default_run: str | None = None) -> None:
        self.con = con
        self.default_run = default_run  # the run being watched (None: the latest)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # cursor() on the shared connection

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """The rows of ``sql`` as dicts; ReadTimeout past the time limit."""
        with self._lock:
            cursor = self.con.cursor()
        timer = threading.Timer(self.timeout_s, cursor.interrupt)
        timer.start()
        try:
            result = cursor.execute(sql, params or [])
            names = [d[0] for d in result.description or ()]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        except duckdb.InterruptException:
            raise ReadTimeout(f"read took longer than {self.timeout_s:g} s") from None
        finally:
            timer.cancel()
            cursor.close()

    def has_table(self, name: str) -> bool:
        return bool(self.rows("select 1 from information_schema.tables "
                              "where table_schema = 'main' and table_name = ?", [name]))

    def run_id(self, ref: str | None) -> str:
        """A run id from an id, a unique prefix, or None (the run being watched, else the
        latest run)."""
        if ref is None and self.default_run is not None:
            if self.rows("select 1 from runs where run_id = ?", [self.default_run]):
                return self.default_run
            raise UnknownRun(f"run {self.default_run} has not started yet")
        if ref is None:
            rows = self.rows("select run_id from runs order by started_at desc limit 1")
        else:
            rows = self.rows("select run_id from runs where starts_with(run_id, ?) limit 2",
                             [ref])
            if len(rows) > 1:
                raise UnknownRun(f"run {ref!r} is ambiguous: give more of its id")
        if not rows:
            raise UnknownRun("no runs in the store" if ref is None else f"no run {ref!r}")
        return str(rows[0]["run_id"])
