"""SIGKILL of a session trading two accounts, with orders working on both, then resume.

``quorum live --venues`` runs in a child process against the fake Hyperliquid and the
fake Ostium, which live in this test's process and so survive it. The router splits each
order (Hyperliquid takes up to its ``max_order_notional``, Ostium the rest). Then
Hyperliquid is slowed (an order is in flight, its reply lost with the child) and Ostium's
keeper holds its orders (a leg rests there, pending): the child is killed. Both orders
land meanwhile. A second child resumes the run by itself: the Hyperliquid leg is settled
by its cloid, the Ostium leg (whose venue knows no cloid, and whose adapter's memory died
with the child) by the venue id the first child stored. Every order ends definite, each
fill of each venue is booked once, and each venue's position in the store is its fake's.

Long only: an Ostium order that reverses a position becomes two keeper orders (a close,
then an open), and after a restart only the first is found by the stored id (the rest's
fill is the venue's position, adjusted by reconciliation): not what this test checks.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from live.hyperliquid.stream import candle
from live.journal import journal_rows
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.fakes.ostium import FakeOstium
from tests.integration.hyperliquid.conftest import (
    KEY,
    fake,  # noqa: F401 - the fixture
)
from tests.integration.two_venues import OST_ACCOUNT, each_once_and_equal, start_ostium

ROOT = Path(__file__).resolve().parents[2]
MIN_MS = 60_000

SCENARIO = """
name = "sigkill-two"
seed = 1
initial_cash = 10000.0
[[data]]
kind = "gbm"
symbol = "ETH"
bars = 50
interval = "1m"
price = 2000.0
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 2, slow = 3 }
[policy]
exposure = 0.5
allow_short = false
[[venues]]
name = "hl"
symbols = ["ETH"]
fee_bps = 4.5
max_order_notional = 1500.0
[[venues]]
name = "ost"
preset = "ostium"
symbols = ["ETH"]
[router]
policy = "split"
[live]
warmup_bars = 4
reconcile_every = "1s"
capital = 10000.0
[live.venues.hl]
kind = "hyperliquid"
testnet = true
[live.venues.ost]
kind = "ostium"
testnet = true
"""


def price(k: int) -> float:
    """A zigzag the fast/slow crossover trades on every few bars."""
    return round(2000.0 + 40.0 * math.sin(k / 1.5), 1)


class Market:
    """Pushes a Hyperliquid candle every ``pace`` seconds (closing the one before), both
    venues priced at it; nothing while ``pushing`` is clear."""

    def __init__(self, hl: FakeHyperliquid, ost: FakeOstium, start_ms: int,
                 pace: float = 0.15) -> None:
        self.hl, self.ost, self.next_ms, self.k, self.pace = hl, ost, start_ms, 0, pace
        self.pushing = threading.Event()
        self.pushing.set()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.hl.subscribed(candle("ETH", "1m")) and self.pushing.is_set():
                p = price(self.k)
                self.hl.quote("ETH", p - 0.1, p + 0.1)
                self.ost.set_price("ETH", p)
                self.hl.push_bar("ETH", "1m", MIN_MS, self.next_ms, p, p + 1, p - 1, p, 10.0)
                self.next_ms += MIN_MS
                self.k += 1
            time.sleep(self.pace)


def child(db: Path, scenario: Path, hl: FakeHyperliquid, ost: FakeOstium,
          *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUORUM_HL_URL": hl.base_url,
           "QUORUM_HL_SECRET_KEY": KEY, "QUORUM_OSTIUM_URL": ost.base_url,
           "QUORUM_OSTIUM_SANDBOX_ACCOUNT": OST_ACCOUNT}
    return subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", "live", str(scenario), "--venues",
         "--db", str(db), "--override-gate", "sigkill test", *extra],
        cwd=db.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait(cond, what: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{what}: not seen; child output:\n{out}")
        time.sleep(0.01)


def executed(ost: FakeOstium) -> int:
    return sum(1 for o in ost.orders.values() if o.executed is not None)


def pending(ost: FakeOstium) -> int:
    return sum(1 for o in ost.orders.values() if o.pending and not o.cancelled)


@pytest.mark.slow
def test_sigkill_with_orders_working_on_both_venues_then_resume(
        fake: FakeHyperliquid, tmp_path) -> None:  # noqa: F811 - the fixture
    ost = start_ostium()
    scenario = tmp_path / "sigkill.toml"
    scenario.write_text(SCENARIO)
    db = tmp_path / "runs.duckdb"
    now_ms = time.time_ns() // 1_000_000
    minute = now_ms - now_ms % MIN_MS
    for k in range(6, 0, -1):  # closed history: the warm-up
        p = price(-k)
        fake.push_bar("ETH", "1m", MIN_MS, minute - k * MIN_MS, p, p + 1, p - 1, p, 10.0)
    market = Market(fake, ost, minute)
    first = child(db, scenario, fake, ost)
    try:
        market.thread.start()
        # an order filled on both venues first; then each venue keeps the next one
        wait(lambda: fake.requests["/exchange"] >= 1 and executed(ost) >= 1,
             "a first order on both venues", first)
        fake.faults.only_path = "/exchange"
        fake.faults.latency_s = 3.0
        ost.faults.keeper_hold = True
        sent = fake.requests["/exchange"]
        wait(lambda: fake.requests["/exchange"] > sent and pending(ost) >= 1,
             "orders working on both venues", first)
        market.pushing.clear()  # no new order: what works is what the kill leaves
        time.sleep(1.5)  # the Ostium leg's venue id reaches the store (commits: 1 s)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    time.sleep(3.3)  # the Hyperliquid order lands; its reply has nowhere to go
    fake.faults.latency_s = 0.0
    ost.faults.keeper_hold = False
    ost.run_keeper()  # the Ostium order executes, with no one listening
    assert pending(ost) == 0
    with DuckDBStore(db) as store:
        (run_id, status), = store.con.execute("SELECT run_id, status FROM runs").fetchall()
        ended = {c for (c,) in store.con.execute(
            "SELECT cloid FROM venue_orders WHERE status NOT IN ('sent', 'resting',"
            " 'unresolved')").fetchall()}
    journal = db.parent / f"{db.name}.journal" / f"{run_id}.orders.jsonl"
    open_legs = {row["venue"] for row in journal_rows(journal) if row["cloid"] not in ended}
    assert status == "running" and open_legs == {"hl", "ost"}, open_legs

    market.pushing.set()
    second = child(db, scenario, fake, ost, "--max-bars", "6")
    try:
        out, _ = second.communicate(timeout=90)
    finally:
        market.stop.set()
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, out
    assert f"RESUMING live run {run_id}" in out

    try:
        with DuckDBStore(db) as store:
            con = store.con
            assert con.execute("SELECT count(*), min(status) FROM runs").fetchone() == (
                1, "completed")
            (recovered,) = con.execute("SELECT recovered_orders FROM live_resumes WHERE"
                                       " run_id = ?", [run_id]).fetchone()
            assert recovered >= 2
            legs = con.execute("SELECT venue, status FROM venue_orders WHERE run_id = ?",
                               [run_id]).fetchall()
            assert {s for _, s in legs} <= {"filled", "cancelled", "expired", "rejected"}
            assert {v for v, s in legs if s == "filled"} == {"hl", "ost"}
            missing = con.execute(
                "SELECT v.order_id FROM venue_orders v ANTI JOIN orders o USING (run_id,"
                " order_id) WHERE v.run_id = ?", [run_id]).fetchall()
            assert missing == []
            each_once_and_equal(fake, ost, store, run_id)
            # each account agreed with its part of the ledger at every comparison: no
            # position or account alert, and the Ostium leg pending at the keeper was
            # open there (a fill of a leg the restart took back may reach a snapshot
            # before its lookup: booked there, once, "fill")
            kinds = {k for (k,) in con.execute("SELECT kind FROM reconciliations WHERE"
                                               " run_id = ?", [run_id]).fetchall()}
            assert kinds <= {"fill"}, kinds
            # neither venue's position needed an adjustment: every fill found its leg
            assert con.execute("SELECT count(*) FROM fills WHERE run_id = ? AND liquidity ="
                               " 'adjustment'", [run_id]).fetchone() == (0,)
        assert not journal.exists()
    finally:
        ost.stop()
