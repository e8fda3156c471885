"""External agent: asks a decision service over HTTP, and records every exchange for replay.

Request (POSTed as JSON): the symbol, the current bar's time and the last ``lookback`` bars
up to and including the current one::

    {"v": 1, "symbol": "BTC", "ts": <bar open time, ns UTC>,
     "bars": {"ts": [...], "open": [...], "high": [...], "low": [...], "close": [...],
              "volume": [...]}}

It is sent on bar ``lookback`` and every ``every`` bars after. A request holding a bar
after the current one (a leaky view, a subclass's ``build_request``) is refused with
``LookaheadError`` before anything is sent or recorded: a bug, so the run fails.

Response (HTTP 200, JSON object): ``{"side": "long" | "short" | "flat" | "hold",
"confidence": 0..1, "target": 0..1 or null (optional), "reason": "..." (optional)}``.
Anything else (a timeout, a refused connection, a 4xx or 5xx status, a body that is not
such an object) is an error: timeouts, connection failures and 5xx are retried ``retries``
times, then the error is recorded and the agent abstains (``on_error = "hold"``: a HOLD
signal that withdraws its view; ``"keep"``: its last signal stands). It never crashes the run.

Record / replay. Each exchange is a ``CallRecord`` keyed by the SHA-256 of the request's
canonical JSON (sorted keys, no spaces, floats as Python's shortest repr, so equal requests
hash equally); the bars carry the time, so the key names the symbol and the moment too.
``mode`` says where answers come from:

* ``record``: from the service; every exchange (answer or error, with its wall time in
  ``elapsed_ms``) is appended to the run's call log. Needs a log.
* ``replay``: from the log only, never the network: the latest record of the same request
  by this agent in an earlier run of the same scenario. A request with no record is an
  error (``ReplayMissError``) naming the bar and hash. The record is copied into the replay
  run's own log unchanged (``elapsed_ms`` included: it measured the original call), so a
  replay run stores the same rows as the run it replays, offline.
* ``live``: from the service; logged if a log is wired (for the audit), never read back.

The log is the ``CallLog`` port. ``DuckDBCallLog`` keeps it in the run store's
``agent_calls`` table; ``build_engine`` hands one, bound to the run, scenario and agent
name, to agents whose constructor takes ``call_log`` (``call_log_for``).

Secrets: ``headers_env`` maps an HTTP header to the environment variable holding its value
(e.g. ``{"Authorization" = "DECISION_TOKEN"}``); values are read from the environment,
sent, and never recorded, logged or hashed.

The call is synchronous: the loop waits for the answer (bounded by ``timeout`` x attempts).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pandas as pd
import pyarrow as pa
from pydantic import Field

from sim.agents.base import AgentParams, CallStats
from sim.bus import CALL, EventBus
from sim.bus_events import ToolCalled
from sim.messages import HOLD, Side, Signal
from sim.store import DuckDBStore
from sim.view import MarketView

REQUEST_VERSION = 1
BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume")
_SIDES = {name.lower(): side for name, side in Side.__members__.items()}
_ERROR_HOLD = Signal(HOLD, 0.0, reason="external: no usable answer (see agent_calls)")
_SNIPPET = 200


class LookaheadError(ValueError):
    """A request that would send data from after the current bar."""


class ReplayMissError(LookupError):
    """Replay asked for a request that no earlier run recorded."""


class CallLogMissing(RuntimeError):
    """Record or replay mode without a call log to write to or read from."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One exchange with a decision service: a row of ``agent_calls`` (less run and agent)."""

    ts: int
    symbol: str
    request_hash: str
    request: str  # canonical JSON
    response: str | None  # canonical JSON of the answer's body, if it was JSON
    error: str | None  # None: the answer was usable
    elapsed_ms: float  # wall time of the original call, retries included


class CallLog(Protocol):
    """Where an agent's exchanges are kept (one agent, one run) and found again."""

    def find(self, request_hash: str) -> CallRecord | None:
        """The latest earlier record of this request, or None."""
        ...

    def append(self, record: CallRecord) -> None: ...


class MemoryCallLog:
    """A call log in memory: ``find`` sees the records it was given and those appended."""

    def __init__(self, records: Iterable[CallRecord] = ()) -> None:
        self.records: list[CallRecord] = list(records)
        self._index = {r.request_hash: r for r in self.records}

    def find(self, request_hash: str) -> CallRecord | None:
        return self._index.get(request_hash)

    def append(self, record: CallRecord) -> None:
        self.records.append(record)
        self._index[record.request_hash] = record


class DuckDBCallLog:
    """The ``agent_calls`` table of a DuckDB run store, for one agent of one run.

    ``find`` reads (once, on first use) this agent's records from every other run of the
    same scenario, the latest run's winning; ``append`` writes a row at once, so calls made
    before a crash are kept.
    """

    def __init__(self, store: DuckDBStore, scenario: str, run_id: str, agent: str) -> None:
        self.store = store
        self.scenario = scenario
        self.run_id = run_id
        self.agent = agent
        self._index: dict[str, CallRecord] | None = None

    def find(self, request_hash: str) -> CallRecord | None:
        if self._index is None:
            rows = self.store.con.execute(
                "SELECT epoch_ns(c.ts), c.symbol, c.request_hash, c.request::VARCHAR,"
                " c.response::VARCHAR, c.error, c.elapsed_ms"
                " FROM agent_calls c JOIN runs r ON r.run_id = c.run_id"
                " WHERE r.scenario = ? AND c.agent = ? AND c.run_id <> ?"
                " ORDER BY r.started_at, r.run_id, c.rowid",
                [self.scenario, self.agent, self.run_id],
            ).fetchall()
            self._index = {row[2]: CallRecord(*row) for row in rows}
        return self._index.get(request_hash)

    def append(self, record: CallRecord) -> None:
        self.store.append(self.run_id, "agent_calls", pa.table({
            "ts": pa.array([record.ts], pa.timestamp("ns")),
            "symbol": [record.symbol],
            "agent": [self.agent],
            "request_hash": [record.request_hash],
            "request": [record.request],
            "response": pa.array([record.response], pa.string()),
            "error": pa.array([record.error], pa.string()),
            "elapsed_ms": pa.array([record.elapsed_ms], pa.float64()),
        }))


class ObservedCallLog:
    """A call log that also publishes each call it keeps (topic ``call``: a
    ``ToolCalled`` of tool ``agent:NAME``), so a watched run judges the service's
    success rate and latency as it goes (``sim.monitor``). Replayed answers are found,
    not appended: only calls made now are published."""

    def __init__(self, inner: CallLog, bus: EventBus, agent: str) -> None:
        self.inner = inner
        self.bus = bus
        self.tool = f"agent:{agent}"

    def find(self, request_hash: str) -> CallRecord | None:
        return self.inner.find(request_hash)

    def append(self, record: CallRecord) -> None:
        self.inner.append(record)
        if self.bus.wants(CALL):
            self.bus.publish(CALL, record.ts, ToolCalled(
                record.ts, self.tool, record.symbol, record.error is None, record.elapsed_ms,
                record.error))


def call_log_for(store: object, scenario: str, run_id: str, agent: str,
                 bus: EventBus | None = None) -> CallLog | None:
    """The call log of ``agent`` in run ``run_id`` (published on ``bus`` when given);
    None for a store that cannot keep one."""
    if isinstance(store, DuckDBStore):
        log = DuckDBCallLog(store, scenario, run_id, agent)
        return log if bus is None else ObservedCallLog(log, bus, agent)
    return None


# -- requests and answers ------------------------------------------------------------------
def canonical_json(obj: Any) -> str:
    """One spelling per value: sorted keys, no spaces, no NaN (so hashes are stable)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


def text_only(obj: Any) -> Any:
    """``obj`` (decoded JSON) with every lone surrogate replaced by ``?``: JSON may escape
    one (``"\\ud800"``), Python decodes it, and neither the store nor Arrow takes it as
    text. A service's odd reason must not fail the run (this agent promises never to)."""
    if isinstance(obj, str):
        return obj if obj.isascii() else obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, dict):
        return {text_only(k): text_only(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [text_only(v) for v in obj]
    return obj


def request_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat()


def check_causal(request: Mapping[str, Any], now: int) -> None:
    """Refuse a request stamped other than ``now`` or holding a bar after ``now``."""
    if request.get("ts") != now:
        raise LookaheadError(f"request stamped {request.get('ts')!r}, the bar is at {now}")
    bars = request.get("bars")
    stamps = bars.get("ts") if isinstance(bars, Mapping) else None
    if not isinstance(stamps, list | tuple):
        raise LookaheadError("request has no bars.ts list to check")
    late = max(stamps, default=now)
    if late > now:
        raise LookaheadError(
            f"request for {request.get('symbol')} at {_iso(now)} holds a bar at {_iso(late)},"
            " after the current bar: refused"
        )


def parse_decision(obj: Any) -> Signal:
    """A service's answer as a Signal; ValueError (one line) if it is not a valid one."""
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    unknown = set(obj) - {"side", "confidence", "target", "reason"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(map(repr, unknown)))}")
    raw = obj.get("side")
    side = _SIDES.get(raw.lower()) if isinstance(raw, str) else None
    if side is None:
        raise ValueError(f"side must be long, short, flat or hold, got {raw!r}")
    values: list[float | None] = []
    for name in ("confidence", "target"):
        x = obj.get(name)
        if x is None and name == "target":
            values.append(None)
            continue
        if isinstance(x, bool) or not isinstance(x, int | float) or not (
            math.isfinite(x) and 0.0 <= x <= 1.0
        ):
            raise ValueError(f"{name} must be a number in [0, 1], got {x!r}")
        values.append(float(x))
    reason = obj.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ValueError(f"reason must be a string, got {reason!r}")
    return Signal(side, values[0], values[1],  # type: ignore[arg-type]
                  f"external: {reason}" if reason else "external")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


# -- the agent -----------------------------------------------------------------------------
class ExternalAgentParams(AgentParams):
    url: str = Field(pattern=r"^https?://\S+$", description="decision service endpoint (POST)")
    mode: Literal["record", "replay", "live"] = Field(
        "record", description="record: ask and log; replay: answer from the log; live: ask")
    lookback: int = Field(50, ge=1, le=100_000, description="bars sent with each request")
    every: int = Field(1, ge=1, description="ask every this many bars")
    timeout: float = Field(5.0, gt=0, le=600, description="seconds per attempt")
    retries: int = Field(1, ge=0, le=10, description="retries after a timeout or 5xx")
    backoff: float = Field(0.0, ge=0, le=60, description="seconds between attempts")
    on_error: Literal["hold", "keep"] = Field(
        "hold", description="on an error: HOLD (abstain) or keep the last signal")
    headers_env: dict[str, str] = Field(
        {}, description="HTTP header -> environment variable with its value")


class ExternalAgent:
    """Asks a decision service what to do (see the module docstring)."""

    Params = ExternalAgentParams

    def __init__(
        self,
        url: str,
        mode: str = "record",
        lookback: int = 50,
        every: int = 1,
        timeout: float = 5.0,
        retries: int = 1,
        backoff: float = 0.0,
        on_error: str = "hold",
        headers_env: Mapping[str, str] | None = None,
        call_log: CallLog | None = None,
    ) -> None:
        if mode not in ("record", "replay", "live"):
            raise ValueError(f"mode must be record, replay or live, got {mode!r}")
        if lookback < 1 or every < 1 or timeout <= 0 or retries < 0:
            raise ValueError("need lookback >= 1, every >= 1, timeout > 0, retries >= 0")
        self.url = url
        self.mode = mode
        self.lookback = lookback
        self.every = every
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.keep_on_error = on_error == "keep"
        self.call_log = call_log
        self._headers = {"content-type": "application/json"}
        if mode != "replay":
            missing = [v for v in (headers_env or {}).values() if not os.environ.get(v)]
            if missing:
                raise ValueError(f"environment variable(s) {', '.join(missing)} not set "
                                 "(needed by headers_env)")
            self._headers.update({h: os.environ[v] for h, v in (headers_env or {}).items()})
        self._client: Any = None
        self._last: Signal | None = None
        self._calls = 0
        self._errors = 0
        self._last_error: str | None = None

    def call_stats(self) -> CallStats:
        """Requests answered so far (from the service or the log) and how many of the
        answers were errors."""
        return CallStats(self._calls, self._errors, self._last_error)

    # -- per bar --------------------------------------------------------------------------
    def on_bar(self, view: MarketView) -> Signal | None:
        n = view.n
        if n < self.lookback or (n - self.lookback) % self.every:
            return None
        request = self.build_request(view)
        check_causal(request, view.ts)
        record = self.exchange(view.ts, view.symbol, canonical_json(request))
        self._calls += 1
        if record.error is not None:
            self._errors += 1
            self._last_error = record.error
        if record.error is None:
            try:
                signal = parse_decision(json.loads(record.response or "null"))
            except ValueError:
                signal = None
        else:
            signal = None
        if signal is None:
            if self.keep_on_error:
                return None
            signal = _ERROR_HOLD
        if signal == self._last:
            return None
        self._last = signal
        return signal

    def build_request(self, view: MarketView) -> dict[str, Any]:
        """The request body for the current bar: symbol, time and the last bars, up to now."""
        k = self.lookback
        return {
            "v": REQUEST_VERSION,
            "symbol": view.symbol,
            "ts": view.ts,
            "bars": {name: view.history(name, k).tolist() for name in BAR_FIELDS},
        }

    def exchange(self, ts: int, symbol: str, body: str) -> CallRecord:
        """The answer to ``body``: from the log (replay) or the service (record, live)."""
        digest = request_hash(body)
        log = self.call_log
        if self.mode == "replay":
            if log is None:
                raise CallLogMissing("replay mode needs a call log: run the scenario through "
                                     "run_scenario with a DuckDB run store")
            record = log.find(digest)
            if record is None:
                raise ReplayMissError(
                    f"replay: no recorded call for {symbol} at {_iso(ts)} (request "
                    f"{digest[:12]}) in an earlier run of this scenario; run it once with "
                    'mode = "record"'
                )
            log.append(record)
            return record
        if self.mode == "record" and log is None:
            raise CallLogMissing("record mode needs a call log: run the scenario through "
                                 "run_scenario with a DuckDB run store")
        response, error, elapsed_ms = self._post(body)
        record = CallRecord(ts, symbol, digest, body, response, error, elapsed_ms)
        if log is not None:
            log.append(record)
        return record

    # -- the network ----------------------------------------------------------------------
    def _post(self, body: str) -> tuple[str | None, str | None, float]:
        """(response JSON, error, elapsed ms): every failure becomes an error string."""
        import httpx  # only record and live runs need it

        if self._client is None:
            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout))
        attempts = 0
        response: str | None = None
        error: str | None = None
        start = time.perf_counter()
        while True:
            attempts += 1
            retry = False
            response = None
            try:
                answer = self._client.post(self.url, content=body.encode(), headers=self._headers)
            except httpx.TimeoutException:
                error, retry = f"timeout after {self.timeout:g} s", True
            except httpx.HTTPError as exc:
                error = f"connection failed: {type(exc).__name__}: {_one_line(str(exc))}"
                retry = True
            else:
                code = answer.status_code
                if code != 200:
                    error = f"HTTP {code}: {_one_line(answer.text)}"
                    retry = code >= 500
                else:
                    try:
                        obj = text_only(json.loads(answer.content))
                        response = canonical_json(obj)
                    except (ValueError, UnicodeDecodeError):
                        error = f"bad response: not JSON: {_one_line(answer.text)}"
                    else:
                        try:
                            parse_decision(obj)
                            error = None
                        except ValueError as exc:
                            error = f"bad response: {exc}"
            if not retry or attempts > self.retries:
                break
            if self.backoff:
                time.sleep(self.backoff)
        if error is not None and attempts > 1:
            error = f"{error} ({attempts} attempts)"
        return response, error, (time.perf_counter() - start) * 1000.0
