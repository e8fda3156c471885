"""The risk engine's state of a live run across a restart (``sim.risk.RiskEngine.restore``).

What is read back from the store when a run resumes (``restore_risk``, called by
``live.recovery.restore``):

* orders that reached a venue, by their time: every order with a ``venue_orders`` leg
  (written ahead of its request), a ``routing_decisions`` row, or an ``orders`` row that
  was neither denied nor booked by the desk itself (adjustments, liquidations). The day's
  count (``max_orders_per_day``, in the risk timezone's day of the restart) and the order
  rate window continue from them;
* the booked ``equity`` rows: the drawdown peak and the start-of-day equity (daily loss);
* ``live_risk_trips``: a circuit breaker tripped before the restart stays tripped (a
  daily-loss one until its day ends) and a kill switch pulled stays pulled.

The breaker and the kill switch live only in the risk engine's memory, so they are
written down as they happen (``RiskTrips``: the live runner writes a trip in the same
transaction as the step's other rows, at once, not on the once-a-second schedule of
rows without money in them). A kill request is written when it is made, before the
kill switch event reaches the engine.

Not restored: per-agent trade counts (``max_trades_per_day`` of an agent's permissions)
start again from zero, and a flatten ordered before the restart is not repeated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import duckdb

from sim.risk import RiskEngine

if TYPE_CHECKING:
    from live.runner import LiveRunner

_DDL = """CREATE TABLE IF NOT EXISTS live_risk_trips (
    run_id VARCHAR NOT NULL, ts BIGINT NOT NULL, kind VARCHAR NOT NULL,
    name VARCHAR NOT NULL, value DOUBLE, until_ns BIGINT)"""

KILL_SWITCH = "kill_switch"
CIRCUIT_BREAKER = "circuit_breaker"


def create_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


class RiskTrips:
    """Writes a run's circuit-breaker trips and kill-switch pulls as they happen."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str, risk: RiskEngine) -> None:
        create_table(con)
        self.run_id = run_id
        self.risk = risk
        # what is stored already (a resumed run's restored state is not written again)
        self._breaker = risk.breaker
        self._killed = risk.killed
        self._kill_source: str | None = None

    def pull(self, source: str) -> None:
        """The kill switch was pulled by ``source``: write it with the next commit."""
        if not self._killed:
            self._kill_source = source

    @property
    def pending(self) -> bool:
        risk = self.risk
        return (risk.breaker != self._breaker or self._kill_source is not None
                or (risk.killed and not self._killed))

    def take(self, ts: int) -> list[list[object]]:
        """The rows of what changed since the last call (for a writer elsewhere)."""
        risk = self.risk
        rows: list[list[object]] = []
        if self._kill_source is not None or (risk.killed and not self._killed):
            rows.append([self.run_id, ts, KILL_SWITCH, self._kill_source or "risk", None, None])
            self._killed = True
            self._kill_source = None
        if risk.breaker != self._breaker:
            if risk.breaker is not None:
                rows.append([self.run_id, ts, CIRCUIT_BREAKER, risk.breaker,
                             risk.breaker_value, risk.breaker_until])
            self._breaker = risk.breaker
        return rows


def insert_trips(con: duckdb.DuckDBPyConnection, rows: list[list[object]]) -> None:
    for row in rows:
        con.execute("INSERT INTO live_risk_trips VALUES (?, ?, ?, ?, ?, ?)", row)


def sent_order_times(con: duckdb.DuckDBPyConnection, run_id: str) -> list[int]:
    """The time (ns) of every order of ``run_id`` that reached a venue, ascending."""
    rows = con.execute(
        "SELECT min(ts) FROM ("
        " SELECT order_id, ts FROM venue_orders WHERE run_id = ?"
        " UNION ALL SELECT order_id, epoch_ns(ts) FROM routing_decisions WHERE run_id = ?"
        " UNION ALL SELECT order_id, epoch_ns(ts) FROM orders WHERE run_id = ?"
        "  AND status <> 'denied' AND role NOT IN ('adjustment', 'liquidation')"
        ") GROUP BY order_id ORDER BY 1", [run_id, run_id, run_id]).fetchall()
    return [int(r[0]) for r in rows]


def restore_risk(runner: LiveRunner, con: duckdb.DuckDBPyConnection, now_ns: int) -> None:
    """Restore ``runner``'s risk engine from its stored run (see the module)."""
    create_table(con)
    run_id = runner.run_id
    risk = runner.engine.risk
    equity = con.execute("SELECT epoch_ns(ts), equity FROM equity WHERE run_id = ?"
                         " ORDER BY ts", [run_id]).fetchall()
    breaker = con.execute(
        "SELECT name, value, until_ns FROM live_risk_trips WHERE run_id = ? AND kind = ?"
        " ORDER BY ts DESC, rowid DESC LIMIT 1", [run_id, CIRCUIT_BREAKER]).fetchone()
    kill = con.execute("SELECT name FROM live_risk_trips WHERE run_id = ? AND kind = ?"
                       " ORDER BY ts LIMIT 1", [run_id, KILL_SWITCH]).fetchone()
    risk.restore(now_ns, sent=sent_order_times(con, run_id),
                 equity_ts=[int(r[0]) for r in equity], equity=[float(r[1]) for r in equity],
                 breaker=None if breaker is None else (str(breaker[0]), breaker[1], breaker[2]),
                 killed=kill is not None)
    if kill is not None and runner.killed_by is None:
        runner.killed_by = f"{kill[0]} (before the restart)"
