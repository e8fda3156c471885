"""The risk engine's state of a live run across a restart (``sim.risk.RiskEngine.restore``).

What is read back from the store when a run resumes (``restore_risk``, called by
``live.recovery.restore``):

* orders that reached a venue, by their time: every order with a ``venue_orders`` leg
  (written ahead of its request), a ``routing_decisions`` row, or an ``orders`` row that
  was neither denied nor booked by the desk itself (adjustments, liquidations). The day's
  count (``max_orders_per_day``, in the risk timezone's day of the restart) and the order
  rate window continue from them;
* per agent, the day's orders made from decisions it voted for (``max_trades_per_day`` of
  its permissions): the agents on the decision's side in the stored ``votes``. A sent
  order whose decision rows did not survive the crash (they are committed with the
  step's other rows, up to a second later than the journalled order) counts against
  every agent that has permissions: at worst an agent is held back a trade early,
  never let past its limit;
* the booked ``equity`` rows: the drawdown peak and the start-of-day equity (daily loss);
* ``live_risk_trips``: a circuit breaker tripped before the restart stays tripped (a
  daily-loss one until its day ends) and a kill switch pulled stays pulled. In a run
  with ``[[farms]]`` each farm's own breaker is written too (its ``farm`` column; NULL:
  the account's) and restored into that farm's risk engine (``live.farms``).

The breaker and the kill switch live only in the risk engine's memory, so they are
written down as they happen (``RiskTrips``: the live runner writes a trip in the same
transaction as the step's other rows, at once, not on the once-a-second schedule of
the others). A kill request is written when it is made, before the
kill switch event reaches the engine.

Not restored: a flatten ordered before the restart is not repeated.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from sim.orders import ENTRY
from sim.risk import RiskEngine
from sim.schema import LIVE_RISK_TRIPS_ADDED, LIVE_RISK_TRIPS_DDL

KILL_SWITCH = "kill_switch"
CIRCUIT_BREAKER = "circuit_breaker"


def create_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(LIVE_RISK_TRIPS_DDL)
    for name, kind in LIVE_RISK_TRIPS_ADDED:  # a store made before them
        con.execute(f"ALTER TABLE live_risk_trips ADD COLUMN IF NOT EXISTS {name} {kind}")


class RiskTrips:
    """Writes a run's circuit-breaker trips and kill-switch pulls as they happen."""

    def __init__(self, con: duckdb.DuckDBPyConnection, run_id: str, risk: RiskEngine,
                 farms: Sequence[tuple[str, RiskEngine]] = ()) -> None:
        """``farms``: (name, risk engine) of each farm of a run with ``[[farms]]``."""
        create_table(con)
        self.run_id = run_id
        self.risk = risk
        self.farms = tuple(farms)
        self._farm_breakers = [r.breaker for _, r in self.farms]
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
                or (risk.killed and not self._killed)
                or any(r.breaker != b for (_, r), b in zip(self.farms, self._farm_breakers,
                                                          strict=True)))

    def take(self, ts: int) -> list[list[object]]:
        """The rows of what changed since the last call (for a writer elsewhere)."""
        risk = self.risk
        rows: list[list[object]] = []
        if self._kill_source is not None or (risk.killed and not self._killed):
            rows.append([self.run_id, ts, KILL_SWITCH, self._kill_source or "risk", None, None,
                         None])
            self._killed = True
            self._kill_source = None
        if risk.breaker != self._breaker:
            if risk.breaker is not None:
                rows.append([self.run_id, ts, CIRCUIT_BREAKER, risk.breaker,
                             risk.breaker_value, risk.breaker_until, None])
            self._breaker = risk.breaker
        for k, (name, farm_risk) in enumerate(self.farms):
            if farm_risk.breaker != self._farm_breakers[k]:
                if farm_risk.breaker is not None:
                    rows.append([self.run_id, ts, CIRCUIT_BREAKER, farm_risk.breaker,
                                 farm_risk.breaker_value, farm_risk.breaker_until, name])
                self._farm_breakers[k] = farm_risk.breaker
        return rows


def insert_trips(con: duckdb.DuckDBPyConnection, rows: list[list[object]]) -> None:
    for row in rows:
        con.execute("INSERT INTO live_risk_trips (run_id, ts, kind, name, value, until_ns,"
                    " farm) VALUES (?, ?, ?, ?, ?, ?, ?)", row)


def sent_orders(con: duckdb.DuckDBPyConnection, run_id: str
                ) -> list[tuple[int, int | None, str | None]]:
    """(time ns, decision id, role) of every order of ``run_id`` that reached a venue, by
    time (decision id and role None when only its routing row is stored)."""
    rows = con.execute(
        "SELECT min(ts), max(decision_id), max(role) FROM ("
        " SELECT order_id, ts, decision_id, role FROM venue_orders WHERE run_id = ?"
        " UNION ALL SELECT order_id, epoch_ns(ts), NULL, NULL FROM routing_decisions"
        "  WHERE run_id = ?"
        " UNION ALL SELECT order_id, epoch_ns(ts), decision_id, role FROM orders"
        "  WHERE run_id = ? AND status <> 'denied' AND role NOT IN ('adjustment', 'liquidation')"
        ") GROUP BY order_id ORDER BY 1", [run_id, run_id, run_id]).fetchall()
    return [(int(ts), None if d is None else int(d), role) for ts, d, role in rows]


def agent_trades(con: duckdb.DuckDBPyConnection, run_id: str,
                 sent: list[tuple[int, int | None, str | None]], with_permissions: Sequence[str]
                 ) -> list[tuple[int, tuple[str, ...]]]:
    """(time, agents attributed) of the sent orders made from decisions (see the module:
    an order whose decision is not stored counts against ``with_permissions``)."""
    voters: dict[int, tuple[str, ...]] = {
        int(d): tuple(agents or ()) for d, agents in con.execute(
            "SELECT d.decision_id, list(v.agent ORDER BY v.agent) FILTER (v.side = d.side)"
            " FROM decisions d LEFT JOIN votes v ON v.run_id = d.run_id"
            "  AND v.decision_id = d.decision_id"
            " WHERE d.run_id = ? GROUP BY d.decision_id", [run_id]).fetchall()}
    unknown = tuple(with_permissions)
    out = []
    for ts, decision_id, role in sent:
        if role not in (ENTRY, None):
            continue  # bracket legs, flattens: made by the desk, not by agents
        out.append((ts, voters.get(decision_id, unknown) if decision_id is not None
                    else unknown))
    return out


def restore_risk(risk: RiskEngine, run_id: str, con: duckdb.DuckDBPyConnection,
                 now_ns: int) -> str | None:
    """Restore ``risk`` from its stored run (see the module); returns what pulled the kill
    switch before the restart, if it was pulled."""
    create_table(con)
    equity = con.execute("SELECT epoch_ns(ts), equity FROM equity WHERE run_id = ?"
                         " ORDER BY ts", [run_id]).fetchall()
    breaker = con.execute(
        "SELECT name, value, until_ns FROM live_risk_trips WHERE run_id = ? AND kind = ?"
        " AND farm IS NULL ORDER BY ts DESC, rowid DESC LIMIT 1",
        [run_id, CIRCUIT_BREAKER]).fetchone()
    kill = con.execute("SELECT name FROM live_risk_trips WHERE run_id = ? AND kind = ?"
                       " ORDER BY ts LIMIT 1", [run_id, KILL_SWITCH]).fetchone()
    sent = sent_orders(con, run_id)
    risk.restore(now_ns, sent=[ts for ts, _, _ in sent],
                 equity_ts=[int(r[0]) for r in equity], equity=[float(r[1]) for r in equity],
                 breaker=None if breaker is None else (str(breaker[0]), breaker[1], breaker[2]),
                 killed=kill is not None,
                 agent_trades=agent_trades(con, run_id, sent, list(risk.limits.agents)))
    return None if kill is None else f"{kill[0]} (before the restart)"
