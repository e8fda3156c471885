"""Unit tests: each risk check function, the risk engine's state, the router's policies,
venue rounding and presets, and the new config sections."""

from __future__ import annotations

import math

import pytest

from sim import risk as r
from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.messages import Decision, Side, Signal, SubmitOrder
from sim.risk import AgentPermissions, RiskContext, RiskEngine, RiskLimits
from sim.router import VenueRouter
from sim.venue import PRESETS, SimVenue, round_price, round_quantity, venue_preset

DAY = 86_400 * 10**9
HOUR = 3_600 * 10**9


def order(qty: float, price: float = 100.0, ts: int = 0, symbol: str = "X") -> SubmitOrder:
    return SubmitOrder(1, 1, ts, symbol, qty, price)


def ctx(**kw: object) -> RiskContext:
    limits = kw.pop("limits", RiskLimits())
    return RiskContext(limits, kw.pop("position", 0.0), **kw)  # type: ignore[arg-type]


# -- the check functions ----------------------------------------------------------------
def test_grows_and_reduces() -> None:
    assert r.grows(0.0, 1.0) and r.grows(5.0, 1.0) and r.grows(5.0, -11.0)
    assert not r.grows(5.0, -3.0)
    assert r.reduces(5.0, -3.0) and r.reduces(5.0, -5.0) and r.reduces(-5.0, 2.0)
    assert not r.reduces(5.0, -6.0)  # crosses zero: opens a short
    assert not r.reduces(0.0, -1.0) and not r.reduces(5.0, 1.0)


def test_kill_switch_blocks_only_position_increasing_orders() -> None:
    assert r.check_kill_switch(order(1), ctx()) is None
    b = r.check_kill_switch(order(1), ctx(killed=True))
    assert b is not None and b.check == "kill_switch"
    assert r.check_kill_switch(order(-1), ctx(position=2.0, killed=True)) is None
    assert r.check_kill_switch(order(-3), ctx(position=2.0, killed=True)) is not None


def test_circuit_breaker_carries_the_trip_value() -> None:
    limits = RiskLimits(max_drawdown=0.1)
    b = r.check_circuit_breaker(order(1), ctx(limits=limits, breaker="max_drawdown",
                                              breaker_value=0.12))
    assert (b.check, b.limit, b.value) == ("circuit_breaker", 0.1, 0.12)
    assert r.check_circuit_breaker(order(-1), ctx(limits=limits, position=1.0,
                                                  breaker="max_drawdown")) is None


def test_daily_loss_and_drawdown() -> None:
    lim = RiskLimits(daily_loss_limit=0.05, max_drawdown=0.2)
    c = ctx(limits=lim, equity=940.0, day_start_equity=1000.0, peak_equity=1100.0)
    b = r.check_daily_loss(order(1), c)
    assert b.check == "daily_loss_limit" and b.limit == 0.05 and b.value == pytest.approx(0.06)
    assert r.check_drawdown(order(1), c) is None  # 14.5% < 20%
    c = ctx(limits=lim, equity=800.0, day_start_equity=800.0, peak_equity=1100.0)
    assert r.check_drawdown(order(1), c).value == pytest.approx(300 / 1100)
    assert r.check_daily_loss(order(1), c) is None
    assert r.check_drawdown(order(-1), ctx(limits=lim, position=1.0, equity=1.0,
                                           peak_equity=10.0)) is None  # reducing


def test_symbol_day_rate_checks() -> None:
    lim = RiskLimits(allowed_symbols=frozenset({"X"}), max_orders_per_day=2,
                     max_orders_per_window=3, order_window_ns=60 * 10**9)
    assert r.check_allowed_symbols(order(1, symbol="Y"), ctx(limits=lim)).check == \
        "allowed_symbols"
    assert r.check_allowed_symbols(order(1), ctx(limits=lim)) is None
    b = r.check_orders_per_day(order(1), ctx(limits=lim, orders_today=2))
    assert (b.limit, b.value) == (2, 2)
    assert r.check_orders_per_day(order(1), ctx(limits=lim, orders_today=1)) is None
    assert r.check_order_rate(order(1), ctx(limits=lim, orders_in_window=3)).check == \
        "order_rate"
    assert r.check_order_rate(order(1), ctx(limits=lim, orders_in_window=2)) is None


def test_price_band() -> None:
    lim = RiskLimits(price_band=0.05)
    assert r.check_price_band(order(1, price=104.0), ctx(limits=lim, last_close=100.0)) is None
    b = r.check_price_band(order(1, price=106.0), ctx(limits=lim, last_close=100.0))
    assert b.check == "price_band" and b.value == pytest.approx(0.06)
    assert r.check_price_band(order(1, price=80.0), ctx(limits=lim, last_close=100.0))
    assert r.check_price_band(order(1, price=999.0), ctx(limits=lim)) is None  # no close yet


def test_notional_checks() -> None:
    lim = RiskLimits(max_order_notional=1_000, max_position_notional=1_500)
    b = r.check_order_notional(order(11), ctx(limits=lim))
    assert (b.limit, b.value) == (1_000, 1_100)
    b = r.check_position_notional(order(9), ctx(limits=lim, position=7.0))
    assert (b.limit, b.value) == (1_500, 1_600)
    assert r.check_position_notional(order(-9), ctx(limits=lim, position=20.0)) is None


def test_a_flip_is_judged_by_the_position_it_opens() -> None:
    """Found by the risk/router property test: long 998.6175 flipped by -1996.4664 at
    0.5010950 leaves short 997.8489, |after| < |before| but 500.017 of notional against a
    500 limit. A flip opens a new position: denied past the limit, allowed within it. A
    pure reduction passes even when what is left is over the limit at today's price."""
    lim = RiskLimits(max_position_notional=500.0)
    flip = order(-1996.4663852181336, price=0.5010949681022405)
    b = r.check_position_notional(flip, ctx(limits=lim, position=998.6175159689847))
    assert b is not None and b.check == "max_position_notional" and b.limit == 500.0
    assert b.value == pytest.approx(997.848869249149 * 0.5010949681022405, rel=1e-12)
    assert r.check_position_notional(order(-1990.0, price=0.5), ctx(
        limits=lim, position=998.6175159689847)) is None  # short 991.38: 495.7 of notional
    assert r.check_position_notional(order(-1.0, price=0.6), ctx(
        limits=lim, position=998.0)) is None  # reduces: 598.2 left, still allowed
    agents = RiskLimits(agents={"a": AgentPermissions(max_position_notional=500.0)})
    b = r.check_agent_permissions(flip, ctx(limits=agents, position=998.6175159689847,
                                            agents=("a",), agent_trades_today=(0,)))
    assert b is not None and b.check == "agent_max_position_notional"


def test_leverage() -> None:
    lim = RiskLimits(max_leverage=2.0)
    # 10 held of this symbol (1000 at 100) + 500 elsewhere; equity 1000
    c = ctx(limits=lim, position=10.0, equity=1000.0, gross_exposure=1500.0)
    assert r.leverage_after(order(5), c) == pytest.approx(2.0)
    assert r.check_leverage(order(5), c) is None
    b = r.check_leverage(order(6), c)
    assert b.check == "max_leverage" and b.value == pytest.approx(2.1)
    assert r.check_leverage(order(-5), c) is None  # reducing
    assert math.isinf(r.leverage_after(order(1), ctx(limits=lim, equity=0.0)))


def _decision(side: Side, votes: list[Side | None]) -> Decision:
    names = tuple(f"a{i}" for i in range(len(votes)))
    sigs = tuple(None if v is None else Signal(v, 1.0) for v in votes)
    return Decision(1, 0, "X", side, 1.0, None, names, sigs, (1.0,) * len(votes))


def test_attribution_is_the_winning_sides_voters() -> None:
    d = _decision(Side.LONG, [Side.LONG, Side.SHORT, None, Side.LONG, Side.FLAT])
    assert r.attributed_agents(d) == ("a0", "a3")
    assert r.attributed_agents(_decision(Side.FLAT, [Side.FLAT, Side.LONG])) == ("a0",)


def test_agent_permissions_every_voter_must_allow() -> None:
    perms = {
        "loose": AgentPermissions(max_trade_notional=10_000),
        "tight": AgentPermissions(max_trade_notional=500, max_position_notional=800,
                                  max_trades_per_day=1, allowed_symbols=frozenset({"X"}),
                                  risk_level="low"),
    }
    lim = RiskLimits(agents=perms)

    def c(agents: tuple[str, ...], trades: tuple[int, ...] | None = None,
          **kw: object) -> RiskContext:
        return ctx(limits=lim, agents=agents, equity=kw.pop("equity", 10_000.0),
                   agent_trades_today=trades or (0,) * len(agents), **kw)

    assert r.check_agent_permissions(order(6), c(("loose",))) is None
    assert r.check_agent_permissions(order(6), c(("free",))) is None  # no permissions
    assert r.check_agent_permissions(order(6), c(())) is None  # attributed to nobody
    b = r.check_agent_permissions(order(6), c(("loose", "tight")))
    assert (b.check, b.limit, b.value) == ("agent_max_trade_notional", 500, 600)
    assert r.check_agent_permissions(order(1, symbol="Y"), c(("tight",))).check == \
        "agent_allowed_symbols"
    assert r.check_agent_permissions(order(1), c(("tight",), (1,))).check == \
        "agent_max_trades_per_day"
    assert r.check_agent_permissions(order(4), c(("tight",), position=5.0)).check == \
        "agent_max_position_notional"
    b = r.check_agent_permissions(order(3), c(("tight",), equity=200.0))
    assert (b.check, b.limit, b.value) == ("agent_risk_level", 1.0, 1.5)


# -- the engine's state -------------------------------------------------------------------
def test_engine_counts_sent_orders_and_resets_days_in_its_timezone() -> None:
    eng = RiskEngine(limits=RiskLimits(max_orders_per_day=1, timezone="America/New_York"))
    t0 = 10 * HOUR  # 1970-01-01 05:00 in New York (UTC-5)
    assert eng.check(order(1, ts=t0), 0.0) is None
    eng.on_order_sent(order(1, ts=t0))
    d = eng.check(order(1, ts=t0 + 15 * HOUR), 0.0)  # 20:00 New York: same day
    assert d.check == "max_orders_per_day" and (d.limit, d.value) == (1, 1)
    assert eng.check(order(1, ts=t0 + 20 * HOUR), 0.0) is None  # 01:00 NY: a new day
    utc = RiskEngine(limits=RiskLimits(max_orders_per_day=1))
    utc.on_order_sent(order(1, ts=t0))
    assert utc.check(order(1, ts=t0 + 15 * HOUR), 0.0) is None  # past UTC midnight


def test_order_rate_window() -> None:
    eng = RiskEngine(limits=RiskLimits(max_orders_per_window=2, order_window_ns=60))
    for t in (0, 10):
        eng.on_order_sent(order(1, ts=t))
    assert eng.check(order(1, ts=59), 0.0).check == "order_rate"
    assert eng.check(order(1, ts=60), 0.0) is None  # the order at 0 left the window


def test_breaker_trips_latches_and_daily_breaker_clears_next_day() -> None:
    eng = RiskEngine(limits=RiskLimits(daily_loss_limit=0.1), initial_equity=1000.0)
    assert eng.check(order(1, ts=HOUR), 0.0, equity=950.0) is None
    d = eng.check(order(1, ts=2 * HOUR), 0.0, equity=890.0)
    assert d.check == "daily_loss_limit" and eng.tripped_now and eng.breaker is not None
    d = eng.check(order(1, ts=3 * HOUR), 0.0, equity=995.0)  # recovered, still tripped
    assert d.check == "circuit_breaker" and not eng.tripped_now
    assert eng.check(order(-1, ts=3 * HOUR), 1.0, equity=995.0) is None  # reducing passes
    eng.observe_equity([5 * HOUR], [995.0], 0, DAY + HOUR)
    assert eng.check(order(1, ts=DAY + HOUR), 0.0, equity=990.0) is None  # new day


def test_drawdown_peak_follows_booked_equity() -> None:
    eng = RiskEngine(limits=RiskLimits(max_drawdown=0.2), initial_equity=1000.0)
    eng.observe_equity([1, 2, 3], [1100.0, 1500.0, 1300.0], 0, 10)
    assert eng.peak_equity == 1500.0
    assert eng.check(order(1, ts=10), 0.0, equity=1250.0) is None
    d = eng.check(order(1, ts=11), 0.0, equity=1190.0)
    assert d.check == "max_drawdown" and d.value == pytest.approx(310 / 1500)
    assert eng.check(order(1, ts=DAY * 5), 0.0, equity=5000.0).check == "circuit_breaker"


def test_kill_switch_on_engine() -> None:
    eng = RiskEngine()
    eng.kill()
    assert eng.check(order(1), 0.0).check == "kill_switch"
    assert eng.check(order(-1), 1.0) is None


# -- venues and router ----------------------------------------------------------------------
def test_rounding() -> None:
    assert round_quantity(0.3, 0.1) == pytest.approx(0.3)
    assert round_quantity(0.35, 0.1) == pytest.approx(0.3)
    assert round_quantity(-0.35, 0.1) == pytest.approx(-0.3)
    assert round_quantity(0.05, 0.1) == 0.0
    assert round_quantity(1.2345, 0.0) == 1.2345
    assert abs(round_quantity(7.77, 0.01)) <= 7.77
    assert round_price(100.037, 0.05) == pytest.approx(100.05)


def test_presets_and_venue_tick_fill() -> None:
    assert set(PRESETS) == {"hyperliquid", "ostium"}
    assert venue_preset("hyperliquid")["fee_bps"] == 4.5
    with pytest.raises(ValueError, match="unknown venue preset"):
        venue_preset("nope")
    v = SimVenue("v", frozenset({"X"}), 0.0, 0.0, tick_size=0.5)
    assert v.execute(order(1), 1, 0, 100.2, 1e9).price == 100.5  # buys round up
    assert v.execute(order(-1), 1, 0, 100.2, 1e9).price == 100.0  # sells round down


def _venues() -> list[SimVenue]:
    return [
        SimVenue("a", frozenset({"X", "Y"}), 10.0, 1.0, lot_size=0.1),
        SimVenue("b", frozenset({"X"}), 5.0, 8.0, min_size=2.0, max_order_notional=300.0),
        SimVenue("c", frozenset({"X"}), 6.0, 1.0, max_order_notional=200.0),
    ]


def test_preference_policy_falls_back_when_a_venue_is_down() -> None:
    router = VenueRouter(_venues(), "preference", ["c", "a"], timer=iter(range(99)).__next__)
    assert router.route(order(1)).venue == "c"
    router.set_health("c", "down")
    routed = router.route(order(1))
    assert routed.venue == "a" and "skipped down: c" in routed.reason
    assert [c.venue for c in routed.candidates] == ["a", "b"]
    assert [c.score for c in routed.candidates] == [1.0, 2.0]
    router.set_health("a", "degraded")
    assert router.route(order(3)).venue == "b"  # up beats degraded
    assert router.route(order(1)).venue == "a"  # below b's min size: the degraded one


def test_cost_policy_and_unroutable_reasons() -> None:
    router = VenueRouter(_venues(), "cost")
    routed = router.route(order(3))
    assert routed.venue == "c"  # 6+1 < 10+1 < 5+8
    assert [c.score for c in routed.candidates] == [11.0, 13.0, 7.0]
    assert router.route(order(1, symbol="Z")) is None
    assert "no venue lists" in router.why_not("Z")
    router.set_health("a", "down")
    assert router.route(order(1, symbol="Y")) is None
    assert "down" in router.why_not("Y")


def test_split_policy_caps_each_venue_and_rounds_lots() -> None:
    router = VenueRouter(_venues(), "split")
    legs = router.route_legs(order(10.05))  # 1005 notional at 100
    assert [(leg.venue, leg.order.quantity) for leg in legs] == [
        ("c", 2.0), ("a", pytest.approx(8.0))]
    legs = router.route_legs(order(-4))
    assert [leg.venue for leg in legs] == ["c", "a"]
    assert sum(leg.order.quantity for leg in legs) == pytest.approx(-4.0)


# -- config -------------------------------------------------------------------------------
BASE = {"name": "t", "agents": [{"name": "sma", "kind": "sma_crossover"}],
        "venues": [{"name": "hl", "symbols": ["X"], "preset": "hyperliquid"},
                   {"name": "os", "symbols": ["X"], "preset": "ostium", "fee_bps": 8.0}]}


def test_config_sections() -> None:
    cfg = parse_scenario({
        **BASE,
        "risk": {"daily_loss_limit": 0.05, "timezone": "Europe/London",
                 "agents": {"sma": {"max_trade_notional": 100.0, "risk_level": "low"}}},
        "router": {"policy": "preference", "preference": ["os", "hl"]},
        "events": [{"at": "2024-01-01T10:00:00Z", "kind": "venue_down", "venue": "hl"},
                   {"at": "2024-01-01T11:00:00Z", "kind": "kill_switch"}],
    })
    assert cfg.venues[0].fee_bps == 4.5 and cfg.venues[0].maker_fee_bps == 1.5
    assert cfg.venues[1].fee_bps == 8.0 and cfg.venues[1].latency_ms == 1500.0
    assert cfg.with_seed(3).venues == cfg.venues
    for bad, msg in [
        ({"risk": {"timezone": "Mars/Base"}}, "risk.timezone"),
        ({"risk": {"agents": {"ghost": {}}}}, "risk.agents.ghost"),
        ({"router": {"policy": "random"}}, "router.policy"),
        ({"router": {"preference": ["zz"]}}, "router.preference"),
        ({"events": [{"at": "2024-01-01", "kind": "venue_down"}]}, "required for a venue_down"),
        ({"events": [{"at": "2024-01-01", "kind": "venue_up", "venue": "zz"}]}, "events.0"),
        ({"events": [{"at": "2024-01-01", "kind": "kill_switch", "when": 1}]},
         "unknown field"),
        ({"venues": [{"name": "v", "symbols": ["X"], "preset": "binance"}]}, "preset"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_scenario({**BASE, **bad})


def test_cost_policy_scores_funding_by_side_and_follows_the_rate_paid() -> None:
    """Perp "p" (fee 4, slippage 1) against spot "s" (fee 6, slippage 1): at +0.01% per
    interval over 3 intervals, a long on p costs 4 + 1 + 3 = 8 bps (> 7 on spot) and a
    short earns it: 4 + 1 - 3 = 2. A negative rate paid later turns it round."""
    perp = SimVenue("p", frozenset({"X"}), 4.0, 1.0, kind="perp", max_leverage=5.0,
                    funding_rate=0.0001)
    spot = SimVenue("s", frozenset({"X"}), 6.0, 1.0)
    router = VenueRouter([perp, spot], "cost", funding_horizon=3.0)
    long_, short = router.route(order(1)), router.route(order(-1))
    assert long_.venue == "s" and short.venue == "p"
    assert [c.score for c in long_.candidates] == [pytest.approx(8.0), 7.0]
    assert [c.score for c in short.candidates] == [pytest.approx(2.0), 7.0]
    assert "funding" in long_.reason
    router.observe_funding("X", -0.0002)  # paid in the run: replaces the configured rate
    assert router.route(order(1)).venue == "p"  # 4 + 1 - 6 = -1 bps
    assert router.route(order(1)).candidates[0].score == pytest.approx(-1.0)
    assert router.route(order(-1)).venue == "s"  # 4 + 1 + 6 = 11 > 7
    cheapest = VenueRouter([perp, spot], "cheapest")
    assert cheapest.route(order(1)).venue == "p"  # fee only: funding is the cost policy's


def test_with_quantity_keeps_every_other_field() -> None:
    import dataclasses

    o = SubmitOrder(3, 2, 99, "X", 1.5, 100.0, "limit", 99.0, None, "ioc", True, True)
    leg = o.with_quantity(-0.5)
    assert leg == dataclasses.replace(o, quantity=-0.5)
    assert [f.name for f in dataclasses.fields(SubmitOrder)] == [
        "order_id", "decision_id", "ts", "symbol", "quantity", "ref_price", "kind",
        "limit_price", "stop_price", "tif", "post_only", "reduce_only"]  # a new field: add it
