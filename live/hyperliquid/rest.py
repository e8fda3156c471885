"""Async REST client for Hyperliquid's /info and /exchange (httpx).

Retry policy, and why it cannot double-submit:

- ``/info`` reads change nothing: a 429 closes the rate limiter for Retry-After (or the
  backoff), a 5xx, timeout or dropped connection is retried with exponential backoff
  and jitter, up to ``max_attempts``; then ``TransportFailed``.
- ``/exchange`` actions go over the order lane (``live.hyperliquid.lane``: kept-alive
  connections, the request on the wire before the first ``await``) and are signed once.
  Every retry resends the *identical* signed body, nonce included, and the exchange
  accepts a nonce at most once, so a retried action
  lands at most once however the earlier attempts ended. A 429 means the request was
  refused before it ran. A 5xx, a timeout or a connection lost after sending is
  *ambiguous*: before resending, the caller's ``landed`` check (``orderStatus`` by cloid
  for an order) is asked whether it already ran; if it did, ``exchange`` returns None
  ("landed on an earlier attempt, whose reply was lost") and the caller reads the state.
  A refusal that follows an ambiguous attempt is checked the same way: it may be the
  replay being refused because the original landed.
- Idempotent actions (``updateLeverage``) may instead be re-signed with a fresh nonce on
  each attempt (``resign=True``).

Rate limits: every request first takes its weight from the ``WeightLimiter``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from live.hyperliquid.config import Credentials, HyperliquidConfig
from live.hyperliquid.errors import TransportFailed, VenueRejected
from live.hyperliquid.lane import LaneError, LaneResponse, OrderLane, Sent
from live.hyperliquid.nonce import NonceSource
from live.hyperliquid.ratelimit import WeightLimiter, info_extra_weight, info_weight
from live.hyperliquid.wire import action_weight

log = logging.getLogger(__name__)

Landed = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Dispatched:
    """A signed action (``body``); ``sent``: its request written already, reply unread."""

    body: bytes
    sent: Sent | None
    failed: str = ""  # writing it failed, after bytes may have left


class HyperliquidRest:
    """One HTTP connection pool, one rate limiter and one nonce source per signer."""

    def __init__(self, config: HyperliquidConfig, credentials: Credentials | None = None, *,
                 limiter: WeightLimiter | None = None, nonces: NonceSource | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if credentials is not None and credentials.signer.mainnet != config.mainnet:
            raise ValueError(f"credentials sign for {credentials.signer!r}, "
                             f"config is {config.network}")
        self.config = config
        self.credentials = credentials
        self.limiter = limiter or WeightLimiter(config.weight_budget)
        self.nonces = nonces or NonceSource()
        self._http = httpx.AsyncClient(base_url=config.rest_url, timeout=config.timeout_s,
                                       transport=transport)
        self.lane = OrderLane(config.rest_url, config.timeout_s)  # /exchange: see its module
        self._jitter = random.Random()
        self.retries = 0  # attempts beyond the first, over the client's life (for tests/ops)

    def __repr__(self) -> str:
        return f"HyperliquidRest({self.config.rest_url}, {self.credentials!r})"

    async def aclose(self) -> None:
        await self._http.aclose()
        await self.lane.aclose()

    async def warm(self) -> None:
        """Open the order lane's connection now, so the first order pays no handshake."""
        await self.lane.connect()

    async def __aenter__(self) -> HyperliquidRest:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reads -----------------------------------------------------------------------------

    async def info(self, payload: dict[str, Any]) -> Any:
        """POST /info with retries; returns the decoded JSON."""
        kind = str(payload["type"])
        body = json.dumps(payload).encode()
        problem = ""
        for attempt in range(self.config.max_attempts):
            if attempt:
                self.retries += 1
            await self.limiter.acquire(info_weight(kind))
            try:
                resp = await self._http.post("/info", content=body, headers=_JSON)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                problem = f"{type(exc).__name__}"
            else:
                if resp.status_code == 429:
                    problem = "429"
                    self._cool_down(resp, attempt)
                    continue
                if resp.status_code >= 500:
                    problem = f"HTTP {resp.status_code}"
                elif resp.status_code >= 400:
                    raise VenueRejected(resp.text.strip() or f"HTTP {resp.status_code}")
                else:
                    data = resp.json()
                    if isinstance(data, list):
                        self.limiter.charge(info_extra_weight(kind, len(data)))
                    return data
            log.warning("info %s: %s (attempt %d)", kind, problem, attempt + 1)
            await self._backoff(attempt)
        raise TransportFailed(f"info {kind}: no answer after {self.config.max_attempts} "
                              f"attempts (last: {problem})")

    # -- actions ---------------------------------------------------------------------------

    def signed_body(self, action: dict[str, Any]) -> bytes:
        """The JSON body for ``action``, signed with a fresh nonce."""
        return self._body(action, self.nonces.next())

    def rehearse(self, action: dict[str, Any]) -> bytes:
        """Sign and encode ``action`` as ``dispatch`` would, with nonce 0 (never valid, and
        no nonce of the source used up), and send nothing: the request's bytes. A dry run
        that keeps the order path's code and data in the CPU caches between market events
        (``live.rehearse_every``; BENCHMARKS.md has what it buys)."""
        return self.lane.encode("/exchange", self._body(action, 0))

    def _body(self, action: dict[str, Any], nonce: int) -> bytes:
        creds = self._creds()
        sig = creds.signer.sign_l1_action(action, nonce, vault_address=creds.vault)
        payload: dict[str, Any] = {"action": action, "nonce": nonce,
                                   "signature": sig.to_wire()}
        if creds.vault is not None:
            payload["vaultAddress"] = creds.vault
        return json.dumps(payload, separators=(",", ":")).encode()

    def dispatch(self, action: dict[str, Any]) -> Dispatched:
        """Sign ``action`` and, when a kept connection is open and the rate limit would not
        wait, write the request now, before the caller yields to the loop: an order
        reaches the kernel in the step that decided it. ``exchange(..., dispatched=)``
        then reads the reply (or sends it, if it could not be written here)."""
        body = self.signed_body(action)
        if not (self.lane.idle and self.limiter.try_acquire(action_weight(action))):
            return Dispatched(body, None)
        try:
            return Dispatched(body, self.lane.send("/exchange", body))
        except LaneError as exc:  # it may have gone: ``exchange`` asks before it gives up
            return Dispatched(body, None, str(exc))

    async def exchange(self, action: dict[str, Any], *, landed: Landed | None = None,
                       resign: bool = False, body: bytes | None = None,
                       dispatched: Dispatched | None = None) -> dict[str, Any] | None:
        """POST a signed action; returns the venue's reply, or None when an earlier
        attempt landed and its reply was lost (``landed`` said so). Raises
        ``VenueRejected`` (the venue's message) or ``TransportFailed`` (nothing definite;
        ``.ambiguous`` tells whether it may have landed). ``dispatched``: signed (and
        maybe written) by ``dispatch``."""
        sent, ambiguous = None, ""
        if dispatched is not None:
            body, sent, ambiguous = dispatched.body, dispatched.sent, dispatched.failed
        body = body if body is not None else self.signed_body(action)
        weight = action_weight(action)
        for attempt in range(self.config.max_attempts):
            if attempt:
                self.retries += 1
                if ambiguous and landed is not None and await self._check(landed):
                    return None
                if resign:
                    body = self.signed_body(action)
            try:
                if sent is not None:  # the first attempt, written by ``dispatch``
                    request, sent = sent, None
                    resp = await self.lane.receive(request)
                else:
                    await self.limiter.acquire(weight)
                    resp = await self.lane.post("/exchange", body)
            except LaneError as exc:
                problem = str(exc)
                if exc.sent:  # it may have run
                    ambiguous = problem
            else:
                if resp.status_code == 429:
                    self._cool_down(resp, attempt)
                    log.warning("exchange %s: 429 (attempt %d)", action["type"], attempt + 1)
                    continue
                if resp.status_code >= 500:
                    problem = ambiguous = f"HTTP {resp.status_code}"
                elif resp.status_code >= 400:
                    raise VenueRejected(resp.text.strip() or f"HTTP {resp.status_code}")
                else:
                    data = resp.json()
                    if data.get("status") != "ok":
                        if ambiguous and landed is not None and await self._check(landed):
                            return None
                        raise VenueRejected(str(data.get("response")))
                    return data
            log.warning("exchange %s: %s (attempt %d)", action["type"], problem, attempt + 1)
            await self._backoff(attempt)
        if ambiguous and landed is not None and await self._check(landed):
            return None
        raise TransportFailed(f"{action['type']}: no answer after "
                              f"{self.config.max_attempts} attempts",
                              ambiguous=bool(ambiguous) and not resign)

    # -- internals -------------------------------------------------------------------------

    def _creds(self) -> Credentials:
        if self.credentials is None:
            raise ValueError("this client has no credentials: reads only")
        return self.credentials

    async def _check(self, landed: Landed) -> bool:
        """Ask whether an earlier attempt landed; 'cannot tell' counts as no, which is
        safe because the replay carries the same nonce."""
        try:
            return await landed()
        except TransportFailed:
            return False

    def _delay(self, attempt: int) -> float:
        cfg = self.config
        jitter = 0.5 + self._jitter.random() / 2
        return min(cfg.max_backoff_s, cfg.backoff_s * 2**attempt) * jitter

    async def _backoff(self, attempt: int) -> None:
        if attempt + 1 < self.config.max_attempts:
            await asyncio.sleep(self._delay(attempt))

    def _cool_down(self, resp: httpx.Response | LaneResponse, attempt: int) -> None:
        try:
            wait = float(resp.headers.get("retry-after", ""))
        except ValueError:
            wait = self._delay(attempt)
        self.limiter.close_for(min(wait, self.config.max_backoff_s))


_JSON = {"content-type": "application/json"}
