"""``quorum live --paper --api`` on the fake Hyperliquid, end to end as an operator runs it:
the API is served in the session's process; an agent paused over HTTP stops voting (the
store says so once the session ends), resumed it votes again, the kill switch is pulled
over HTTP; every call is in ``control_audit``."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from live.hyperliquid.stream import candle
from sim.store import DuckDBStore
from tests.integration.test_live_cli import MIN_MS, Child, fake  # noqa: F401 (fixture)

SCENARIO = """
name = "api-live"
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
params = { fast = 2, slow = 4 }
[[agents]]
name = "mom"
kind = "momentum"
params = { window = 2 }
[policy]
exposure = 0.5
allow_short = true
[[venues]]
name = "sim"
symbols = ["ETH"]
[live]
warmup_bars = 5
"""


def _bars_streamed(api: httpx.Client) -> int:
    found = api.get("/api/events", params={"since": 0, "topics": "market:update"}).json()
    return len(found["events"])


def _push(fake: Any, api: httpx.Client, start: int, prices: list[float]) -> int:  # noqa: F811
    """Push candles from minute ``start`` on; wait until the session has taken all but the
    last (each candle closes the one before)."""
    before = _bars_streamed(api)
    for k, price in enumerate(prices):
        t_ms = fake.minute + (start + k) * MIN_MS
        fake.push_bar("ETH", "1m", MIN_MS, t_ms, price, price + 1, price - 1, price, 5.0)
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while _bars_streamed(api) < before + len(prices) - 1:
        assert time.monotonic() < deadline, "the session did not take the bars"
        time.sleep(0.05)
    return start + len(prices)


def test_quorum_live_api_pauses_resumes_and_kills_a_paper_session(
        tmp_path: Path, fake: Any) -> None:  # noqa: F811 (the fixture)
    scenario = tmp_path / "api.toml"
    scenario.write_text(SCENARIO)
    child = Child(tmp_path, fake, "--api", "127.0.0.1:0", scenario=scenario)
    said: list[str] = []  # the API's address comes on stdout once the session runs
    threading.Thread(target=lambda: said.append(child.proc.stdout.readline()),
                     daemon=True).start()
    child.wait(lambda: said, "the API")
    url = re.search(r"API at (http://\S+)", said[0]).group(1)
    child.wait(lambda: fake.subscribed(candle("ETH", "1m")) == 1, "subscription")
    with httpx.Client(base_url=url, timeout=20) as api:
        assert api.get("/api/health").json()["control"] == "on"
        up = [2000.0 + 5 * k for k in range(8)]
        down = [2035.0 - 6 * k for k in range(8)]
        minute = _push(fake, api, 0, up)
        assert [(a["name"], a["state"]) for a in api.get("/api/agents").json()] == [
            ("sma", "active"), ("mom", "active")]
        paused = api.post("/api/agents/sma/pause", json={"reason": "review"})
        assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.text
        minute = _push(fake, api, minute, down)
        assert api.post("/api/agents/sma/resume").json()["state"] == "active"
        minute = _push(fake, api, minute, [1990.0 + 6 * k for k in range(8)])
        killed = api.post("/api/kill", json={"flatten": True, "reason": "drill"})
        assert killed.status_code == 200 and killed.json()["outcome"] == "applied"
        child.wait(lambda: child.saw("KILL SWITCH pulled by command by api (drill)"),
                   "the kill command")
    child.proc.send_signal(signal.SIGINT)
    assert child.end() == 130, "".join(child.lines)
    with DuckDBStore(child.db) as store:
        con = store.con
        (run_id,) = con.execute("select run_id from runs").fetchone()

        def votes(agent: str) -> list[int]:
            return [r[0] for r in con.execute(
                "select epoch_ns(d.ts) from votes v join decisions d using (run_id, "
                "decision_id) where run_id = ? and v.agent = ? and v.side <> 'HOLD'",
                [run_id, agent]).fetchall()]

        events = con.execute("select agent, command, epoch_ns(ts), actor, outcome from "
                             "agent_events where command <> 'start' order by seq").fetchall()
        assert [(e[0], e[1], e[3], e[4]) for e in events] == [
            ("sma", "pause", "api", "applied"), ("sma", "resume", "api", "applied"),
            ("*", "kill", "api", "applied")]
        pause, resume = events[0][2], events[1][2]
        sma = votes("sma")
        assert any(t < pause for t in sma) and any(t >= resume for t in sma), sma
        assert not [t for t in sma if pause <= t < resume]
        assert [t for t in votes("mom") if pause <= t < resume]
        audited = con.execute("select method, path, status from control_audit order by ts"
                              ).fetchall()
    assert audited == [("POST", "/api/agents/sma/pause", 200),
                       ("POST", "/api/agents/sma/resume", 200), ("POST", "/api/kill", 200)]


def test_quorum_live_api_refuses_bad_input_before_connecting(tmp_path: Path) -> None:
    """Beyond loopback without keys, or a bad --api-rate: exit 2, one line, nothing made."""
    import subprocess
    import sys

    from tests.integration.test_live_cli import ROOT

    scenario = tmp_path / "api.toml"
    scenario.write_text(SCENARIO)
    for extra, said in ((["--api", "0.0.0.0:8765"], "needs API keys"),
                        (["--api", "127.0.0.1:0", "--api-rate", "0"], "--api-rate '0'")):
        done = subprocess.run(
            [sys.executable, "-m", "quorum.cli", "live", str(scenario), "--paper", "--db",
             str(tmp_path / "runs.duckdb"), "--override-gate", "x", *extra],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                 "QUORUM_HL_URL": "http://127.0.0.1:9"})
        assert done.returncode == 2, done.stderr
        assert said in done.stderr and done.stderr.strip().count("\n") == 0
    assert not (tmp_path / "runs.duckdb").exists()
