"""Tool feedback in a venue session (issue 16 §7): the venue client's requests feed the
venue's health. The fake exchange answers every HTTP request slowly; the watched
session's monitor sees the p99 of the venue's calls past ``[monitor] tool_p99_ms``, and
measures each order's latency from when it was sent (its bar's close), not its bar's
open."""

from __future__ import annotations

import asyncio

from reports.observe import tool_feedback
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .venue_session import bars_of, drive, history, open_session, scenario


def test_slow_venue_requests_degrade_the_venue(fake: FakeHyperliquid, tmp_path) -> None:
    config = scenario(monitor={"tool_min_calls": 3, "tool_window": 5, "tool_p99_ms": 50.0})
    bars = bars_of(config)[:16]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore):
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        fake.faults.latency_s = 0.12  # every request from now on
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        return await asyncio.wait_for(task, 60)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = asyncio.run(go(store))
        health = store.con.execute(
            "SELECT state, reason FROM health WHERE run_id = ? AND component = 'venue:hl'"
            " ORDER BY seq", [result.run_id]).fetchall()
        alerts = store.con.execute(
            "SELECT severity, message FROM alerts WHERE run_id = ? AND kind ="
            " 'tool_degraded'", [result.run_id]).fetchall()
        spikes = store.con.execute(
            "SELECT count(*) FROM alerts WHERE run_id = ? AND kind = 'latency_spike'",
            [result.run_id]).fetchone()[0]
        orders = store.con.execute("SELECT count(*) FROM venue_orders WHERE run_id = ?",
                                   [result.run_id]).fetchone()[0]
        tools = {t["tool"]: t for t in tool_feedback(store.con, result.run_id)}
    # an order's latency counts from its bar's close, when the session sends it: 1-minute
    # bars are no 60 s latency spikes (each order here took about 0.12 s)
    assert orders and spikes == 0
    # and `quorum show --tools` reads the venue's latency the same way (the session's
    # clock here is the test's, which moves in steps: well under a second, not 60 s)
    assert 0.0 <= tools["venue:hl"]["p50_ms"] < 1_000.0, tools
    assert health and health[0][0] == "degraded"
    assert health[0][1].startswith("tool: venue:hl: p99 latency ")
    assert alerts and alerts[0][0] == "warning" and "above 50 ms" in alerts[0][1]
