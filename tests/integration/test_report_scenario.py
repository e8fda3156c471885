"""``quorum report`` shows the resolved scenario and, per agent, the indicator values
behind each signal (issue 21). The values are recomputed after the run by each built-in's
``indicators()`` hook; every signal's side is checked against the agent's documented rule
applied to those values, so a hook that drifted from what the agent compared fails."""

from __future__ import annotations

import csv
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {k: v for k, v in os.environ.items() if k != "QUORUM_DB"}
SCENARIO = '''
name = "every_indicator"
seed = 4

[[data]]
kind = "regime"
regime = "regime_switching"
symbols = ["AAA", "BBB"]
bars = 1500
interval = "1h"

[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }

[[agents]]
name = "ema"
kind = "ema_crossover"
params = { fast = 6, slow = 18 }

[[agents]]
name = "don"
kind = "donchian_breakout"
params = { window = 24, exit_window = 12 }

[[agents]]
name = "boll"
kind = "bollinger_reversion"
params = { window = 30, width = 1.5 }

[[agents]]
name = "rsi"
kind = "rsi"
params = { period = 10, oversold = 35, overbought = 65 }

[[agents]]
name = "mom"
kind = "momentum"
params = { window = 24, threshold = 0.01 }

[[agents]]
name = "z"
kind = "zscore_reversion"
params = { window = 40, entry = 1.5, exit = 0.3 }

[[agents]]
name = "mine"
kind = "my_plain:Plain"

[[venues]]
name = "v"
symbols = ["AAA", "BBB"]
'''
PLAIN = '''
from sim.messages import LONG, Signal


class Plain:
    def on_bar(self, view):
        return Signal(LONG, 0.5) if view.n == 30 else None
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("report")
    (where / "s.toml").write_text(SCENARIO)
    (where / "my_plain.py").write_text(PLAIN)

    def quorum(*argv: str) -> str:
        done = subprocess.run([sys.executable, "-m", "quorum.cli", *argv, "--db", "r.duckdb"],
                              cwd=where, env=ENV, capture_output=True, text=True,
                              timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run_id = re.search(r"run id: (\w+)", quorum("run", "s.toml", "--quiet")).group(1)
    quorum("report", run_id, "--out", "out")
    return where / "out"


def _rows(report: Path, agent: str) -> list[dict[str, str]]:
    with (report / f"indicators_{agent}.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 3, (agent, len(rows))
    return rows


def _f(row: dict[str, str], key: str) -> float:
    return float(row[key])


RULES = {  # side -> the documented condition on the values at that bar
    "sma": lambda r: {"LONG": _f(r, "sma_fast") > _f(r, "sma_slow"),
                      "SHORT": _f(r, "sma_fast") <= _f(r, "sma_slow")}.get(r["side"], True),
    "ema": lambda r: {"LONG": _f(r, "ema_fast") > _f(r, "ema_slow"),
                      "SHORT": _f(r, "ema_fast") <= _f(r, "ema_slow")}.get(r["side"], True),
    "don": lambda r: {"LONG": _f(r, "close") > _f(r, "upper"),
                      "SHORT": _f(r, "close") < _f(r, "lower")}.get(r["side"], True),
    "boll": lambda r: {"LONG": _f(r, "close") < _f(r, "lower"),
                       "SHORT": _f(r, "close") > _f(r, "upper")}.get(r["side"], True),
    "rsi": lambda r: {"LONG": _f(r, "rsi") < 35, "SHORT": _f(r, "rsi") > 65}.get(r["side"],
                                                                              True),
    "mom": lambda r: {"LONG": _f(r, "roc") > 0.01, "SHORT": _f(r, "roc") < -0.01}.get(
        r["side"], True),
    # held until |z| lands within exit (hysteresis; a jump across the mean keeps it), its
    # confidence following |z|; past the other entry it would have flipped
    "z": lambda r: abs(_f(r, "z")) > 0.3 and {"LONG": _f(r, "z") < 1.5,
                                               "SHORT": _f(r, "z") > -1.5}.get(r["side"], True)
    if r["side"] != "FLAT" else abs(_f(r, "z")) <= 0.3 or r["side"] == "FLAT",
}


@pytest.mark.parametrize("agent", sorted(RULES))
def test_every_signal_agrees_with_the_values_shown(report: Path, agent: str) -> None:
    rows = _rows(report, agent)
    sides = {r["side"] for r in rows}
    assert sides & {"LONG", "SHORT"}, sides
    for row in rows:
        values = [v for k, v in row.items() if k not in ("ts", "symbol", "side", "reason")]
        assert all(math.isfinite(float(v)) for v in values), row  # warm at every signal
        assert RULES[agent](row), row


def test_the_page_shows_the_resolved_scenario_and_the_indicators(report: Path) -> None:
    (page,) = report.glob("report_*.html")
    text = page.read_text()
    assert "Scenario (as resolved" in text and "What each agent decided on" in text
    assert "fast=5, slow=20, long_only=False" in text  # the defaults filled in
    assert "confidence_weighted" in text or "majority" in text  # the consensus method
    assert "exposes no indicators() hook" in text  # the user agent without one
    assert "<th>sma_fast</th>" in text and "<th>rsi</th>" in text
