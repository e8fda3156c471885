"""What a venue tells a farm run's desk (``sim.farm_desk``, used live by ``live.farms``):
a reconciliation adjustment is booked to the one farm trading the symbol, else to no
farm, and the alert says which; a funding payment is split among the ledgers holding the
position, in proportion, adding up exactly; the account stays the sum either way."""

from __future__ import annotations

from typing import Any

import pytest

from live.runner import LiveRunner
from sim.config import ConfigError, parse_scenario
from sim.farm_desk import FarmDesk
from sim.farm_engine import FarmEngine
from sim.farms import LedgerMismatch, check_ledgers
from sim.messages import OrderFilled
from sim.store import DuckDBStore

RAW: dict[str, Any] = {
    "name": "farm-desk", "seed": 1, "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "BTC", "bars": 10, "interval": "1m"},
             {"kind": "gbm", "symbol": "ETH", "bars": 10, "interval": "1m"}],
    "agents": [{"name": "b", "kind": "sma_crossover", "symbols": ["BTC"]},
               {"name": "e1", "kind": "sma_crossover", "symbols": ["ETH"]},
               {"name": "e2", "kind": "sma_crossover", "symbols": ["ETH"]}],
    "venues": [{"name": "v", "symbols": ["BTC", "ETH"]}],
    "farms": [{"name": "solo", "agents": ["b", "e1"], "capital": 6_000.0},
              {"name": "other", "agents": ["e2"], "capital": 3_000.0}],
}
BTC, ETH = 0, 1


@pytest.fixture
def engine() -> FarmEngine:
    with DuckDBStore(":memory:") as store:
        runner = LiveRunner(parse_scenario(RAW), store)
        assert isinstance(runner.engine, FarmEngine)
        return runner.engine


def _check(engine: FarmEngine) -> None:
    desk: FarmDesk = engine.desk  # type: ignore[assignment]
    check_ledgers(engine.portfolio, engine.farms, engine.reserve, 0, desk.unattributed)


def test_an_adjustment_goes_to_the_one_farm_trading_the_symbol_else_to_none(engine) -> None:
    desk: FarmDesk = engine.desk  # type: ignore[assignment]
    solo, other = engine.farms
    assert desk.holders(BTC) == "farm solo (the one farm trading BTC)"
    assert desk.holders(ETH) == ("no farm (farms solo +0, other +0 trade ETH: cannot tell "
                                 "whose ledger disagrees)")
    btc = desk.adjust(BTC, 1, 0.5, 100.0, "reconciliation")
    eth = desk.adjust(ETH, 1, -2.0, 50.0, "reconciliation")
    assert desk.farm_name(btc) == "solo" and desk.farm_name(eth) is None
    assert solo.ledger.qty == [0.5, 0.0] and other.ledger.qty == [0.0, 0.0]
    assert desk.unattributed.qty == [0.0, -2.0]
    assert solo.ledger.cash == pytest.approx(6_000.0 - 50.0)
    assert desk.unattributed.cash == pytest.approx(100.0)
    _check(engine)  # the account is the farms' sum plus what no farm owes
    desk.unattributed.qty[ETH] = 0.0  # without it, the sum is off: the check names it
    with pytest.raises(LedgerMismatch, match="position 1"):
        _check(engine)


def test_funding_is_split_by_the_positions_held_and_adds_up(engine) -> None:
    desk: FarmDesk = engine.desk  # type: ignore[assignment]
    solo, other = engine.farms
    for farm, qty in ((solo, 3.0), (other, -1.0)):  # netted: the account holds 2
        fill = OrderFilled(1, 1, 1, "ETH", "v", qty, 50.0, 0.0, 50.0, "taker")
        engine.portfolio.apply(ETH, fill)
        farm.ledger.apply(ETH, fill)
    desk.book_funding(ETH, 2, 2.0, 50.0, 0.001, -0.1, "v")  # the account pays 0.1
    assert solo.ledger.funding_total == pytest.approx(-0.15)
    assert other.ledger.funding_total == pytest.approx(0.05)
    assert solo.ledger.funding_total + other.ledger.funding_total == -0.1
    _check(engine)


def test_an_allocator_is_refused_in_a_session_in_one_line() -> None:
    raw = {**RAW, "allocator": {"method": "equal", "every": "1d"}}
    with DuckDBStore(":memory:") as store, pytest.raises(ConfigError, match=(
            "allocator: re-allocating capital between farms is not supported in paper and"
            " live sessions yet")):
        LiveRunner(parse_scenario(raw), store)
