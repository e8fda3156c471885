"""A session whose ``live.warmup_bars`` the venue's candle history cannot give is refused
before anything is stored (issue 15, §3): it used to start and warm up on fewer bars,
silently, leaving the agents colder than the backtest that validated them."""

from __future__ import annotations

import asyncio

import pytest

from quorum.live import paper_session
from sim.config_base import ConfigError
from sim.store import DuckDBStore
from tests.fakes.hyperliquid import FakeHyperliquid

from .conftest import make_config
from .venue_session import VERDICT, bars_of, history, open_session, scenario


def stored(store: DuckDBStore) -> tuple[int, int]:
    (runs,) = store.con.execute("SELECT count(*) FROM runs").fetchone()
    sessions = store.con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'live_sessions'").fetchone()
    if sessions[0]:
        sessions = store.con.execute("SELECT count(*) FROM live_sessions").fetchone()
    return runs, sessions[0]


@pytest.mark.parametrize("mode", ["venue", "paper"])
def test_a_warmup_longer_than_the_venues_history_is_refused_up_front(
        fake: FakeHyperliquid, tmp_path, mode: str) -> None:
    config = scenario(live={"warmup_bars": 25})
    bars = bars_of(config)
    clock = history(fake, bars, 10)  # the venue has 10 closed candles

    async def go(store: DuckDBStore) -> None:
        if mode == "venue":
            await open_session(fake, store, config, clock, tmp_path, max_bars=5)
        else:
            await paper_session(config, store, make_config(fake), VERDICT,
                                override_reason=None, kill_file=tmp_path / "runs.kill",
                                max_bars=5, clock=clock)

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(ConfigError, match=r"live\.warmup_bars = 25: Hyperliquid has 10 "
                                              r"closed 1m candle\(s\) of ETH"):
            asyncio.run(go(store))
        assert stored(store) == (0, 0)
