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
from research.validate import run_validation
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


class Child:
    """``quorum live --paper`` in a child process against the fake, its stderr read by a
    thread into ``lines``."""

    def __init__(self, tmp_path: Path, fake: FakeHyperliquid | None, *extra: str,
                 scenario: Path | None = None, url: str | None = None) -> None:
        self.db = tmp_path / "runs.duckdb"
        env = {**os.environ, "PYTHONPATH": str(ROOT),
               "QUORUM_HL_URL": url or (fake.base_url if fake is not None else "")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quorum.cli", "live",
             str(scenario or write_scenario(tmp_path)), "--paper", "--testnet", "--db",
             str(self.db), "--override-gate", "signal test", *extra],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(
            target=lambda: self.lines.extend(iter(self.proc.stderr.readline, "")), daemon=True)
        self.reader.start()

    def wait(self, cond, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise AssertionError(f"{what}: not seen (exit {self.proc.poll()}); stderr: "
                                     f"{''.join(self.lines)}")
            time.sleep(0.02)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def end(self, timeout: float = 30.0) -> int:
        try:
            self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.reader.join(5)
        return self.proc.returncode

    def run_row(self) -> tuple:
        with DuckDBStore(self.db) as store:
            run = store.con.execute("SELECT mode, status, n_bars, error FROM runs").fetchone()
            bars = store.con.execute("SELECT count(*) FROM bars").fetchone()[0]
        return (*run, bars)


def test_sigint_and_kill_file_on_a_running_session(tmp_path: Path, fake: FakeHyperliquid) -> None:
    """The kill file pulls the switch; ``kill -USR1`` after that changes nothing and
    does not end the process (its handler stays for the whole session); SIGINT stores
    the run as interrupted, saying so."""
    child = Child(tmp_path, fake)
    child.wait(lambda: fake.subscribed(candle("ETH", "1m")) == 1, "subscription")
    pusher(fake, 3).join(5)
    assert main(["kill", "--db", str(child.db)]) == 0
    child.wait(lambda: child.saw("KILL SWITCH pulled by file"), "kill switch")
    child.proc.send_signal(signal.SIGUSR1)
    child.wait(lambda: child.saw("kill switch already pulled"), "the second pull")
    child.proc.send_signal(signal.SIGINT)
    assert child.end() == 130, "".join(child.lines)
    assert any("run marked interrupted" in x for x in child.lines)
    mode, status, n_bars, error, bars = child.run_row()
    assert (mode, status, error) == ("paper", "interrupted", "Interrupted: SIGINT received")
    assert n_bars >= 5 and bars == n_bars  # warm-up and live bars, all stored


def test_the_override_is_printed_once(tmp_path: Path, fake: FakeHyperliquid) -> None:
    """The CLI's line, not the gate's log record too (printed by logging's last resort
    in a real process; pytest's log capture hides it in-process)."""
    child = Child(tmp_path, fake)
    child.wait(lambda: child.saw("paper session"), "the session")
    child.proc.send_signal(signal.SIGINT)
    assert child.end() == 130
    assert sum("PROMOTION GATE OVERRIDDEN" in line for line in child.lines) == 1, child.lines


def test_sigterm_stops_a_paper_session_like_sigint(tmp_path: Path, fake: FakeHyperliquid) -> None:
    """systemd, docker and CI stop with SIGTERM: stored interrupted, rows committed,
    exit 143 (before: the process ended on the spot, the run left running)."""
    child = Child(tmp_path, fake)
    child.wait(lambda: fake.subscribed(candle("ETH", "1m")) == 1, "subscription")
    pusher(fake, 3).join(5)
    child.proc.send_signal(signal.SIGTERM)
    assert child.end() == 143, "".join(child.lines)
    mode, status, n_bars, error, bars = child.run_row()
    assert (mode, status, error) == ("paper", "interrupted", "Interrupted: SIGTERM received")
    assert n_bars >= 5 and bars == n_bars


def test_a_paper_session_commits_while_it_runs(tmp_path: Path, fake: FakeHyperliquid) -> None:
    """SIGKILL mid-session: what the session saw up to its last commit (at most a second
    before) is in the store. Before, nothing was written until 10,000 rows waited: 14
    bars in, a SIGKILL left no bar, no equity, no signal. The child holds the store's
    lock, so a commit is seen as its write-ahead log growing; bars are pushed until it
    has grown twice."""
    child = Child(tmp_path, fake)
    wal = child.db.with_name(child.db.name + ".wal")
    child.wait(lambda: fake.subscribed(candle("ETH", "1m")) == 1, "subscription")
    size = [wal.stat().st_size if wal.exists() else 0]  # the run and session rows

    def grew() -> bool:
        now = wal.stat().st_size if wal.exists() else 0
        if now > size[-1]:
            size.append(now)
        return len(size) > 2

    stop = threading.Event()

    def market() -> None:  # a bar every 50 ms until told to stop
        for k in range(400):
            if stop.is_set():
                return
            push(fake, fake.minute + k * MIN_MS, 2010.0 + (k % 3))  # type: ignore[attr-defined]
            time.sleep(0.05)

    pushing = threading.Thread(target=market, daemon=True)
    pushing.start()
    try:
        child.wait(grew, "two commits", timeout=30)
    finally:
        stop.set()
        pushing.join(5)
    child.proc.send_signal(signal.SIGKILL)
    assert child.end() == -signal.SIGKILL
    with DuckDBStore(child.db) as store:
        con = store.con
        bars = con.execute("SELECT count(*) FROM bars").fetchone()[0]
        equity = con.execute("SELECT count(*) FROM equity").fetchone()[0]
        status = con.execute("SELECT status FROM runs").fetchone()[0]
    assert status == "running"  # its writer is gone (what `quorum runs` makes of that)
    assert bars >= 2 and bars - 1 <= equity <= bars  # an equity row per bar time but the
    # last (recorded when the next bar comes)


def test_no_network_fails_the_session_in_one_line(tmp_path: Path) -> None:
    """Nothing answers (the network is down, or the URL is wrong): bounded retries, then
    one line, exit 1, the run stored as failed. Before: the WebSocket was retried for
    ever (no warm-up), or a traceback (with one)."""
    path = tmp_path / "cold.toml"
    path.write_text(SCENARIO.format(exposure=0.5).replace("warmup_bars = 5",
                                                          "warmup_bars = 0"))
    child = Child(tmp_path, None, scenario=path, url="http://127.0.0.1:9")
    assert child.end(timeout=60) == 1, "".join(child.lines)
    said = [line for line in child.lines if "PROMOTION GATE OVERRIDDEN" not in line]
    assert len(said) == 1 and said[0].startswith("quorum: run failed: "), child.lines
    assert "127.0.0.1:9" in said[0] and "stored as failed" in said[0]
    mode, status, _, error, _ = child.run_row()
    assert (mode, status) == ("paper", "failed") and "127.0.0.1:9" in error


def test_paper_refuses_a_coin_the_venue_does_not_list(tmp_path: Path,
                                                      fake: FakeHyperliquid) -> None:
    """A venue session refused it; paper waited for ever for candles that never come."""
    path = tmp_path / "nope.toml"
    path.write_text(SCENARIO.format(exposure=0.5).replace('"ETH"', '"NOPE"'))
    child = Child(tmp_path, fake, scenario=path)
    assert child.end(timeout=60) == 2, "".join(child.lines)
    errors = [line for line in child.lines if line.startswith("quorum:")]
    assert len(errors) == 1 and "has no perpetual NOPE" in errors[0]
    with DuckDBStore(child.db) as store:
        assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_venue_session_at_an_unreachable_url_fails_in_one_line(
        tmp_path: Path, capsys, monkeypatch) -> None:
    """``--url http://127.0.0.1:9``: a TransportFailed traceback and no run before; now
    one line, exit 1, the run stored as failed."""
    monkeypatch.setenv("QUORUM_HL_SECRET_KEY", "0x" + "11" * 32)
    db = tmp_path / "runs.duckdb"
    code = main(["live", str(write_scenario(tmp_path)), "--venue", "hyperliquid",
                 "--testnet", "--url", "http://127.0.0.1:9", "--db", str(db),
                 "--override-gate", "x"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("quorum:")]
    assert code == 1 and len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith("quorum: run failed: TransportFailed: Hyperliquid testnet at "
                                "http://127.0.0.1:9")
    with DuckDBStore(db) as store:
        row = store.con.execute("SELECT run_id, mode, status FROM runs").fetchone()
    assert row[1:] == ("live", "failed") and f"run {row[0]}, stored as failed" in errors[0]


def test_an_interval_hyperliquid_does_not_serve_is_refused(tmp_path: Path, capsys) -> None:
    path = tmp_path / "odd.toml"
    path.write_text(SCENARIO.format(exposure=0.5).replace("warmup_bars = 5",
                                                          'interval = "2m"'))
    assert live(tmp_path, path, "--override-gate", "x") == 2
    err = capsys.readouterr().err
    assert "live.interval: Hyperliquid has no 120s candles" in err
