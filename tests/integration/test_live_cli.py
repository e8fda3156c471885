"""``quorum live --paper`` and ``quorum kill`` end to end against the fake Hyperliquid on
loopback: the promotion gate refuses (exit 2, one line) or lets a session start, the
override is loud and referenced by the session, SIGINT stores the run as interrupted and
the kill file pulls the switch of a running session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from live.hyperliquid.stream import candle
from quorum.cli import main
from quorum.validate import run_validation
from sim.config import load_scenario
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid
from tests.integration.test_promotion_gate import LOOSE, REGIME

ROOT = Path(__file__).resolve().parents[2]
MIN_MS = 60_000

SCENARIO = """
name = "live-cli"
seed = 1
[[data]]
kind = "gbm"
symbol = "ETH"
bars = 50
interval = "1m"
price = 2000.0
[[agents]]
name = "sma"
kind = "sma_crossover"
params = {{ fast = 2, slow = 4 }}
[policy]
exposure = {exposure}
allow_short = true
[[venues]]
name = "sim"
symbols = ["ETH"]
[live]
warmup_bars = 5
"""


def write_scenario(tmp_path: Path, exposure: float = 0.5) -> Path:
    path = tmp_path / "live.toml"
    path.write_text(SCENARIO.format(exposure=exposure))
    return path


@pytest.fixture
def fake() -> Iterator[FakeHyperliquid]:
    server = FakeHyperliquid(mainnet=False).start()
    now_ms = time.time_ns() // 1_000_000
    server.minute = now_ms - now_ms % MIN_MS  # type: ignore[attr-defined]
    for k in range(8, 0, -1):  # closed history before the current minute
        push(server, server.minute - k * MIN_MS, 2000.0 + k)  # type: ignore[attr-defined]
    yield server
    server.stop()


def push(fake: FakeHyperliquid, t_ms: int, price: float) -> None:
    fake.push_bar("ETH", "1m", MIN_MS, t_ms, price, price + 2, price - 2, price + 1, 5.0)


def pusher(fake: FakeHyperliquid, n: int) -> threading.Thread:
    """Once the session subscribes, push ``n`` candles from the current minute on: each
    closes the one before (the first may close by the clock's history instead)."""
    def run() -> None:
        deadline = time.monotonic() + 20
        while fake.subscribed(candle("ETH", "1m")) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        for k in range(n):
            push(fake, fake.minute + k * MIN_MS, 2010.0 + (k % 3))  # type: ignore[attr-defined]
            time.sleep(0.02)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def live(tmp_path: Path, scenario: Path, *extra: str) -> int:
    return main(["live", str(scenario), "--paper", "--db", str(tmp_path / "runs.duckdb"),
                 *extra])


def test_real_venue_needs_a_key_from_the_environment(tmp_path: Path, capsys,
                                                    monkeypatch) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["live", str(write_scenario(tmp_path)), "--venue", "hyperliquid", "--paper"])
    assert exc.value.code == 2
    capsys.readouterr()
    monkeypatch.delenv("QUORUM_HL_SECRET_KEY", raising=False)
    code = main(["live", str(write_scenario(tmp_path)), "--venue", "hyperliquid",
                 "--testnet", "--db", str(tmp_path / "x.duckdb")])
    err = capsys.readouterr().err
    assert code == 2 and "set QUORUM_HL_SECRET_KEY to the signing key" in err
    assert len(err.strip().splitlines()) == 1
    code = main(["live", str(write_scenario(tmp_path)), "--paper", "--resume", "abc",
                 "--db", str(tmp_path / "x.duckdb")])
    assert code == 2 and "--resume continues a run on a real venue" in capsys.readouterr().err
    for rehearse, message in (("1ms", "use it with --venue"), ("10us", "between 100us and 1s"),
                              ("2s", "between 100us and 1s"), ("soon", "--rehearse-every: ")):
        venue = ["--venue", "hyperliquid"] if message != "use it with --venue" else ["--paper"]
        code = main(["live", str(write_scenario(tmp_path)), *venue, "--rehearse-every",
                     rehearse, "--db", str(tmp_path / "x.duckdb")])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    # stop entries and brackets trade on the venue now: not refused up front any more,
    # the next check (the promotion gate) is what stops this unvalidated config
    stops = tmp_path / "stops.toml"
    stops.write_text(SCENARIO.format(exposure=0.5) + '[execution]\norder_type = "stop"\n'
                     'take_profit = 0.03\nstop_loss = 0.02\n')
    monkeypatch.setenv("QUORUM_HL_SECRET_KEY", "0x" + "11" * 32)
    code = main(["live", str(stops), "--venue", "hyperliquid", "--db", str(tmp_path / "x.db")])
    err = capsys.readouterr().err
    assert code == 2 and "promotion gate refused" in err and "not supported" not in err


def test_unvalidated_config_is_refused_before_connecting(tmp_path: Path, capsys) -> None:
    code = live(tmp_path, write_scenario(tmp_path), "--url", "http://127.0.0.1:9")
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("quorum: error: promotion gate refused 'live-cli': config ")
    assert "has no validation" in err and len(err.strip().splitlines()) == 1


def test_gate_refuses_a_changed_config_and_lets_the_validated_one_trade(
        tmp_path: Path, fake: FakeHyperliquid, capsys) -> None:
    (tmp_path / "trend_up.toml").write_text(
        REGIME.format(name="trend_up", params="{ drift = 2.0, volatility = 0.6 }"))
    suite = tmp_path / "suite.toml"
    suite.write_text('name = "mini"\nscenarios = ["trend_up.toml"]\nseeds = [1]\n')
    loose = tmp_path / "loose.toml"
    loose.write_text("".join(f"{k} = {v!r}\n" for k, v in LOOSE.model_dump().items()
                             if k != "regimes"))
    gate = f'\n[validation]\nsuite = "{suite}"\nthresholds = "{loose}"\n'  # what it requires
    validated = write_scenario(tmp_path)
    validated.write_text(validated.read_text() + gate)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        outcome = run_validation(load_scenario(validated), store)
    assert outcome.passed and not outcome.overrides

    changed = tmp_path / "changed" / "live.toml"
    changed.parent.mkdir()
    changed.write_text(SCENARIO.format(exposure=0.9) + gate)
    assert live(tmp_path, changed, "--url", fake.base_url) == 2
    err = capsys.readouterr().err
    assert f"config changed since validation {outcome.validation_id}: policy.exposure" in err

    thread = pusher(fake, 3)
    assert live(tmp_path, validated, "--url", fake.base_url, "--max-bars", "2") == 0
    thread.join(5)
    err = capsys.readouterr().err
    # which suite and thresholds it passed, before anything connects
    assert (f"quorum live: gate: validation {outcome.validation_id} passed: suite "
            f"{suite}, thresholds max_drawdown 1, min_sharpe -1e+09, min_mean_sharpe -1e+09 "
            "(named by the scenario)") in err
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        row = store.con.execute(
            "SELECT r.mode, r.status, r.n_bars, s.validation_id, s.overridden, s.warmup_bars,"
            " s.network FROM runs r JOIN live_sessions s USING (run_id)").fetchone()
    assert row == ("paper", "completed", 5 + 2, outcome.validation_id, False, 5, "mainnet")


def test_override_is_loud_stored_and_referenced(tmp_path: Path, fake: FakeHyperliquid,
                                                capsys) -> None:
    thread = pusher(fake, 4)
    code = live(tmp_path, write_scenario(tmp_path), "--url", fake.base_url, "--max-bars", "3",
                "--override-gate", "smoke test on testnet data", "--testnet")
    thread.join(5)
    err = capsys.readouterr().err
    assert code == 0, err
    assert "PROMOTION GATE OVERRIDDEN for 'live-cli'" in err
    assert "reason given: smoke test on testnet data" in err
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        con = store.con
        run = con.execute("SELECT run_id, mode, status, n_bars FROM runs").fetchone()
        session = con.execute(
            "SELECT s.overridden, s.override_reason, v.kind, v.reason, v.failures"
            " FROM live_sessions s JOIN validations v USING (validation_id)"
            " WHERE s.run_id = ?", [run[0]]).fetchone()
        bars = con.execute("SELECT count(*) FROM bars WHERE run_id = ?", [run[0]]).fetchone()
    assert run[1:] == ("paper", "completed", 5 + 3)
    assert bars == (8,)
    assert session[:4] == (True, "smoke test on testnet data", "override",
                           "smoke test on testnet data")
    assert "has no validation" in session[4]


def test_kill_command_and_an_existing_kill_file(tmp_path: Path, capsys) -> None:
    assert main(["kill", "--db", str(tmp_path / "runs.duckdb")]) == 0
    assert (tmp_path / "runs.kill").exists()
    code = live(tmp_path, write_scenario(tmp_path), "--override-gate", "x")
    err = capsys.readouterr().err
    assert code == 2 and "kill file" in err and "remove it" in err


def test_sigint_and_kill_file_on_a_running_session(tmp_path: Path, fake: FakeHyperliquid) -> None:
    db = tmp_path / "runs.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "QUORUM_HL_URL": fake.base_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "quorum.cli", "live", str(write_scenario(tmp_path)), "--paper",
         "--testnet", "--db", str(db), "--override-gate", "signal test"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")),
                              daemon=True)
    reader.start()

    def wait(cond, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise AssertionError(f"{what}: not seen; stderr: {''.join(lines)}")
            time.sleep(0.02)

    try:
        wait(lambda: fake.subscribed(candle("ETH", "1m")) == 1, "subscription")
        pusher(fake, 3).join(5)
        assert main(["kill", "--db", str(db)]) == 0
        wait(lambda: any("KILL SWITCH pulled by file" in x for x in lines), "kill switch")
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
    reader.join(5)
    assert proc.returncode == 130, "".join(lines)
    assert any("run marked interrupted" in x for x in lines)
    with DuckDBStore(db) as store:
        status = store.con.execute("SELECT mode, status, n_bars FROM runs").fetchone()
        bars = store.con.execute("SELECT count(*) FROM bars").fetchone()[0]
    assert status[:2] == ("paper", "interrupted")
    assert status[2] >= 5 and bars == status[2]  # warm-up and live bars, all stored


def test_an_interval_hyperliquid_does_not_serve_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(SCENARIO.format(exposure=0.5).replace("warmup_bars = 5",
                                                          'interval = "2m"'))
    assert live(tmp_path, path, "--override-gate", "x") == 2
    err = capsys.readouterr().err
    assert "live.interval: Hyperliquid has no 120s candles" in err
