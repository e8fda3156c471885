"""Funding of a live run's perpetuals across a restart.

The venue's funding payments are booked once each by ``OrderPort.book_funding``
(``live.reconcile``); their keys (coin, time) and amounts are in ``venue_funding``. A
resumed run (``restore_funding``, called by ``live.recovery.restore``) books them into
the rebuilt ledger again (cash, as their ``funding`` rows already say), knows them as
booked, and fetches from the latest one on; payments at or before the run's first start
(``live_sessions.started_ns``) stay not the run's. The capital the account holds outside
the run (``venue_accounts``) is restored for the account comparison (rule 5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from live.records import account_outside, booked_funding, create_tables

if TYPE_CHECKING:
    from live.orders import OrderPort
    from live.runner import LiveRunner


def restore_funding(runner: LiveRunner, port: OrderPort | list[OrderPort],
                    con: duckdb.DuckDBPyConnection) -> int:
    """Restore the run's booked funding into ``runner``'s ledger and ``port`` (several
    accounts: each its own payments and outside capital); returns how many payments."""
    create_tables(con)
    if isinstance(port, list):
        row = con.execute("SELECT started_ns FROM live_sessions WHERE run_id = ?",
                          [runner.run_id]).fetchone()
        payments = booked_funding(con, runner.run_id)
        for _coin, _time_ms, _symbol, usdc, _szi, _rate in payments:
            runner.engine.portfolio.fund(float(usdc))
        for p in port:
            mine = booked_funding(con, runner.run_id, p.venue_name)
            p.restore_funding(None if row is None else int(row[0]) // 1_000_000,
                              [(coin, int(time_ms)) for coin, time_ms, *_ in mine],
                              account_outside(con, runner.run_id, p.venue_name))
        return len(payments)
    run_id = runner.run_id
    row = con.execute("SELECT started_ns FROM live_sessions WHERE run_id = ?",
                      [run_id]).fetchone()
    portfolio = runner.engine.portfolio
    payments = booked_funding(con, run_id)
    for _coin, _time_ms, _symbol, usdc, _szi, _rate in payments:
        portfolio.fund(float(usdc))
    port.restore_funding(None if row is None else int(row[0]) // 1_000_000,
                         [(coin, int(time_ms)) for coin, time_ms, *_ in payments],
                         account_outside(con, run_id))
    return len(payments)
