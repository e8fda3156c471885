"""``quorum sandbox``: the fake Hyperliquid replaying a market on its own accelerated clock.

A session on the sandbox runs on the sandbox clock (``probe_clock``), so every candle is
taken as it closes, by push, at 100x and 1,000x real time; the bars it takes are the bars
the sandbox was given; ``quorum live --paper`` and ``--venue hyperliquid`` run end to end
against ``quorum sandbox`` in other processes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import numpy as np
import pytest

from live.hyperliquid.candles import HyperliquidCandleFeed
from live.hyperliquid.fake.sandbox import Sandbox, probe_clock, size_decimals
from quorum.live import hyperliquid_config
from sim.messages import Bar
from sim.regimes.generators import generate
from tests.fakes.hyperliquid import FakeHyperliquid

MINUTE = 60_000_000_000
T0 = 1_704_067_200_000_000_000  # 2024-01-01


def market(n: int, symbols: tuple[str, ...] = ("BTC", "ETH")) -> list:
    return generate("trend_up", n, np.random.default_rng(5), symbols=symbols, price=100.0,
                    start_ns=T0, interval_ns=MINUTE)


async def take(sandbox: Sandbox, live_bars: int, warmup: int) -> tuple[list[Bar], Counter]:
    clock = probe_clock(sandbox.url)
    assert clock is not None and clock.speed == sandbox.speed
    hows: Counter = Counter()
    feed = HyperliquidCandleFeed(
        hyperliquid_config(testnet=True, url=sandbox.url),
        {b.symbol: b.symbol for b in sandbox.bars}, MINUTE, warmup_bars=warmup,
        clock=clock, max_bars=live_bars, on_event=lambda how, bar: hows.update([how]))
    return [bar async for bar in feed], hows


@pytest.mark.parametrize(("speed", "live_bars"), [(100.0, 15), (1000.0, 120)])
def test_a_session_on_the_sandbox_clock_takes_every_bar_as_given(
        speed: float, live_bars: int) -> None:
    bars = market(40 + live_bars + 5)
    sandbox = Sandbox(bars, speed=speed, history=40).start()
    try:
        taken, hows = asyncio.run(asyncio.wait_for(take(sandbox, live_bars, 20), 60))
    finally:
        sandbox.stop()
    expected = {(b.symbol, int(b.ts[i])): (b.open[i], b.high[i], b.low[i], b.close[i],
                                           b.volume[i])
                for b in bars for i in range(len(b))}
    assert len(taken) == 2 * (20 + live_bars)  # every symbol: the warm-up, then each bar
    for bar in taken:  # the bars the sandbox was given, exactly, each once
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == expected[
            (bar.symbol, bar.ts)]
    assert len({(b.symbol, b.ts) for b in taken}) == len(taken)
    for symbol in ("BTC", "ETH"):
        stamps = [b.ts for b in taken if b.symbol == symbol]
        assert np.all(np.diff(stamps) == MINUTE)  # no bar skipped
    # Taken as pushed, not fetched: at most the candle open at the start comes by REST.
    assert hows["warmup"] == 40 and hows["rest"] <= 2, hows


def test_a_real_exchange_is_not_taken_for_a_sandbox() -> None:
    fake = FakeHyperliquid().start()  # no sandbox: the request is unknown, as at Hyperliquid
    try:
        assert probe_clock(fake.base_url) is None
    finally:
        fake.stop()
    assert probe_clock("http://127.0.0.1:9") is None  # nothing listening


def test_size_decimals_follow_the_price_like_hyperliquids() -> None:
    assert [size_decimals(p) for p in (95_000.0, 3_000.0, 150.0, 1.5, 0.05, 1e-5)] == [
        5, 4, 3, 1, 0, 0]


def test_too_much_history_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="--history 50"):
        Sandbox(market(50), history=50)


SCENARIO = """
name = "sandbox-e2e"
seed = 3
initial_cash = 10_000.0

[[data]]
kind = "regime"
regime = "trend_up"
symbols = ["BTC", "ETH"]
bars = 400
interval = "1m"
start = "2024-01-01T00:00:00Z"
price = 100.0

[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 3, slow = 8 }

[[venues]]
name = "alpha"
symbols = ["BTC", "ETH"]
fee_bps = 5.0

[live]
warmup_bars = 10
"""


def quorum(*args: str, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "quorum.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def start_sandbox(scenario: Path) -> tuple[subprocess.Popen[str], str, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", "sandbox", str(scenario), "--speed", "1000",
         "--history", "30", "--exit-when-done"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline()  # "quorum sandbox: URL", once it serves
    assert line.startswith("quorum sandbox: http://127.0.0.1:"), line
    url = line.split()[-1]
    key = ""
    deadline = time.monotonic() + 10
    while not key and time.monotonic() < deadline:
        text = proc.stderr.readline()
        if "QUORUM_HL_SECRET_KEY=" in text:
            key = text.split("QUORUM_HL_SECRET_KEY=")[1].split()[0]
    return proc, url, key


@pytest.mark.parametrize("how", ["paper", "venue"])
def test_live_sessions_run_end_to_end_on_quorum_sandbox(tmp_path: Path, how: str) -> None:
    scenario = tmp_path / "s.toml"
    scenario.write_text(SCENARIO)
    db = tmp_path / "runs.duckdb"
    proc, url, key = start_sandbox(scenario)
    try:
        venue = ["--paper"] if how == "paper" else ["--venue", "hyperliquid", "--testnet"]
        done = quorum("live", str(scenario), *venue, "--url", url, "--override-gate",
                      "sandbox test", "--max-bars", "60", "--db", str(db),
                      env={"QUORUM_HL_SECRET_KEY": key})
    finally:
        proc.terminate()
        proc.wait(10)
    assert done.returncode == 0, done.stderr
    backtest = quorum("run", str(scenario), "--db", str(tmp_path / "bt.duckdb"))
    assert backtest.returncode == 0, backtest.stderr
    with duckdb.connect(str(db), read_only=True) as con:
        (run_id,) = con.execute("select run_id from runs where mode <> 'backtest'").fetchone()
        rows = con.execute("select symbol, epoch_ns(ts), open, high, low, close, volume "
                           "from bars where run_id = ? order by 1, 2", [run_id]).fetchall()
        fills = con.execute("select count(*) from fills where run_id = ?",
                            [run_id]).fetchone()[0]
    with duckdb.connect(str(tmp_path / "bt.duckdb"), read_only=True) as con:
        given = {(r[0], r[1]): r[2:] for r in con.execute(
            "select symbol, epoch_ns(ts), open, high, low, close, volume from bars").fetchall()}
    assert len(rows) == 2 * (10 + 60)  # warm-up and every live bar, both symbols
    assert all(given[(r[0], r[1])] == r[2:] for r in rows)  # the scenario's own bars
    assert fills > 0  # the SMA crossing traded (simulated on paper, at the sandbox's book)
