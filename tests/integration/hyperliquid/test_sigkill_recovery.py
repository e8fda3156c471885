"""SIGKILL mid-session and restart: ``quorum live --venue hyperliquid`` runs in a child
process against the fake exchange, which lives in this test's process and so survives the
child. The exchange is slowed down so that an order is in flight when the child is
killed (it lands after the child died: its reply is lost for good). A second child
resumes the run (automatically: the last live run of the scenario is still marked
running) and continues. Then: every order at the venue was run once (one per cloid, all
known to the store), every venue fill is booked exactly once, the store's position equals
the venue's, and every order of the run ended in a definite state."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from live.hyperliquid.stream import candle
from live.journal import absorb, journal_dir, journal_rows
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import KEY
from .venue_session import ACCOUNT, venue_once_each

ROOT = Path(__file__).resolve().parents[3]
MIN_MS = 60_000

SCENARIO = """
name = "sigkill"
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
allow_short = true
[[venues]]
name = "hl"
symbols = ["ETH"]
fee_bps = 4.5
[live]
warmup_bars = 4
reconcile_every = "1s"
"""


def price(k: int) -> float:
    """A zigzag the fast/slow crossover trades on every few bars."""
    return round(2000.0 + 40.0 * math.sin(k / 1.5), 1)


class Exchange:
    """Pushes a candle every ``pace`` seconds, from the current minute on, with the book
    quoted around it; each push closes the candle before. While ``gate()`` is false,
    nothing is pushed."""

    def __init__(self, fake: FakeHyperliquid, start_ms: int, pace: float = 0.15,
                 gate: Callable[[], bool] = lambda: True) -> None:
        self.fake = fake
        self.next_ms = start_ms
        self.k = 0
        self.pace = pace
        self.gate = gate
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def push_one(self) -> None:
        p = price(self.k)
        self.fake.quote("ETH", p - 0.1, p + 0.1)
        self.fake.push_bar("ETH", "1m", MIN_MS, self.next_ms, p, p + 1, p - 1, p, 10.0)
        self.next_ms += MIN_MS
        self.k += 1

    def _run(self) -> None:
        while not self.stop.is_set():
            if self.fake.subscribed(candle("ETH", "1m")) and self.gate():
                self.push_one()
            time.sleep(self.pace)


def child(db: Path, scenario: Path, fake: FakeHyperliquid, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUORUM_HL_URL": fake.base_url,
           "QUORUM_HL_SECRET_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", "live", str(scenario), "--venue", "hyperliquid",
         "--testnet", "--db", str(db), "--override-gate", "sigkill test", *extra],
        cwd=db.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait(cond, what: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"{what}: not seen; child output:\n{out}")
        time.sleep(0.01)


def resume(db: Path, scenario: Path, fake: FakeHyperliquid, exchange: Exchange, run_id: str,
           *, max_bars: int, timeout: float) -> None:
    """Start the process again; it resumes ``run_id`` by itself and ends normally."""
    second = child(db, scenario, fake, "--max-bars", str(max_bars))
    try:
        out, _ = second.communicate(timeout=timeout)
    finally:
        exchange.stop.set()
        if second.poll() is None:
            second.kill()
    assert second.returncode == 0, out
    assert f"RESUMING live run {run_id}" in out


@pytest.mark.slow
def test_sigkill_with_an_order_in_flight_then_resume(fake: FakeHyperliquid, tmp_path) -> None:
    scenario = tmp_path / "sigkill.toml"
    scenario.write_text(SCENARIO)
    db = tmp_path / "runs.duckdb"
    now_ms = time.time_ns() // 1_000_000
    minute = now_ms - now_ms % MIN_MS
    for k in range(6, 0, -1):  # closed history: the warm-up
        p = price(-k)
        fake.push_bar("ETH", "1m", MIN_MS, minute - k * MIN_MS, p, p + 1, p - 1, p, 10.0)
    exchange = Exchange(fake, minute)

    first = child(db, scenario, fake)
    try:
        exchange.thread.start()
        # let one order complete, then slow the exchange and kill with the next in flight
        wait(lambda: fake.requests["/exchange"] >= 1, "a first order", first)
        fake.faults.only_path = "/exchange"
        fake.faults.latency_s = 1.0
        sent = fake.requests["/exchange"]
        wait(lambda: fake.requests["/exchange"] > sent, "an order in flight", first)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    time.sleep(1.3)  # the order in flight lands at the venue; its reply has nowhere to go
    fake.faults.latency_s = 0.0
    with DuckDBStore(db) as store:
        (run_id, status), = store.con.execute("SELECT run_id, status FROM runs").fetchall()
        ended = {c for (c,) in store.con.execute(
            "SELECT cloid FROM venue_orders WHERE status NOT IN ('sent', 'resting',"
            " 'unresolved')").fetchall()}
    # the write-ahead row of the order in flight is the journal's last (its commit to the
    # table had not come yet); its outcome is unknown to the store. An earlier order's
    # outcome may be uncommitted too (commits come at most every second): its leg is
    # open in the store as well, and the restart settles it by cloid alike.
    journal = db.parent / f"{db.name}.journal" / f"{run_id}.orders.jsonl"
    journalled = journal_rows(journal)
    open_legs = [row["cloid"] for row in journalled if row["cloid"] not in ended]
    killed_cloid = journalled[-1]["cloid"]
    assert status == "running" and killed_cloid in open_legs, (journalled, ended)
    assert any(o.cloid == killed_cloid for o in fake.user_orders(ACCOUNT))  # it landed

    resume(db, scenario, fake, exchange, run_id, max_bars=6, timeout=60)

    with DuckDBStore(db) as store:
        con = store.con
        assert con.execute("SELECT count(*), min(status) FROM runs").fetchone() == (
            1, "completed")
        assert con.execute("SELECT count(*), min(recovered_orders) >= 1 FROM live_resumes"
                           " WHERE run_id = ?", [run_id]).fetchone() == (1, True)
        # no bar taken twice (the resumed session's warm-up holds every stored one)
        assert con.execute("SELECT symbol, ts, count(*) FROM bars WHERE run_id = ?"
                           " GROUP BY ALL HAVING count(*) > 1", [run_id]).fetchall() == []
        # the order killed in flight landed at the venue, and was settled by its cloid
        killed = con.execute(
            "SELECT v.status, o.status, o.filled_quantity FROM venue_orders v JOIN orders o"
            " USING (run_id, order_id) WHERE v.cloid = ?", [killed_cloid]).fetchone()
        assert killed[0] == killed[1] and killed[0] in ("filled", "expired"), killed
        assert killed[2] != 0.0
        # every order sent ended in a definite state, and each once
        legs = con.execute("SELECT status, count(*) FROM venue_orders GROUP BY ALL").fetchall()
        assert {s for s, _ in legs} <= {"filled", "cancelled", "expired", "rejected"}, legs
        orders = con.execute("SELECT order_id, count(*) FROM orders WHERE run_id = ?"
                             " GROUP BY ALL HAVING count(*) > 1", [run_id]).fetchall()
        assert orders == []
        missing = con.execute(
            "SELECT v.order_id FROM venue_orders v ANTI JOIN orders o USING (run_id, order_id)"
            " WHERE v.run_id = ?", [run_id]).fetchall()
        assert missing == []
        filled = con.execute("SELECT count(*) FROM venue_orders WHERE status = 'filled'"
                             ).fetchone()[0]
        assert filled >= 2
        venue_once_each(fake, store, run_id)
    assert fake.position(ACCOUNT, "ETH") is not None
    assert not journal.exists()  # the run completed: every journalled row is in the store


def midday_timezone() -> str:
    """A fixed-offset zone where it is about noon now: the risk day cannot end during the
    test, whatever the hour it runs at."""
    offset = 12 - time.gmtime().tm_hour  # Etc/GMT-N is UTC+N
    return "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"


def orders_at(fake: FakeHyperliquid) -> int:
    return sum(len(a["orders"]) for user, a in list(fake.actions_run)
               if user == ACCOUNT.lower() and a["type"] == "order")


@pytest.mark.slow
@pytest.mark.parametrize(("limit", "check"), [
    ("max_orders_per_day = 4\n", "max_orders_per_day"),
    ("[risk.agents.sma]\nmax_trades_per_day = 4\n", "agent_max_trades_per_day")])
def test_orders_sent_before_a_sigkill_count_toward_the_days_limit(
        fake: FakeHyperliquid, tmp_path, limit: str, check: str) -> None:
    """max_orders_per_day = 4, or the agent's max_trades_per_day = 4: the first process
    sends 3 and is killed; the resumed one may send 1 more that day, and the next is
    denied by the limit (a fresh risk engine would send up to 4 more)."""
    tz = midday_timezone()
    scenario = tmp_path / "sigkill.toml"
    scenario.write_text(SCENARIO + f'[risk]\ntimezone = "{tz}"\n{limit}')
    db = tmp_path / "runs.duckdb"
    now_ms = time.time_ns() // 1_000_000
    minute = now_ms - now_ms % MIN_MS
    for k in range(6, 0, -1):
        p = price(-k)
        fake.push_bar("ETH", "1m", MIN_MS, minute - k * MIN_MS, p, p + 1, p - 1, p, 10.0)
    limit = [3]  # the exchange pushes no bar once this many orders reached it
    exchange = Exchange(fake, minute, gate=lambda: orders_at(fake) < limit[0])

    first = child(db, scenario, fake)
    try:
        exchange.thread.start()
        wait(lambda: orders_at(fake) >= 3, "three orders", first)
        time.sleep(0.5)  # the third one's answer is booked; no bar comes, no order
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == -signal.SIGKILL
    assert orders_at(fake) == 3
    with DuckDBStore(db) as store:
        (run_id,) = store.con.execute("SELECT run_id FROM runs").fetchone()
        absorb(store.con, journal_dir(str(db)))  # as the restart will, first of all
        assert store.con.execute("SELECT count(*) FROM venue_orders").fetchone() == (3,)

    limit[0] = 10**9
    # 26 bars: the resumed session holds the bars the first one stored (its warm-up), then
    # the zigzag crosses at least twice more: the 4th order, then the one denied
    resume(db, scenario, fake, exchange, run_id, max_bars=26, timeout=90)

    with DuckDBStore(db) as store:
        con = store.con
        sent = con.execute("SELECT count(DISTINCT order_id) FROM venue_orders WHERE"
                           " run_id = ?", [run_id]).fetchone()[0]
        denied = con.execute(
            "SELECT limit_value, actual_value FROM risk_events WHERE run_id = ? AND"
            " check_name = ?", [run_id, check]).fetchall()
        venue_once_each(fake, store, run_id)
    assert sent == 4 and orders_at(fake) == 4
    assert denied and all(d == (4.0, 4.0) for d in denied), denied
