"""``quorum parity``: replay a stored paper or venue session through the backtest engine.

The replay takes what the session stored, nothing else: its resolved config and seed
(``runs``), the bars it saw (``bars``) and, for a session on a real venue, when it
started (``live_sessions.started_ns``): bars closed by then were its warm-up, whose
orders the live desk held (``live.runner.WARMUP_HOLD``), and the replay holds them the
same way. It runs in an in-memory store, never in the user's file, together with a copy
of the session's rows, so ``reports.parity`` diffs two runs of one store and the file is
only read (a store a session is still writing cannot be opened: DuckDB's lock).

Not replayed, by design: what came from outside the bars (a restart, a kill switch pulled
by hand, the venue's own fills and funding). Those are what the report explains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np

from live.runner import WARMUP_HOLD
from reports.parity import Parity, parity
from reports.parity_html import ParityReport, write_parity_report
from sim.config import ScenarioConfig, parse_scenario
from sim.config_base import ConfigError, parse_duration
from sim.config_sources import source_symbols
from sim.data import MarketData, SymbolBars
from sim.recorder import Recorder
from sim.runner import RandomStreams, build_engine, check_agent_symbols, new_run_id, stored_run
from sim.schema import TABLES
from sim.store import DuckDBStore

SESSION_MODES = ("paper", "live")
# The session's rows copied beside the replay: the run's own tables and what a venue
# session keeps next to them (those of them the store has).
_LIVE_TABLES = ("live_sessions", "live_resumes", "live_risk_trips", "venue_orders",
                "venue_fills", "venue_funding", "venue_accounts", "reconciliations")


@dataclass(frozen=True, slots=True)
class Replay:
    """The in-memory store holding the session (``live_run``) and its replay."""

    store: DuckDBStore
    live_run: str
    replay_run: str
    mode: str  # the session's: "paper" or "live"


def session_row(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[ScenarioConfig, str]:
    """The session's resolved config (with its stored seed) and mode; ConfigError (exit
    2) for a backtest or a run that stored no bars."""
    row = con.execute("SELECT config, seed, mode FROM runs WHERE run_id = ?",
                      [run_id]).fetchone()
    if row is None:
        raise ConfigError(f"no run {run_id!r}")
    raw, seed, mode = row
    if mode not in SESSION_MODES:
        raise ConfigError(f"run {run_id} is a {mode} run: parity replays a paper or live "
                          "session (`quorum compare` compares backtests)")
    config = parse_scenario({**json.loads(raw), "seed": seed}, f"run {run_id}")
    return config, str(mode)


def stored_bars(con: duckdb.DuckDBPyConnection, run_id: str,
                config: ScenarioConfig) -> MarketData:
    """The bars the session stored, as a backtest's market data: symbols in the order the
    live runner took them (the scenario's data symbols), walked in (ts, symbol order)."""
    names = [s for d in config.data for s in source_symbols(d)]
    cols = ("ts", "open", "high", "low", "close", "volume")
    bars = []
    for symbol in names:
        got = con.execute(
            "SELECT epoch_ns(ts) AS ts, open, high, low, close, volume FROM bars"
            " WHERE run_id = ? AND symbol = ? ORDER BY ts", [run_id, symbol]).fetchnumpy()
        if len(got["ts"]):
            arrays = {c: np.ascontiguousarray(got[c], dtype=np.int64 if c == "ts"
                                              else np.float64) for c in cols}
            for a in arrays.values():
                a.setflags(write=False)
            bars.append(SymbolBars(symbol, f"run {run_id}", arrays["ts"], arrays["open"],
                                   arrays["high"], arrays["low"], arrays["close"],
                                   arrays["volume"]))
    if not bars:
        raise ConfigError(f"run {run_id} stored no bars: nothing to replay")
    sym = np.concatenate([np.full(len(b), i, np.int32) for i, b in enumerate(bars)])
    pos = np.concatenate([np.arange(len(b), dtype=np.int64) for b in bars])
    ts = np.concatenate([b.ts for b in bars])
    order = np.lexsort((sym, ts))
    return MarketData(tuple(bars), sym[order], pos[order])


def hold_until(con: duckdb.DuckDBPyConnection, run_id: str, mode: str) -> tuple[int, int] | None:
    """(started_ns, interval ns) of a venue session: its warm-up bars sent no order. A
    paper session holds nothing (its fills are simulated from the first bar)."""
    if mode != "live":
        return None
    row = con.execute("SELECT started_ns, interval FROM live_sessions WHERE run_id = ?",
                      [run_id]).fetchone()
    if row is None:
        return None
    return int(row[0]), parse_duration(str(row[1]))


def replay(con: duckdb.DuckDBPyConnection, live_run: str) -> Replay:
    """Replay session ``live_run`` of the store ``con`` (read only) into a new in-memory
    store, and copy the session's rows there too."""
    config, mode = session_row(con, live_run)
    data = stored_bars(con, live_run, config)
    check_agent_symbols(config, data)
    hold = hold_until(con, live_run, mode)
    store = DuckDBStore(":memory:")
    try:
        run_id = new_run_id()
        streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
        recorder = Recorder(store, run_id, data.symbols, [a.name for a in config.agents],
                            config.consensus.method)
        engine = build_engine(config, data, recorder, streams.agents)
        desk = engine.desk
        with stored_run(store, run_id, config, data.content_hash(), recorder, engine):
            store.append(run_id, "bars", data.bars_table())
            on_bar = engine.on_bar
            holding = hold is not None
            for rows in data.batches(65_536):
                for s, n, ts, o, h, lo, c, v in zip(*rows, strict=True):
                    if holding:
                        assert hold is not None
                        if ts + hold[1] <= hold[0]:
                            desk.hold = WARMUP_HOLD
                        else:
                            desk.hold = None
                            holding = False
                    on_bar(s, n, ts, o, h, lo, c, v)
                recorder.maybe_flush()
            engine.finish()
        copy_run(con, store.con, live_run)
    except BaseException:
        store.close()
        raise
    return Replay(store, live_run, run_id, mode)


def copy_run(src: duckdb.DuckDBPyConnection, dst: duckdb.DuckDBPyConnection,
             run_id: str) -> None:
    """Every row of ``run_id`` in ``src`` into ``dst``: into the tables ``dst`` has (the
    columns both have), as new tables otherwise."""
    have = {r[0] for r in src.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema()").fetchall()}
    for table in ("runs", *TABLES, *_LIVE_TABLES):
        if table not in have:
            continue
        rows = src.sql(f"SELECT * FROM {table} WHERE run_id = $1",
                       params=[run_id]).to_arrow_table()
        target = {r[0] for r in dst.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " AND table_schema = current_schema()", [table]).fetchall()}
        dst.register("_copied", rows)
        try:
            if target:
                cols = ", ".join(f'"{c}"' for c in rows.column_names if c in target)
                dst.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _copied")
            else:
                dst.execute(f"CREATE TABLE {table} AS SELECT * FROM _copied")
        finally:
            dst.unregister("_copied")


def latest_session(con: duckdb.DuckDBPyConnection) -> str:
    """The store's most recent paper or live session (ConfigError when it has none)."""
    row = con.execute("SELECT run_id FROM runs WHERE mode IN ('paper', 'live')"
                      " ORDER BY started_at DESC, run_id LIMIT 1").fetchone()
    if row is None:
        raise ConfigError("no paper or live session in the store to replay")
    return str(row[0])


def run_parity(con: duckdb.DuckDBPyConnection, live_run: str, out: Path,
               latency_tolerance_ms: float = 100.0) -> tuple[Parity, ParityReport]:
    """Replay ``live_run``, diff it, write the HTML report into ``out``."""
    rep = replay(con, live_run)
    try:
        result = parity(rep.store.con, rep.live_run, rep.replay_run, rep.mode,
                        latency_tolerance_ms=latency_tolerance_ms)
        page = write_parity_report(result, out)
    finally:
        rep.store.close()
    return result, page
