"""Sweep expansion invariants: every combination once, each value where its path points,
one run id per distinct config, the same ids on every load."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from research.sweep import load_sweep

BASE = """
name = "base"
seed = 4
[[data]]
kind = "gbm"
symbol = "SYN"
bars = 300
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 200 }
[[venues]]
name = "v"
symbols = ["SYN"]
"""

grids = st.fixed_dictionaries({}, optional={
    "agents.sma.params.fast": st.lists(st.integers(1, 150), min_size=1, max_size=3,
                                       unique=True),
    "policy.exposure": st.lists(st.sampled_from([0.1, 0.25, 0.5, 1.0, 2.0]), min_size=1,
                                max_size=3, unique=True),
    "venues.v.fee_bps": st.lists(st.sampled_from([0.0, 1.0, 7.5]), min_size=1, max_size=2,
                                 unique=True),
}).filter(bool)


@settings(max_examples=15, deadline=None)
@given(grid=grids, seeds=st.lists(st.integers(0, 2**40), min_size=1, max_size=3, unique=True))
def test_every_combination_once_with_its_values(grid: dict[str, list], seeds: list[int]
                                                ) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "base.toml").write_text(BASE)
        lines = [f'"{path}" = {json.dumps(values)}' for path, values in grid.items()]
        path = Path(tmp) / "sweep.toml"
        path.write_text(f'name = "p"\nscenario = "base.toml"\nseeds = {seeds}\n[grid]\n'
                        + "\n".join(lines) + "\n")
        sweep = load_sweep(path)
        again = load_sweep(path)
    combos = [dict(zip(grid, values, strict=True))
              for values in itertools.product(*grid.values())]
    assert [(r.params, r.seed) for r in sweep.runs] == [(c, s) for c in combos for s in seeds]
    for run in sweep.runs:
        cfg = run.config
        assert cfg.seed == run.seed
        assert cfg.agents[0].params["fast"] == run.params.get("agents.sma.params.fast", 5)
        assert cfg.policy.exposure == run.params.get("policy.exposure", 1.0)
        assert cfg.venues[0].fee_bps == run.params.get("venues.v.fee_bps", 0.0)
    assert len({r.run_id for r in sweep.runs}) == len(sweep.runs)
    assert [r.run_id for r in again.runs] == [r.run_id for r in sweep.runs]
