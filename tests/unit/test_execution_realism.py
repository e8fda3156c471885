"""Execution realism worked out by hand: latency, order types, intrabar conventions,
impact and participation, maker rebates, venue faults.

Each case runs the whole pipeline (runner, consensus, policy, risk, router, venue
matching, portfolio, recorder, DuckDB) on a handful of one-minute bars and compares the
stored rows with numbers derived in the docstrings. A scripted agent says LONG after
bar 2 (so the order is released at bar 3's open, 00:02) unless a case says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.data import FundingRates, bars_from_frame, merge
from sim.runner import RandomStreams, run_scenario
from sim.store import DuckDBStore
from tests.unit.test_execution_hand_computed import AGENT, bar_ts

MINUTE = 60 * 10**9
Bar = tuple[float, float, float, float, float]  # open, high, low, close, volume


def frame(bars: Sequence[Bar]) -> pd.DataFrame:
    return pd.DataFrame({
        "timestamp": pd.to_datetime([bar_ts(n + 1) for n in range(len(bars))], utc=True),
        "open": [b[0] for b in bars], "high": [b[1] for b in bars],
        "low": [b[2] for b in bars], "close": [b[3] for b in bars],
        "volume": [b[4] for b in bars],
    })


def flat(price: float, volume: float = 1_000.0) -> Bar:
    return (price, price, price, price, volume)


def run(
    tmp_path: Path, bars: Sequence[Bar], *, execution: dict[str, Any] | None = None,
    venues: list[dict[str, Any]] | None = None,
    script: Sequence[Sequence[object]] = ((2, "LONG"),), exposure: float = 0.5,
    initial_cash: float = 10_000.0, events: list[dict[str, Any]] | None = None,
    allow_short: bool = False, funding: FundingRates | None = None, seed: int = 0,
) -> dict[str, pd.DataFrame]:
    config = parse_scenario({
        "name": "realism", "seed": seed, "initial_cash": initial_cash,
        "agents": [{"name": "script", "kind": AGENT,
                    "params": {"script": [list(step) for step in script]}}],
        "policy": {"exposure": exposure, "allow_short": allow_short},
        "venues": venues or [{"name": "v", "symbols": ["X"]}],
        "execution": execution or {},
        "events": events or [],
    }, "realism")
    symbol_bars = bars_from_frame(frame(bars), "X")
    if funding is not None:
        symbol_bars = replace(symbol_bars, funding=funding)
    with DuckDBStore(tmp_path / f"runs{seed}.duckdb") as store:
        run_id = run_scenario(config, store, data=merge([symbol_bars])).run_id
        out = {}
        for table, order in (("fills", "fill_id"), ("orders", "order_id"),
                             ("order_events", "rowid"), ("equity", "ts"), ("funding", "ts"),
                             ("liquidations", "ts"), ("routing_decisions", "rowid")):
            out[table] = store.con.execute(
                f"SELECT * EXCLUDE (run_id) FROM {table} WHERE run_id = ? ORDER BY {order}",
                [run_id]).df()
    return out


def ns(column: pd.Series) -> list[int]:
    return [int(pd.Timestamp(t).value) for t in column]


# -- latency ----------------------------------------------------------------------------
LATENCY_BARS = [flat(100.0), flat(100.0), flat(101.0), flat(104.0), flat(107.0), flat(103.0)]


@pytest.mark.parametrize(("venue_ms", "agent_ms", "fill_bar"), [
    (90_000.0, 0.0, 5),   # arrives 00:03:30 -> the first open at or after it: bar 5 (00:04)
    (60_000.0, 30_000.0, 5),  # processing + network add up the same
    (60_000.0, 0.0, 4),   # arrives exactly at bar 4's open: at or after, so bar 4
    (0.0, 0.0, 3),        # no latency: the release's own open
])
def test_latency_fills_at_the_first_open_at_or_after_arrival(
    tmp_path: Path, venue_ms: float, agent_ms: float, fill_bar: int
) -> None:
    """Decision after bar 2; released at bar 3's open (101): sized there, 0.5 x 10 000 /
    101 units. It reaches the venue at 00:02 + latency and fills at the first bar open at
    or after that. No slippage, no fee: the fill price minus the decision price is exactly
    the move of the opens in between (107 - 101 = 6 for bar 5), and so is the shortfall
    per unit stored in orders (avg_fill_price - ref_price)."""
    out = run(tmp_path, LATENCY_BARS,
              execution={"latency": True, "processing": {"agent_ms": agent_ms}},
              venues=[{"name": "v", "symbols": ["X"], "latency_ms": venue_ms}])
    fills, orders = out["fills"], out["orders"]
    qty = 0.5 * 10_000 / 101.0
    opens = {n + 1: b[0] for n, b in enumerate(LATENCY_BARS)}
    assert fills["quantity"].tolist() == pytest.approx([qty], rel=1e-12)
    assert fills["price"].tolist() == [opens[fill_bar]]
    assert fills["price"][0] - fills["ref_price"][0] == opens[fill_bar] - opens[3]
    assert ns(fills["ts"]) == [bar_ts(fill_bar)]
    row = orders.iloc[0]
    assert row["status"] == "filled"
    assert ns(orders["decision_ts"]) == [bar_ts(2)]
    assert ns(orders["ts"]) == [bar_ts(3)]
    assert ns(orders["arrival_ts"]) == [bar_ts(3) + round((venue_ms + agent_ms) * 1e6)]
    assert ns(orders["fill_ts"]) == [bar_ts(fill_bar)]
    assert row["ref_price"] == 101.0
    assert row["avg_fill_price"] - row["ref_price"] == opens[fill_bar] - opens[3]


def test_latency_drawn_from_the_venue_stream(tmp_path: Path) -> None:
    """Exponential latency with mean 30 s: the arrival offset is the first draw of the
    venue's seeded stream (RandomStreams.spawn(seed, 0, 0, 1).venues[0]), and the same
    seed gives the same rows."""
    kwargs: dict[str, Any] = {
        "execution": {"latency": True},
        "venues": [{"name": "v", "symbols": ["X"], "latency_ms": 30_000.0,
                    "latency_dist": "exponential"}],
        "seed": 11}
    first = run(tmp_path, LATENCY_BARS, **kwargs)
    again = run(tmp_path / "x" if (tmp_path / "x").mkdir() is None else tmp_path, LATENCY_BARS,
                **kwargs)
    draw = RandomStreams.spawn(11, 0, 0, 1).venues[0].exponential(30_000.0)
    assert ns(first["orders"]["arrival_ts"]) == [bar_ts(3) + round(draw * 1e6)]
    pd.testing.assert_frame_equal(first["fills"], again["fills"])
    pd.testing.assert_frame_equal(first["orders"], again["orders"])


# -- limit, stop, post-only, IOC ---------------------------------------------------------
def test_resting_limit_fills_at_its_price_as_a_maker_with_a_rebate(tmp_path: Path) -> None:
    """Buy limit 100 bps under the open of bar 3 (100): 99. Bar 3 trades down to 98.5,
    through 99: filled at 99 as a maker, fee -2 bps (a rebate).
        qty  = 0.5 x 10 000 / 100 = 50
        fee  = 50 x 99 x -0.0002 = -0.99
        cash = 10 000 - 50 x 99 + 0.99 = 5050.99
    """
    bars = [flat(100.0), flat(100.0), (100.0, 100.5, 98.5, 99.5, 1e3), flat(99.5), flat(99.5)]
    out = run(tmp_path, bars, execution={"order_type": "limit", "offset_bps": 100.0},
              venues=[{"name": "v", "symbols": ["X"], "fee_bps": 10.0,
                       "maker_fee_bps": -2.0}])
    fills = out["fills"]
    assert fills["price"].tolist() == [pytest.approx(99.0, rel=1e-12)]
    assert fills["liquidity"].tolist() == ["maker"]
    assert fills["fee"].tolist() == [pytest.approx(-0.99, rel=1e-12)]
    assert fills["cash_after"].tolist() == [pytest.approx(5050.99, rel=1e-12)]
    assert out["orders"]["limit_price"].tolist() == [pytest.approx(99.0, rel=1e-12)]
    assert out["orders"]["status"].tolist() == ["filled"]


@pytest.mark.parametrize(("limit_fill", "filled"), [("through", False), ("touch", True)])
def test_limit_touched_exactly(tmp_path: Path, limit_fill: str, filled: bool) -> None:
    """The low reaches the limit (99) and no further: a fill only under "touch"."""
    bars = [flat(100.0), flat(100.0), (100.0, 100.0, 99.0, 99.5, 1e3), flat(99.5)]
    out = run(tmp_path, bars, execution={"order_type": "limit", "offset_bps": 100.0,
                                         "limit_fill": limit_fill})
    assert len(out["fills"]) == int(filled)
    assert out["orders"]["status"].tolist() == ["filled" if filled else "cancelled"]
    if not filled:
        assert out["orders"]["reason"].tolist() == ["run ended"]


def test_limit_gapped_through_fills_at_the_limit_not_the_open(tmp_path: Path) -> None:
    """A resting buy limit at 99; bar 4 opens at 97: filled at 99 (a resting order gets
    no price improvement), never better than its limit, never worse."""
    bars = [flat(100.0), flat(100.0), flat(100.0), flat(97.0), flat(97.0)]
    out = run(tmp_path, bars, execution={"order_type": "limit", "offset_bps": 100.0})
    assert out["fills"]["price"].tolist() == [pytest.approx(99.0, rel=1e-12)]
    assert ns(out["fills"]["ts"]) == [bar_ts(4)]


def test_marketable_limit_takes_capped_at_its_limit(tmp_path: Path) -> None:
    """A limit that is marketable on arrival takes at the market plus slippage, but never
    past its limit: slippage 50 bps on an open of 100 would be 100.5; the limit is the
    open itself (offset 0): filled at 100 as a taker."""
    bars = [flat(100.0), flat(100.0), flat(100.0), flat(100.0)]
    out = run(tmp_path, bars, execution={"order_type": "limit"},
              venues=[{"name": "v", "symbols": ["X"], "slippage_bps": 50.0}])
    assert out["fills"]["price"].tolist() == [100.0]
    assert out["fills"]["liquidity"].tolist() == ["taker"]


def test_post_only_that_would_take_is_rejected(tmp_path: Path) -> None:
    out = run(tmp_path, [flat(100.0)] * 4,
              execution={"order_type": "limit", "post_only": True})
    assert out["fills"].empty
    assert out["orders"]["status"].tolist() == ["rejected"]
    assert "post-only" in out["orders"]["reason"][0]


def test_ioc_that_cannot_fill_expires(tmp_path: Path) -> None:
    out = run(tmp_path, [flat(100.0)] * 4,
              execution={"order_type": "limit", "offset_bps": 100.0, "time_in_force": "ioc"})
    assert out["fills"].empty
    assert out["orders"]["status"].tolist() == ["expired"]


def test_order_ttl_expires_a_working_order(tmp_path: Path) -> None:
    out = run(tmp_path, [flat(100.0)] * 6,
              execution={"order_type": "limit", "offset_bps": 100.0, "order_ttl": "2m"})
    events = out["order_events"]
    assert out["orders"]["status"].tolist() == ["expired"]
    assert ns(events[events["event"] == "expired"]["ts"]) == [bar_ts(3) + 2 * MINUTE]


@pytest.mark.parametrize(("bar3", "price"), [
    ((100.0, 102.0, 99.0, 101.0, 1e3), 101.0),  # the path reaches the stop at 101: filled
    ((103.0, 104.0, 103.0, 104.0, 1e3), None),  # released at 103: the stop is 104.03
])
def test_stop_entry(tmp_path: Path, bar3: Bar, price: float | None) -> None:
    """Buy stop 100 bps above the release price: released at bar 3's open."""
    bars = [flat(100.0), flat(100.0), bar3, (104.0, 106.0, 104.0, 105.0, 1e3), flat(105.0)]
    out = run(tmp_path, bars, execution={"order_type": "stop", "offset_bps": 100.0})
    fills = out["fills"]
    if price is not None:
        assert fills["price"].tolist() == [pytest.approx(price, rel=1e-12)]
        assert ns(fills["ts"]) == [bar_ts(3)]
    else:
        stop = 103.0 * 1.01
        assert out["orders"]["stop_price"].tolist() == [pytest.approx(stop, rel=1e-12)]
        assert fills["price"].tolist() == [pytest.approx(stop, rel=1e-12)]  # bar 4 path
        assert ns(fills["ts"]) == [bar_ts(4)]


def test_stop_gapped_through_fills_at_the_open(tmp_path: Path) -> None:
    """Buy stop at 101 (released at 100); bar 4 opens at 103: filled at 103, worse."""
    bars = [flat(100.0), flat(100.0), flat(100.0), flat(103.0), flat(103.0)]
    out = run(tmp_path, bars, execution={"order_type": "stop", "offset_bps": 100.0})
    assert out["fills"]["price"].tolist() == [103.0]


# -- brackets and the intrabar convention ---------------------------------------------------
@pytest.mark.parametrize(("intrabar", "exit_price", "exit_role"), [
    ("worst_case", 95.0, "stop_loss"),
    ("olhc", 95.0, "stop_loss"),
    ("ohlc", 105.0, "take_profit"),
])
def test_bracket_both_touched_in_one_bar(
    tmp_path: Path, intrabar: str, exit_price: float, exit_role: str
) -> None:
    """Long 50 at bar 3's open (100); take profit 5% (105, limit), stop loss 5% (95,
    stop). Bar 3 reaches both 106 and 94. Worst case picks the stop (realized -250);
    open-high-low-close reaches the target first (+250); open-low-high-close the stop.
    The other bracket is cancelled (one-cancels-the-other, the position is closed)."""
    bars = [flat(100.0), flat(100.0), (100.0, 106.0, 94.0, 100.0, 1e3), flat(100.0)]
    out = run(tmp_path, bars, execution={"take_profit": 0.05, "stop_loss": 0.05,
                                         "intrabar": intrabar})
    fills, orders = out["fills"], out["orders"].set_index("order_id")
    assert fills["quantity"].tolist() == [50.0, -50.0]
    assert fills["price"].tolist() == [100.0, pytest.approx(exit_price, rel=1e-12)]
    assert fills["realized_pnl"].tolist()[-1] == pytest.approx((exit_price - 100.0) * 50)
    exit_order = orders.loc[fills["order_id"].iloc[-1]]
    assert exit_order["role"] == exit_role
    assert exit_order["reduce_only"]
    other = orders[(orders["role"].isin(["take_profit", "stop_loss"]))
                   & (orders["role"] != exit_role)]
    assert other["status"].tolist() == ["cancelled"]
    assert (orders.loc[orders["role"] != "entry", "parent_id"] == 1).all()


def test_brackets_follow_the_position_and_go_when_it_closes(tmp_path: Path) -> None:
    """A FLAT decision closes the position: its brackets are cancelled, none fill."""
    bars = [flat(100.0)] * 6
    out = run(tmp_path, bars, script=((2, "LONG"), (4, "FLAT")),
              execution={"take_profit": 0.05, "stop_loss": 0.05})
    orders = out["orders"]
    brackets = orders[orders["role"].isin(["take_profit", "stop_loss"])]
    assert len(brackets) == 2 and (brackets["status"] == "cancelled").all()
    assert out["fills"]["quantity"].tolist() == [50.0, -50.0]


# -- slippage, impact, participation --------------------------------------------------------
def test_square_root_impact_for_a_known_participation(tmp_path: Path) -> None:
    """40 units into a bar of volume 1000: participation 0.04, impact 50 bps x sqrt(0.04)
    = 10 bps, plus 2 bps fixed: 100 x 1.0012 = 100.12."""
    bars = [flat(100.0), flat(100.0), flat(100.0, 1_000.0), flat(100.0)]
    out = run(tmp_path, bars, exposure=0.4,
              venues=[{"name": "v", "symbols": ["X"], "slippage_bps": 2.0,
                       "impact_bps": 50.0}])
    assert out["fills"]["quantity"].tolist() == [pytest.approx(40.0, rel=1e-12)]
    assert out["fills"]["price"].tolist() == [pytest.approx(100.12, rel=1e-12)]


def test_volatility_scaled_slippage_uses_the_previous_bar(tmp_path: Path) -> None:
    """Bar 2 ranged 80..100 and closed at 80: range 20 / 80 = 0.25; x 0.1 = 250 bps.
    Filled at bar 3's open 100 x 1.025 = 102.5 (bar 3's own range is never used)."""
    bars = [flat(100.0), (100.0, 100.0, 80.0, 80.0, 1e3), (100.0, 150.0, 50.0, 100.0, 1e3),
            flat(100.0)]
    out = run(tmp_path, bars, venues=[{"name": "v", "symbols": ["X"],
                                       "volatility_slippage": 0.1}])
    assert out["fills"]["price"].tolist() == [pytest.approx(102.5, rel=1e-12)]


def test_participation_cap_leaves_the_rest_to_later_bars(tmp_path: Path) -> None:
    """25 units, at most 10% of each bar's volume of 100: 10 at bar 3's open, 10 at bar
    4's, 5 at bar 5's. One order, three fills, filled."""
    bars = [flat(100.0, 100.0), flat(100.0, 100.0), flat(100.0, 100.0), flat(101.0, 100.0),
            flat(102.0, 100.0), flat(102.0, 100.0)]
    out = run(tmp_path, bars, exposure=0.25,
              venues=[{"name": "v", "symbols": ["X"], "max_participation": 0.1}])
    fills = out["fills"]
    assert fills["quantity"].tolist() == pytest.approx([10.0, 10.0, 5.0], rel=1e-12)
    assert fills["price"].tolist() == [100.0, 101.0, 102.0]
    assert ns(fills["ts"]) == [bar_ts(3), bar_ts(4), bar_ts(5)]
    assert set(fills["order_id"]) == {1}
    assert out["orders"]["status"].tolist() == ["filled"]
    assert out["orders"]["filled_quantity"].tolist() == [pytest.approx(25.0)]


# -- venue faults -----------------------------------------------------------------------
TWO_VENUES = [{"name": "alpha", "symbols": ["X"], "fee_bps": 5.0},
              {"name": "beta", "symbols": ["X"], "fee_bps": 10.0}]


def test_in_flight_order_meets_a_down_venue_and_falls_back(tmp_path: Path) -> None:
    """alpha (cheaper) is 90 s away and goes down at 00:03 until 00:10; the order sent
    at 00:02 arrives at 00:03:30, is refused, and the router sends it to beta (0 s): it
    rests until the next open (00:04) and fills there, once."""
    venues = [{**TWO_VENUES[0], "latency_ms": 90_000.0}, TWO_VENUES[1]]
    out = run(tmp_path, LATENCY_BARS, execution={"latency": True}, venues=venues,
              events=[{"at": "2024-03-01T00:03:00Z", "kind": "venue_down", "venue": "alpha"},
                      {"at": "2024-03-01T00:10:00Z", "kind": "venue_up", "venue": "alpha"}])
    fills, events = out["fills"], out["order_events"]
    assert fills["venue"].tolist() == ["beta"]
    assert ns(fills["ts"]) == [bar_ts(5)]
    assert events["event"].tolist() == ["submitted", "venue_rejected", "arrived", "filled"]
    assert events["venue"].tolist()[1:3] == ["alpha", "beta"]
    routes = out["routing_decisions"]
    assert routes["venue"].tolist() == ["alpha", "beta"]
    assert routes["reason"][1].startswith("fallback: alpha venue down at arrival")


def test_reject_rate_falls_back_and_both_rejecting_rejects(tmp_path: Path) -> None:
    venues = [{**TWO_VENUES[0], "reject_rate": 1.0}, TWO_VENUES[1]]
    out = run(tmp_path, [flat(100.0)] * 4, venues=venues)
    assert out["fills"]["venue"].tolist() == ["beta"]
    assert out["orders"]["status"].tolist() == ["filled"]
    both = [{**v, "reject_rate": 1.0} for v in TWO_VENUES]
    out = run(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path,
              [flat(100.0)] * 4, venues=both)
    assert out["fills"].empty
    assert out["orders"]["status"].tolist() == ["rejected"]
    terminal = out["order_events"][out["order_events"]["event"].isin(
        ["filled", "cancelled", "expired", "rejected", "denied"])]
    assert terminal["event"].tolist() == ["rejected"]


def test_timeout_expires_or_falls_back(tmp_path: Path) -> None:
    """alpha is 5 s away with a 1 s timeout: the order times out at 00:02:01 and goes to
    beta. With only alpha, it ends expired."""
    venues = [{**TWO_VENUES[0], "latency_ms": 5_000.0, "timeout_ms": 1_000.0},
              TWO_VENUES[1]]
    out = run(tmp_path, LATENCY_BARS, execution={"latency": True}, venues=venues)
    events = out["order_events"]
    assert events["event"].tolist()[:2] == ["submitted", "venue_expired"]
    assert ns(events["ts"])[1] == bar_ts(3) + 10**9
    assert out["fills"]["venue"].tolist() == ["beta"]
    out = run(tmp_path / "c" if (tmp_path / "c").mkdir() is None else tmp_path,
              LATENCY_BARS, execution={"latency": True}, venues=venues[:1])
    assert out["orders"]["status"].tolist() == ["expired"]
    assert out["fills"].empty


def test_added_latency_event(tmp_path: Path) -> None:
    """A venue_latency fault adds 90 s from 00:01: the order fills at bar 5, not bar 3."""
    out = run(tmp_path, LATENCY_BARS, execution={"latency": True},
              events=[{"at": "2024-03-01T00:01:00Z", "kind": "venue_latency", "venue": "v",
                       "latency_ms": 90_000.0}])
    assert ns(out["fills"]["ts"]) == [bar_ts(5)]


def test_bad_execution_config_is_one_line() -> None:
    base = {"name": "x", "agents": [{"name": "a", "kind": AGENT, "params": {"script": []}}],
            "venues": [{"name": "v", "symbols": ["X"]}]}
    with pytest.raises(ConfigError, match="post_only: needs order_type = 'limit'"):
        parse_scenario({**base, "execution": {"post_only": True}})
    with pytest.raises(ConfigError, match="maintenance_margin"):
        parse_scenario({**base, "venues": [{"name": "v", "symbols": ["X"], "kind": "perp",
                                            "max_leverage": 20, "maintenance_margin": 0.1}]})
    with pytest.raises(ConfigError, match="latency_ms: required"):
        parse_scenario({**base, "events": [{"at": "2024-01-01", "kind": "venue_latency",
                                            "venue": "v"}]})
    with pytest.raises(ConfigError, match="spot here but perp"):
        parse_scenario({**base, "venues": [
            {"name": "p", "symbols": ["X"], "kind": "perp", "max_leverage": 5},
            {"name": "v", "symbols": ["X"]}]})


def test_defaults_store_every_assumption_in_the_run_config(tmp_path: Path) -> None:
    """The resolved config (stored with the run) names every execution setting."""
    config = parse_scenario({"name": "x", "agents": [{"name": "a", "kind": AGENT,
                                                      "params": {"script": []}}],
                             "venues": [{"name": "v", "symbols": ["X"]}]})
    dumped = config.model_dump(mode="json")
    for key in ("order_type", "intrabar", "limit_fill", "latency", "processing", "replay",
                "take_profit", "stop_loss", "order_ttl", "time_in_force"):
        assert key in dumped["execution"]
    for key in ("maker_fee_bps", "impact_bps", "volatility_slippage", "max_participation",
                "kind", "max_leverage", "maintenance_margin", "latency_dist", "reject_rate",
                "timeout_ms", "funding_rate"):
        assert key in dumped["venues"][0]
    assert np.isfinite(dumped["venues"][0]["fee_bps"])


def test_kill_switch_cancels_resting_entries_so_they_never_fill_later() -> None:
    """A limit entry resting when the kill switch is pulled is cancelled then and there
    (reason "kill switch"): it never fills afterwards, and no later fill grows a position.
    The kill time is picked from a first run without the switch: one minute into the
    life of an entry that rested for several minutes."""
    import pandas as pd

    from sim.config import parse_scenario
    from sim.runner import run_scenario
    from sim.store import DuckDBStore

    raw = {
        "name": "kill-resting", "seed": 3, "initial_cash": 10_000.0,
        "data": [{"kind": "gbm", "symbol": "X", "bars": 2_000, "interval": "1m",
                  "start": "2024-01-01T00:00:00Z", "price": 100.0, "volatility": 1.0}],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 8}}],
        "policy": {"exposure": 0.5},
        "venues": [{"name": "v", "symbols": ["X"]}],
        "execution": {"order_type": "limit", "offset_bps": 20.0},
    }
    minute = 60 * 10**9
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(parse_scenario(raw), store).run_id
        resting = store.con.execute(
            "SELECT epoch_ns(o.ts), o.order_id FROM orders o WHERE o.run_id = ? AND"
            " o.role = 'entry' AND o.quantity > 0 AND epoch_ns(o.fill_ts) - epoch_ns(o.ts)"
            " >= ? ORDER BY o.order_id LIMIT 1", [run_id, 5 * minute]).fetchone()
    assert resting is not None, "no entry rested long enough to test against"
    kill_ns = resting[0] + minute
    raw["events"] = [{"at": pd.Timestamp(kill_ns, tz="UTC").isoformat(),
                      "kind": "kill_switch"}]
    with DuckDBStore(":memory:") as store:
        run_id = run_scenario(parse_scenario(raw), store).run_id
        status, reason = store.con.execute(
            "SELECT status, reason FROM orders WHERE run_id = ? AND order_id = ?",
            [run_id, resting[1]]).fetchone()
        later = store.con.execute(
            "SELECT quantity, position_after FROM fills WHERE run_id = ?"
            " AND epoch_ns(ts) >= ?", [run_id, kill_ns]).fetchall()
    assert (status, reason) == ("cancelled", "kill switch")
    assert all(abs(pos) < abs(pos - q) + 1e-12 for q, pos in later)
