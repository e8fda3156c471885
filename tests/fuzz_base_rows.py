"""A bug hunt, not a CI test: the per-bar loop stores the rows another tree's stored, over
drawn scenarios (``tests.integration.fuzz_identity.scenarios``), table by table
(``tests._run_digests.run_digests``: da22740's tables and columns, rows sorted).

    PYTHONPATH=. python tests/fuzz_base_rows.py draw N SEED scenarios.json
    cd TREE && NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_SKX AVX512_CLX AVX512_CNL \
        AVX512_ICL AVX512_SPR" PYTHONPATH=TREE python /path/to/tests/fuzz_base_rows.py \
        run scenarios.json base.json
    PYTHONPATH=. python tests/fuzz_base_rows.py run scenarios.json ours.json
    python tests/fuzz_base_rows.py compare base.json ours.json

A tree older than ``sim.portable_numpy`` (da22740) needs numpy's AVX-512 kernels off by
hand, as above, or its generated bars differ in the last bit. ``draw`` keeps the events
within the data (those after it are not run since 58a9ea8) and leaves ``[monitor]`` in
with ``--monitor``.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def draw(n: int, seed: int, out: str, monitor: bool) -> None:
    import pandas as pd
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as with_seed

    from tests.integration.fuzz_identity import scenarios

    warnings.filterwarnings("ignore")
    got: list[dict[str, Any]] = []

    @with_seed(seed)
    @settings(max_examples=n, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(raw=scenarios())
    def collect(raw: dict[str, Any]) -> None:
        got.append(raw)

    collect()
    for raw in got:
        end = max(pd.Timestamp(d["start"]) + pd.Timedelta(d["interval"].replace("m", "min"))
                  * (d["bars"] - 1) for d in raw["data"])
        raw["events"] = [e for e in raw["events"] if pd.Timestamp(e["at"]) <= end]
        if not monitor:
            raw.pop("monitor", None)
    Path(out).write_text(json.dumps(got))


def run(scenarios: str, out: str) -> None:
    """Each scenario per-bar with the ``sim`` on the path: its status, error, digests."""
    spec = importlib.util.spec_from_file_location("run_digests", HERE / "_run_digests.py")
    assert spec is not None and spec.loader is not None
    digests = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digests)
    from sim.config import parse_scenario
    from sim.runner import run_scenario
    from sim.store import DuckDBStore

    per_bar = ({"fast_path": False} if "fast_path" in inspect.signature(run_scenario).parameters
               else {})
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as where, DuckDBStore(Path(where) / "r.duckdb") as store:
        for raw in json.loads(Path(scenarios).read_text()):
            try:
                config = parse_scenario(raw, "fuzz")
            except Exception as e:  # another tree may not know a field or an agent
                results.append({"invalid": str(e)[:200]})
                continue
            before = store.con.execute("SELECT count(*) FROM runs").fetchone()
            error = None
            try:
                run_scenario(config, store, **per_bar)
            except Exception as e:
                error = f"{type(e).__name__}: {e}"[:300]
            rows = store.con.execute("SELECT run_id, status FROM runs ORDER BY started_at"
                                     ).fetchall()
            if (len(rows),) == before:
                results.append({"error": error})
                continue
            run_id, status = rows[-1]
            results.append({"error": error, "status": status,
                            "digests": digests.run_digests(store.con, run_id)})
    Path(out).write_text(json.dumps(results))


def compare(a: str, b: str) -> int:
    same = differ = skipped = 0
    for i, (x, y) in enumerate(zip(json.loads(Path(a).read_text()),
                                   json.loads(Path(b).read_text()), strict=True)):
        if "invalid" in x or "invalid" in y:
            skipped += 1
        elif x == y:
            same += 1
        else:
            differ += 1
            dx, dy = x.get("digests") or {}, y.get("digests") or {}
            print(i, x.get("status"), y.get("status"), x.get("error"), y.get("error"),
                  sorted(t for t in set(dx) | set(dy) if dx.get(t) != dy.get(t)))
    print(f"same {same}, differ {differ}, skipped {skipped} (refused by either tree)")
    return 1 if differ else 0


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "draw":
        draw(int(args[0]), int(args[1]), args[2], "--monitor" in args)
    elif command == "run":
        run(args[0], args[1])
    else:
        sys.exit(compare(args[0], args[1]))
