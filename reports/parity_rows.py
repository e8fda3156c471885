"""The rows of a parity diff (``reports.parity``): the divergence record, how rows are
matched and compared, and the context a cause is read from (what a venue session keeps
beside its rows: restarts, risk trips, venue legs, fills and funding)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from sim.config_base import parse_duration
from sim.monitor.logs import iso

REL = 1e-9
CAUSES = ("partial_fill", "venue_rejection", "routing", "latency", "price", "fee", "funding_rate",
          "restart", "lifecycle", "reconciliation", "carried", "unexplained")
STAGES = ("signals", "decisions", "orders", "fills", "funding", "equity")


@dataclass(frozen=True, slots=True)
class Divergence:
    stage: str
    ts: int  # event time (ns) of the row: the bar it belongs to
    symbol: str
    key: str  # which row: agent, order, n-th decision
    field: str  # what differs ("missing live", "quantity", "price", ...)
    live: Any
    model: Any
    cause: str
    detail: str

    @property
    def explained(self) -> bool:
        return self.cause != "unexplained"


# Zero against float noise compares equal: at this absolute floor for dimensionless figures
# (confidence, target exposure, fee rate); for a figure with units (a price, a quantity,
# money) at this fraction of the largest magnitude it takes in either run (``floor_of``),
# so a change of a price near 1e-7 is found as surely as one near 1e5.
NOISE = 1e-12


def close(a: float | None, b: float | None, rel: float = REL, floor: float = NOISE) -> bool:
    """Equal within ``rel`` of the larger, or within the absolute ``floor``."""
    if a is None or b is None:
        return a is b
    return abs(a - b) <= max(rel * max(abs(a), abs(b)), floor)


def floor_of(*columns: Iterable[float | None]) -> float:
    """The noise floor of a figure with units: ``NOISE`` times its largest magnitude in
    the columns given (both runs' values of it)."""
    return NOISE * max((abs(v) for column in columns for v in column if v is not None),
                       default=0.0)


def floors(a: Iterable[dict[str, Any]], b: Iterable[dict[str, Any]],
           columns: tuple[str, ...]) -> dict[str, float]:
    """Each column's noise floor over two runs' rows (``floor_of``)."""
    a, b = list(a), list(b)
    return {c: floor_of((r[c] for r in a), (r[c] for r in b)) for c in columns}


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema()").fetchall()}


def rows(con: duckdb.DuckDBPyConnection, sql: str, run_id: str) -> list[dict[str, Any]]:
    rel = con.execute(sql, [run_id])
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def numbered(rows: list[dict[str, Any]], key: tuple[str, ...]) -> dict[tuple, dict[str, Any]]:
    """Rows keyed by ``key`` plus the n-th occurrence of that key (rows in stored order)."""
    seen: dict[tuple, int] = defaultdict(int)
    out = {}
    for row in rows:
        k = tuple(row[c] for c in key)
        out[(*k, seen[k])] = row
        seen[k] += 1
    return out


class Context:
    """What the store says about the session beyond its rows, and the diff so far."""

    def __init__(self, con: duckdb.DuckDBPyConnection, live: str, mode: str,
                 model: str | None = None) -> None:
        tables = table_names(con)
        self.mode = mode
        self.restart_from: int | None = None
        if "live_resumes" in tables:
            (resumed,) = con.execute("SELECT min(resumed_ns) FROM live_resumes WHERE run_id = ?",
                                     [live]).fetchone() or (None,)
            if resumed is not None:
                (last,) = con.execute(
                    "SELECT max(epoch_ns(ts)) FROM bars WHERE run_id = ? AND epoch_ns(ts) < ?",
                    [live, resumed]).fetchone() or (None,)
                self.restart_from = int(last if last is not None else resumed)
        self.interval_ns = 0  # a live bar is taken once closed: one interval after its ts
        if "live_sessions" in tables:
            row = con.execute("SELECT interval FROM live_sessions WHERE run_id = ?",
                              [live]).fetchone()
            if row is not None:
                self.interval_ns = parse_duration(str(row[0]))
        self.trips: list[tuple[int, str]] = []
        if "live_risk_trips" in tables:
            self.trips = [(int(t), str(k)) for t, k in con.execute(
                "SELECT ts, kind FROM live_risk_trips WHERE run_id = ? ORDER BY ts",
                [live]).fetchall()]
        self.legs: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if "venue_orders" in tables:
            for leg in rows(con, "SELECT order_id, leg, status, size, filled, message, "
                            "sent_ns FROM venue_orders WHERE run_id = ? ORDER BY order_id, "
                            "leg", live):
                self.legs[leg["order_id"]].append(leg)
        self.venue_fills: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if "venue_fills" in tables:
            for fill in rows(con, "SELECT order_id, quantity, price, fee, time_ms FROM "
                             "venue_fills WHERE run_id = ? ORDER BY tid", live):
                self.venue_fills[fill["order_id"]].append(fill)
        self.venue_funding: dict[tuple[str, int], dict[str, Any]] = {}
        if "venue_funding" in tables:
            for pay in rows(con, "SELECT symbol, time_ms, usdc, szi, rate FROM venue_funding"
                            " WHERE run_id = ?", live):
                self.venue_funding[(pay["symbol"], pay["time_ms"] * 1_000_000)] = pay
        # Lifecycle commands the session applied and its replay did not (sent while it
        # ran: ``quorum agent``, the API; the scenario's own are replayed): (ts, agent,
        # what was done), in order.
        self.commands: list[tuple[int, str, str]] = []
        if "agent_events" in tables:
            self.commands = _session_commands(con, live, model)
        self.roots: list[Divergence] = []  # explained or not, the first of their chain

    def context_cause(self, ts: int, agent: str | None = None) -> tuple[str, str] | None:
        """A restart before the bar at ``ts``, a trip (wall time) before it was taken
        (its close), or a lifecycle command the session applied at or before it (on
        ``agent`` when given: a signal follows its own agent's commands only), if any."""
        if self.restart_from is not None and ts >= self.restart_from:
            return "restart", ("at or after the last bar stored before the session was "
                               "restarted: the bars it was down for are not in the run, and "
                               "its state was rebuilt from the venue")
        for t, kind in self.trips:
            if t <= ts + self.interval_ns:
                return "lifecycle", f"{kind.replace('_', ' ')} tripped live at {t}"
        said = None
        for t, who, what in self.commands:
            if t > ts:
                break
            if agent is None or who == agent:
                said = what
        return None if said is None else ("lifecycle", said)

    def earlier_root(self, ts: int) -> Divergence | None:
        """The first order, fill or funding divergence at or before ``ts``."""
        for d in self.roots:
            if d.ts <= ts:
                return d
        return None


_DONE = {"spawn": "spawned", "pause": "paused", "resume": "resumed", "stop": "stopped",
         "update": "updated", "error": "errored (its circuit breaker)"}


def _session_commands(con: duckdb.DuckDBPyConnection, live: str, model: str | None
                      ) -> list[tuple[int, str, str]]:
    """The applied ``agent_events`` rows of ``live`` (not its ``start`` rows) that the
    run ``model`` has no row for at the same time: (ts, agent, "paused by X at T
    (reason)")."""
    got = con.execute(
        "SELECT epoch_ns(ts), agent, command, actor, reason FROM agent_events"
        " WHERE run_id = ? AND outcome = 'applied' AND command <> 'start' ORDER BY seq",
        [live]).fetchall()
    replayed = set() if model is None else set(con.execute(
        "SELECT epoch_ns(ts), agent, command FROM agent_events WHERE run_id = ?"
        " AND outcome = 'applied'", [model]).fetchall())
    out = []
    for ts, agent, command, actor, reason in got:
        if (ts, agent, command) in replayed:
            continue
        done = ("kill switch pulled" if command == "kill"
                else f"{agent} {_DONE.get(command, command)}")
        out.append((int(ts), str(agent), f"{done} by {actor} at {iso(int(ts))}"
                    + (f" ({reason})" if reason else "")))
    return out


def add(out: list[Divergence], ctx: Context, stage: str, ts: int, symbol: str, key: str,
        what: str, live: Any, model: Any, cause: str | None, detail: str,
        root: bool = False, agent: str | None = None) -> None:
    if cause is None:
        found = ctx.context_cause(ts, agent)
        if found is not None:
            cause, detail = found[0], f"{detail}; {found[1]}" if detail else found[1]
        else:
            cause = "unexplained"
    d = Divergence(stage, ts, symbol, key, what, live, model, cause, detail)
    out.append(d)
    if root and cause not in ("carried",):
        ctx.roots.append(d)
        ctx.roots.sort(key=lambda x: x.ts)


def carried(ctx: Context, ts: int) -> tuple[str | None, str]:
    root = ctx.earlier_root(ts)
    if root is None:
        return None, ""
    return "carried", (f"follows from the {root.stage} divergence at {root.ts} "
                       f"({root.symbol} {root.field}: {root.cause})")


def row_diff(x: dict[str, Any] | None, y: dict[str, Any] | None, exact: tuple[str, ...],
             floats: tuple[str, ...], floor: Mapping[str, float] | None = None) -> str:
    """The columns that differ; ``floor``: the noise floors of the float columns with
    units (``floors``), the others dimensionless."""
    if x is None:
        return "missing live"
    if y is None:
        return "missing in model"
    floor = floor or {}
    diff = [c for c in exact if x[c] != y[c]]
    diff += [c for c in floats if not close(x[c], y[c], REL, floor.get(c, NOISE))]
    return ", ".join(diff)


def pick(row: dict[str, Any] | None, what: str) -> Any:
    if row is None:
        return None
    cols = [c.strip() for c in what.split(",") if c.strip() in row]
    if not cols:
        return "present"
    return row[cols[0]] if len(cols) == 1 else tuple(row[c] for c in cols)
