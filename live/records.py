"""What a session against a real venue keeps durably, next to the run's own tables.

* ``venue_orders``: one row per order leg sent to a real venue, made durable *before* the
  request goes out (write-ahead: appended to the run's journal, ``live.journal``; in
  this table from the next commit), then updated as the venue answers. The
  client order id (cloid) is derived from (run id, order id, leg), so after a crash the
  row names the order to look up at the venue, and a resubmission is recognisable.
* ``venue_fills``: the venue's trade id (``tid``) of every fill booked, committed in the
  same transaction as the ``fills`` row it became: a fill is booked exactly once, across
  reconnects, snapshots and restarts.
* ``venue_funding``: every funding payment of the venue booked (into the ledger and the
  ``funding`` table, in the same transaction), keyed (run, coin, time): the venue settles
  a coin once per funding time, and its ``hash`` for funding is the zero hash, so it is
  kept but is no key. A payment is booked once across polls, reconnects and restarts.
* ``venue_accounts``: one row per run, written at its first account comparison: the
  venue's account value and the store's equity then. Their difference (``outside``) is
  capital the account holds beyond the run's (zero when the session trades the whole
  account, ``live.capital``); later comparisons measure drift from it (``live.reconcile``).
* ``reconciliations``: every difference found between the venue and the store, and what
  was done about it (see ``live.reconcile``).

A session trading several accounts (``quorum live --venues``) keeps these per account:
``venue_fills``, ``venue_funding``, ``venue_accounts`` and ``reconciliations`` carry the
``venue`` (the scenario venue the account is bound to; '' or NULL for a session of one
account), part of the first three's keys (two venues' trade ids may coincide). Stores
from before the column are migrated when the tables are first used (``create_tables``):
their rows are one-account sessions' ('').

The tables belong to live mode and are created on first use; they hold no secret.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import duckdb

from sim.schema import VENUE_DDL, VENUE_REKEYED

# Leg statuses in venue_orders: "sent" (write-ahead), "resting", "unresolved" (sent, the
# outcome unknown so far), then one of the desk's terminal states.
OPEN_STATUSES = ("sent", "resting", "unresolved")

VENUE_ORDER_COLUMNS = (
    "run_id", "order_id", "leg", "cloid", "venue", "symbol", "coin", "quantity", "size",
    "price", "venue_type", "reduce_only", "decision_id", "ts", "decision_ts", "ref_price",
    "kind", "tif", "limit_price", "stop_price", "post_only", "role", "parent_id", "replaces",
    "status", "oid", "filled", "message", "sent_ns", "updated_ns")


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The live tables, created (or migrated from an older store) on first use."""
    old = {table for (table,) in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE table_name IN ('venue_fills',"
        " 'venue_funding', 'venue_accounts') AND NOT EXISTS (SELECT 1 FROM duckdb_columns() c WHERE"
        " c.table_oid = duckdb_tables.table_oid AND c.column_name = 'venue')").fetchall()}
    for table in sorted(old):
        con.execute(f"ALTER TABLE {table} RENAME TO {table}_before_venue")
    for ddl in VENUE_DDL:
        con.execute(ddl)
    for table in sorted(old):
        columns = VENUE_REKEYED[table]
        con.execute(f"INSERT INTO {table} ({columns}, venue) SELECT {columns}, '' FROM"
                    f" {table}_before_venue")
        con.execute(f"DROP TABLE {table}_before_venue")
    con.execute("ALTER TABLE reconciliations ADD COLUMN IF NOT EXISTS venue VARCHAR")


def client_order_id(run_id: str, order_id: int, leg: int) -> str:
    """The cloid of leg ``leg`` of order ``order_id`` in run ``run_id``: 16 bytes of a hash,
    as 0x + 32 hex digits (the form a venue takes a client order id in). The same inputs
    always give the same id, so a resubmission of the same leg is recognisable as such."""
    digest = hashlib.blake2b(f"quorum/{run_id}/{order_id}/{leg}".encode(), digest_size=16)
    return "0x" + digest.hexdigest()


def insert_venue_order(con: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    cols = ", ".join(VENUE_ORDER_COLUMNS)
    marks = ", ".join("?" for _ in VENUE_ORDER_COLUMNS)
    con.execute(f"INSERT INTO venue_orders ({cols}) VALUES ({marks})",
                [row.get(c) for c in VENUE_ORDER_COLUMNS])


def update_venue_order(con: duckdb.DuckDBPyConnection, run_id: str, cloid: str, *,
                       status: str, oid: int | None, filled: float, message: str | None,
                       updated_ns: int) -> None:
    con.execute("UPDATE venue_orders SET status = ?, oid = coalesce(?, oid), filled = ?,"
                " message = coalesce(?, message), updated_ns = ? WHERE run_id = ? AND cloid = ?",
                [status, oid, filled, message, updated_ns, run_id, cloid])


def insert_fill(con: duckdb.DuckDBPyConnection, run_id: str, tid: int, fill_id: int,
                order_id: int, cloid: str | None, oid: int, coin: str, quantity: float,
                price: float, fee: float, time_ms: int, venue: str | None = None) -> None:
    con.execute("INSERT INTO venue_fills (run_id, tid, fill_id, order_id, cloid, oid, coin,"
                " quantity, price, fee, time_ms, venue) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, tid, fill_id, order_id, cloid, oid, coin, quantity, price, fee,
                 time_ms, venue or ""])


def insert_reconciliation(con: duckdb.DuckDBPyConnection, run_id: str, ts: int, kind: str,
                          symbol: str | None, coin: str | None, store_value: float | None,
                          venue_value: float | None, action: str, detail: str,
                          venue: str | None = None) -> None:
    con.execute("INSERT INTO reconciliations (run_id, ts, kind, symbol, coin, store_value,"
                " venue_value, action, detail, venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, ts, kind, symbol, coin, store_value, venue_value, action, detail,
                 venue])


def insert_funding(con: duckdb.DuckDBPyConnection, run_id: str, coin: str, time_ms: int,
                   symbol: str, usdc: float, szi: float, rate: float, hash: str,
                   venue: str | None = None) -> None:
    con.execute("INSERT INTO venue_funding (run_id, coin, time_ms, symbol, usdc, szi, rate,"
                " hash, venue) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, coin, time_ms, symbol, usdc, szi, rate, hash or None, venue or ""])


def insert_account(con: duckdb.DuckDBPyConnection, run_id: str, ts: int,
                   account_value: float, store_equity: float,
                   venue: str | None = None) -> None:
    con.execute("INSERT INTO venue_accounts (run_id, ts, account_value, store_equity,"
                " outside, venue) VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, ts, account_value, store_equity, account_value - store_equity,
                 venue or ""])


def booked_funding(con: duckdb.DuckDBPyConnection, run_id: str,
                   venue: str | None = None) -> list[tuple[Any, ...]]:
    """(coin, time_ms, symbol, usdc, szi, rate) of every funding payment booked, in order
    (``venue``: only that account's, in a session of several)."""
    return con.execute("SELECT coin, time_ms, symbol, usdc, szi, rate FROM venue_funding"
                       " WHERE run_id = ? AND (? IS NULL OR venue = ?) ORDER BY time_ms, coin",
                       [run_id, venue, venue]).fetchall()


def account_outside(con: duckdb.DuckDBPyConnection, run_id: str,
                    venue: str | None = None) -> float | None:
    """The capital outside the run recorded at its first account comparison (None: none
    yet; ``venue``: that account's, in a session of several)."""
    row = con.execute("SELECT outside FROM venue_accounts WHERE run_id = ? AND venue = ?",
                      [run_id, venue or ""]).fetchone()
    return None if row is None else float(row[0])


def booked_tids(con: duckdb.DuckDBPyConnection, run_id: str,
                venue: str | None = None) -> set[int]:
    """The venue trade ids the run booked (``venue``: that account's only)."""
    return {r[0] for r in con.execute(
        "SELECT tid FROM venue_fills WHERE run_id = ? AND (? IS NULL OR venue = ?)",
        [run_id, venue, venue]).fetchall()}


def open_venue_orders(con: duckdb.DuckDBPyConnection, run_id: str) -> list[dict[str, Any]]:
    """Legs of ``run_id`` whose outcome the store does not know yet (a crash, a restart)."""
    cur = con.execute(
        f"SELECT {', '.join(VENUE_ORDER_COLUMNS)} FROM venue_orders WHERE run_id = ? AND "
        f"status IN ({', '.join('?' for _ in OPEN_STATUSES)}) ORDER BY order_id, leg",
        [run_id, *OPEN_STATUSES])
    return [dict(zip(VENUE_ORDER_COLUMNS, row, strict=True)) for row in cur.fetchall()]


@dataclass(slots=True)
class Durable:
    """Rows the port made durable-to-be: written with the next commit of the session."""

    orders: list[dict[str, Any]] = field(default_factory=list)  # journalled, not in the store
    fills: list[tuple[Any, ...]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[tuple[Any, ...]] = field(default_factory=list)
    funding: list[tuple[Any, ...]] = field(default_factory=list)
    account: tuple[int, float, float, str | None] | None = None

    @property
    def empty(self) -> bool:
        return not (self.orders or self.fills or self.updates or self.alerts or self.funding
                    or self.account)


def write_records(con: duckdb.DuckDBPyConnection, run_id: str, d: Durable) -> None:
    """Write a port's records (inside the caller's transaction): the journalled order
    rows first, then what refers to them."""
    for order in d.orders:
        insert_venue_order(con, order)
    for row in d.fills:
        insert_fill(con, run_id, *row)
    for u in d.updates:
        update_venue_order(con, run_id, **u)
    for alert in d.alerts:
        insert_reconciliation(con, run_id, *alert)
    for row in d.funding:
        insert_funding(con, run_id, *row)
    if d.account is not None:
        insert_account(con, run_id, *d.account)
