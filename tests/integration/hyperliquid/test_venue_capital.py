"""A real-venue session sizes from the money its account holds (``live.capital``).

The account's equity as the venue reports it is the session's capital (capped by
``live.capital``, never raised by it). An account holding less than the scenario's
``initial_cash`` is refused in one line naming both figures (exit 2), unless
``--capital-from-account`` is given; then orders are sized to the account and the choice
is stored with the session. The fake margins orders as Hyperliquid does: an order the
account cannot margin is rejected with the venue's message and ends ``rejected``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from live.capital import session_capital
from quorum.live import run_to_resume
from sim.config_base import ConfigError
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import KEY
from .venue_session import ACCOUNT, bars_of, drive, history, open_session, scenario

ROOT = Path(__file__).resolve().parents[3]
EXPOSURE = 0.5  # the scenario's policy.exposure


def hold(fake: FakeHyperliquid, usdc: float) -> None:
    with fake.lock:
        fake.accounts[ACCOUNT].raw_usd = Decimal(repr(usdc))


def run_session(fake: FakeHyperliquid, tmp_path: Path, config, bars, **kw):
    """A session over ``bars`` (no warm-up); returns the run id."""
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore) -> str:
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars), **kw)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        result = await asyncio.wait_for(task, 30)
        assert session.port.idle
        return result.run_id

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        return asyncio.run(go(store))


def largest(store: DuckDBStore, run_id: str) -> tuple[float, float, int]:
    """(largest order's filled notional, largest position's notional, orders filled)."""
    con = store.con
    order, filled = con.execute(
        "SELECT max(n), count(*) FROM (SELECT sum(abs(quantity) * price) AS n FROM fills"
        " WHERE run_id = ? GROUP BY order_id)", [run_id]).fetchone()
    (position,) = con.execute("SELECT max(abs(position_after) * price) FROM fills"
                              " WHERE run_id = ?", [run_id]).fetchone()
    return order, position, filled


def test_an_account_holding_less_than_initial_cash_is_refused(fake, tmp_path) -> None:
    hold(fake, 1_000.0)
    config = scenario()  # initial_cash 10,000

    async def go(store: DuckDBStore) -> None:
        await open_session(fake, store, config, history(fake, bars_of(config), 0), tmp_path,
                           max_bars=1)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(ConfigError) as exc:
            asyncio.run(go(store))
        assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    message = str(exc.value)
    assert "1,000.00" in message and "10,000.00" in message
    assert "--capital-from-account" in message


SCENARIO = """
name = "capital"
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
[[venues]]
name = "hl"
symbols = ["ETH"]
"""


def test_the_command_refuses_in_one_line_with_both_figures(fake, tmp_path) -> None:
    hold(fake, 1_000.0)
    path = tmp_path / "capital.toml"
    path.write_text(SCENARIO)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUORUM_HL_URL": fake.base_url,
           "QUORUM_HL_SECRET_KEY": KEY}
    done = subprocess.run(
        [sys.executable, "-m", "quorum.cli", "live", str(path), "--venue", "hyperliquid",
         "--testnet", "--db", str(tmp_path / "runs.duckdb"), "--override-gate", "test",
         "--max-bars", "1"], env=env, capture_output=True, text=True, timeout=60)
    errors = [line for line in done.stderr.splitlines() if line.startswith("quorum:")]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and "Traceback" not in done.stderr
    assert "1,000.00" in errors[0] and "10,000.00" in errors[0]
    assert fake.requests["/exchange"] == 0


def test_capital_from_account_sizes_orders_to_the_account(fake, tmp_path, capsys) -> None:
    """The observed case: 1,000 USDC, ``initial_cash = 10_000``, ``exposure = 0.5``.
    Orders were 5,000 and 10,000; now a position is at most half the account and an
    order (a flip closes one position and opens the other) at most the whole."""
    hold(fake, 1_000.0)
    config = scenario()
    bars = bars_of(config)[:60]
    run_id = run_session(fake, tmp_path, config, bars, capital_from_account=True)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        order, position, filled = largest(store, run_id)
        stored = store.con.execute(
            "SELECT s.initial_cash, s.account_value, s.capital, s.capital_from_account,"
            " r.config->>'initial_cash' FROM live_sessions s JOIN runs r USING (run_id)"
            " WHERE run_id = ?", [run_id]).fetchone()
        (outside,) = store.con.execute("SELECT outside FROM venue_accounts WHERE run_id = ?",
                                       [run_id]).fetchone()
    assert filled >= 3
    assert position <= EXPOSURE * 1_000.0 * 1.05, position
    assert order <= 2 * EXPOSURE * 1_000.0 * 1.05, order
    assert stored[:4] == (10_000.0, 1_000.0, 1_000.0, True) and float(stored[4]) == 1_000.0
    assert abs(outside) < 1.0  # the run is the account: nothing outside it
    assert "taken as capital outside the run" not in capsys.readouterr().err


def test_live_capital_caps_what_a_session_trades(fake, tmp_path) -> None:
    """A shared account: 10,000 held, ``live.capital = 2,500`` traded; the rest is
    capital outside the run. A cap above what the account holds raises nothing."""
    config = scenario(live={"capital": 2_500.0})
    bars = bars_of(config)[:60]
    run_id = run_session(fake, tmp_path, config, bars)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        order, position, filled = largest(store, run_id)
        capital, account = store.con.execute(
            "SELECT capital, account_value FROM live_sessions WHERE run_id = ?",
            [run_id]).fetchone()
        (outside,) = store.con.execute("SELECT outside FROM venue_accounts WHERE run_id = ?",
                                       [run_id]).fetchone()
    assert (capital, account) == (2_500.0, 10_000.0)
    assert filled >= 3 and position <= EXPOSURE * 2_500.0 * 1.05, position
    assert order <= 2 * EXPOSURE * 2_500.0 * 1.05, order
    assert abs(outside - 7_500.0) < 1.0


def test_a_cap_above_the_account_does_not_raise_the_capital() -> None:
    config = scenario(live={"capital": 50_000.0})
    got = session_capital(config, "hyperliquid", 12_000.0, from_account=False)
    assert (got.capital, got.account_value, got.initial_cash) == (12_000.0, 12_000.0, 10_000.0)
    with pytest.raises(ConfigError, match="nothing to trade"):
        session_capital(config, "hyperliquid", 0.0, from_account=True)


def test_a_resumed_run_keeps_the_capital_it_started_with(fake, tmp_path) -> None:
    hold(fake, 1_000.0)
    config = scenario()
    bars = bars_of(config)[:20]
    run_id = run_session(fake, tmp_path, config, bars, capital_from_account=True)
    hold(fake, 5_000.0)  # a deposit since: not the run's capital

    async def go(store: DuckDBStore) -> float:
        session = await open_session(fake, store, config, history(fake, bars, 0), tmp_path,
                                     max_bars=1, resume=run_id)
        try:
            return session.runner.engine.portfolio.initial_cash
        finally:
            await session.venue.aclose()

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        store.con.execute("UPDATE runs SET status = 'running' WHERE run_id = ?", [run_id])
        assert run_to_resume(store, config, None) == run_id  # the same configuration
        assert asyncio.run(go(store)) == 1_000.0


def test_an_order_the_account_cannot_margin_is_rejected_and_ends(fake, tmp_path) -> None:
    """The session started on 1,000; then 700 were withdrawn and ETH set to 1x: the
    entries (about 500) cannot be margined. The venue refuses each with its message and
    every order ends ``rejected``; nothing is left working."""
    hold(fake, 1_000.0)
    config = scenario(initial_cash=1_000.0)
    bars = bars_of(config)[:40]
    clock = history(fake, bars, 0)

    async def go(store: DuckDBStore) -> str:
        session = await open_session(fake, store, config, clock, tmp_path,
                                     max_bars=len(bars))
        with fake.lock:
            fake.accounts[ACCOUNT].leverage["ETH"] = (1, True)
        hold(fake, 300.0)
        task = asyncio.create_task(session.run())
        await drive(fake, session, clock, bars, 0)
        result = await asyncio.wait_for(task, 30)
        assert session.port.idle
        return result.run_id

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        run_id = asyncio.run(go(store))
        con = store.con
        legs = con.execute(
            "SELECT v.status, v.message, o.status, o.reason FROM venue_orders v"
            " JOIN orders o USING (run_id, order_id) WHERE v.run_id = ?", [run_id]).fetchall()
        fills = con.execute("SELECT count(*) FROM fills WHERE run_id = ?",
                            [run_id]).fetchone()[0]
    assert legs and fills == 0
    for leg_status, message, order_status, reason in legs:
        assert leg_status == order_status == "rejected"
        assert message.startswith("Insufficient margin to place order.") and message in reason
    assert fake.position(ACCOUNT, "ETH") == 0.0
