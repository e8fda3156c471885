"""Stored runs reproduce after the default generator became version 2: a regime source
that pins ``generator_version = 1`` gives the rows Quorum gave before version 2 existed,
byte for byte, and keeps its stored config and config id; a source without the field is
version 2 and stored with it, so it can never pass for a version-1 run.

"The rows of before" are computed here, on this machine, by the code of commit 49f5da9
(generator version 1 the default, the field left out of these scenarios), taken from the
clone's history: float results can differ in their last bits between machines (numpy picks
its math kernels by CPU), so digests pinned on one machine fail on another although
nothing changed. ``table_digest`` covers every stored table of the run, every column
except the wall-clock ``elapsed_*`` ones (the run id is not a column), of the tables a
store held then (``COLUMNS_AT_49F5DA9``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sim.config import parse_scenario
from sim.config_sources import stored_config, stored_scenario
from sim.run_identity import config_identity, identify
from sim.runner import run_scenario
from sim.store import DuckDBStore

# regime -> (params, shocks) as in scenarios/regimes/, shortened to 600 hourly bars.
CASES: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {
    "trend_up": ({"drift": 3.0, "volatility": 0.6}, []),
    "ranging": ({"half_life": 24.0, "volatility": 0.5}, []),
    "high_volatility": ({}, []),
    "crash": ({"drift": -0.5, "volatility": 0.9},
              [{"kind": "flash_crash", "at": 300, "drop": 0.2, "bars": 6, "recovery": 0.5,
                "recovery_bars": 48}]),
    "regime_switching": ({}, []),
}
BEFORE_V2 = "49f5da9"  # the last commit with generator version 1 as the default
REPO = Path(__file__).resolve().parents[2]


def raw_scenario(regime: str, version: int | None) -> dict[str, Any]:
    params, shocks = CASES[regime]
    source: dict[str, Any] = {
        "kind": "regime", "regime": regime, "symbols": ["BTC", "ETH"],
        "correlation": [[1.0, 0.7], [0.7, 1.0]], "bars": 600, "interval": "1h",
        "start": "2024-01-01T00:00:00Z", "price": 100.0, "params": params, "shocks": shocks}
    if version is not None:
        source["generator_version"] = version
    return {
        "name": f"regime_{regime}", "seed": 11, "initial_cash": 10_000.0, "data": [source],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 12, "slow": 48}},
                   {"name": "zscore", "kind": "zscore_reversion",
                    "params": {"window": 48, "entry": 2.0, "exit": 0.5}}],
        "consensus": {"method": "confidence_weighted"},
        "policy": {"exposure": 0.4, "allow_short": True},
        "risk": {"max_position_notional": 6_000.0, "max_orders_per_day": 24},
        "venues": [{"name": "alpha", "symbols": ["BTC", "ETH"], "fee_bps": 5.0,
                    "slippage_bps": 1.0}]}


# The tables and columns a run store held at 49f5da9: the digests cover exactly those
# (tables and columns added since, e.g. ``agent_events``, are not part of "the rows of
# before").
COLUMNS_AT_49F5DA9: dict[str, tuple[str, ...]] = {
    'signals': ('ts', 'symbol', 'agent', 'side', 'confidence', 'target', 'reason'),
    'decisions': ('decision_id', 'ts', 'symbol', 'side', 'confidence', 'target', 'method', 'rule',
                  'agreement'),
    'votes': ('decision_id', 'agent', 'side', 'confidence', 'weight'),
    'orders': ('order_id', 'decision_id', 'ts', 'symbol', 'quantity', 'ref_price', 'notional',
               'status', 'order_type', 'time_in_force', 'limit_price', 'stop_price', 'post_only',
               'reduce_only', 'role', 'parent_id', 'replaces', 'venue', 'decision_ts',
               'arrival_ts', 'fill_ts', 'filled_quantity', 'avg_fill_price', 'fees', 'reason'),
    'order_events': ('order_id', 'ts', 'symbol', 'event', 'venue', 'quantity', 'price', 'reason'),
    'risk_events': ('order_id', 'ts', 'symbol', 'check_name', 'reason', 'limit_value',
                    'actual_value'),
    'routing_decisions': ('order_id', 'ts', 'symbol', 'venue', 'candidates', 'candidate_fees_bps',
                          'candidate_scores', 'quantity', 'reason', 'elapsed_ns'),
    'fills': ('fill_id', 'order_id', 'ts', 'symbol', 'venue', 'quantity', 'price', 'fee',
              'ref_price', 'cash_after', 'position_after', 'realized_pnl', 'liquidity'),
    'funding': ('ts', 'symbol', 'position', 'mark', 'rate', 'payment'),
    'liquidations': ('ts', 'symbol', 'venue', 'order_id', 'position', 'liquidation_price',
                     'price', 'maintenance_margin'),
    'bars': ('ts', 'symbol', 'open', 'high', 'low', 'close', 'volume', 'regime', 'source_regime',
             'filled'),
    'equity': ('ts', 'cash', 'equity', 'realized_pnl', 'unrealized_pnl'),
    'agent_performance': ('symbol', 'agent', 'signals', 'scored', 'hits', 'hit_rate',
                          'shadow_pnl', 'votes', 'in_majority', 'overruled', 'weight'),
    'agent_calls': ('ts', 'symbol', 'agent', 'request_hash', 'request', 'response', 'error',
                    'elapsed_ms'),
    'agent_errors': ('symbol', 'agent', 'calls', 'errors', 'last_error'),
}


def table_digest(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    h = hashlib.sha256()
    for table, columns in COLUMNS_AT_49F5DA9.items():
        names = ", ".join(n for n in columns if not n.startswith("elapsed"))
        rows = con.execute(f"SELECT {names} FROM {table} WHERE run_id = ? ORDER BY ALL",
                           [run_id]).fetchall()
        h.update(f"{table}:{rows!r}\n".encode())
    return h.hexdigest()[:16]


_AT_BEFORE_V2 = """
import json, pathlib, sys
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore
cases = json.loads(sys.stdin.read())
with DuckDBStore(pathlib.Path(sys.argv[1])) as store:
    print(json.dumps({regime: run_scenario(parse_scenario(raw, regime), store).run_id
                      for regime, raw in cases.items()}))
"""


@pytest.fixture(scope="module")
def digests_before_v2(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Each case's digest as the code of ``BEFORE_V2`` stores it, run here: its ``sim``
    package from the clone's history, in a fresh interpreter."""
    where = tmp_path_factory.mktemp("before_v2")
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_V2, "sim"],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(where, filter="data")
    cases = {regime: raw_scenario(regime, None) for regime in sorted(CASES)}
    db = where / "before.duckdb"
    done = subprocess.run([sys.executable, "-c", _AT_BEFORE_V2, str(db)],
                          input=json.dumps(cases), capture_output=True, text=True,
                          timeout=300, cwd=where, env={**os.environ, "PYTHONPATH": str(where)})
    assert done.returncode == 0, done.stderr
    run_ids = json.loads(done.stdout)
    with duckdb.connect(str(db), read_only=True) as con:
        return {regime: table_digest(con, run_id) for regime, run_id in run_ids.items()}


def test_the_reference_covers_every_case(digests_before_v2: dict[str, str]) -> None:
    """One reference per case, each its own market."""
    assert sorted(digests_before_v2) == sorted(CASES)
    assert len(set(digests_before_v2.values())) == len(CASES)  # five different markets


@pytest.mark.parametrize("regime", sorted(CASES))
def test_pinned_version_1_gives_the_rows_of_before(regime: str, tmp_path: Path,
                                                   digests_before_v2: dict[str, str]) -> None:
    pinned = parse_scenario(raw_scenario(regime, 1), regime)
    default = parse_scenario(raw_scenario(regime, None), regime)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        old = table_digest(store.con, run_scenario(pinned, store).run_id)
        new = table_digest(store.con, run_scenario(default, store).run_id)
    assert old == digests_before_v2[regime]
    assert new != old  # the default is version 2 now


def test_stored_configs_keep_their_version_and_id(tmp_path: Path) -> None:
    """Version 1 is stored as before (without the field, so the config id of a run stored
    before version 2 is the pinned scenario's); version 2, now the default, is always
    written; a stored config read back (``stored_scenario``) is the version it ran."""
    before_v2 = raw_scenario("trend_up", None)  # what 49f5da9 parsed as version 1
    pinned = parse_scenario(raw_scenario("trend_up", 1), "pinned")
    default = parse_scenario(before_v2, "default")
    assert "generator_version" not in stored_config(pinned)["data"][0]
    assert default.data[0].generator_version == 2
    assert stored_config(default)["data"][0]["generator_version"] == 2
    assert identify(pinned).config_id != identify(default).config_id
    for config in (pinned, default):  # a dump parses back to its version
        again = parse_scenario(config.model_dump(mode="json"), "dumped")
        assert again.data[0].generator_version == config.data[0].generator_version
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        for config in (pinned, default):
            run_id = run_scenario(config, store).run_id
            (text,) = store.con.execute("SELECT config FROM runs WHERE run_id = ?",
                                        [run_id]).fetchone()
            again = parse_scenario(stored_scenario(json.loads(text)), "stored")
            assert again.data[0].generator_version == config.data[0].generator_version
            assert config_identity(again) == config_identity(config)


def test_a_pinned_regime_stays_version_1_in_the_suite_and_in_sweeps() -> None:
    """The promotion gate and sweeps rebuild each run from the scenarios' dumps; a suite
    regime that pins version 1 is still version 1 there."""
    from research.validation import suite_run_config

    pinned = parse_scenario(raw_scenario("crash", 1), "pinned")
    default = parse_scenario(raw_scenario("trend_up", None), "default")
    assert suite_run_config(default, pinned).data[0].generator_version == 1
    assert suite_run_config(pinned, default).data[0].generator_version == 2
