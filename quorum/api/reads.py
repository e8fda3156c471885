"""What the API reads from a run store, through one connection, bounded in time.

In a session the API shares the session's own DuckDB connection (DuckDB has one writer;
another process cannot open the file while a session holds it): each read takes its own
cursor (a connection to the same database that may be used from another thread) and is
interrupted past ``timeout_s``, so a heavy read never holds the store. ``quorum serve``
opens the file read-only and reads the same way.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Any

import duckdb


class ReadTimeout(RuntimeError):
    """A read ran past its time limit and was interrupted."""


class UnknownRun(LookupError):
    """No run has that id (or prefix)."""


class Watchdog:
    """Interrupts cursors that run past their deadline: one thread for every read (a
    timer thread per read cost a thread start per request, on the interpreter lock the
    trading loop shares)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Any]] = []  # heap of (deadline, token, cursor)
        self._armed: set[int] = set()
        self._tokens = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, cursor: Any, timeout_s: float) -> int:
        """Interrupt ``cursor`` in ``timeout_s`` unless disarmed first."""
        token = next(self._tokens)
        with self._wake:
            self._armed.add(token)
            heapq.heappush(self._due, (time.monotonic() + timeout_s, token, cursor))
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, daemon=True,
                                                name="quorum-read-watchdog")
                self._thread.start()
            elif self._due[0][1] == token:
                self._wake.notify()  # the new deadline is the nearest
        return token

    def disarm(self, token: int) -> None:
        with self._wake:
            self._armed.discard(token)

    def _watch(self) -> None:
        with self._wake:
            while True:
                while self._due and self._due[0][1] not in self._armed:
                    heapq.heappop(self._due)  # finished in time
                if not self._due:
                    self._wake.wait()
                    continue
                wait = self._due[0][0] - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                _, token, cursor = heapq.heappop(self._due)
                self._armed.discard(token)
                cursor.interrupt()


class StoreReader:
    def __init__(self, con: duckdb.DuckDBPyConnection, *, timeout_s: float = 5.0,
                 default_run: str | None = None) -> None:
        self.con = con
        self.default_run = default_run  # the run being watched (None: the latest)
        self._default_stored = False  # has the watched run's row been seen yet
        self.timeout_s = timeout_s
        self._lock = threading.Lock()  # cursor() on the shared connection
        self._watchdog = Watchdog()

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """The rows of ``sql`` as dicts; ReadTimeout past the time limit."""
        with self._lock:
            cursor = self.con.cursor()
        token = self._watchdog.arm(cursor, self.timeout_s)
        try:
            result = cursor.execute(sql, params or [])
            names = [d[0] for d in result.description or ()]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
        except duckdb.InterruptException:
            raise ReadTimeout(f"read took longer than {self.timeout_s:g} s") from None
        finally:
            self._watchdog.disarm(token)
            cursor.close()

    def has_table(self, name: str) -> bool:
        return bool(self.rows("select 1 from information_schema.tables "
                              "where table_schema = 'main' and table_name = ?", [name]))

    def run_id(self, ref: str | None) -> str:
        """A run id from an id, a unique prefix, or None (the run being watched, else the
        latest run)."""
        if ref is None and self.default_run is not None:
            if self._default_stored or self.rows("select 1 from runs where run_id = ?",
                                                 [self.default_run]):
                self._default_stored = True  # a stored run stays: no query per read
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
