"""What a venue books into a farm run outside any farm's order (``sim.farm_desk``, live:
``live.farms``) keeps the account the sum of its ledgers, at any scale: funding split by
the positions held (the parts add up exactly; each is its position's share within the
ledger tolerance), and a reconciliation adjustment booked to the farm that owes it or
to no farm."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from live.runner import LiveRunner
from sim.config import parse_scenario
from sim.farm_desk import FarmDesk
from sim.farm_engine import FarmEngine
from sim.farms import LEDGER_TOLERANCE, check_ledgers
from sim.messages import OrderFilled
from sim.portfolio import Portfolio
from sim.store import DuckDBStore
from tests.unit.test_farm_live_desk import RAW

ETH = 1
scales = st.sampled_from([1e-6, 1e-2, 1.0, 1e3, 1e6])
positions = st.lists(st.integers(-50, 50), min_size=2, max_size=2)


@pytest.fixture(scope="module")
def engine() -> FarmEngine:
    with DuckDBStore(":memory:") as store:
        engine = LiveRunner(parse_scenario(RAW), store).engine
    assert isinstance(engine, FarmEngine)
    return engine


def _reset(engine: FarmEngine) -> None:
    desk: FarmDesk = engine.desk  # type: ignore[assignment]
    ledgers = [engine.portfolio, desk.unattributed, *(f.ledger for f in engine.farms)]
    for ledger, cash in zip(ledgers, [10_000.0, 0.0, *(f.capital for f in engine.farms)],
                            strict=True):
        fresh = Portfolio(engine.symbols, cash)
        for name in ("cash", "qty", "avg_price", "realized", "_held", "fees_paid",
                     "funding_total", "realized_total", "cost_basis"):
            setattr(ledger, name, getattr(fresh, name))


@settings(max_examples=60, deadline=None)
@given(held=positions, scale=scales, payment=st.integers(-1000, 1000),
       adjust=st.integers(-20, 20))
@example(held=[1, -3], scale=1e-6, payment=1, adjust=2)  # nets to a float residue: flat
def test_venue_bookings_keep_the_account_the_sum_of_its_ledgers(
        engine: FarmEngine, held: list[int], scale: float, payment: int, adjust: int) -> None:
    _reset(engine)
    desk: FarmDesk = engine.desk  # type: ignore[assignment]
    price = 50.0 / scale
    for farm, units in zip(engine.farms, held, strict=True):
        if units:
            fill = OrderFilled(1, 1, 1, "ETH", "v", units * scale, price, 0.0, price, "t")
            engine.portfolio.apply(ETH, fill)
            farm.ledger.apply(ETH, fill)
    if adjust:  # two farms trade ETH: no farm owes it
        desk.adjust(ETH, 2, adjust * scale, price, "reconciliation")
    paid = payment * scale * 1e-3
    desk.book_funding(ETH, 3, engine.portfolio.qty[ETH], price, 1e-4, paid, "v")
    check_ledgers(engine.portfolio, engine.farms, engine.reserve, 3, desk.unattributed)
    parts = [f.ledger.funding_total for f in engine.farms] + [desk.unattributed.funding_total]
    assert math.fsum(parts) == pytest.approx(paid, rel=LEDGER_TOLERANCE, abs=1e-12)
    total = engine.portfolio.qty[ETH]
    holders = [*(f.ledger for f in engine.farms), desk.unattributed]
    flat = abs(total) <= LEDGER_TOLERANCE * math.fsum(abs(h.qty[ETH]) for h in holders)
    for ledger in holders:
        share = paid * ledger.qty[ETH] / total if not flat else (
            paid if ledger is desk.unattributed else 0.0)
        assert ledger.funding_total == pytest.approx(share, rel=1e-9, abs=1e-9 * abs(paid))
