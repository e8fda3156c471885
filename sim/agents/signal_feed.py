"""Signal feed: replays a file of timestamped external signals at their time.

The file is CSV (header line first) or JSON Lines (one object per line), chosen by suffix:
``.csv``; ``.jsonl`` / ``.ndjson``. Fields:

=============  ==========================================================================
timestamp      ISO 8601 time (a time without a zone is UTC), when the signal was published
symbol         the symbol it is about (the column may be called ``token`` instead)
side           long, short, flat or hold (any case)
confidence     in [0, 1]
fund_pct       fraction of equity to commit, in [0, 1] (so 25% is 0.25); may be blank
text           optional: why, stored as the signal's reason
=============  ==========================================================================

Timing rule: a signal published at time T is used on the first bar of its symbol whose
timestamp (the bar's open time) is >= T, i.e. a signal is acted upon at the close of the
first bar that opened at or after it was published. A signal published in the middle of a
bar therefore waits for the next bar: never earlier than it existed, at the cost of up to
one bar of delay. The bar interval is not needed. If several signals of a symbol become
usable at the same bar, only the latest is emitted; the earlier ones were superseded
before the agent could act. Signals for symbols the agent does not see are ignored.

Validation (one line naming the file and line on the first problem): known columns only
and all required ones; a parseable timestamp; a known side; numbers in range; timestamps
in non-decreasing order through the file; no two signals of one symbol at the same time.
The file is read when the agent is built, so a bad file fails the scenario's validation.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from sim.agents.base import AgentParams
from sim.messages import Side, Signal
from sim.view import MarketView

REQUIRED = ("timestamp", "side", "confidence", "fund_pct")
OPTIONAL = ("text",)
SYMBOL_COLUMNS = ("symbol", "token")
_SIDES = {name.lower(): side for name, side in Side.__members__.items()}


class SignalFileError(ValueError):
    """An unusable signal file; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class FeedSignals:
    """One file's signals per symbol: times (ns UTC, increasing) and the Signals to emit."""

    by_symbol: dict[str, tuple[tuple[int, ...], tuple[Signal, ...]]]
    rows: int


def _timestamp(value: Any, where: str) -> int:
    if not isinstance(value, str) or not value.strip():
        raise SignalFileError(f"{where}: timestamp must be an ISO 8601 time, got {value!r}")
    try:
        ts = pd.Timestamp(value.strip())
    except (ValueError, TypeError):
        ts = None
    if ts is None or ts is pd.NaT:
        raise SignalFileError(f"{where}: timestamp {value!r} is not an ISO 8601 time")
    return int((ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).value)


def _fraction(value: Any, name: str, where: str, blank_ok: bool) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if blank_ok:
            return None
        raise SignalFileError(f"{where}: {name} is missing")
    if isinstance(value, bool):
        raise SignalFileError(f"{where}: {name} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise SignalFileError(f"{where}: {name} must be a number, got {value!r}") from None
    if not (math.isfinite(x) and 0.0 <= x <= 1.0):
        hint = " (a fraction: 25% is 0.25)" if name == "fund_pct" and 1 < x <= 100 else ""
        raise SignalFileError(f"{where}: {name} must be in [0, 1], got {value!r}{hint}")
    return x


def _records(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) per data line; a header or object with unknown fields is an error."""
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SignalFileError(f"{path}: signal file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SignalFileError(f"{path}: cannot read: {exc}") from None
    known = set(REQUIRED) | set(OPTIONAL) | set(SYMBOL_COLUMNS)
    out: list[tuple[str, dict[str, Any]]] = []
    if suffix == ".csv":
        lines = text.splitlines()
        reader = csv.reader(lines)
        header = next(reader, None)
        if not header:
            raise SignalFileError(f"{path} line 1: no header")
        header = [h.strip() for h in header]
        _check_fields(header, known, f"{path} line 1")
        for lineno, row in enumerate(reader, 2):
            if not row or all(not cell.strip() for cell in row):
                raise SignalFileError(f"{path} line {lineno}: blank line")
            if len(row) != len(header):
                raise SignalFileError(
                    f"{path} line {lineno}: {len(row)} fields, the header has {len(header)}")
            out.append((f"{path} line {lineno}", dict(zip(header, row, strict=True))))
    elif suffix in (".jsonl", ".ndjson"):
        for lineno, line in enumerate(text.splitlines(), 1):
            where = f"{path} line {lineno}"
            if not line.strip():
                raise SignalFileError(f"{where}: blank line")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SignalFileError(f"{where}: not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise SignalFileError(f"{where}: expected a JSON object")
            _check_fields(list(record), known, where)
            out.append((where, record))
    else:
        raise SignalFileError(f"{path}: unknown signal file type: use .csv or .jsonl")
    if not out:
        raise SignalFileError(f"{path}: no signals")
    return out


def _check_fields(fields: list[str], known: set[str], where: str) -> None:
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise SignalFileError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")
    symbols = [f for f in SYMBOL_COLUMNS if f in fields]
    if len(symbols) > 1:
        raise SignalFileError(f"{where}: give either 'symbol' or 'token', not both")
    missing = [f for f in REQUIRED if f not in fields] + ([] if symbols else ["symbol"])
    if missing:
        raise SignalFileError(f"{where}: missing field(s) {', '.join(missing)}")


def load_signal_file(path: str | Path) -> FeedSignals:
    """Read and validate a signal file (cached while the file is unchanged)."""
    p = Path(path).resolve()
    try:
        stat = p.stat()
    except OSError:
        raise SignalFileError(f"{path}: signal file not found") from None
    return _load(str(p), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=16)
def _load(path: str, _mtime_ns: int, _size: int) -> FeedSignals:
    records = _records(Path(path))
    name = Path(path).name
    per: dict[str, tuple[list[int], list[Signal], list[str]]] = {}
    last_ts: int | None = None
    for where, rec in records:
        ts = _timestamp(rec.get("timestamp"), where)
        if last_ts is not None and ts < last_ts:
            raise SignalFileError(f"{where}: timestamp {rec['timestamp']!r} is earlier than the"
                                  " line before: keep the file in time order")
        last_ts = ts
        symbol = rec.get("symbol", rec.get("token"))
        if not isinstance(symbol, str) or not symbol.strip():
            raise SignalFileError(f"{where}: symbol is missing")
        symbol = symbol.strip()
        raw_side = rec.get("side")
        side = _SIDES.get(raw_side.strip().lower()) if isinstance(raw_side, str) else None
        if side is None:
            raise SignalFileError(
                f"{where}: side must be long, short, flat or hold, got {raw_side!r}")
        confidence = _fraction(rec.get("confidence"), "confidence", where, blank_ok=False)
        target = _fraction(rec.get("fund_pct"), "fund_pct", where, blank_ok=True)
        text = rec.get("text")
        if text is not None and not isinstance(text, str):
            raise SignalFileError(f"{where}: text must be a string, got {text!r}")
        line = where.rsplit(" ", 1)[-1]
        reason = f"feed {name}:{line}" + (f": {text.strip()}" if text and text.strip() else "")
        times, signals, wheres = per.setdefault(symbol, ([], [], []))
        if times and times[-1] == ts:
            raise SignalFileError(f"{where}: a second signal for {symbol} at the same time as"
                                  f" {wheres[-1]}")
        times.append(ts)
        signals.append(Signal(side, confidence, target, reason))  # type: ignore[arg-type]
        wheres.append(f"line {line}")
    return FeedSignals({s: (tuple(t), tuple(sig)) for s, (t, sig, _) in per.items()},
                       len(records))


class SignalFeedParams(AgentParams):
    path: str = Field(min_length=1, description="CSV or JSONL file of timestamped signals")


class SignalFeed:
    """Emits the file's latest signal for the bar's symbol once the bar's ts reaches it."""

    Params = SignalFeedParams
    __slots__ = ("_feed", "_i", "_signals", "_symbol", "_times")

    def __init__(self, path: str) -> None:
        self._feed = load_signal_file(path)
        self._symbol: str | None = None
        self._times: tuple[int, ...] = ()
        self._signals: tuple[Signal, ...] = ()
        self._i = 0  # signals already passed

    def on_bar(self, view: MarketView) -> Signal | None:
        if self._symbol is None:
            self._symbol = view.symbol
            self._times, self._signals = self._feed.by_symbol.get(view.symbol, ((), ()))
        times = self._times
        i = self._i
        n = len(times)
        if i == n or times[i] > view.ts:
            return None
        ts = view.ts
        i += 1
        while i < n and times[i] <= ts:
            i += 1
        self._i = i
        return self._signals[i - 1]
