"""The live session's commits: the rows the run's steps buffered (the recorder's, the
bars it saw with their causal regime labels, the venue ports' durable records, the risk
engine's trips) handed to the store writer's thread as one transaction, at most every
``flush_every_s`` (a timer commits what waits when no step comes), at once when the risk
engine tripped.

Split from ``live.runner`` along that seam: the runner consumes the queue and drives the
engine; this is how what a step produced reaches DuckDB without the loop waiting for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import duckdb
import numpy as np
import pyarrow as pa

from live.records import write_records
from live.risk_state import insert_trips
from sim.data import BAR_COLUMNS
from sim.regimes.labels import LABELS, regime_codes
from sim.store import append_batch

if TYPE_CHECKING:
    from live.history import BarHistory
    from live.orders import OrderPort
    from live.risk_state import RiskTrips
    from live.writer import StoreWriter
    from sim.engine import Engine
    from sim.recorder import Recorder
    from sim.store import RunStore

_BAR_FIELDS = ("ts", *BAR_COLUMNS)


class SessionCommits:
    """``LiveRunner``'s commits (a mixin: the state is the runner's, declared below for
    the type checker only)."""

    if TYPE_CHECKING:
        store: RunStore
        run_id: str
        engine: Engine
        recorder: Recorder
        histories: list[BarHistory]
        ports: list[OrderPort]
        writer: StoreWriter | None
        trips: RiskTrips | None
        flush_every_s: float
        _flushed: float
        _flush_timer: asyncio.TimerHandle | None
        _bars_written: list[int]

    def _commit(self, force: bool = False) -> None:
        """With a real venue, start the requests made in this step first (each one's row
        is in the journal already: write-ahead). Then hand the buffered rows and the port's
        records (fills with their trade ids, order outcomes) to the store writer as one
        transaction (``live.writer``: the loop does not wait for DuckDB). At most every
        ``flush_every_s`` (a timer commits what waits when no step comes), at once when
        the risk engine tripped (``RiskTrips``); ``force``: at once, and wait until it is
        written. Fills and outcomes need not be written at once: until they are, their
        legs are open in the store, and a restart after a crash asks the venue for them
        (``live.recovery``). Each hand-over costs the writer 10-30 ms of DuckDB inserts,
        run beside the loop on the same cores; once per fill, it was busy most of the
        time and slowed the market events that met it (BENCHMARKS.md)."""
        for p in self.ports:
            p.start_requests()
        writer = self.writer
        if writer is None:  # not running, or a store without a connection: the recorder's
            return  # own flushes (``_release``)
        writer.check()
        now = time.monotonic()
        trips = self.trips
        tripped = trips is not None and trips.pending
        full = self.recorder.pending_rows() >= self.recorder.flush_rows
        if not (force or full or tripped or now - self._flushed >= self.flush_every_s):
            if self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    self.flush_every_s - (now - self._flushed), self._flush_due)
        else:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            self._flushed = now
            run_id = self.run_id
            batches = self.recorder.take_batches()
            bars = self._new_bars()
            records = [p.take_records() for p in self.ports]
            trip_rows = trips.take(self.engine.clock.now_ns()) if tripped else []  # type: ignore[union-attr]

            def write(con: duckdb.DuckDBPyConnection) -> None:
                for table, batch in batches:
                    append_batch(con, run_id, table, batch)
                if bars:
                    append_batch(con, run_id, "bars", bars_table(bars))
                for r in records:
                    write_records(con, run_id, r)
                insert_trips(con, trip_rows)

            if batches or bars or trip_rows or any(not r.empty for r in records):
                writer.submit(write)
        if force:
            writer.wait()

    def _flush_due(self) -> None:
        """The timer: between two steps, so the port's and the recorder's rows are whole.
        A writer that failed stops the session at the next step (``writer.check``)."""
        self._flush_timer = None
        if self.writer is not None and self.writer.error is None:
            self._commit()

    def _write_bars(self) -> None:
        """Append the bars accepted since the last write (a ``before_flush`` hook)."""
        parts = self._new_bars()
        if parts:
            self.store.append(self.run_id, "bars", bars_table(parts))

    def _new_bars(self) -> list[tuple[str, int, dict[str, np.ndarray]]]:
        """Each symbol's history (read-only views: appends never change them) and where
        its unwritten bars start; from now on they count as written."""
        parts = []
        for s, history in enumerate(self.histories):
            start, n = self._bars_written[s], len(history)
            if start == n:
                continue
            parts.append((history.symbol, start,
                          {name: history.column(name) for name in _BAR_FIELDS}))
            self._bars_written[s] = n
        return parts


def bars_table(parts: list[tuple[str, int, dict[str, np.ndarray]]]) -> pa.Table:
    """The ``bars`` rows of ``parts`` (symbol, first new bar, history), with causal regime
    labels: a label depends on past closes only, so labelling the whole history and
    keeping the new tail gives what a backtest of these bars stores. Pure: any thread."""
    tables = []
    for symbol, start, cols in parts:
        ts = cols["ts"]
        k = len(ts) - start
        codes = regime_codes(ts, cols["close"])[start:]
        table = {"ts": pa.array(ts[start:], pa.timestamp("ns")),
                 "symbol": pa.array([symbol] * k, pa.string())}
        for name in _BAR_FIELDS[1:]:
            table[name] = cols[name][start:]
        table["regime"] = pa.array([LABELS[c] for c in codes], pa.string())
        table["source_regime"] = pa.nulls(k, pa.string())
        table["filled"] = np.zeros(k, dtype=bool)
        tables.append(pa.table(table))
    return pa.concat_tables(tables)
