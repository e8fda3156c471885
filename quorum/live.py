"""``quorum live --paper``: live Hyperliquid candles through the scenario's own pipeline,
fills simulated by its ``SimVenue`` model, everything stored as a run of mode "paper".

What is wired here: the gate verdict (asked by the CLI before anything connects), the
candle feed, the live runner, the kill switch and the session record. Real order routing
(``--venue hyperliquid``) waits for the engine's order lifecycle (the execution issue).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from live.clock import PacingClock
from live.hyperliquid.candles import HyperliquidCandleFeed, hyperliquid_interval
from live.hyperliquid.config import HyperliquidConfig
from live.kill import KillSwitch
from live.runner import LiveRunner
from live.session import record_session
from sim.config import ConfigError, FileSourceConfig, ScenarioConfig, parse_duration, source_symbols
from sim.runner import RunResult
from sim.store import DuckDBStore
from sim.validation import PromotionVerdict

ENV_URL = "QUORUM_HL_URL"  # REST base URL override (the WebSocket is its /ws)


def default_kill_file(db: str | Path) -> Path:
    """The kill file a session on store ``db`` watches: next to it, ``runs.duckdb`` ->
    ``runs.kill`` (``quorum kill --db`` pulls the same one)."""
    return Path(db).with_suffix(".kill")


def hyperliquid_config(*, testnet: bool, url: str | None) -> HyperliquidConfig:
    """The network's public URLs, or ``url`` (else ``$QUORUM_HL_URL``) for REST with its
    ``/ws`` for the stream."""
    url = url or os.environ.get(ENV_URL) or None
    ws = None
    if url:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--url {url!r}: expected http://HOST[:PORT] or https://...")
        ws = "ws" + url.removeprefix("http") + "/ws"
    return HyperliquidConfig(network="testnet" if testnet else "mainnet", base_url=url,
                             ws_url=ws)


def live_interval_ns(config: ScenarioConfig) -> int:
    """``live.interval``, else the one interval all data sources share."""
    if config.live.interval is not None:
        return parse_duration(config.live.interval)
    found = set()
    for source in config.data:
        interval = (source.resample or source.interval
                    if isinstance(source, FileSourceConfig) else source.interval)
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


def check_live_config(config: ScenarioConfig) -> tuple[dict[str, str], int, str]:
    """(coins, interval ns, Hyperliquid interval name), or ConfigError naming the field."""
    coins = live_coins(config)
    interval_ns = live_interval_ns(config)
    try:
        name = hyperliquid_interval(interval_ns)
    except ValueError as exc:
        raise ConfigError(f"scenario {config.name!r}: live.interval: {exc}") from None
    return coins, interval_ns, name


async def paper_session(config: ScenarioConfig, store: DuckDBStore, hl: HyperliquidConfig,
                        verdict: PromotionVerdict, *, override_reason: str | None,
                        kill_file: Path, max_bars: int | None = None,
                        clock: PacingClock | None = None,
                        on_start: Callable[[str], None] | None = None) -> RunResult:
    """One paper session until ``max_bars`` bars per symbol (None: until interrupted)."""
    coins, interval_ns, interval = check_live_config(config)
    feed = HyperliquidCandleFeed(
        hl, coins, interval_ns, warmup_bars=config.live.warmup_bars,
        close_grace_ns=parse_duration(config.live.close_grace), max_bars=max_bars,
        clock=clock)
    runner = LiveRunner(config, store, symbols=list(coins), mode="paper")
    now = (clock.now_ns() if clock is not None else time.time_ns())
    record_session(
        store.con, run_id=runner.run_id, mode="paper", venue="sim", network=hl.network,
        data_url=hl.rest_url, interval=interval, warmup_bars=config.live.warmup_bars,
        started_ns=now, config_hash=verdict.config_hash, validation_id=verdict.validation_id,
        gate=verdict.reason, overridden=verdict.overridden,
        override_reason=override_reason if verdict.overridden else None,
        warnings=verdict.warnings, kill_file=str(kill_file))
    if on_start is not None:
        on_start(runner.run_id)
    return await runner.run([feed], kill_switch=KillSwitch(kill_file))
