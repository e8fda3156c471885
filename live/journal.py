"""The write-ahead journal of a real-venue session: an append-only file per run.

Before a leg's request goes out, its ``venue_orders`` row (``live.records``), and in a
run with ``[[farms]]`` its order's farm, is appended here as one JSON line (the values;
the file's first line names the columns), with one ``write(2)``. That is the
write-ahead: after a crash, the row names the client order id to look up at the venue.
The row reaches the DuckDB table with the session's next commit (at most
``flush_every_s`` later), and ``absorb`` puts whatever a dead process left only here
into the table before anything else reads it.

Why a file and not a DuckDB commit per order: a commit syncs DuckDB's own log and costs
2-5 ms on this machine's disk, paid between the market event and the order; an append
costs about 10 us (BENCHMARKS.md). What it guarantees:

* **The process dies** (SIGKILL, OOM, a crash): nothing is lost. Once ``write`` has
  returned, the bytes belong to the kernel, which writes them out whatever happens to
  the process; the request is sent only after that.
* **The machine loses power** before the kernel wrote the page out: the tail of the
  journal may be lost, with orders that were sent. The restart's reconciliation
  (``live.reconcile``) then finds orders and positions at the venue that the store does
  not know, and raises them as alerts under its documented rules. An ``fsync`` per
  order would close this gap at the cost the journal exists to avoid.
* A line cut short (power lost mid-write) is the last one and its request was never
  sent (it goes out after the write returns), so ``absorb`` skips it, with a warning.

The file of a run is removed when the run ends and everything in it is in the store.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import duckdb

from live.records import VENUE_ORDER_COLUMNS, insert_venue_order

# A journal row: the ``venue_orders`` row, and the farm whose order it is (``[[farms]]``;
# None without), which ``absorb`` writes to ``farm_orders`` if that row was not committed.
JOURNAL_COLUMNS = (*VENUE_ORDER_COLUMNS, "farm")

log = logging.getLogger(__name__)

_SUFFIX = ".orders.jsonl"


def journal_dir(store_path: str) -> Path | None:
    """Where the journals of the runs in the store at ``store_path`` live (beside the
    file); None for an in-memory store, which keeps nothing across a crash either."""
    if store_path in ("", ":memory:") or store_path.startswith(":memory:"):
        return None
    return Path(store_path).with_name(Path(store_path).name + ".journal")


class OrderJournal:
    """Appends write-ahead rows of one run; a no-op without a directory (memory store)."""

    def __init__(self, directory: Path | None, run_id: str) -> None:
        self.path = None if directory is None else directory / f"{run_id}{_SUFFIX}"
        self._fd: int | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size == 0:  # a header names the columns of every row
                os.write(self._fd, (json.dumps(JOURNAL_COLUMNS) + "\n").encode())

    def append(self, row: dict[str, Any]) -> None:
        """Make ``row`` durable against the process dying (see the module docstring)."""
        if self._fd is None:
            return
        values = [row.get(c) for c in JOURNAL_COLUMNS]  # a list dumps twice as fast
        os.write(self._fd, (json.dumps(values, separators=(",", ":"), allow_nan=False)
                            + "\n").encode())

    def close(self, *, remove: bool = False) -> None:
        """Close the file; ``remove``: every row is in the store, the file has done its job."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove and self.path is not None:
            self.path.unlink(missing_ok=True)


def absorb(con: duckdb.DuckDBPyConnection, directory: Path | None) -> int:
    """Insert into ``venue_orders`` every journalled row the table lacks (a process died
    before its commit); returns how many. The journals stay (a later clean end removes
    them)."""
    if directory is None or not directory.is_dir():
        return 0
    added = 0
    for path in sorted(directory.glob(f"*{_SUFFIX}")):
        for row in journal_rows(path):
            key = [row["run_id"], row["order_id"], row["leg"]]
            (known,) = con.execute("SELECT count(*) FROM venue_orders WHERE run_id = ? AND "
                                   "order_id = ? AND leg = ?", key).fetchone()  # type: ignore[misc]
            if not known:
                insert_venue_order(con, row)
                added += 1
            if row.get("farm") is not None:
                _absorb_farm(con, row)
    return added


def _absorb_farm(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    """The ``farm_orders`` row of a journalled farm order, unless it was committed."""
    key = [row["run_id"], row["order_id"]]
    (known,) = con.execute("SELECT count(*) FROM farm_orders WHERE run_id = ? AND"
                           " order_id = ?", key).fetchone()  # type: ignore[misc]
    if not known:
        con.execute("INSERT INTO farm_orders (run_id, order_id, decision_id, farm) VALUES"
                    " (?, ?, ?, ?)", [*key, row["decision_id"], row["farm"]])


def journal_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of one journal file, as dicts of ``venue_orders`` columns."""
    lines = path.read_bytes().split(b"\n")
    rows = []
    columns: list[str] | None = None
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            values = json.loads(line)
            if columns is None:
                columns = list(values)
                continue
            if len(values) != len(columns):
                raise ValueError
            rows.append(dict(zip(columns, values, strict=True)))
        except ValueError:
            if n < len(lines):  # a whole line (a newline follows) that is not a row
                raise ValueError(f"{path}: line {n} is not a journal row") from None
            log.warning("%s: line %d was cut short (its request was never sent); skipped",
                        path, n)
    return rows
