"""Farms in a venue session, SIGKILL and resume (``live.farms``): two farms trade ETH on
one account of the fake Hyperliquid; farm ``capped`` may lose 1 USDC a day (its fees
alone do that), farm ``free`` has no limit. The first process runs until ``capped``'s
daily-loss breaker has tripped and denied an order, and is killed. The resumed process
restores each farm's ledger and risk state: ``capped`` is still stopped (its opening
orders denied by its breaker, which is not written again), ``free`` trades on, every
venue fill is booked once, to the farm whose order it was, and the farms' positions add
up to the venue's."""

from __future__ import annotations

import json
import signal
import time

import pytest

from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .test_sigkill_recovery import MIN_MS, Exchange, child, midday_timezone, price, resume, wait
from .venue_session import ACCOUNT, venue_once_each

SCENARIO = """
name = "farms-sigkill"
seed = 1
initial_cash = 10000.0
[[data]]
kind = "gbm"
symbol = "ETH"
bars = 50
interval = "1m"
price = 2000.0
[[agents]]
name = "quick"
kind = "sma_crossover"
params = { fast = 2, slow = 3 }
[[agents]]
name = "steady"
kind = "sma_crossover"
params = { fast = 2, slow = 4 }
[policy]
exposure = 0.5
allow_short = true
[[venues]]
name = "hl"
symbols = ["ETH"]
fee_bps = 4.5
[[farms]]
name = "capped"
agents = ["quick"]
share = 0.5
risk = { daily_loss = 1.0, timezone = "TZ" }
[[farms]]
name = "free"
agents = ["steady"]
share = 0.5
[live]
warmup_bars = 4
reconcile_every = "1s"
"""

TRIPPED = "denied by farm.circuit_breaker"


@pytest.mark.slow
def test_a_farm_stopped_by_its_daily_loss_stays_stopped_after_a_sigkill(
        fake: FakeHyperliquid, tmp_path) -> None:
    scenario = tmp_path / "farms.toml"
    scenario.write_text(SCENARIO.replace("TZ", midday_timezone()))
    db = tmp_path / "runs.duckdb"
    logs = tmp_path / "runs.duckdb.logs"
    now_ms = time.time_ns() // 1_000_000
    minute = now_ms - now_ms % MIN_MS
    for k in range(6, 0, -1):  # closed history: the warm-up
        p = price(-k)
        fake.push_bar("ETH", "1m", MIN_MS, minute - k * MIN_MS, p, p + 1, p - 1, p, 10.0)
    exchange = Exchange(fake, minute)

    def tripped() -> bool:  # the session's log has the breaker's first denial
        return any(TRIPPED in f.read_text() for f in logs.glob("*.jsonl"))

    first = child(db, scenario, fake)
    try:
        exchange.thread.start()
        wait(tripped, "farm capped's breaker", first, timeout=60)
        time.sleep(0.3)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    with DuckDBStore(db) as store:
        (run_id,) = store.con.execute("SELECT run_id FROM runs").fetchone()
        trips = store.con.execute("SELECT farm, name FROM live_risk_trips WHERE run_id = ?",
                                  [run_id]).fetchall()
        first_ids = _last_order_id(store, db, run_id)
    assert trips == [("capped", "daily_loss")], trips

    # 24 bars: the zigzag turns capped short again (an opening its breaker denies) at least
    # twice after the restart, wherever in its ~9-bar cycle the kill came
    resume(db, scenario, fake, exchange, run_id, max_bars=24, timeout=90)

    # The resumed process's orders are those numbered after every order the killed one
    # made (stored, or only journaled as it died: the resumed one stores those under
    # their ids and numbers its own after them). Not by time: this fake's candles run
    # ~400x faster than the wall clock, so the killed process's bars were already
    # minutes past the moment of the restart.
    with DuckDBStore(db) as store:
        con = store.con
        after = con.execute(
            "SELECT farm, status, count(*) FROM orders_by_farm WHERE run_id = ? AND"
            " order_id > ? AND role = 'entry' GROUP BY ALL", [run_id, first_ids]
        ).fetchall()
        denied = con.execute(
            "SELECT count(*) FROM risk_events_by_farm WHERE run_id = ? AND farm = 'capped'"
            " AND check_name = 'farm.circuit_breaker' AND order_id > ?",
            [run_id, first_ids]).fetchone()[0]
        # no bar is taken twice: the killed process's stored bars (minutes ahead of the
        # restart here) are the resumed one's warm-up, not live bars to act on again
        assert con.execute("SELECT symbol, ts, count(*) FROM bars WHERE run_id = ?"
                           " GROUP BY ALL HAVING count(*) > 1", [run_id]).fetchall() == []
        # the breaker was restored, not tripped again: still its one row
        assert con.execute("SELECT count(*) FROM live_risk_trips WHERE run_id = ? AND"
                           " farm IS NOT NULL", [run_id]).fetchone() == (1,)
        # every fill booked once, to a farm; the farms' positions are the venue's
        venue_once_each(fake, store, run_id)
        by_farm = dict(con.execute(
            "SELECT coalesce(farm, '?'), sum(quantity) FROM fills_by_farm WHERE run_id = ?"
            " GROUP BY ALL", [run_id]).fetchall())
    assert "?" not in by_farm, by_farm
    assert sum(by_farm.values()) == pytest.approx(fake.position(ACCOUNT, "ETH"), abs=1e-9)
    sent_after = {(farm, status): n for farm, status, n in after}
    assert denied >= 1, after
    assert sent_after.get(("free", "filled"), 0) >= 1, after  # the other farm trades on
    # capped sends nothing that opens after the restart (a reduction may pass)
    opened = [(f, s) for f, s in sent_after if f == "capped" and s == "filled"]
    assert not opened or _reduces(db, run_id, first_ids), after


def _last_order_id(store: DuckDBStore, db, run_id: str) -> int:
    """The highest order id the killed process made: in the store, or in its journal only
    (its last orders, sent as it died; the restart copies them into the store)."""
    ids = [store.con.execute("SELECT coalesce(max(order_id), 0) FROM orders WHERE run_id = ?",
                             [run_id]).fetchone()[0]]
    for journal in (db.parent / f"{db.name}.journal").glob(f"{run_id}*.jsonl"):
        lines = journal.read_text().splitlines()
        if lines and "order_id" in (columns := json.loads(lines[0])):
            at = columns.index("order_id")
            ids += [json.loads(line)[at] for line in lines[1:] if line.endswith("]")]
    return max(ids)


def _reduces(db, run_id: str, after_id: int) -> bool:
    """Every filled order of capped numbered after ``after_id`` took its position toward
    zero."""
    with DuckDBStore(db) as store:
        rows = store.con.execute(
            "SELECT order_id, filled_quantity FROM orders_by_farm WHERE run_id = ? AND"
            " farm = 'capped' AND status = 'filled' ORDER BY order_id", [run_id]).fetchall()
    held = 0.0
    for order_id, qty in rows:
        if order_id > after_id and abs(held + qty) > abs(held) + 1e-12:
            return False
        held += qty
    return True
