"""A paper session the tests steer bar by bar, with the control API over it: the session's
``LiveRunner`` (with its observers, as ``quorum live`` builds it) runs on a thread of its
own over a feed that releases bars only when told (``step``), so a test knows which bars
came before and after an HTTP call."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from live.runner import LiveRunner
from quorum.live import watched_runner
from sim.bus import EventBus
from sim.config import parse_scenario
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data
from sim.store import DuckDBStore
from tests.integration.test_live_seam import _bars

SCENARIO: dict[str, Any] = {
    "name": "api-session", "seed": 7,
    "data": [{"kind": "gbm", "symbol": "ETH", "bars": 400, "interval": "1m",
              "price": 2000.0, "start": "2024-01-01T00:00:00Z"}],
    "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}},
               {"name": "mom", "kind": "momentum", "params": {"window": 3}}],
    "policy": {"exposure": 0.5, "allow_short": True},
    "venues": [{"name": "sim", "symbols": ["ETH"]}],
    "monitor": {"heartbeat_s": 0.2},
}


class GatedFeed:
    """Bars as an exchange would publish them, but only as many as ``allowed``."""

    def __init__(self, bars: list[Bar]) -> None:
        self.bars = bars
        self.allowed = 0

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for i, bar in enumerate(self.bars):
            while i >= self.allowed:
                await asyncio.sleep(0.002)
            yield bar


class PaperSession:
    """``with PaperSession(tmp_path) as s:``: the session runs until the block ends (then
    its remaining bars go through and it completes). ``bus``: the session's (one the
    API's stream is on already, ``quorum.api.server.SessionApi.bus``)."""

    def __init__(self, tmp_path: Path, bus: EventBus | None = None, **overrides: Any) -> None:
        config = parse_scenario({**SCENARIO, **overrides})
        data = load_market_data(config, RandomStreams.spawn(
            config.seed, len(config.data), len(config.agents)).data)
        self.feed = GatedFeed(_bars(data))
        self.db = tmp_path / "runs.duckdb"
        self.store = DuckDBStore(self.db)
        self.runner: LiveRunner = watched_runner(config, self.store, bus,
                                                 symbols=data.symbols, mode="paper")
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self.runner.run([self.feed]))
        except BaseException as exc:  # seen by the test at the end
            self.error = exc

    def __enter__(self) -> PaperSession:
        self.thread.start()
        deadline = time.monotonic() + 30
        while self.runner.writer is None:  # running: commands are taken from now on
            assert time.monotonic() < deadline and self.thread.is_alive(), self.error
            time.sleep(0.005)
        return self

    def step(self, n: int) -> None:
        """Release ``n`` more bars and wait until the pipeline has taken them."""
        self.feed.allowed += n
        target = min(self.feed.allowed, len(self.feed.bars))
        deadline = time.monotonic() + 30
        while self.runner.bars_seen < target:
            assert time.monotonic() < deadline and self.thread.is_alive(), self.error
            time.sleep(0.002)

    def finish(self) -> None:
        self.feed.allowed = len(self.feed.bars) + 1
        self.thread.join(60)
        assert not self.thread.is_alive(), "the session did not end"
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc: object) -> None:
        if self.thread.is_alive():
            self.finish()
        self.store.close()

    @property
    def run_id(self) -> str:
        return self.runner.run_id

    def votes(self, agent: str) -> list[int]:
        """Decision times (ns) at which ``agent`` voted for a side, from the store."""
        return [r[0] for r in self.store.con.execute(
            "SELECT epoch_ns(d.ts) FROM votes v JOIN decisions d USING (run_id, decision_id)"
            " WHERE run_id = ? AND v.agent = ? AND v.side <> 'HOLD' ORDER BY d.ts",
            [self.run_id, agent]).fetchall()]

    def event_ts(self, agent: str, command: str) -> list[int]:
        return [r[0] for r in self.store.con.execute(
            "SELECT epoch_ns(ts) FROM agent_events WHERE run_id = ? AND agent = ? AND "
            "command = ? AND outcome = 'applied' ORDER BY seq",
            [self.run_id, agent, command]).fetchall()]
