"""Reading Ostium's wire (``live.ostium.wire``): the subgraph's fixed point, the price
service's list, the RPC's balance, and a reply of the wrong shape as one line naming what
was wrong (never a KeyError or a traceback from deep inside)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.ostium.wire import (
    LIMIT_OID_FLAG,
    OstiumWireError,
    balance_of_call,
    limit_oid,
    limit_ref,
    parse_balance,
    parse_limit,
    parse_order,
    parse_pairs,
    parse_prices,
    parse_trade,
)

COINS = {1: "ETH"}
PAIR = {"id": "1", "from": "ETH", "to": "USD"}


def trade_row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "index": "3", "collateral": str(200 * 10**6), "leverage": "1000",
        "openPrice": str(2000 * 10**18), "tradeNotional": str(10**18), "isBuy": False,
        "funding": "1500000", "rollover": "-0", "timestamp": "1700000000", "pair": PAIR}
    row.update(over)
    return row


def test_fixed_point_is_read_at_the_subgraph_scales() -> None:
    t = parse_trade(trade_row(), COINS)
    assert (t.coin, t.pair_id, t.index, t.is_long) == ("ETH", 1, 3, False)
    assert (t.collateral, t.leverage, t.open_price, t.units) == (200.0, 10.0, 2000.0, 1.0)
    assert (t.size, t.funding, t.time_ms) == (-1.0, 1.5, 1_700_000_000_000)
    # without tradeNotional: units from collateral x leverage / open price
    assert parse_trade(trade_row(tradeNotional=None), COINS).units == 1.0


def test_pairs_keep_usd_quotes_with_their_limits() -> None:
    pairs = parse_pairs({"pairs": [
        {"id": "0", "from": "BTC", "to": "USD", "maxLeverage": "15000",
         "fee": {"minLevPos": "1500000000"}},
        {"id": "13", "from": "NIK", "to": "JPY", "maxLeverage": "5000"},
        {"id": "2", "from": "EUR", "to": "USD"}]})
    assert sorted(pairs) == ["BTC", "EUR"]
    assert (pairs["BTC"].pair_id, pairs["BTC"].max_leverage, pairs["BTC"].min_notional) == (
        0, 150.0, 1500.0)
    assert (pairs["EUR"].max_leverage, pairs["EUR"].min_notional) == (None, None)


def test_prices_skip_other_quotes_and_say_a_closed_market() -> None:
    prices = parse_prices([
        {"from": "BTC", "to": "USD", "bid": 99.0, "mid": 100.0, "ask": 101.0,
         "isMarketOpen": True, "timestampSeconds": 1_700_000_000},
        {"from": "NIK", "to": "JPY", "mid": 1.0},
        {"from": "XAU", "to": "USD", "mid": 2400.0, "isMarketOpen": False}])
    assert sorted(prices) == ["BTC", "XAU"]
    assert (prices["BTC"].bid, prices["BTC"].ask, prices["BTC"].time_ms) == (
        99.0, 101.0, 1_700_000_000_000)
    assert prices["XAU"].open is False and prices["XAU"].bid == 2400.0


def test_an_order_reads_its_fees_and_direction() -> None:
    row = {"id": "77", "isBuy": True, "orderAction": "Close", "price": str(2100 * 10**18),
           "tradeNotional": str(5 * 10**17), "collateral": "100000000", "isPending": False,
           "isCancelled": False, "devFee": "100000", "vaultFee": "200000",
           "oracleFee": "100000", "fundingFee": "-250000", "rolloverFee": "50000",
           "initiatedAt": "10", "executedAt": "12", "limitID": None, "pair": PAIR}
    o = parse_order(row, COINS)
    assert (o.order_id, o.action, o.units, o.signed_units) == (77, "Close", 0.5, -0.5)
    assert o.fee == pytest.approx(0.4) and (o.funding, o.rollover) == (-0.25, 0.05)
    assert (o.initiated_ms, o.executed_ms, o.price) == (10_000, 12_000, 2100.0)
    pending = parse_order({**row, "isPending": True, "price": "0", "executedAt": None},
                          COINS)
    assert pending.pending and pending.price is None and pending.executed_ms is None


@pytest.mark.parametrize(("parse", "row", "message"), [
    (parse_trade, trade_row(collateral=None), "Ostium trade: missing 'collateral'"),
    (parse_trade, trade_row(leverage="ten"), "Ostium trade: leverage='ten' is not a number"),
    (parse_trade, trade_row(openPrice="0"), "Ostium trade: openPrice 0.0 is not positive"),
    (parse_trade, trade_row(pair=None), "Ostium trade: missing 'pair'"),
    (parse_trade, trade_row(pair={"from": "ETH"}), "Ostium trade: missing 'id'"),
    (parse_trade, "a string", "Ostium trade: expected an object, got str"),
    (parse_limit, {"id": "x", "pair": PAIR, "index": "0", "isBuy": True, "collateral": "1",
                   "leverage": "100"}, "Ostium limit: missing 'openPrice'"),
    (parse_order, {"id": "1", "pair": PAIR, "isBuy": True, "isPending": False,
                   "price": "0"}, "Ostium order 1: executed at price 0.0"),
])
def test_a_reply_of_the_wrong_shape_is_one_line(parse, row, message) -> None:
    with pytest.raises(OstiumWireError) as err:
        parse(row, COINS)
    assert str(err.value) == message


@pytest.mark.parametrize(("reply", "message"), [
    ({"data": []}, "Ostium subgraph: the reply has no 'pairs' list"),
    ({"pairs": [{"id": "1", "to": "USD"}]}, "Ostium pair: missing 'from'"),
])
def test_pairs_of_the_wrong_shape(reply, message) -> None:
    with pytest.raises(OstiumWireError, match=f"^{message}$"):
        parse_pairs(reply)


def test_prices_of_the_wrong_shape() -> None:
    with pytest.raises(OstiumWireError, match="expected a list of prices, got dict"):
        parse_prices({"error": "down"})
    with pytest.raises(OstiumWireError, match=r"^Ostium price ETH: mid=-1.0 is not a positive"):
        parse_prices([{"from": "ETH", "to": "USD", "mid": -1}])


def test_the_usdc_balance_call() -> None:
    call = balance_of_call("0xUSDC", "0x" + "AB" * 20)
    assert call == {"to": "0xUSDC", "data": "0x70a08231" + "0" * 24 + "ab" * 20}
    assert parse_balance(hex(1_234_567_890)) == 1234.56789
    for bad in (None, "12", "0xzz"):
        with pytest.raises(OstiumWireError, match="balanceOf returned"):
            parse_balance(bad)
    with pytest.raises(OstiumWireError, match="not an address"):
        balance_of_call("0xUSDC", "0x12")


@given(st.integers(0, 2**16 - 1), st.integers(0, 2**16 - 1), st.integers(0, 2**48 - 1))
def test_a_limit_id_converts_both_ways_and_never_names_a_keeper_order(
        pair_id: int, index: int, order_id: int) -> None:
    oid = limit_oid(pair_id, index)
    assert limit_ref(oid) == (pair_id, index) and oid & LIMIT_OID_FLAG
    assert limit_ref(order_id) is None
