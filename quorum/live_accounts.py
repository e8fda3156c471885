"""The venue accounts ``quorum live`` trades, from the command line and the scenario.

``--venue NAME``: one account of venue kind NAME (``live.venues``) for every scenario
venue, its key from the kind's environment variable. ``--venues``: the scenario's
``[live.venues.VENUE]`` tables bind each scenario venue to an account of its own (kind,
network, URL, the environment variable of its key), so one session trades several; the
first table's venue feeds the session its market data. Keys come from the environment
only (``VenueKind.credentials``), never from the file or the command line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from live.venues import kind_of, venue_kind
from quorum.live import DEFAULT_VENUE, Account
from sim.config import ScenarioConfig
from sim.config_base import ConfigError


def kind_named(name: str, what: str = "--venue") -> None:
    """ConfigError naming the known kinds unless ``name`` is a venue kind."""
    try:
        venue_kind(name)
    except ValueError as exc:
        raise ConfigError(f"{what}: {exc}") from None


def scenario_accounts(config: ScenarioConfig, environ: Mapping[str, str] | None = None,
                      *, credentials: bool = True) -> list[Account]:
    """One ``Account`` per ``[live.venues]`` table, in the file's order (scenario venues
    bound to the same kind, network, URL and key share one account). ``credentials``
    False: market data only (a paper session). ConfigError naming the field."""
    env = dict(os.environ if environ is None else environ)
    bindings = config.live.venues
    if not bindings:
        raise ConfigError(f"scenario {config.name!r}: --venues: the scenario has no "
                          "[live.venues.NAME] tables binding its venues to accounts")
    grouped: dict[tuple[str, bool, str | None, str | None], list[str]] = {}
    for name, b in bindings.items():
        grouped.setdefault((b.kind, b.testnet, b.url, b.key_env), []).append(name)
    accounts = []
    for (kind_name, testnet, url, key_env), names in grouped.items():
        field = f"live.venues.{names[0]}"
        kind_named(kind_name, f"{field}.kind")
        kind = venue_kind(kind_name)
        settings = kind.settings(testnet=testnet, url=url)
        creds = None
        if credentials:
            keys = dict(env)
            default = getattr(kind, "key_env", None)
            if key_env is not None and default is not None:
                keys[default] = env.get(key_env, "")
            try:
                creds = kind.credentials(settings, keys)
            except ValueError as exc:
                where = f" ({field}.key_env = {key_env})" if key_env else ""
                raise ConfigError(f"{field}{where}: {exc}") from None
        accounts.append(Account(settings, creds, tuple(names)))
    return accounts


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """What a ``quorum live`` session connects to: ``feed`` the settings of the venue
    whose market data it trades on, ``accounts`` the accounts it trades (none: paper)."""

    feed: Any
    accounts: tuple[Account, ...]

    @property
    def title(self) -> str:
        """How messages name where it trades ("Hyperliquid testnet", "Hyperliquid
        testnet + Ostium testnet")."""
        settings = [a.settings for a in self.accounts] or [self.feed]
        return " + ".join(f"{kind_of(s).title} {s.network}" for s in settings)


def plan_session(config: ScenarioConfig, *, paper: bool, venue: str | None, venues: bool,
                 testnet: bool, url: str | None,
                 environ: Mapping[str, str] | None = None) -> SessionPlan:
    """The session's feed and accounts from the flags (``--paper`` with ``venue`` its
    ``--feed``, ``--venue NAME``, ``--venues``; checked by the caller to be a valid
    combination; a paper session of a scenario with ``[live.venues]`` and no ``--feed``
    or ``--url`` takes the first one's data). ConfigError naming
    what is wrong; ValueError when a key is missing from the environment."""
    if venues or (paper and venue is None and config.live.venues and not url):
        accounts = scenario_accounts(config, environ, credentials=not paper)
        return SessionPlan(accounts[0].settings, () if paper else tuple(accounts))
    name = venue or DEFAULT_VENUE
    kind_named(name)
    kind = venue_kind(name)
    settings = kind.settings(testnet=testnet, url=url)
    if paper:
        return SessionPlan(settings, ())
    return SessionPlan(settings, (Account(settings, kind.credentials(settings, environ)),))
