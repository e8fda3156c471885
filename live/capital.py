"""The capital a venue session trades: what its account holds, never more.

A backtest starts from the scenario's ``initial_cash``. A session on a real venue trades
the money the account holds: the account's equity as the venue reports it (asked of the
adapter: ``VenueAdapter.account_value``, cash plus positions at the venue's marks),
capped by ``live.capital`` when set (the part of a shared account the session may use;
it never raises the figure).
Sizing, the risk engine's equity limits and the run's returns all start from it: the
run's stored ``initial_cash`` is that capital, and its ``live_sessions`` row keeps the
scenario's ``initial_cash``, the account's equity and the capital side by side.

An account that holds less than the scenario's ``initial_cash`` is refused (exit 2)
unless the user asks for it (``--capital-from-account``, stored with the session): a
config validated on 10,000 says less about 1,000 (minimum order sizes, lot rounding),
and a wrong or unfunded account is the likelier cause. Sized from the scenario instead,
orders were 5-10 times what the account was meant to carry.

A resumed run keeps the capital it started with (its ledger is rebuilt from its fills).
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass

import duckdb

from sim.config import ScenarioConfig
from sim.config_base import ConfigError
from sim.sql import one_row


@dataclass(frozen=True, slots=True)
class SessionCapital:
    """``capital`` is what the session trades; the rest says where it came from."""

    initial_cash: float  # the scenario's
    account_value: float  # the account's equity at start, as the venue reported it
    capital: float
    from_account: bool  # --capital-from-account was given


def session_capital(config: ScenarioConfig, venue: str, account_value: float, *,
                    from_account: bool) -> SessionCapital:
    """The capital of a new session on ``venue`` whose account holds ``account_value``;
    ConfigError (one line, both figures) when the account cannot carry the scenario."""
    name, initial = config.name, config.initial_cash
    if not (math.isfinite(account_value) and account_value > 0):
        raise ConfigError(f"scenario {name!r}: the {venue} account's equity is "
                          f"{account_value:,.2f}: nothing to trade")
    if account_value < initial and not from_account:
        raise ConfigError(
            f"scenario {name!r}: the {venue} account's equity is {account_value:,.2f}, "
            f"less than initial_cash {initial:,.2f}; fund the account, or pass "
            "--capital-from-account to size from what it holds")
    cap = config.live.capital
    capital = account_value if cap is None else min(cap, account_value)
    return SessionCapital(initial, account_value, capital, from_account)


def describe(c: SessionCapital, venue: str) -> str:
    """One line for stderr at the session's start."""
    cap = "" if c.capital == c.account_value else " (live.capital caps it)"
    return (f"quorum live: sizing from {c.capital:,.2f}{cap}: the {venue} account's equity "
            f"is {c.account_value:,.2f}, the scenario's initial_cash {c.initial_cash:,.2f}")


def with_capital(config: ScenarioConfig, capital: float) -> ScenarioConfig:
    """``config`` trading ``capital``: what the engine, the risk engine and the stored
    run start from."""
    if capital == config.initial_cash:
        return config
    return config.model_copy(update={"initial_cash": capital})


def stored_capital(con: duckdb.DuckDBPyConnection, run_id: str) -> float:
    """The capital a stored run started with (its ``initial_cash``)."""
    (config,) = one_row(con, "SELECT config FROM runs WHERE run_id = ?", [run_id])
    return float(json.loads(config)["initial_cash"])


def warn_if_capped_above(c: SessionCapital, config: ScenarioConfig) -> None:
    """``live.capital`` above what the account holds is not honoured: say so."""
    cap = config.live.capital
    if cap is not None and cap > c.account_value:
        print(f"quorum live: live.capital {cap:,.2f} is more than the account holds "
              f"({c.account_value:,.2f}): trading {c.capital:,.2f}", file=sys.stderr,
              flush=True)
