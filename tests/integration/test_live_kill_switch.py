"""The live kill switch: a file or a signal, applied between bars by the single consumer.

After the switch no position-increasing order is placed; with ``flatten_on_trip`` every
position is closed at the next bar. The run itself goes on (it is stored completed), and
the bars seen so far are in the ``bars`` table even when the session is interrupted.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from live.kill import KillSwitch, pull
from live.runner import LiveRunner
from sim.config import parse_scenario
from sim.messages import Bar
from sim.runner import RandomStreams, load_market_data
from sim.store import DuckDBStore
from tests.integration.test_live_seam import SCENARIO, _bars

KILL_AT = 150  # bars released before the switch is pulled


class _Feed:
    """Releases bars as fast as the loop allows; calls ``at_kill`` after ``KILL_AT`` bars
    and then yields to the loop long enough for the switch to be seen."""

    def __init__(self, bars: list[Bar], at_kill) -> None:
        self.bars = bars
        self.at_kill = at_kill

    async def __aiter__(self) -> AsyncIterator[Bar]:
        for i, bar in enumerate(self.bars):
            if i == KILL_AT:
                self.at_kill()
                await asyncio.sleep(0.3)  # > the watcher's poll interval
            yield bar
            await asyncio.sleep(0)


def _config(flatten: bool):
    raw = {**SCENARIO, "risk": {**SCENARIO["risk"], "flatten_on_trip": flatten}}
    return parse_scenario(raw)


def _run(tmp_path: Path, flatten: bool, how: str) -> tuple[DuckDBStore, str, int, LiveRunner]:
    config = _config(flatten)
    data = load_market_data(config, RandomStreams.spawn(config.seed, 2, len(config.agents)).data)
    bars = _bars(data)
    kill_file = tmp_path / "quorum.kill"
    store = DuckDBStore(tmp_path / "runs.duckdb")
    runner = LiveRunner(config, store)
    switch = KillSwitch(kill_file, poll_s=0.02)

    def at_kill() -> None:
        if how == "file":
            pull(kill_file)
        else:
            os.kill(os.getpid(), signal.SIGUSR1)

    result = asyncio.run(runner.run([_Feed(bars, at_kill)], kill_switch=switch))
    kill_ts = bars[KILL_AT - 1].ts  # the engine's clock when the switch was applied
    return store, result.run_id, kill_ts, runner


@pytest.mark.parametrize("how", ["file", "signal"])
def test_kill_switch_blocks_new_exposure_and_flattens(tmp_path: Path, how: str) -> None:
    store, run_id, kill_ts, runner = _run(tmp_path, flatten=True, how=how)
    assert runner.killed_by is not None and runner.killed_by.startswith(how)
    con = store.con
    fills = con.execute(
        "SELECT epoch_ns(ts), symbol, quantity, position_after FROM fills WHERE run_id = ?"
        " ORDER BY fill_id", [run_id]).fetchall()
    before = [f for f in fills if f[0] <= kill_ts]
    after = [f for f in fills if f[0] > kill_ts]
    assert before, "the scenario traded before the switch"
    assert any(f[3] != 0.0 for f in before), "a position was open to flatten"
    for _, _, qty, pos_after in after:  # every later fill reduces a position
        assert abs(pos_after) < abs(pos_after - qty) + 1e-12
    last = {}
    for _, sym, _, pos in fills:
        last[sym] = pos
    assert all(abs(p) < 1e-12 for p in last.values()), last
    status = con.execute("SELECT status, mode FROM runs WHERE run_id = ?",
                         [run_id]).fetchone()
    assert status == ("completed", "paper")
    store.close()


def test_kill_switch_without_flatten_keeps_positions_but_blocks_entries(tmp_path: Path) -> None:
    store, run_id, kill_ts, _ = _run(tmp_path, flatten=False, how="file")
    rows = store.con.execute(
        "SELECT quantity, position_after FROM fills WHERE run_id = ? AND epoch_ns(ts) > ?",
        [run_id, kill_ts]).fetchall()
    for qty, pos_after in rows:
        assert abs(pos_after) < abs(pos_after - qty) + 1e-12
    store.close()


def test_bars_are_stored_when_the_session_is_interrupted(tmp_path: Path) -> None:
    config = _config(False)
    data = load_market_data(config, RandomStreams.spawn(config.seed, 2, len(config.agents)).data)
    bars = _bars(data)

    class _Broken:
        async def __aiter__(self) -> AsyncIterator[Bar]:
            for i, bar in enumerate(bars):
                if i == 100:
                    raise ConnectionError("feed dropped")
                yield bar

    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        runner = LiveRunner(config, store)
        with pytest.raises(ConnectionError):
            asyncio.run(runner.run([_Broken()]))
        n = store.con.execute("SELECT count(*) FROM bars WHERE run_id = ?",
                              [runner.run_id]).fetchone()[0]
        status = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                   [runner.run_id]).fetchone()[0]
    # 100 bars arrived; the watermark holds back the last timestamp of the lagging symbol
    assert status == "failed"
    assert 98 <= n <= 100
