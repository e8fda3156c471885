"""Same scenario, same seed, same code: the same rows, in every table.

Only identity and wall-clock columns may differ between two runs of one scenario:
``runs.run_id``, ``runs.started_at``, ``runs.finished_at`` and
``routing_decisions.elapsed_ns`` (the router's measured wall time).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.schema import TABLES
from sim.store import DuckDBStore
from tests.property import _support as sup

ROOT = Path(__file__).resolve().parents[2]
RUN_COLUMNS = "scenario, config, seed, code_version, data_hash, status, n_bars, error"


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n_symbols = draw(st.integers(1, 3))
    symbols = sup.SYMBOLS[:n_symbols]
    bars = draw(st.integers(300, 1500))
    data = []
    for i, symbol in enumerate(symbols):
        data.append({
            "kind": "gbm",
            "symbol": symbol,
            # one symbol may be shorter than the others, so walks end unevenly
            "bars": bars if i == 0 else draw(st.integers(max(1, bars // 2), bars)),
            "interval": draw(st.sampled_from(["1m", "5m"])),
            "start": f"2024-01-0{1 + i}T0{draw(st.integers(0, 9))}:00:00Z",
            "price": draw(st.sampled_from([0.05, 1.0, 100.0, 30_000.0])),
            "drift": draw(st.sampled_from([-0.5, 0.0, 0.5])),
            "volatility": draw(st.sampled_from([0.3, 0.8, 2.0])),
        })
    return {
        "name": "determinism",
        "seed": draw(st.integers(0, 2**63 - 1)),
        "initial_cash": float(draw(st.sampled_from([1_000, 10_000, 1_000_000]))),
        "data": data,
        "agents": draw(sup.agents(symbols)),
        "consensus": draw(sup.consensus()),
        "policy": draw(sup.policy()),
        "risk": draw(st.one_of(st.just({}), sup.risk(symbols))),
        "venues": draw(sup.venues(symbols)),
        "execution": {"fill_at": draw(st.sampled_from(["next_open", "close"]))},
    }


def snapshot(con: Any, run_id: str) -> dict[str, Any]:
    """Everything a run recorded that must be reproducible."""
    out: dict[str, Any] = {
        "runs": con.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?",
                            [run_id]).fetchall(),
    }
    for table in TABLES:
        rows = sup.table_rows(con, table, run_id)
        out[table] = rows
        out[f"{table}#digest"] = sup.digest(rows)
        out[f"{table}#inserted"] = sup.table_rows(con, table, run_id, sort=False)
    return out


@settings(deadline=None, max_examples=20)
@given(raw=scenarios())
def test_same_scenario_twice_records_identical_rows(raw: dict[str, Any]) -> None:
    config = parse_scenario(raw, "property")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "runs.duckdb"
        with DuckDBStore(path) as store:
            first = run_scenario(config, store)
        with DuckDBStore(path) as store:  # reopened: a later run in the same file
            second = run_scenario(config, store)
            assert first.run_id != second.run_id
            assert (first.status, first.bars) == (second.status, second.bars)
            a, b = snapshot(store.con, first.run_id), snapshot(store.con, second.run_id)
            n_runs = store.con.execute("SELECT count(*) FROM runs").fetchone()[0]
    assert n_runs == 2
    assert a["runs"] == b["runs"]
    assert len(a["runs"]) == 1
    _scenario, cfg, seed, code_version, data_hash, status, n_bars, _error = a["runs"][0]
    assert json.loads(cfg) == config.model_dump(mode="json")
    assert seed == raw["seed"] and status == "completed"
    assert code_version and data_hash
    assert n_bars == sum(d["bars"] for d in raw["data"])
    for table in TABLES:
        assert a[f"{table}#digest"] == b[f"{table}#digest"], table
        assert a[table] == b[table], table
        assert a[f"{table}#inserted"] == b[f"{table}#inserted"], table
    event(f"fills: {'some' if a['fills'] else 'none'}; denials: "
          f"{'some' if a['risk_events'] else 'none'}")
    # one equity row per distinct timestamp in the merged walk
    assert len(a["equity"]) == len({row[0] for row in a["equity"]})


@settings(deadline=None, max_examples=15)
@given(
    seeds=st.lists(st.integers(0, 2**63 - 1), min_size=2, max_size=2, unique=True),
    n_symbols=st.integers(1, 3),
    bars=st.integers(2, 400),
)
def test_seed_drives_generated_data(seeds: list[int], n_symbols: int, bars: int) -> None:
    raw = {
        "name": "seeded",
        "data": [{"kind": "gbm", "symbol": s, "bars": bars} for s in sup.SYMBOLS[:n_symbols]],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}}],
        "venues": [{"name": "v", "symbols": list(sup.SYMBOLS)}],
    }
    hashes = {}
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
        for seed in (*seeds, seeds[0]):
            result = run_scenario(parse_scenario({**raw, "seed": seed}), store)
            hashes.setdefault(seed, set()).add(store.con.execute(
                "SELECT data_hash FROM runs WHERE run_id = ?", [result.run_id]).fetchone()[0])
    first, second = (hashes[s] for s in seeds)
    assert len(first) == 1, "the same seed generated different data"
    assert first != second, "a different seed generated the same data"


_CHILD = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.property.test_determinism import FIXED, snapshot
with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
    result = run_scenario(parse_scenario(FIXED), store)
    snap = snapshot(store.con, result.run_id)
print(json.dumps({k: v for k, v in snap.items() if k.endswith("#digest")}))
"""

# Three symbols, several venues listing overlapping sets, allowed_symbols: the places where
# set or dict iteration order (which depends on PYTHONHASHSEED for str) could leak in.
FIXED: dict[str, Any] = {
    "name": "fixed",
    "seed": 11,
    "data": [
        {"kind": "gbm", "symbol": s, "bars": 1200, "interval": "5m", "volatility": 1.5}
        for s in ("ZED", "ALPHA", "MID")
    ],
    "agents": [
        {"name": "sma", "kind": "sma_crossover", "params": {"fast": 3, "slow": 12}},
        {"name": "z", "kind": "zscore_reversion", "params": {"window": 20, "entry": 1.0}},
        {"name": "sma2", "kind": "sma_crossover", "params": {"fast": 5, "slow": 30}},
    ],
    "consensus": {"method": "confidence_weighted"},
    "policy": {"exposure": 0.4, "allow_short": True},
    "risk": {"max_orders_per_day": 40, "allowed_symbols": ["ZED", "MID", "ALPHA"],
             "max_position_notional": 6000.0},
    "venues": [
        {"name": "v1", "symbols": ["MID", "ZED", "ALPHA"], "fee_bps": 5.0, "slippage_bps": 1.0},
        {"name": "v2", "symbols": ["ALPHA", "ZED"], "fee_bps": 5.0},
        {"name": "v3", "symbols": ["ZED"], "fee_bps": 2.0, "slippage_bps": 3.0},
    ],
}


def test_results_do_not_depend_on_the_process_hash_seed() -> None:
    digests = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ROOT)], capture_output=True, text=True,
            env=env, cwd=ROOT, timeout=120, check=True,
        ).stdout
        digests.append(json.loads(out.strip().splitlines()[-1]))
    with tempfile.TemporaryDirectory() as tmp, DuckDBStore(Path(tmp) / "r.duckdb") as store:
        result = run_scenario(parse_scenario(FIXED), store)
        here = {k: v for k, v in snapshot(store.con, result.run_id).items()
                if k.endswith("#digest")}
        n_fills = store.con.execute("SELECT count(*) FROM fills WHERE run_id = ?",
                                    [result.run_id]).fetchone()[0]
    assert n_fills > 0, "the fixed scenario should trade"
    assert digests[0] == digests[1] == here
