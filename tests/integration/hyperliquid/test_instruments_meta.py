"""A session on Hyperliquid trades under the venue's own instrument rules (``meta``), not
the scenario's, and says where they differed before its first order."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sim.instruments import Instrument, hyperliquid_instrument
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .venue_session import bars_of, history, open_session, scenario


def _open(fake: FakeHyperliquid, tmp_path: Path, venue: dict[str, Any]
          ) -> tuple[tuple[str, ...], Instrument, int]:
    """Open a session (nothing driven): what it said, ETH's instrument, requests sent."""
    config = scenario(venues=[venue])
    bars = bars_of(config)
    clock = history(fake, bars, 5)

    async def go(store: DuckDBStore) -> tuple[tuple[str, ...], Instrument, int]:
        session = await open_session(fake, store, config, clock, tmp_path, max_bars=1)
        sent = fake.requests["/exchange"]  # nothing sent: the report comes first
        try:
            inst = session.runner.engine.router.venue("hl").instruments["ETH"]
            return session.instrument_changes, inst, sent
        finally:
            session.port.journal.close(remove=False)
            await session.venue.aclose()

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        return asyncio.run(go(store))


def test_meta_replaces_the_scenarios_instrument_and_the_difference_is_said(
        fake: FakeHyperliquid, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The scenario assumed a 0.5 tick and 0.01 lots for ETH; the fake lists ETH with
    szDecimals 4 and 25x leverage: 5 significant figures at most 2 decimals, 0.0001 lots,
    $10 minimum. Both are said, in one line, before anything is sent."""
    changes, inst, sent = _open(fake, tmp_path, {
        "name": "hl", "symbols": ["ETH"], "fee_bps": 4.5, "tick_size": 0.5, "lot_size": 0.01})
    assert inst == hyperliquid_instrument("hl", "ETH", 4, max_leverage=25.0,
                                          source="hyperliquid meta")
    assert len(changes) == 1 and sent == 0
    line = changes[0]
    assert line.startswith("hl ETH: the scenario's instrument differs from Hyperliquid's")
    for said in ("price grid tick 0.5 -> 5 significant figures, at most 2 decimals",
                 "lot 0.01 -> 0.0001", "min_notional 0 -> 10", "max_leverage none -> 25"):
        assert said in line
    err = capsys.readouterr().err
    assert f"quorum live: instruments: {line}\n" in err


def test_a_preset_rule_left_to_the_first_price_takes_the_venues_size_decimals(
        fake: FakeHyperliquid, tmp_path: Path) -> None:
    changes, inst, _ = _open(fake, tmp_path, {
        "name": "hl", "symbols": ["ETH"], "preset": "hyperliquid", "kind": "perp",
        "max_leverage": 5.0})
    assert inst.size_decimals == 4 and inst.price_decimals == 2 and inst.max_leverage == 25.0
    assert len(changes) == 1 and "the scenario's rule had left them to the first price" in (
        changes[0])


def test_a_scenario_that_matches_the_venue_says_nothing(fake: FakeHyperliquid,
                                                        tmp_path: Path) -> None:
    changes, inst, _ = _open(fake, tmp_path, {
        "name": "hl", "symbols": ["ETH"], "preset": "hyperliquid", "kind": "perp",
        "max_leverage": 5.0, "instruments": {"ETH": {"size_decimals": 4, "max_leverage": 25.0}}})
    assert changes == () and inst.size_decimals == 4
