"""The event-skipping fast path (``sim.fast_path``) stores exactly what the per-bar loop
stores: every table of the run, hashed in stored order, for every bundled scenario and
for hypothesis-drawn ones; and where it cannot be exact the run falls back, saying why.

The bundled scenarios' per-bar runs are also the rows-unchanged check
(``test_rows_unchanged``): the rows they stored at da22740, so each scenario runs twice
in CI, not three times."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sim.bus import BAR, EventBus
from sim.config import load_scenario, parse_scenario
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore
from tests._run_digests import SCENARIOS as PINNED
from tests._run_digests import pinned_digests, run_digests

ROOT = Path(__file__).resolve().parents[2]
# Every bundled scenario but the one whose agent calls a service on the network.
SCENARIOS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").rglob("*.toml")
    if not {"sweeps", "models"} & set(p.parts) and not p.name.startswith("suite")
    and p.name != "external.toml")
# Tables that say how a run was made, not what it did.
NOT_RESULTS = {"run_info"}


def table_hashes(store: DuckDBStore, run_id: str) -> dict[str, tuple[int, str]]:
    """Row count and hash of every stored table of the run, rows in stored order (wall
    clock columns, ``elapsed*``, left out)."""
    out = {}
    for table, columns in TABLES.items():
        if table in NOT_RESULTS:
            continue
        names = ", ".join(n for n, _ in columns if not n.startswith("elapsed"))
        rows = store.con.execute(f"SELECT {names} FROM {table} WHERE run_id = ?",
                                 [run_id]).fetchall()
        out[table] = (len(rows), hashlib.sha256(repr(rows).encode()).hexdigest())
    return out


def engine_path(store: DuckDBStore, run_id: str) -> tuple[str, str]:
    rows = dict(store.con.execute("SELECT key, value FROM run_info WHERE run_id = ?",
                                  [run_id]).fetchall())
    return rows["engine_path"], rows["engine_path_reason"]


def both_paths(config: Any, tmp_path: Path, pinned: dict[str, str] | None = None,
               **kwargs: Any
               ) -> tuple[dict[str, Any], dict[str, Any], tuple[str, str], str]:
    """Hashes of the fast and the per-bar run, the fast run's path, and its status; with
    ``pinned``, the per-bar run's rows are also checked against those digests."""
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        fast = run_scenario(config, store, **kwargs)
        slow = run_scenario(config, store, fast_path=False, **kwargs)
        assert engine_path(store, slow.run_id)[0] == "per-bar"
        if pinned is not None:
            assert run_digests(store.con, slow.run_id) == pinned, "rows changed since da22740"
        status = store.con.execute("SELECT status, error FROM runs WHERE run_id = ?",
                                   [fast.run_id]).fetchone()
        return (table_hashes(store, fast.run_id), table_hashes(store, slow.run_id),
                engine_path(store, fast.run_id), status)


@pytest.mark.parametrize("path", SCENARIOS)
def test_every_bundled_scenario_stores_the_same_tables_on_both_paths(
    path: str, tmp_path: Path,
) -> None:
    """Watched as the scenario asks (``[monitor]``), as the pinned digests were made; the
    drawn scenarios below also draw a watch of scenarios without one."""
    pinned = pinned_digests()[path] if path in PINNED else None
    fast, slow, (which, reason), _ = both_paths(load_scenario(ROOT / path), tmp_path,
                                                pinned=pinned)
    assert fast == slow
    assert fast["equity"][0] > 0
    kinds = {a.kind for a in load_scenario(ROOT / path).agents}
    if load_scenario(ROOT / path).farms:
        assert (which, reason) == ("per-bar", "farms: each farm's ledger is booked on every "
                                              "bar")
    elif kinds & {"smc", "ml_logistic", "risk_manager", "signal_feed"}:
        assert which == "per-bar" and "has no batch form" in reason
    elif path.endswith("operations.toml"):
        assert which == "per-bar" and "agent lifecycle events" in reason
    else:
        assert which == "fast", reason


def test_every_pinned_scenario_is_run_here() -> None:
    """The rows-unchanged check of the bundled scenarios is the one above: none left out."""
    assert set(PINNED) <= set(SCENARIOS)


# -- hypothesis-drawn scenarios ----------------------------------------------------------
_AGENTS = st.sampled_from([
    ("sma_crossover", {"fast": 5, "slow": 20}),
    ("sma_crossover", {"fast": 3, "slow": 9, "long_only": True}),
    ("zscore_reversion", {"window": 20, "entry": 1.5, "exit": 0.3}),
    ("ema_crossover", {"fast": 4, "slow": 15}),
    ("donchian_breakout", {"window": 12, "exit_window": 5}),
    ("bollinger_reversion", {"window": 15, "width": 1.5}),
    ("rsi", {"period": 7, "oversold": 35.0, "overbought": 65.0}),
    ("momentum", {"window": 8, "threshold": 0.001}),
])


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_symbols = draw(st.integers(1, 2))
    symbols = ["AAA", "BBB"][:n_symbols]
    bars = draw(st.integers(60, 700))
    data = [{"kind": "gbm", "symbol": s, "bars": bars - 37 * i, "interval": "1m",
             "volatility": draw(st.sampled_from([0.3, 1.5, 4.0])),
             "start": f"2024-01-01T00:0{i}:00"} for i, s in enumerate(symbols)]
    agents = [{"name": f"a{i}", "kind": kind, "params": params}
              for i, (kind, params) in enumerate(draw(st.lists(_AGENTS, min_size=1,
                                                               max_size=3)))]
    perp = draw(st.booleans())
    venue: dict[str, Any] = {"name": "v", "symbols": symbols, "fee_bps": 5.0,
                             "slippage_bps": draw(st.sampled_from([0.0, 2.0]))}
    if perp:
        venue.update(kind="perp", max_leverage=3.0, funding_rate=0.0001,
                     funding_interval="1h")
    consensus: dict[str, Any] = {
        "method": draw(st.sampled_from(["majority", "confidence_weighted", "unanimous",
                                        "performance_weighted"])),
        "conflict": draw(st.sampled_from(["hold", "highest_confidence", "weighted_target"]))}
    if draw(st.booleans()):
        consensus["max_signal_age"] = draw(st.sampled_from(["7m", "45m"]))
    policy = {"sizing": draw(st.sampled_from(["fixed_fraction", "confidence_exponential",
                                              "volatility_target", "kelly"])),
              "allow_short": draw(st.booleans()),
              "exposure": draw(st.sampled_from([0.5, 1.0, 2.0]))}
    risk: dict[str, Any] = {}
    if draw(st.booleans()):
        risk["max_drawdown"] = draw(st.sampled_from([0.01, 0.05]))
        risk["flatten_on_trip"] = draw(st.booleans())
    if draw(st.booleans()):
        risk["daily_loss_limit"] = 0.02
    if draw(st.booleans()):
        risk["max_position_notional"] = 40_000.0
        risk["max_orders_per_day"] = 30
    execution: dict[str, Any] = {
        "fill_at": draw(st.sampled_from(["next_open", "close"])),
        "order_type": draw(st.sampled_from(["market", "market", "limit", "stop"]))}
    if execution["order_type"] != "market":
        execution["offset_bps"] = 5.0
        execution["order_ttl"] = "20m"
    if draw(st.booleans()):
        execution["take_profit"], execution["stop_loss"] = 0.01, 0.01
    if draw(st.booleans()):
        execution["latency"] = True
        venue["latency_ms"] = 90_000.0  # arrives bars later: queued events between bars
    events = []
    if draw(st.booleans()):
        events = [{"at": "2024-01-01T02:10:00", "kind": "venue_down", "venue": "v"},
                  {"at": "2024-01-01T03:00:30", "kind": "venue_up", "venue": "v"}]
    if draw(st.booleans()):
        events.append({"at": "2024-01-01T05:30:00", "kind": "kill_switch"})
    return {"name": "drawn", "seed": draw(st.integers(0, 2**16)), "data": data,
            "agents": agents, "consensus": consensus, "policy": policy, "risk": risk,
            "execution": execution, "venues": [venue], "events": events}


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(raw=scenarios(), monitor=st.booleans())
@example(raw={  # brackets left working on a symbol whose data end early: cancelled at the
    # run's last bar (a skipped one), not at the last event bar
    "name": "drawn", "seed": 0, "data": [
        {"kind": "gbm", "symbol": "AAA", "bars": 60, "interval": "1m", "volatility": 0.3,
         "start": "2024-01-01T00:00:00"},
        {"kind": "gbm", "symbol": "BBB", "bars": 23, "interval": "1m", "volatility": 0.3,
         "start": "2024-01-01T00:01:00"}],
    "agents": [{"name": "a0", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}}],
    "consensus": {"method": "majority", "conflict": "hold"},
    "policy": {"sizing": "fixed_fraction", "allow_short": False, "exposure": 0.5},
    "risk": {}, "execution": {"fill_at": "next_open", "order_type": "market",
                              "take_profit": 0.01, "stop_loss": 0.01},
    "venues": [{"name": "v", "symbols": ["AAA", "BBB"], "fee_bps": 5.0, "slippage_bps": 0.0}],
    "events": []}, monitor=False)
def test_drawn_scenarios_store_the_same_tables_on_both_paths(
    raw: dict[str, Any], monitor: bool, tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = parse_scenario(raw, "drawn")
    fast, slow, (which, reason), status = both_paths(
        config, tmp_path_factory.mktemp("drawn"), monitor=monitor)
    assert which == "fast", reason
    assert status[0] == "completed", status
    assert fast == slow


# -- falling back --------------------------------------------------------------------------
def _small(agents: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "small", "seed": 3,
            "data": [{"kind": "gbm", "symbol": "AAA", "bars": 300, "interval": "1m"}],
            "agents": agents, "venues": [{"name": "v", "symbols": ["AAA"]}], **extra}


SMA = {"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}}


@pytest.mark.parametrize(("raw", "kwargs", "reason"), [
    (_small([SMA, {"name": "smc", "kind": "smc"}]), {},
     "agent 'smc' (SmcAgent) has no batch form"),
    (_small([SMA], events=[{"at": "2024-01-01T01:00:00", "kind": "agent_pause",
                            "agent": "sma"}]), {},
     "agent lifecycle events (agent_pause) change agents mid-run"),
    (_small([SMA]), {"fast_path": False}, "asked for (--per-bar)"),
], ids=["no-batch-form", "lifecycle", "asked"])
def test_what_the_fast_path_cannot_do_runs_per_bar_and_says_why(
    raw: dict[str, Any], kwargs: dict[str, Any], reason: str, tmp_path: Path,
) -> None:
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = run_scenario(parse_scenario(raw), store, **kwargs)
        assert engine_path(store, result.run_id) == ("per-bar", reason)


def test_an_observer_of_each_bar_keeps_the_per_bar_loop(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append, [BAR])
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = run_scenario(parse_scenario(_small([SMA])), store, bus=bus)
        assert engine_path(store, result.run_id)[0] == "per-bar"
    assert len(seen) == 300  # it saw every bar


def test_a_run_with_batch_forms_takes_the_fast_path(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = run_scenario(parse_scenario(_small([SMA])), store)
        assert engine_path(store, result.run_id) == ("fast", "every agent has a batch form")
        assert result.bars == 300


def test_the_fast_path_hands_the_engine_only_the_event_bars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sim.engine import Engine

    walked: list[int] = []
    on_bar = Engine.on_bar

    def counted(self: Engine, s: int, n: int, *rest: Any) -> None:
        walked.append(n)
        on_bar(self, s, n, *rest)

    monkeypatch.setattr(Engine, "on_bar", counted)
    raw = _small([{"name": "sma", "kind": "sma_crossover",
                   "params": {"fast": 20, "slow": 80, "long_only": True}}])
    raw["data"][0]["bars"] = 5000
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run = run_scenario(parse_scenario(raw), store)
        signals, fills, equity = store.con.execute(
            "SELECT (SELECT count(*) FROM signals WHERE run_id = $r),"
            " (SELECT count(*) FROM fills WHERE run_id = $r),"
            " (SELECT count(*) FROM equity WHERE run_id = $r)", {"r": run.run_id}).fetchone()
    assert equity == 5000 and fills > 10
    # each signal change, and the bar after each decision (its fill at the next open),
    # plus at most _DENSE - 1 quiet bars walked before each of them
    assert len(walked) <= 4 * (signals + fills) < 5000 // 2


def test_flushes_mid_run_happen_at_the_same_rows_on_both_paths(tmp_path: Path) -> None:
    """Past one chunk (65,536 rows) with a small flush size: the recorder writes, and the
    risk engine follows the equity book, at the same rows; a daily loss limit reads it."""
    raw = _small([{"name": "sma", "kind": "sma_crossover", "params": {"fast": 5,
                                                                      "slow": 40}}],
                 risk={"daily_loss_limit": 0.002, "max_drawdown": 0.02})
    raw["data"][0].update(bars=140_000, volatility=1.5)
    fast, slow, (which, _), status = both_paths(parse_scenario(raw), tmp_path,
                                                flush_rows=20_000)
    assert which == "fast" and status[0] == "completed"
    assert fast == slow
    assert fast["risk_events"][0] > 0  # the limits bind


def test_flushes_mid_run_with_the_equity_rows_booked_in_blocks(tmp_path: Path) -> None:
    """The same on one symbol with no equity follower, where the walk books the equity
    rows in blocks (``sim.fast_book``) at the chunk ends: each flush holds the rows the
    per-bar loop's holds."""
    raw = _small([{"name": "sma", "kind": "sma_crossover", "params": {"fast": 5,
                                                                      "slow": 40}}])
    raw["data"][0].update(bars=140_000)
    fast, slow, (which, _), status = both_paths(parse_scenario(raw), tmp_path,
                                                flush_rows=20_000)
    assert which == "fast" and status[0] == "completed"
    assert fast == slow


@pytest.mark.parametrize("minute", [611, 1207, 2003])
def test_a_queued_event_between_walked_bars_sees_the_bar_before_it(
    tmp_path: Path, minute: int,
) -> None:
    """A kill switch that flattens, due between two walked bars of one symbol: its fill
    reads the bar the per-bar loop shows it (the previous one: volatility slippage uses
    its range), though the walk skipped that bar."""
    hour, m = divmod(minute, 60)
    raw = _small([{"name": "sma", "kind": "sma_crossover",
                   "params": {"fast": 3, "slow": 20, "long_only": True}}],
                 risk={"flatten_on_trip": True},
                 events=[{"at": f"2024-01-0{1 + hour // 24}T{hour % 24:02d}:{m:02d}:30Z",
                          "kind": "kill_switch"}])
    raw["data"][0]["bars"] = 3000
    raw["venues"][0].update(fee_bps=10.0, volatility_slippage=0.5)
    fast, slow, (which, _), status = both_paths(parse_scenario(raw), tmp_path)
    assert which == "fast" and status[0] == "completed"
    assert fast == slow
    assert fast["fills"][0] > 0
