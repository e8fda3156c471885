"""The circuit breaker sees the same equity in a venue session as in the backtest of the
same bars (issue 15, §7).

Risk's drawdown peak and start-of-day equity follow the equity booked at every time step.
They were read from the recorder's buffers through a ``before_flush`` hook; a venue
session hands its rows to the store writer with ``take_batches()``, which skipped the
hook, so rows left before risk saw them: a peak between two orders was missed and the
day's start equity stayed the session's first. Now risk follows the ledger's equity book
(``sim.portfolio.EquityBook``), whoever drains it.

The session commits after every step here (``flush_every_s = 0``: every row is taken
before the next order is checked), and the bars cross midnight (a new day).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sim.messages import SubmitOrder
from sim.risk import Breach, RiskEngine
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .venue_session import SCENARIO, bars_of, drive, history, open_session, scenario


def spy_on_checks(monkeypatch) -> list[tuple[Any, ...]]:
    """What the breaker saw at every order check: (order time, peak, start-of-day
    equity, breaker)."""
    seen: list[tuple[Any, ...]] = []
    check = RiskEngine.first_breach

    def spy(self: RiskEngine, order: SubmitOrder, position: float,
            **kw: Any) -> Breach | None:
        breach = check(self, order, position, **kw)
        seen.append((order.ts, self.peak_equity, self.day_start_equity, self.breaker))
        return breach

    monkeypatch.setattr(RiskEngine, "first_breach", spy)
    return seen


@pytest.mark.parametrize("limits", [
    {"max_drawdown": 0.002},          # trips part-way: from then on only reductions
    {"daily_loss_limit": 0.5, "max_drawdown": 0.9},  # never trips: the view alone
])
def test_the_breakers_view_in_a_venue_session_is_the_backtests(
        fake: FakeHyperliquid, tmp_path, monkeypatch, limits) -> None:
    data = [{**SCENARIO["data"][0], "start": "2024-01-01T23:30:00Z"}]  # midnight at bar 30
    config = scenario(data=data, risk=limits)
    bars = bars_of(config)
    clock = history(fake, bars, 0)
    seen = spy_on_checks(monkeypatch)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=len(bars))
        session.runner.flush_every_s = 0.0  # every step's rows go to the writer at once
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        return await asyncio.wait_for(task, 60)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        sim = run_scenario(config, store)
        backtest = list(seen)
        seen.clear()
        live = asyncio.run(go(store))
        checks = [store.con.execute(
            "SELECT check_name, actual_value FROM risk_events WHERE run_id = ? ORDER BY"
            " order_id", [r]).fetchall() for r in (live.run_id, sim.run_id)]
    session = list(seen)
    assert len(backtest) >= 5 and len({b[2] for b in backtest}) >= 2  # a new day came
    assert [s[0] for s in session] == [b[0] for b in backtest]
    for got, want in zip(session, backtest, strict=True):
        assert got[1:3] == pytest.approx(want[1:3], rel=1e-9), (got, want)
        assert got[3] == want[3], (got, want)
    assert [c[0] for c in checks[0]] == [c[0] for c in checks[1]]
    assert [c[1] for c in checks[0]] == pytest.approx([c[1] for c in checks[1]], rel=1e-9)
    if "daily_loss_limit" not in limits:
        assert backtest[-1][3] == "max_drawdown"  # the case where it matters: it tripped
