"""Which agent raised, on which symbol and at which bar: read from the exception's
traceback after the fact, so the per-bar path pays nothing for it.

A user agent that raises in ``on_bar`` used to fail the run with only its exception
("ZeroDivisionError: division by zero"): no agent, no symbol, no bar. The engine's frame
in the traceback still holds all three (its locals ``s``, ``pos``, ``view``), and the
frame right after it says whether the agent's own code raised (rather than the engine,
after the agent answered).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any


@dataclass(frozen=True, slots=True)
class AgentFailure:
    agent: str
    symbol: str
    bar: int  # 1-based, per symbol
    ts: int  # the bar's timestamp, epoch ns

    def describe(self) -> str:
        when = datetime.fromtimestamp(self.ts / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        return (f"agent {self.agent!r} raised on {self.symbol} at bar {self.bar} "
                f"({when} UTC)")


def _code_of(call: Any) -> Any:
    func = getattr(call, "__func__", call)
    return getattr(func, "__code__", None)


def agent_failure(exc: BaseException) -> AgentFailure | None:
    """The agent whose ``on_bar`` raised ``exc``, None when no agent's code did."""
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "on_bar" and "pos" in frame.f_locals \
                and "view" in frame.f_locals and "self" in frame.f_locals:
            found = _from_engine_frame(frame.f_locals, tb.tb_next)
            if found is not None:
                return found
        tb = tb.tb_next
    return None


def _from_engine_frame(local: dict[str, Any], after: TracebackType | None) -> AgentFailure | None:
    engine, pos, view = local["self"], local["pos"], local["view"]
    s = local.get("s")
    names = getattr(engine, "_agent_names", None)
    calls = getattr(engine, "_agent_calls", None)
    symbols = getattr(engine, "symbols", None)
    if names is None or calls is None or symbols is None or s is None:
        return None
    try:
        call = calls[s][pos][1]
        name = names[s][pos]
    except (IndexError, TypeError):
        return None
    if after is None or after.tb_frame.f_code is not _code_of(call):
        return None  # the engine raised after the agent answered, not the agent
    symbol = symbols[s]
    return AgentFailure(str(name), str(getattr(symbol, "name", symbol)), int(view.n),
                        int(view.ts))


def with_agent(exc: BaseException) -> str:
    """``Type: message`` (first line), prefixed by the agent, symbol and bar when an
    agent's code raised it."""
    text = str(exc).strip()
    what = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    found = agent_failure(exc)
    return what if found is None else f"{found.describe()}: {what}"
