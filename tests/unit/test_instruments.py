"""Instruments (``sim.instruments``): per-symbol price and size rules, where they come from,
the representability check, the fill band, and the one rule implementation the live wire
uses. Hand-computed cases, then hypothesis invariants over prices 1e-8..1e6."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.hyperliquid.wire import AssetInfo, price_error, round_price, round_size
from sim.config import parse_scenario
from sim.config_base import ConfigError
from sim.instruments import (
    FillOutsideBand,
    Instrument,
    default_size_decimals,
    hyperliquid_instrument,
    resolve,
    unrepresentable,
)
from sim.messages import SubmitOrder
from sim.router import VenueRouter
from sim.venue import SimVenue


def order(qty: float, price: float, symbol: str = "X", reduce_only: bool = False
          ) -> SubmitOrder:
    return SubmitOrder(7, 1, 0, symbol, qty, price, reduce_only=reduce_only)


# -- the grids ------------------------------------------------------------------------
@pytest.mark.parametrize(("price", "decimals"), [
    (105_000.0, 5), (3_000.0, 4), (150.0, 2), (100.0, 2), (30.0, 2), (2.0, 0), (2.1, 1),
    (0.12, 0), (0.0001, 0), (1e-8, 0), (1e6, 6), (1e7, 6)])
def test_default_size_decimals_keep_a_lot_under_two_quote_units(price: float,
                                                                decimals: int) -> None:
    assert default_size_decimals(price, 6) == decimals
    assert 10.0 ** -decimals * price <= 2.0 or decimals == 6


@pytest.mark.parametrize(("spot", "price", "buy", "sell"), [
    (False, 0.00141342, 0.001414, 0.001413),    # 6 decimals bind (szDecimals 0)
    (True, 0.00141342, 0.0014135, 0.0014134),   # spot: 8 decimals, 5 significant figures
    (True, 5.33e-05, 5.33e-05, 5.33e-05),       # already on the grid
])
def test_hyperliquid_rule_at_low_prices(spot: bool, price: float, buy: float,
                                        sell: float) -> None:
    inst = hyperliquid_instrument("hl", "X", 0, spot=spot)
    assert inst.taker_price(True, price, 0.0) == buy
    assert inst.taker_price(False, price, 0.0) == sell


def test_the_issue_case_a_pair_priced_0_0001_fills_at_its_price_not_at_0_01() -> None:
    """The preset used to give every symbol a 0.01 tick: a buy at 0.0001 filled at 0.01."""
    inst = resolve("hl", "ADABTC", rule="hyperliquid", price=0.0001)
    assert inst is not None and inst.size_decimals == 0 and inst.price_decimals == 8
    price = inst.taker_price(True, 0.0001, 0.0001)
    assert price == pytest.approx(0.0001, rel=2e-4)
    assert unrepresentable(inst, 0.0001, 10_000.0) is None


def test_sizes_round_toward_zero_on_either_grid() -> None:
    fixed = Instrument("v", "X", lot=0.1)
    assert fixed.round_size(0.35) == pytest.approx(0.3)
    assert fixed.round_size(-0.35) == pytest.approx(-0.3)
    decimals = Instrument("v", "X", size_decimals=3)
    assert decimals.lot == 0.001
    assert decimals.round_size(1.23456) == 1.234 and decimals.round_size(-1.23456) == -1.234
    assert decimals.floor_size(0.0009) == 0.0


def test_a_tick_and_a_decimal_rule_are_exclusive() -> None:
    with pytest.raises(ValueError, match="not both"):
        Instrument("v", "X", tick=0.01, sig_figs=5)


# -- where a spec comes from ----------------------------------------------------------
def test_precedence_scenario_over_venue_over_preset_rule() -> None:
    ruled = resolve("hl", "BTC", rule="hyperliquid", kind="perp", price=100_000.0)
    assert (ruled.sig_figs, ruled.price_decimals, ruled.size_decimals,
            ruled.min_notional) == (5, 1, 5, 10.0)
    venue_wide = resolve("hl", "BTC", rule="hyperliquid", kind="perp", tick_size=0.5,
                         lot_size=0.01, price=100_000.0)
    assert (venue_wide.tick, venue_wide.sig_figs, venue_wide.lot,
            venue_wide.min_notional) == (0.5, 0, 0.01, 10.0)
    table = resolve("hl", "BTC", rule="hyperliquid", kind="perp", tick_size=0.5,
                    spec={"size_decimals": 3, "max_leverage": 20.0, "min_notional": 0.0},
                    price=100_000.0)
    assert (table.tick, table.size_decimals, table.lot, table.max_leverage,
            table.min_notional) == (0.5, 3, 0.001, 20.0, 0.0)
    # the table's size decimals set the rule's price decimals (6 - szDecimals)
    assert resolve("hl", "ETH", rule="hyperliquid", kind="perp",
                   spec={"size_decimals": 4}).price_decimals == 2
    # a rule that needs a price it does not have yet: resolved at the first order
    assert resolve("hl", "ETH", rule="hyperliquid", kind="perp") is None
    ostium = resolve("os", "EURUSD", rule="ostium", price=1.08)
    assert (ostium.tick, ostium.decimal_price, ostium.lot, ostium.min_notional) == (
        0.0, False, 0.0, 7.0)
    plain = resolve("v", "X", tick_size=0.01, lot_size=0.1, min_size=1.0, price=5.0)
    assert (plain.tick, plain.lot, plain.min_size, plain.min_notional) == (0.01, 0.1, 1.0, 0.0)


def test_config_instruments_table_is_checked_and_kept_out_of_old_dumps() -> None:
    base = {"name": "t", "agents": [{"name": "a", "kind": "sma_crossover"}]}
    plain = parse_scenario({**base, "venues": [{"name": "v", "symbols": ["X"]}]})
    assert "instruments" not in plain.model_dump(mode="json")["venues"][0]
    cfg = parse_scenario({**base, "venues": [{"name": "v", "symbols": ["X"], "instruments": {
        "X": {"tick_size": 0.5, "size_decimals": 2}}}]})
    assert cfg.with_seed(1).venues[0].instruments["X"].size_decimals == 2
    for bad, msg in [
        ({"Y": {}}, "instruments.Y: not one of the venue's symbols"),
        ({"X": {"tick_size": 0.1, "sig_figs": 5}}, "tick_size: a fixed tick or"),
        ({"X": {"lot_size": 0.1, "size_decimals": 1}}, "lot_size: a fixed lot or"),
        ({"X": {"tick": 0.1}}, "unknown field"),
        ({"X": {"tick_size": -1}}, "tick_size"),
    ]:
        with pytest.raises(ConfigError, match=msg):
            parse_scenario({**base, "venues": [{"name": "v", "symbols": ["X"],
                                                "instruments": bad}]})


# -- the representability check -------------------------------------------------------
@pytest.mark.parametrize(("inst", "price", "cash", "field"), [
    (Instrument("hl", "ADABTC", tick=0.01), 0.0001, 1e4, "tick_size"),
    (hyperliquid_instrument("hl", "ADABTC", 0), 5.33e-05, 1e4, "price_decimals"),
    (Instrument("v", "X", sig_figs=2), 12.3, 1e4, "sig_figs"),
    (Instrument("v", "X", lot=1.0), 20_000.0, 1e4, "lot_size"),
    (Instrument("v", "X", size_decimals=0), 20_000.0, 1e4, "size_decimals"),
    (Instrument("v", "X", min_size=3.0), 5_000.0, 1e4, "min_size"),
    (Instrument("v", "X", min_notional=10.0), 5.0, 9.0, "min_notional"),
])
def test_a_spec_that_cannot_represent_the_prices_names_venue_symbol_and_field(
        inst: Instrument, price: float, cash: float, field: str) -> None:
    problem = unrepresentable(inst, price, cash)
    assert problem is not None and "\n" not in problem
    assert problem.startswith(f"venues.{inst.venue}.instruments.{inst.symbol}.{field}: ")
    assert f"venue {inst.venue!r}" in problem and inst.symbol in problem


def test_just_representable_specs_pass() -> None:
    assert unrepresentable(Instrument("v", "X", tick=0.0099), 1.0, 1e4) is None
    assert unrepresentable(Instrument("v", "X", lot=1.0), 10_000.0, 1e4) is None
    assert unrepresentable(hyperliquid_instrument("hl", "X", 0, spot=True), 2e-6, 1e4) is None
    assert unrepresentable(hyperliquid_instrument("hl", "X", 0, spot=True), 1e-6, 1e4)


# -- the fill band ----------------------------------------------------------------------
def test_the_band_allows_slippage_and_one_step_and_nothing_else() -> None:
    inst = Instrument("v", "X", tick=0.5)
    assert inst.band(True, 100.2, 0.001) == (100.2, pytest.approx(100.2 * 1.001 + 0.5))
    assert inst.band(False, 100.2, 0.001) == (pytest.approx(100.2 * 0.999 - 0.5), 100.2)
    inst.check_taker(1, True, 100.2, 0.0, 100.5)
    inst.check_taker(1, False, 100.2, 0.0, 100.0)
    for buy, price in [(True, 100.1), (True, 100.8), (False, 100.3), (False, 99.6),
                       (True, math.nan), (False, -1.0)]:
        with pytest.raises(FillOutsideBand, match=r"order 12 \((buy|sell) X on v\)"):
            inst.check_taker(12, buy, 100.2, 0.0, price)
    # slippage of 100% or more (e.g. square-root impact far past a bar's volume) would
    # sell at a negative price: inside the arithmetic band, still never a fill
    plain = Instrument("v", "X")
    with pytest.raises(FillOutsideBand, match=r"not positive: order 3 .* charged 1\.34"):
        plain.check_taker(3, False, 1.0, 1.34, plain.taker_price(False, 1.0, 1.34))


@pytest.mark.parametrize("inst", [
    Instrument("v", "X"), Instrument("v", "X", tick=0.5), Instrument("v", "X", sig_figs=5),
    Instrument("v", "X", price_decimals=2)], ids=["plain", "tick", "sig_figs", "decimals"])
@pytest.mark.parametrize("buy", [True, False])
def test_check_taker_accepts_exactly_the_band_on_every_grid(inst: Instrument,
                                                              buy: bool) -> None:
    """check_taker computes the band inline (no call to ``band``): the same edges."""
    reference, slip = 123.456, 0.002
    lo, hi = inst.band(buy, reference, slip)
    inst.check_taker(1, buy, reference, slip, lo)
    inst.check_taker(1, buy, reference, slip, hi)
    margin = (hi - lo) * 1e-3
    for price in (lo - margin, hi + margin):
        with pytest.raises(FillOutsideBand):
            inst.check_taker(1, buy, reference, slip, price)


@pytest.mark.parametrize(("rule", "routed"), [
    ({}, 0.123), ({"lot": 0.1}, 0.1), ({"size_decimals": 2}, 0.12),
    ({"min_size": 1.0}, None), ({"min_notional": 10.0}, None)])
def test_only_an_instrument_without_size_rules_skips_rounding_and_minimums(
        rule: dict[str, float], routed: float | None) -> None:
    inst = Instrument("v", "X", **rule)  # type: ignore[arg-type]
    assert inst.size_rules == bool(rule)
    router = VenueRouter([SimVenue("v", frozenset({"X"}), instruments={"X": inst})])
    leg = router.route(order(0.123, 50.0))  # 0.123 units, $6.15
    assert (None if leg is None else leg.order.quantity) == routed


def test_a_sell_below_one_tick_would_fill_above_the_market_and_is_stopped() -> None:
    """A fixed tick of 0.5 at a price of 0.2: the sell used to be lifted to 0.5."""
    venue = SimVenue("v", frozenset({"X"}), tick_size=0.5)
    with pytest.raises(FillOutsideBand, match=r"order 7 \(sell X on v\) at 0\.5 against"):
        venue.execute(order(-1.0, 0.2), 1, 0, 0.2, 1e9)
    assert venue.execute(order(-1.0, 100.2), 1, 0, 100.2, 1e9).price == 100.0


# -- routing with the rules ---------------------------------------------------------------
def test_router_rounds_to_the_symbols_lots_and_keeps_min_notional_except_reduce_only() -> None:
    hl = SimVenue("hl", frozenset({"BTC", "DOGE"}), instruments={
        "BTC": hyperliquid_instrument("hl", "BTC", 5),
        "DOGE": hyperliquid_instrument("hl", "DOGE", 0)})
    router = VenueRouter([hl])
    assert router.route(order(0.1234567, 100_000.0, "BTC")).order.quantity == 0.12345
    assert router.route(order(123.9, 0.1, "DOGE")).order.quantity == 123.0
    assert router.route(order(50.0, 0.1, "DOGE")) is None  # $5 < $10
    assert "minimum notional" in router.why_not("DOGE")
    assert router.route(order(-50.0, 0.1, "DOGE", reduce_only=True)) is not None


def test_a_rule_that_needs_a_price_resolves_at_the_first_order() -> None:
    seen = []

    def resolver(symbol: str, price: float) -> Instrument:
        seen.append((symbol, price))
        inst = resolve("hl", symbol, rule="hyperliquid", kind="perp", price=price)
        assert inst is not None
        return inst

    hl = SimVenue("hl", frozenset({"ETH"}), resolver=resolver)
    router = VenueRouter([hl])
    assert "ETH" not in hl.instruments
    assert router.route(order(1.234567, 3_000.0, "ETH")).order.quantity == 1.2345
    router.route(order(1.0, 3_100.0, "ETH"))
    assert seen == [("ETH", 3_000.0)] and hl.instruments["ETH"].size_decimals == 4


def test_instrument_leverage_caps_the_venues() -> None:
    perp = SimVenue("p", frozenset({"X", "Y"}), kind="perp", max_leverage=10.0, instruments={
        "X": Instrument("p", "X", max_leverage=3.0)})
    assert perp.leverage == {"X": 3.0, "Y": 10.0}


# -- one implementation of the rules for sim and live -------------------------------------
@given(sz_decimals=st.integers(0, 6), spot=st.booleans(),
       px=st.floats(1e-8, 1e6), mode=st.sampled_from(["nearest", "down", "up"]))
def test_the_wire_and_the_simulation_round_alike(sz_decimals: int, spot: bool, px: float,
                                                 mode: str) -> None:
    asset = AssetInfo("X", 0, sz_decimals=sz_decimals, max_leverage=10, spot=spot)
    inst = asset.instrument("hl", "X")
    assert inst.round_price(px, mode) == round_price(px, asset, mode)  # type: ignore[arg-type]
    assert inst.round_size(px) == round_size(px, asset)
    assert inst.min_notional == 10.0 and inst.max_leverage == 10.0


@given(sz_decimals=st.integers(0, 8), spot=st.booleans(),
       price=st.floats(1e-8, 1e6), slip=st.sampled_from([0.0, 1e-4, 0.003, 0.05]),
       buy=st.booleans())
def test_taker_prices_are_on_the_grid_and_inside_the_band(sz_decimals: int, spot: bool,
                                                          price: float, slip: float,
                                                          buy: bool) -> None:
    inst = hyperliquid_instrument("hl", "X", min(sz_decimals, 8 if spot else 6), spot=spot)
    fill = inst.taker_price(buy, price, slip)
    lo, hi = inst.band(buy, price, slip)
    if not buy and fill > price:  # the price is below one step: never a fill above it
        with pytest.raises(FillOutsideBand):
            inst.check_taker(1, buy, price, slip, fill)
        assert unrepresentable(inst, price, 1e12) is not None
        return
    inst.check_taker(1, buy, price, slip, fill)
    assert lo * (1 - 1e-9) <= fill <= hi * (1 + 1e-9)
    assert price_error(repr(fill), AssetInfo("X", 0, inst.size_decimals or 0, 1,
                                             spot=spot)) is None


def test_without_a_first_price_the_venue_resolves_and_checks_at_the_first_order() -> None:
    """A live session builds the engine before any bar: a rule that needs the price is
    resolved from the first order's, and refused there if it cannot represent it."""
    from sim.runner import venue_instruments

    cfg = parse_scenario({"name": "t", "agents": [{"name": "a", "kind": "sma_crossover"}],
                          "venues": [{"name": "hl", "symbols": ["ADABTC", "BTC"],
                                      "preset": "hyperliquid", "kind": "perp",
                                      "max_leverage": 2.0,
                                      "instruments": {"BTC": {"size_decimals": 5}}}]})
    built, resolver = venue_instruments(cfg.venues[0], {}, 10_000.0)
    assert set(built) == {"BTC"} and resolver is not None  # BTC needs no price
    assert resolver("ADABTC", 0.5).size_decimals == 0
    with pytest.raises(ConfigError, match=r"^venues\.hl\.instruments\.ADABTC\.price_decimals"):
        resolver("ADABTC", 5.33e-05)
    built, resolver = venue_instruments(cfg.venues[0], {"ADABTC": 0.5, "BTC": 9e4}, 1e4)
    assert set(built) == {"ADABTC", "BTC"} and resolver is None
