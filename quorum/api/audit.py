"""Every control call on record, and a rate limit per key: the ``control_audit`` table's
owner, and the ASGI gate in front of the control endpoints (every ``/api/`` call that is
not a GET).

The gate (``ControlGate``) sees each control call whole, whatever becomes of it (401,
403, 422, 429, a rejected command, an applied one): it takes a token from the caller's
bucket (``TokenBuckets``: per key id; without keys, per client address), answers 429 in
the one error shape when the bucket is empty, and stores one ``control_audit`` row: when,
which key (its id, never the key), its role, method, path, the body (at most 4 KB, and
its SHA-256), the HTTP status and the outcome (the command's stored outcome, or the
error's message). Rows are written by the controller (``quorum.api.control``): in a
session by its store writer thread, never on the trading loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import duckdb

from quorum.api.access import Access
from quorum.api.control import Controller
from sim.schema import CONTROL_AUDIT_DDL

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_KEPT = 4096  # bytes of a body stored with its row (the digest covers all of it)

def create_table(con: duckdb.DuckDBPyConnection) -> None:
    """Made before a server takes calls (so no write ever races the catalog)."""
    con.execute(CONTROL_AUDIT_DDL)


@dataclass(frozen=True, slots=True)
class AuditRow:
    ts: int
    run_id: str | None
    key_id: str | None
    role: str | None
    method: str
    path: str
    body: str
    body_sha256: str
    status: int
    outcome: str | None

    def insert(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("INSERT INTO control_audit VALUES (make_timestamp_ns(?), ?, ?, ?, ?, ?,"
                    " ?, ?, ?, ?)",
                    [self.ts, self.run_id, self.key_id, self.role, self.method, self.path,
                     self.body, self.body_sha256, self.status, self.outcome])


class TokenBuckets:
    """A token bucket per caller: ``burst`` calls at once, refilled at ``rate_per_s``.
    ``clock``: seconds, monotonic (injected by tests)."""

    def __init__(self, rate_per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate_per_s
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, who: str) -> float:
        """0.0 when a call may go now (a token taken), else the seconds until one may."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(who, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[who] = (tokens - 1.0, now)
                return 0.0
            self._buckets[who] = (tokens, now)
            return (1.0 - tokens) / self.rate if self.rate > 0 else float("inf")


def is_control(method: str, path: str) -> bool:
    return method not in ("GET", "HEAD", "OPTIONS") and path.startswith("/api/")


def _outcome(status: int, body: bytes) -> str | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("outcome"), dict):
        return str(data["outcome"].get("outcome"))[:500]
    if isinstance(data.get("error"), dict):
        return str(data["error"].get("message"))[:500]
    return str(data.get("outcome", "ok" if status < 400 else ""))[:500] or None


class ControlGate:
    """ASGI middleware: rate limit and audit the control calls; everything else passes."""

    def __init__(self, app: ASGIApp, *, access: Access, buckets: TokenBuckets,
                 controller: Controller, run_id: Callable[[], str | None],
                 max_body: int = 65_536) -> None:
        self.app = app
        self.access = access
        self.buckets = buckets
        self.controller = controller
        self.run_id = run_id
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_control(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        who = self.access.identify(headers.get("x-api-key"))
        client = scope.get("client") or ("local", 0)
        bucket = f"key:{who.key_id}" if who is not None and who.key_id else f"addr:{client[0]}"
        body, too_big = await _read_body(receive, self.max_body)
        status: list[int] = []
        answer: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        wait_s = self.buckets.take(bucket)
        if too_big:
            await _send_error(capture, 413, "too_large",
                              f"request body over {self.max_body} bytes")
        elif wait_s > 0:
            await _send_error(capture, 429, "rate_limited",
                              f"too many control calls: retry in {wait_s:.2f} s",
                              retry_after=wait_s)
        else:
            await self.app(scope, _replay(body), capture)
        row = AuditRow(time.time_ns(), self.run_id(), who.key_id if who else None,
                       who.role if who else None, scope["method"], scope["path"],
                       body[:BODY_KEPT].decode("utf-8", "replace"),
                       hashlib.sha256(body).hexdigest(), status[0] if status else 500,
                       _outcome(status[0] if status else 500, b"".join(answer)))
        await asyncio.to_thread(self._store, row)

    def _store(self, row: AuditRow) -> None:
        try:
            self.controller.record(row.insert)
        except duckdb.Error as exc:  # the audit never fails the call it records
            import sys

            print(f"quorum api: audit row not stored: {exc}", file=sys.stderr, flush=True)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks), size > limit


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # as a client that keeps the connection open
        return {"type": "http.disconnect"}

    return receive


async def _send_error(send: Send, status: int, code: str, message: str,
                      retry_after: float | None = None) -> None:
    payload = json.dumps({"error": {"status": status, "code": code, "message": message,
                                    "field": None}}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(retry_after))).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
