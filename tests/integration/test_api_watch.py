"""``quorum run --api``: the API and the live stream served beside a backtest, over the
run's own store connection; a stream client sees every order of the run as it ends."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx
from websockets.sync.client import connect

from quorum.api.server import watched
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]


def test_a_watched_backtest_streams_every_order_as_it_ends(tmp_path: Path) -> None:
    args = argparse.Namespace(api="127.0.0.1:0", keys=str(tmp_path / "none.toml"))
    with DuckDBStore(tmp_path / "runs.duckdb") as store, \
            watched(store.con, "runs.duckdb", args, "run") as watch:
        assert watch.bus is not None and watch.url is not None
        with connect(watch.url.replace("http", "ws") + "/ws") as ws:
            # one message per order: a client that reads keeps up (equity, per bar, could
            # outrun a slow reader on a loaded machine, which would be dropped)
            ws.send(json.dumps({"subscribe": ["trades:all"], "since": 0}))
            result = run_scenario(load_scenario(REPO / "scenarios/demo.toml"), store,
                                  bus=watch.bus)
            (n_orders,) = store.con.execute("select count(*) from orders where run_id = ?",
                                            [result.run_id]).fetchone()
            runs = httpx.get(watch.url + "/api/runs").json()  # the run's own connection
            trades = []
            while len(trades) < n_orders:
                message = json.loads(ws.recv(timeout=10))
                assert message["topic"] == "trades:all"
                trades.append(message["data"]["order_id"])
            equity = httpx.get(watch.url + "/api/equity", params={"limit": 5}).json()
    assert [r["run_id"] for r in runs] == [result.run_id]
    with duckdb.connect(str(tmp_path / "runs.duckdb"), read_only=True) as con:
        stored = [r[0] for r in con.execute("select order_id from orders order by 1").fetchall()]
    assert sorted(trades) == stored and n_orders > 0
    assert len(equity) == 5


def test_quorum_run_api_refuses_the_network_without_keys(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "quorum.cli", "run", str(REPO / "scenarios/demo.toml"),
         "--api", "0.0.0.0:0", "--db", str(tmp_path / "r.duckdb")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "needs API keys" in done.stderr


def test_metrics_count_what_the_run_stored(tmp_path: Path) -> None:
    """Prometheus counters kept from the bus agree with the run's rows."""
    args = argparse.Namespace(api="127.0.0.1:0", keys=str(tmp_path / "none.toml"))
    with DuckDBStore(tmp_path / "runs.duckdb") as store, \
            watched(store.con, "runs.duckdb", args, "run") as watch:
        assert watch.bus is not None and watch.url is not None
        result = run_scenario(load_scenario(REPO / "scenarios/demo.toml"), store,
                              bus=watch.bus)
        rows = dict(store.con.execute(
            "select 'bars', count(*) from bars where run_id = $1 union all "
            "select 'fills', count(*) from fills where run_id = $1 union all "
            "select 'orders', count(*) from orders where run_id = $1 union all "
            "select 'filled', count(*) from orders where run_id = $1 and status = 'filled' "
            "union all select 'equity', last(equity order by ts) from equity "
            "where run_id = $1", [result.run_id]).fetchall())
        text = ""
        for _ in range(200):  # the metrics subscriber counts off the run's thread
            text = httpx.get(watch.url + "/metrics").text
            if _total(text, "quorum_orders_total") == rows["orders"]:
                break
            __import__("time").sleep(0.05)
    assert _total(text, "quorum_bars_total") == rows["bars"]
    assert _total(text, "quorum_fills_total") == rows["fills"]
    assert _total(text, "quorum_orders_total") == rows["orders"] > 0
    assert _total(text, 'quorum_orders_total{status="filled"}') == rows["filled"]
    assert _total(text, "quorum_equity ") == rows["equity"]
    assert _total(text, "quorum_order_stage_seconds_count") > 0


def _total(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix) and not line.startswith("#"))
