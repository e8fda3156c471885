"""``quorum live``: a venue's live candles through the scenario's own pipeline.

``--paper``: fills simulated by the scenario's ``SimVenue`` model, a run of mode "paper".
``--venue NAME``: orders go to an account at that venue (keys from the environment
only), a run of mode "live"; a restart continues an unfinished run (``live.recovery``).

What is wired here: the gate verdict (asked by the CLI before anything connects), the
candle feed, the live runner, the order manager over the venue's adapter, the kill
switch and the session record. Everything particular to a venue comes from its kind
(``live.venues``), found by its name or by the settings it made: this module imports
no adapter.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from live.capital import SessionCapital, session_capital, stored_capital, with_capital
from live.clock import PacingClock
from live.commands import CommandChannel, default_command_dir
from live.instruments import adopt_instruments
from live.journal import OrderJournal, absorb, journal_dir
from live.kill import KillSwitch
from live.observe import FeedFallback, SessionWatch
from live.orders import OrderManager
from live.records import OPEN_STATUSES, create_tables
from live.recovery import restore
from live.runner import LiveRunner
from live.session import record_resume, record_session, session_initial_cash
from live.tracking import VenueShare
from live.venues import CandleFeed, VenueConnection, VenueKind, VenueSettings, kind_of, venue_kind
from research.validation import PromotionVerdict
from sim.bus import EventBus
from sim.config import ScenarioConfig
from sim.config_base import ConfigError, parse_duration
from sim.config_sources import source_interval, source_symbols, stored_config
from sim.runner import RunResult
from sim.sql import one_row
from sim.store import DuckDBStore

# The venue `quorum live` takes its candles from, and trades on with --venue (today the
# CLI's only choice): a name in the registry of venue kinds, not an import.
DEFAULT_VENUE = "hyperliquid"


def watched_runner(config: ScenarioConfig, store: DuckDBStore, bus: EventBus | None = None,
                   **kwargs: Any) -> LiveRunner:
    """A ``LiveRunner`` with its observers (``live.observe``): every session is watched,
    logs beside the store, alerts and health in it, a webhook if the environment names
    one. The bus keeps the last 10,000 events for subscribers that fall behind; ``bus``:
    one with subscribers already (``quorum live --api``: the stream wants every bar,
    which the engine publishes only when someone listens as it is built)."""
    bus = bus if bus is not None else EventBus(history=10_000)
    runner = LiveRunner(config, store, bus=bus, **kwargs)
    runner.watch = SessionWatch(runner, bus, getattr(store, "path", None))
    return runner


def default_kill_file(db: str | Path) -> Path:
    """The kill file a session on store ``db`` watches: next to it, ``runs.duckdb`` ->
    ``runs.kill`` (``quorum kill --db`` pulls the same one)."""
    return Path(db).with_suffix(".kill")


def venue_settings(venue: str, *, testnet: bool, url: str | None) -> VenueSettings:
    """Venue kind ``venue``'s settings for its test or main network (``url``: another
    base URL; ConfigError if it is bad)."""
    return venue_kind(venue).settings(testnet=testnet, url=url)


def hyperliquid_config(*, testnet: bool, url: str | None) -> Any:
    """The default venue's settings (``DEFAULT_VENUE``): the public URLs of its network,
    or ``url`` (else its environment's override)."""
    return venue_settings(DEFAULT_VENUE, testnet=testnet, url=url)


def live_interval_ns(config: ScenarioConfig) -> int:
    """``live.interval``, else the one interval all data sources share."""
    if config.live.interval is not None:
        return parse_duration(config.live.interval)
    found = set()
    for source in config.data:
        interval = source_interval(source)
        if interval is not None:
            found.add(parse_duration(interval))
    if len(found) != 1:
        raise ConfigError(f"scenario {config.name!r}: live.interval: set the candle interval "
                          "(the data sources do not share one)")
    return found.pop()


def live_coins(config: ScenarioConfig) -> dict[str, str]:
    """Symbol -> venue coin for every symbol of the scenario's data."""
    symbols = [s for d in config.data for s in source_symbols(d)]
    if not symbols:
        raise ConfigError(f"scenario {config.name!r}: no data symbols to trade live")
    for sym in config.live.coins:
        if sym not in symbols:
            raise ConfigError(f"scenario {config.name!r}: live.coins.{sym}: not a data symbol")
    return {s: config.live.coins.get(s, s) for s in symbols}


def check_live_config(config: ScenarioConfig, venue: str | VenueKind = DEFAULT_VENUE
                      ) -> tuple[dict[str, str], int, str]:
    """(coins, interval ns, the venue's interval name), or ConfigError naming the field."""
    kind = venue_kind(venue) if isinstance(venue, str) else venue
    coins = live_coins(config)
    interval_ns = live_interval_ns(config)
    try:
        name = kind.interval_name(interval_ns)
    except ValueError as exc:
        raise ConfigError(f"scenario {config.name!r}: live.interval: {exc}") from None
    return coins, interval_ns, name


async def paper_session(config: ScenarioConfig, store: DuckDBStore, hl: VenueSettings,
                        verdict: PromotionVerdict, *, override_reason: str | None,
                        kill_file: Path, max_bars: int | None = None,
                        clock: PacingClock | None = None,
                        on_start: Callable[[str], None] | None = None,
                        on_run: Callable[[str], None] | None = None,
                        on_runner: Callable[[LiveRunner], None] | None = None,
                        bus: EventBus | None = None) -> RunResult:
    """One paper session until ``max_bars`` bars per symbol (None: until interrupted).
    The venue's market list is read first: a coin it does not list is refused (exit 2);
    a venue that cannot be reached fails the run (stored ``failed``). ``on_run``: told
    the run id before anything is stored. ``hl``: the settings of the venue whose
    candles it trades on (``live.venues``). ``on_runner``: given the runner before it
    runs (``quorum live --api`` serves it)."""
    kind = kind_of(hl)
    coins, interval_ns, interval = check_live_config(config, kind)
    runner = watched_runner(config, store, bus, symbols=list(coins), mode="paper")
    if on_run is not None:
        on_run(runner.run_id)
    if on_runner is not None:
        on_runner(runner)
    now = (clock.now_ns() if clock is not None else time.time_ns())

    def record() -> None:
        record_session(
            store.con, run_id=runner.run_id, mode="paper", venue="sim", network=hl.network,
            data_url=hl.rest_url, interval=interval, warmup_bars=config.live.warmup_bars,
            started_ns=now, config_hash=verdict.config_hash,
            validation_id=verdict.validation_id, gate=verdict.reason,
            overridden=verdict.overridden,
            override_reason=override_reason if verdict.overridden else None,
            warnings=verdict.warnings, kill_file=str(kill_file),
            initial_cash=config.initial_cash, capital=config.initial_cash)

    venue = kind.connect(hl)  # market data only
    try:
        with without_log(kind.retry_log):  # a failure is one line: the attempts are in it
            assets = await venue.load_markets()
    except Exception as exc:  # unreachable, or not that venue: the run fails on record
        record()
        runner.store_failed(kind.unreachable(hl, exc))
    finally:
        await venue.aclose()
    check_listed(config, hl, coins, assets, kind)
    feed = kind.candle_feed(
        hl, coins, interval_ns, warmup_bars=config.live.warmup_bars,
        close_grace_ns=parse_duration(config.live.close_grace), max_bars=max_bars,
        clock=clock)
    FeedFallback.attach(feed, runner.bus)  # a feed on REST degrades its health
    await feed.check_warmup()  # a short history is bad input, before anything is stored
    record()
    if on_start is not None:
        on_start(runner.run_id)
    return await runner.run([feed], kill_switch=KillSwitch(kill_file),
                            commands=CommandChannel(default_command_dir(store.path)))


def check_listed(config: ScenarioConfig, hl: VenueSettings, coins: dict[str, str],
                 assets: Mapping[str, object], kind: VenueKind | None = None) -> None:
    """Every coin the scenario trades is a perpetual the venue lists (else exit 2: a
    candle subscription to an unknown coin would wait for ever)."""
    missing = sorted(c for c in coins.values() if c not in assets)
    if missing:
        title = (kind or kind_of(hl)).title
        raise ConfigError(f"scenario {config.name!r}: {title} {hl.network} has no "
                          f"perpetual {', '.join(missing)} (live.coins maps symbols)")


@contextmanager
def without_log(name: str) -> Iterator[None]:
    """Records of logger ``name`` dropped meanwhile (the caller says it in one line)."""
    logger = logging.getLogger(name)

    def drop(record: logging.LogRecord) -> bool:
        return False

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def check_real_venue_config(config: ScenarioConfig) -> None:
    """What a real venue cannot take yet is refused up front (exit 2), never half-run."""
    execution = config.execution
    if execution.replay == "ticks":
        raise ConfigError(f"scenario {config.name!r}: execution.replay = 'ticks' is a "
                          "backtest setting; live mode takes candles")


def run_to_resume(store: DuckDBStore, config: ScenarioConfig, resume: str | None) -> str | None:
    """The run a real-venue session continues: ``resume`` (a run id or unique prefix),
    else the scenario's last live run if it is unfinished (still marked running: its
    process died; or with orders whose outcome is not stored). None: a new run."""
    con = store.con
    create_tables(con)
    absorb(con, journal_dir(store.path))
    if resume is not None:
        run_id = store.resolve_run_id(resume)
        row = one_row(con, "SELECT mode FROM runs WHERE run_id = ?", [run_id])
        if row[0] != "live":
            raise ConfigError(f"--resume {resume}: run {run_id} is a {row[0]} run, not live")
        _same_config(con, run_id, config, f"--resume {resume}")
        return run_id
    last = con.execute("SELECT run_id, status FROM runs WHERE mode = 'live' AND scenario = ?"
                       " ORDER BY started_at DESC LIMIT 1", [config.name]).fetchone()
    if last is None:
        return None
    marks = ", ".join("?" for _ in OPEN_STATUSES)
    (open_legs,) = one_row(con, f"SELECT count(*) FROM venue_orders WHERE run_id = ? AND "
                                f"status IN ({marks})", [last[0], *OPEN_STATUSES])
    if last[1] != "running" and not open_legs:
        return None
    _same_config(con, last[0], config, f"the last live run of {config.name!r} is unfinished:")
    return str(last[0])


def _same_config(con: Any, run_id: str, config: ScenarioConfig, what: str) -> None:
    """A run continues only with the configuration it started with (``[live]``, how it is
    fed, may change). Its stored ``initial_cash`` is the capital it traded
    (``live.capital``): the scenario's own is compared instead."""
    (stored,) = con.execute("SELECT config FROM runs WHERE run_id = ?", [run_id]).fetchone()
    before = json.loads(stored)
    now = json.loads(json.dumps(stored_config(config)))
    before.pop("live", None)
    now.pop("live", None)
    scenario_cash = session_initial_cash(con, run_id)
    if scenario_cash is not None:
        before["initial_cash"] = scenario_cash
    if before != now:
        raise ConfigError(f"{what} run {run_id} was started with another configuration than "
                          f"{config.name!r} now has; resume it with that configuration "
                          f"(--resume {run_id}) before starting a new run")


@dataclass(frozen=True, slots=True)
class Account:
    """One venue account of a session: its kind's ``settings``, its ``credentials`` and
    the scenario ``venues`` bound to it (empty: every venue, a session of one account)."""

    settings: VenueSettings
    credentials: Any
    venues: tuple[str, ...] = ()


@dataclass(slots=True)
class VenueSession:
    """A real-venue session built and ready to run (tests reach into its parts).
    ``capital``: where a new session's capital came from (None: a resumed run keeps its
    own). With several accounts, ``ports`` and ``connections`` hold one per account (the
    first is ``port`` and ``venue``, whose market data feeds the session)."""

    runner: LiveRunner
    port: OrderManager  # the core's order manager over the venue's adapter (``port.venue``)
    feed: CandleFeed
    venue: VenueConnection
    kill_file: Path
    recovered: int
    capital: SessionCapital | None = None
    instrument_changes: tuple[str, ...] = ()  # where the venue's rules replaced the scenario's
    ports: tuple[OrderManager, ...] = ()
    connections: tuple[VenueConnection, ...] = ()

    async def run(self) -> RunResult:
        completed = False
        try:
            store_path = self.runner.store.path  # type: ignore[attr-defined]
            result = await self.runner.run(
                [self.feed], kill_switch=KillSwitch(self.kill_file),
                commands=CommandChannel(default_command_dir(store_path)))
            completed = True
            return result
        finally:
            # every journalled row is in the store once the run has completed
            self.port.journal.close(remove=completed)
            for connection in self.connections or (self.venue,):
                await connection.aclose()


async def open_venue_session(config: ScenarioConfig, store: DuckDBStore, hl: VenueSettings,
                             verdict: PromotionVerdict, *, override_reason: str | None,
                             kill_file: Path, credentials: Any,
                             max_bars: int | None = None, clock: PacingClock | None = None,
                             resume_run: str | None = None, settle_s: float = 10.0,
                             refresh_s: float = 0.5, rehearse_every_s: float | None = None,
                             capital_from_account: bool = False,
                             on_run: Callable[[str], None] | None = None,
                             on_runner: Callable[[LiveRunner], None] | None = None,
                             bus: EventBus | None = None,
                             accounts: Sequence[Account] | None = None) -> VenueSession:
    """Build a session trading an account at the venue whose settings ``hl`` are (its
    kind: ``live.venues``; ``resume_run``: continue that run): markets loaded, the
    capital taken from the account (``live.capital``), the previous process's state
    restored, the session recorded. ``rehearse_every_s``: the adapter's dry run of the
    order path this often (None: never). A venue that cannot be reached fails the run
    (stored ``failed``); ``on_run`` is told its id first.

    ``accounts``: several accounts in one session instead (``hl`` and ``credentials``
    are then the first's), each trading the scenario venues bound to it; the capital
    is what they hold together, each is reconciled with its own part of the ledger, and
    an account that cannot be reached has its orders routed to the others."""
    check_real_venue_config(config)
    accounts = list(accounts or [Account(hl, credentials)])
    several = len(accounts) > 1
    kinds = [kind_of(a.settings) for a in accounts]
    kind = kinds[0]
    coins, interval_ns, interval = check_live_config(config, kind)
    now_ns = clock.now_ns if clock is not None else time.time_ns
    connections: list[VenueConnection] = []
    try:
        values: list[float] = []
        for account, k in zip(accounts, kinds, strict=True):
            venue = k.connect(account.settings, account.credentials)
            connections.append(venue)
            try:
                with without_log(k.retry_log):  # a failure is one line: the attempts in it
                    assets = await venue.load_markets()
                    if resume_run is None:
                        values.append(await venue.account_value())
            except Exception as exc:  # unreachable, or not that venue: fails on record
                runner = watched_runner(config, store, symbols=list(coins), mode="live",
                                        run_id=resume_run, resume=resume_run is not None)
                if on_run is not None:
                    on_run(runner.run_id)
                if resume_run is None:
                    _record_live(store, runner.run_id, kinds, accounts, interval, config,
                                 verdict, override_reason, kill_file, now_ns(), None)
                runner.store_failed(k.unreachable(account.settings, exc))
            check_listed(config, account.settings, _coins_of(config, coins, account),
                         assets, k)
        await kind.candle_feed(  # a short history is bad input, before anything is stored
            hl, coins, interval_ns, warmup_bars=config.live.warmup_bars, clock=clock,
            close_grace_ns=parse_duration(config.live.close_grace),
            connection=connections[0],
        ).check_warmup()
        capital = None
        if resume_run is None:
            capital = session_capital(config, "+".join(k.name for k in kinds), sum(values),
                                      from_account=capital_from_account)
            trading = with_capital(config, capital.capital)
        else:
            trading = with_capital(config, stored_capital(store.con, resume_run))
        runner = watched_runner(trading, store, bus, symbols=list(coins), mode="live",
                                run_id=resume_run, resume=resume_run is not None)
        if on_run is not None:
            on_run(runner.run_id)
        if on_runner is not None:  # before it runs (``quorum live --api`` serves it)
            on_runner(runner)
        started = now_ns()
        journals = journal_dir(store.path)
        journal = OrderJournal(journals, runner.run_id)  # one per run, shared
        instrument_changes: list[str] = []
        ports: list[OrderManager] = []
        by_venue: dict[str, OrderManager] = {}
        for account, k, venue in zip(accounts, kinds, connections, strict=True):
            bound = [v for v in runner.engine.router.venues
                     if not account.venues or v.name in account.venues]
            # the venue's own rules replace the scenario's, said before the first order
            changes = adopt_instruments(bound, coins, venue.instrument, k.title)
            for line in changes:
                print(f"quorum live: instruments: {line}", file=sys.stderr, flush=True)
            instrument_changes += changes
            adapter = k.adapter(venue, coins=coins, rehearse_every_s=rehearse_every_s)
            port = OrderManager(adapter, runner.engine.desk, runner.run_id, coins,
                                now_ns=now_ns, refresh_s=refresh_s, journal=journal)
            if several:
                port.venue_name = bound[0].name
                port.share = VenueShare({})
            runner.attach_port(
                port, hold_until_ns=started, interval_ns=interval_ns,
                reconcile_every_s=parse_duration(config.live.reconcile_every) / 1e9,
                settle_s=settle_s, venues=[v.name for v in bound])
            ports.append(port)
            by_venue.update((v.name, port) for v in bound)
        recovered = 0
        create_tables(store.con)
        absorb(store.con, journals)  # rows a dead process journalled but never committed
        if resume_run is not None:
            recovered = restore(runner, by_venue if several else ports[0], store.con)
            record_resume(store.con, run_id=resume_run, resumed_ns=started,
                          recovered_orders=recovered, config_hash=verdict.config_hash,
                          validation_id=verdict.validation_id)
        else:
            _record_live(store, runner.run_id, kinds, accounts, interval, config, verdict,
                         override_reason, kill_file, started, capital)
        feed = kind.candle_feed(
            hl, coins, interval_ns, warmup_bars=config.live.warmup_bars,
            close_grace_ns=parse_duration(config.live.close_grace), max_bars=max_bars,
            clock=clock)
        FeedFallback.attach(feed, runner.bus)  # a feed on REST degrades its health
    except BaseException:
        for connection in connections:
            await connection.aclose()
        raise
    return VenueSession(runner, ports[0], feed, connections[0], kill_file, recovered, capital,
                        tuple(instrument_changes), tuple(ports), tuple(connections))


def _coins_of(config: ScenarioConfig, coins: dict[str, str], account: Account
              ) -> dict[str, str]:
    """The coins ``account`` trades: those of the symbols its scenario venues list."""
    if not account.venues:
        return coins
    symbols = {s for v in config.venues if v.name in account.venues for s in v.symbols}
    return {s: c for s, c in coins.items() if s in symbols}


def _record_live(store: DuckDBStore, run_id: str, kinds: Sequence[VenueKind],
                 accounts: Sequence[Account], interval: str,
                 config: ScenarioConfig, verdict: PromotionVerdict,
                 override_reason: str | None, kill_file: Path, started_ns: int,
                 capital: SessionCapital | None) -> None:
    """The ``live_sessions`` row of a new real-venue session (``capital`` None: the
    venue was not reached). Several accounts: their kinds joined by "+" ("hyperliquid+
    ostium"), the network and data URL of the first (whose market data feeds it)."""
    hl = accounts[0].settings
    record_session(
        store.con, run_id=run_id, mode="live", venue="+".join(k.name for k in kinds),
        network=hl.network,
        data_url=hl.rest_url, interval=interval, warmup_bars=config.live.warmup_bars,
        started_ns=started_ns, config_hash=verdict.config_hash,
        validation_id=verdict.validation_id, gate=verdict.reason,
        overridden=verdict.overridden,
        override_reason=override_reason if verdict.overridden else None,
        warnings=verdict.warnings, kill_file=str(kill_file), initial_cash=config.initial_cash,
        capital=None if capital is None else capital.capital,
        account_value=None if capital is None else capital.account_value,
        capital_from_account=capital is not None and capital.from_account)
