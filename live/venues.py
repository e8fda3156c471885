"""Venue kinds: what a live session needs of a venue, found by the venue's name.

A venue kind is an adapter folder under ``live/`` (``live/NAME/``). Its package registers
the kind here when it is imported (``register("NAME", "live.NAME.kind:KIND")``: that
module is imported only when the kind is used), and
``venue_kind(name)`` imports the package ``live.<name>`` the first time a kind of that
name is asked for. So the core and the CLI's session code (``quorum.live``) import no
adapter: they ask for a kind by name (``--venue NAME``) or by the settings it made
(``kind_of``), and build the session's market data, candle feed and account adapter
through it. A new venue is a folder that registers itself; nothing else changes.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from live.clock import PacingClock
from live.port import VenueAdapter
from sim.instruments import Instrument
from sim.messages import Bar


class VenueSettings(Protocol):
    """Where a kind's session connects: its network, and the URL its data comes from
    (both stored with the session, ``live_sessions``)."""

    @property
    def network(self) -> str: ...
    @property
    def rest_url(self) -> str: ...


class VenueConnection(Protocol):
    """A connection to the venue: market data, and the account when it has credentials."""

    async def load_markets(self) -> Mapping[str, Any]:
        """The venue's instruments by coin (a coin it does not list cannot be traded)."""
        ...

    async def account_value(self) -> float: ...

    def instrument(self, coin: str, venue: str, symbol: str) -> Instrument: ...

    async def aclose(self) -> None: ...


class CandleFeed(Protocol):
    """The venue's closed candles of the session's coins (``live.feeds.AsyncBarFeed``)."""

    def __aiter__(self) -> AsyncIterator[Bar]: ...

    async def check_warmup(self) -> None:
        """ConfigError unless the venue has the warm-up's closed candles now."""
        ...


class VenueKind(Protocol):
    """One kind of venue, as ``quorum live`` builds a session on it."""

    name: str  # the ``--venue`` word, stored as ``live_sessions.venue``
    title: str  # how messages name it (the venue's proper name)
    # The logger its request retries go to (warnings, as they happen): quiet while a
    # session connects, whose failure is said in one line with the attempts in it.
    retry_log: str
    key_env: str  # the environment variable of an account's key (``[live.venues]`` remaps it)

    def settings(self, *, testnet: bool, url: str | None) -> VenueSettings:
        """The network's settings (``url``: another base URL); ConfigError if bad."""
        ...

    def owns(self, settings: object) -> bool:
        """Whether ``settings`` were made by this kind."""
        ...

    def interval_name(self, interval_ns: int) -> str:
        """The venue's name of a candle interval; ValueError if it offers none."""
        ...

    def credentials(self, settings: Any, environ: Mapping[str, str] | None = None) -> Any:
        """The account's credentials from the environment only (never a file or the
        command line); ValueError saying what to set."""
        ...

    def connect(self, settings: Any, credentials: Any = None) -> VenueConnection:
        """A connection (market data only without ``credentials``)."""
        ...

    def candle_feed(self, settings: Any, coins: Mapping[str, str], interval_ns: int, *,
                    warmup_bars: int, close_grace_ns: int, max_bars: int | None = None,
                    clock: PacingClock | None = None,
                    connection: VenueConnection | None = None) -> CandleFeed: ...

    def adapter(self, connection: VenueConnection, *, coins: Mapping[str, str],
                rehearse_every_s: float | None = None) -> VenueAdapter:
        """The account as the live core's adapter (``live.port``)."""
        ...

    def unreachable(self, settings: Any, exc: Exception) -> Exception:
        """Why a session could not start, in one line naming the venue and its URL."""
        ...


_KINDS: dict[str, str] = {}  # name -> "package.module:attribute" of its VenueKind
_LOADED: dict[str, VenueKind] = {}


def register(name: str, target: str) -> None:
    """Register venue kind ``name``: ``target`` ("package.module:attribute") is imported
    when the kind is first used. Called by an adapter package's ``__init__``."""
    _KINDS[name] = target


def venue_kind(name: str) -> VenueKind:
    """The venue kind ``name``; ValueError naming the known ones if there is none."""
    if name not in _KINDS:
        try:
            importlib.import_module(f"live.{name}")  # its package registers it
        except ModuleNotFoundError as exc:
            if exc.name != f"live.{name}":  # the package is there; what it needs is not
                raise
    if name not in _KINDS:
        known = ", ".join(sorted(_KINDS)) or "none registered"
        raise ValueError(f"unknown venue {name!r} (known: {known})")
    kind = _LOADED.get(name)
    if kind is None:
        module, _, attribute = _KINDS[name].partition(":")
        kind = _LOADED[name] = getattr(importlib.import_module(module), attribute)
    return kind


def kind_of(settings: object) -> VenueKind:
    """The kind whose ``settings`` these are (its package made them, so it registered)."""
    for name in list(_KINDS):
        kind = venue_kind(name)
        if kind.owns(settings):
            return kind
    raise ValueError(f"no venue kind made settings of type {type(settings).__name__}")
