"""Quorum against backtesting.py on one strategy, in one process (issue 19's comparison).

SMA 10/50 crossover, long only, all in, 10 bps fee, next-open fills, 100,000 start cash,
on the same seeded one-minute GBM bars. Quorum runs its whole pipeline with every row
stored in DuckDB, on the fast path and on the per-bar loop; backtesting.py runs its
``Backtest.run``. Prints wall and CPU seconds (every thread's: Quorum's store appends run
on a thread of their own), bars/s of the wall time, trades and final equity of each,
rounds alternating. backtesting.py is not a dependency: ``pip install backtesting==0.6.6``.
On one-minute GBM the crossover trades every ~70 bars and the fees take the account to
zero long before 1M bars; backtesting.py then cancels the orders it cannot pay for (and
buys whole units), so trade counts and final equity agree only while the cash lasts.

    .venv/bin/python tests/perf/vs_backtesting_py.py --bars 1000000 --rounds 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.config import parse_scenario
from sim.runner import RandomStreams, load_market_data, run_scenario
from sim.store import DuckDBStore


def scenario(bars: int) -> dict[str, Any]:
    return {
        "name": "sma_10_50_vs_backtesting_py", "seed": 1, "initial_cash": 100_000.0,
        "data": [{"kind": "gbm", "symbol": "X", "bars": bars, "interval": "1m"}],
        "agents": [{"name": "sma", "kind": "sma_crossover",
                    "params": {"fast": 10, "slow": 50, "long_only": True}}],
        "venues": [{"name": "v", "symbols": ["X"], "fee_bps": 10.0}],
    }


def quorum(bars: int, fast: bool) -> tuple[float, float, int, float]:
    config = parse_scenario(scenario(bars))
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "q.duckdb") as store:
        wall, cpu = time.perf_counter(), time.process_time()
        run = run_scenario(config, store, fast_path=fast)
        wall, seconds = time.perf_counter() - wall, time.process_time() - cpu
        trades, equity = store.con.execute(
            "SELECT (SELECT count(*) FROM fills WHERE run_id = $r AND quantity < 0),"
            " (SELECT equity FROM equity WHERE run_id = $r ORDER BY ts DESC LIMIT 1)",
            {"r": run.run_id}).fetchone()
    return wall, seconds, trades, equity


def backtesting_py(bars: int) -> tuple[float, float, int, float]:
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    config = parse_scenario(scenario(bars))
    data = load_market_data(config, RandomStreams.spawn(config.seed, 1, 1).data).bars[0]
    frame = pd.DataFrame({"Open": data.open, "High": data.high, "Low": data.low,
                          "Close": data.close, "Volume": data.volume},
                         index=pd.to_datetime(data.ts, utc=True))

    def sma(values: np.ndarray, n: int) -> np.ndarray:
        return pd.Series(values).rolling(n).mean().to_numpy()

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, 10)
            self.slow = self.I(sma, self.data.Close, 50)

        def next(self) -> None:
            if crossover(self.fast, self.slow):
                self.buy()
            elif crossover(self.slow, self.fast):
                self.position.close()

    wall, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():  # one per order it cancels once the cash is gone
        warnings.simplefilter("ignore")
        stats = Backtest(frame, SmaCross, cash=100_000, commission=0.001,
                         finalize_trades=True).run()
    return (time.perf_counter() - wall, time.process_time() - cpu, int(stats["# Trades"]),
            float(stats["Equity Final [$]"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for r in range(args.rounds):
        for name, run in (("quorum fast path", lambda: quorum(args.bars, True)),
                          ("quorum per-bar", lambda: quorum(args.bars, False)),
                          ("backtesting.py", lambda: backtesting_py(args.bars))):
            wall, seconds, trades, equity = run()
            print(f"round {r + 1}  {name:17s} {wall:7.2f} s wall {seconds:7.2f} s CPU  "
                  f"{args.bars / wall:11,.0f} bars/s  {trades} trades  "
                  f"final equity {equity:,.2f}", flush=True)


if __name__ == "__main__":
    main()
