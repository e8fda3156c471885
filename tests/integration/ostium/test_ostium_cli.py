"""``quorum live`` on Ostium: a venue kind like Hyperliquid (``live.ostium.kind``), found by
its name. Against the fake Ostium: a paper session on its price feed (``--paper --feed
ostium``) and a session trading its account (``--venue ostium``, the sandbox account of
the fake); what it cannot take is refused in one line, exit 2."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from live.ostium.kind import ENV_SANDBOX_ACCOUNT, KIND
from live.venues import venue_kind
from quorum.cli import main
from tests.fakes.ostium import FakeOstium

ACCOUNT = "0x" + "cd" * 20

SCENARIO = """
name = "ostium-cli"
seed = 2
initial_cash = 1000.0
[[data]]
kind = "gbm"
symbol = "ETH"
bars = 100
interval = "1s"
price = 2000.0
[[agents]]
name = "sma"
kind = "sma_crossover"
params = {{ fast = 1, slow = 2 }}
[policy]
exposure = 0.5
[[venues]]
name = "ost"
preset = "ostium"
symbols = ["ETH"]
[live]
warmup_bars = {warmup}
"""


def write(tmp_path: Path, warmup: int = 0, extra: str = "") -> Path:
    path = tmp_path / "ost.toml"
    path.write_text(SCENARIO.format(warmup=warmup) + extra)
    return path


@pytest.fixture
def ost() -> Iterator[FakeOstium]:
    server = FakeOstium(pairs=(("ETH", 1, 50.0, 5.0),)).start()
    server.open_account(ACCOUNT, 5_000.0)
    server.set_price("ETH", 2000.0)
    stop = threading.Event()

    def move() -> None:  # a zigzag, so the crossover trades
        k = 0
        while not stop.wait(0.3):
            k += 1
            server.set_price("ETH", 2000.0 + (15.0 if k % 4 < 2 else -15.0))

    mover = threading.Thread(target=move, daemon=True)
    mover.start()
    yield server
    stop.set()
    mover.join(2)
    server.stop()


def test_ostium_is_a_venue_kind_with_sampled_intervals() -> None:
    assert venue_kind("ostium") is KIND
    assert KIND.interval_name(60 * 10**9) == "1m" and KIND.interval_name(5 * 10**9) == "5s"
    with pytest.raises(ValueError, match="whole number of seconds"):
        KIND.interval_name(500_000_000)


def test_a_paper_session_on_the_ostium_price_feed(ost: FakeOstium, tmp_path) -> None:
    db = tmp_path / "runs.duckdb"
    code = main(["live", str(write(tmp_path)), "--paper", "--feed", "ostium", "--testnet",
                 "--url", ost.base_url, "--max-bars", "4", "--db", str(db),
                 "--override-gate", "test"])
    assert code == 0
    with duckdb.connect(str(db), read_only=True) as con:
        run_id, mode, status = con.execute("SELECT run_id, mode, status FROM runs").fetchone()
        assert (mode, status) == ("paper", "completed")
        assert con.execute("SELECT venue, network, data_url FROM live_sessions").fetchone() == (
            "sim", "testnet", ost.base_url)
        (bars,) = con.execute("SELECT count(*) FROM bars WHERE run_id = ?", [run_id]).fetchone()
        assert bars == 4


def test_a_session_trades_the_ostium_account(ost: FakeOstium, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_SANDBOX_ACCOUNT, ACCOUNT)
    monkeypatch.delenv("QUORUM_OSTIUM_PRIVATE_KEY", raising=False)
    db = tmp_path / "runs.duckdb"
    code = main(["live", str(write(tmp_path)), "--venue", "ostium", "--testnet", "--url",
                 ost.base_url, "--max-bars", "8", "--db", str(db), "--override-gate", "test"])
    assert code == 0
    time.sleep(0.1)
    with duckdb.connect(str(db), read_only=True) as con:
        run_id, mode, status = con.execute("SELECT run_id, mode, status FROM runs").fetchone()
        assert (mode, status) == ("live", "completed")
        assert con.execute("SELECT venue FROM live_sessions").fetchone() == ("ostium",)
        legs = con.execute("SELECT status FROM venue_orders WHERE run_id = ?",
                           [run_id]).fetchall()
        assert legs and {s for (s,) in legs} <= {"filled", "cancelled", "rejected", "expired"}
        booked = sorted(t for (t,) in con.execute(
            "SELECT tid FROM venue_fills WHERE run_id = ?", [run_id]).fetchall())
        (held,) = con.execute("SELECT coalesce(sum(quantity), 0) FROM fills WHERE run_id = ?",
                              [run_id]).fetchone()
    executed = sorted(o.id for o in ost.orders.values() if o.executed is not None)
    assert booked == executed and booked  # each keeper order booked once
    assert abs(held - ost.position(ACCOUNT, "ETH")) < 1e-9


def test_what_ostium_cannot_take_is_refused_in_one_line(ost: FakeOstium, tmp_path, capsys,
                                                       monkeypatch) -> None:
    monkeypatch.delenv(ENV_SANDBOX_ACCOUNT, raising=False)
    monkeypatch.delenv("QUORUM_OSTIUM_PRIVATE_KEY", raising=False)
    db = str(tmp_path / "runs.duckdb")
    cases = [
        (["--venue", "nowhere"], "unknown venue 'nowhere' (known: "),
        (["--venue", "ostium", "--testnet", "--url", ost.base_url],
         "set QUORUM_OSTIUM_PRIVATE_KEY and QUORUM_OSTIUM_RPC_URL"),
        (["--venue", "ostium", "--feed", "ostium"], "--feed chooses a paper session's"),
        (["--venues"], "has no [live.venues.NAME] tables"),
    ]
    for flags, message in cases:
        assert main(["live", str(write(tmp_path)), *flags, "--db", db]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert message in err[-1], (flags, err)
    code = main(["live", str(write(tmp_path, warmup=5)), "--paper", "--feed", "ostium",
                 "--testnet", "--url", ost.base_url, "--db", db, "--override-gate", "test"])
    assert code == 2
    assert "Ostium publishes prices, not candles" in capsys.readouterr().err
    bound = write(tmp_path, extra='[live.venues.elsewhere]\nkind = "ostium"\n')
    assert main(["live", str(bound), "--venues", "--db", db]) == 2
    assert "live.venues.elsewhere: 'elsewhere' is not a venue" in capsys.readouterr().err
