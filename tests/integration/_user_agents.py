"""User agents for the CLI's error and interrupt tests, written to an importable module
(``AGENTS``: ``module:Class`` kinds) so a ``quorum`` subprocess can load them too."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

MODULE = "quorum_test_misbehaving_agents"
SOURCE = '''
import sys
import time

from sim.agents.base import AgentError
from sim.config import ConfigError
from sim.data import DataError
from sim.messages import FLAT, LONG, Signal

_ERRORS = {"AgentError": AgentError, "ConfigError": ConfigError, "DataError": DataError,
           "RuntimeError": RuntimeError, "KeyboardInterrupt": KeyboardInterrupt}


class Trader:
    """LONG at bars 10, 30, 50..., FLAT at 20, 40, ...: some fills to keep."""

    def on_bar(self, view):
        if view.n % 10 == 0 and view.n:
            return Signal(LONG if view.n % 20 == 10 else FLAT, 1.0)
        return None


class Sleeper(Trader):
    """Trades; at bar ``mark_at`` prints MARK on stderr, then sleeps ``nap`` s each bar
    (a long run that a test stops once it has surely started)."""

    def __init__(self, mark_at=100, nap=0.01):
        self.mark_at, self.nap = mark_at, nap

    def on_bar(self, view):
        if view.n == self.mark_at:
            print("MARK", file=sys.stderr, flush=True)
        elif view.n > self.mark_at:
            time.sleep(self.nap)
        return super().on_bar(view)


class Raiser(Trader):
    """Trades, and raises ``error`` (a class Quorum uses for bad input) at bar ``at``."""

    def __init__(self, at=50, error="AgentError"):
        self.at, self.error = at, _ERRORS[error]

    def on_bar(self, view):
        if view.n == self.at:
            raise self.error(f"raised by the agent at bar {view.n}")
        return super().on_bar(view)


class BadInit:
    def __init__(self):
        raise RuntimeError("no model file at /models/x.pkl")

    def on_bar(self, view):
        return None


class BadReason:
    """At bar 20: a signal whose reason is ``kind``: "int" (12345) or "surrogate"."""

    def __init__(self, kind="int"):
        self.reason = 12345 if kind == "int" else "bad \\ud800 char"

    def on_bar(self, view):
        if view.n == 20:
            return Signal(LONG, 1.0, None, self.reason)
        return None
'''


def install_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The module in a directory on sys.path (pass it as PYTHONPATH to subprocesses)."""
    where = tmp_path / "user_agents"
    where.mkdir()
    (where / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(where))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return where


def kind(name: str) -> str:
    return f"{MODULE}:{name}"
