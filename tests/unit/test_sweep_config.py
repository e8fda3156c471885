"""Sweep files (``research.sweep``): addressing, expansion, run identity and one-line errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from research.sweep import SweepError, load_sweep
from sim.config import load_scenario
from sim.config_paths import resolve_path, short_name
from sim.run_identity import run_identity

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "scenarios" / "sweeps" / "tiny.toml"
REGIMES = REPO / "scenarios" / "regimes"

BASE = """
name = "base"
seed = 4
[[data]]
kind = "gbm"
symbol = "SYN"
bars = 600
interval = "1h"
[[agents]]
name = "sma"
kind = "sma_crossover"
params = { fast = 5, slow = 20 }
[[agents]]
name = "z"
kind = "zscore_reversion"
[[venues]]
name = "v"
symbols = ["SYN"]
fee_bps = 5.0
"""


def sweep_file(tmp_path: Path, body: str, base: str = BASE) -> Path:
    (tmp_path / "base.toml").write_text(base)
    path = tmp_path / "sweep.toml"
    path.write_text('name = "t"\nscenario = "base.toml"\n' + body)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(SweepError) as info:
        load_sweep(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


def test_tiny_expands_params_by_regime_by_seed_in_order() -> None:
    sweep = load_sweep(TINY)
    cfg = sweep.config
    assert len(sweep.runs) == 2 * 2 * 2 * 2
    expected = itertools.product(range(4), ["trend_up", "crash"], [1, 2])
    assert [(r.param_set, r.regime, r.seed) for r in sweep.runs] == list(expected)
    assert [r.idx for r in sweep.runs] == list(range(16))
    for run in sweep.runs:
        regime_cfg = load_scenario(REGIMES / f"{run.regime}.toml")
        assert run.config.data == regime_cfg.data  # the regime's data, the base's agents
        assert run.config.agents[0].params["fast"] == run.params["agents.sma.params.fast"]
        assert run.config.policy.exposure == run.params["policy.exposure"]
        assert 0.2 <= run.params["policy.exposure"] <= 0.6
        assert run.config.seed == run.seed and run.config.name == f"regime_trend_up@{run.regime}"
        assert run.run_id == run_identity(run.config)
    assert len({r.run_id for r in sweep.runs}) == 16
    assert cfg.window_metric == "sharpe"


def test_expansion_and_ids_are_reproducible() -> None:
    a, b = load_sweep(TINY), load_sweep(TINY)
    assert [r.run_id for r in a.runs] == [r.run_id for r in b.runs]
    assert a.sweep_id == b.sweep_id


def test_index_and_name_address_the_same_parameter(tmp_path: Path) -> None:
    by_name = load_sweep(sweep_file(tmp_path, '[grid]\n"agents.sma.params.fast" = [3, 7]\n'))
    by_index = load_sweep(sweep_file(tmp_path, '[grid]\n"agents.0.params.fast" = [3, 7]\n'))
    assert [r.run_id for r in by_name.runs] == [r.run_id for r in by_index.runs]
    assert [r.config.agents[0].params["fast"] for r in by_name.runs] == [3, 7]


def test_a_parameter_not_set_in_the_base_may_be_swept(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file(tmp_path, '[grid]\n"agents.z.params.window" = [10, 30]\n'
                                            '"data.SYN.volatility" = [0.5]\n'))
    assert [r.config.agents[1].params["window"] for r in sweep.runs] == [10, 30]
    assert {r.config.data[0].volatility for r in sweep.runs} == {0.5}


def test_run_id_changes_with_any_config_value_and_seed(tmp_path: Path) -> None:
    sweep = load_sweep(sweep_file(tmp_path, 'seeds = [1, 2]\n[grid]\n"policy.exposure" = '
                                            '[0.5, 0.25]\n'))
    assert len({r.run_id for r in sweep.runs}) == 4


def test_run_id_follows_the_content_of_data_files(tmp_path: Path) -> None:
    csv = tmp_path / "bars.csv"
    csv.write_text("timestamp,open,high,low,close,volume\n"
                   + "".join(f"2024-01-01T00:{m:02d}:00Z,1,1,1,1,1\n" for m in range(30)))
    base = BASE.replace('kind = "gbm"\nsymbol = "SYN"\nbars = 600\ninterval = "1h"',
                        'symbol = "SYN"\npath = "bars.csv"')
    path = sweep_file(tmp_path, "", base)
    before = load_sweep(path).runs[0].run_id
    assert load_sweep(path).runs[0].run_id == before
    csv.write_text(csv.read_text().replace(",1,1,1,1,1\n", ",2,2,2,2,1\n", 1))
    assert load_sweep(path).runs[0].run_id != before


def test_run_id_does_not_depend_on_where_the_files_are(tmp_path: Path) -> None:
    """The same sweep over the same data in two checkouts gives the same run ids."""
    rows = ("timestamp,open,high,low,close,volume\n"
            + "".join(f"2024-01-01T00:{m:02d}:00Z,1,1,1,1,1\n" for m in range(30)))
    base = BASE.replace('kind = "gbm"\nsymbol = "SYN"\nbars = 600\ninterval = "1h"',
                        'symbol = "SYN"\npath = "bars.csv"')
    ids = []
    for checkout in ("one", "elsewhere/two"):
        where = tmp_path / checkout
        where.mkdir(parents=True)
        (where / "bars.csv").write_text(rows)
        sweep = load_sweep(sweep_file(where, 'seeds = [1, 2]\n', base))
        assert all(str(where) in r.config.data[0].path for r in sweep.runs)  # resolved
        ids.append([r.run_id for r in sweep.runs])
    assert ids[0] == ids[1] and len(set(ids[0])) == 2


def test_random_samples_are_seeded_and_within_bounds(tmp_path: Path) -> None:
    body = ('[random]\nsamples = 5\nseed = {seed}\n[random.params]\n'
            '"policy.exposure" = {{ uniform = [0.1, 0.3] }}\n'
            '"agents.sma.params.slow" = {{ integers = [20, 22] }}\n'
            '"consensus.method" = {{ choice = ["majority", "unanimous"] }}\n'
            '"risk.max_order_notional" = {{ log_uniform = [100.0, 10000.0] }}\n')
    one = load_sweep(sweep_file(tmp_path, body.format(seed=1)))
    again = load_sweep(sweep_file(tmp_path, body.format(seed=1)))
    other = load_sweep(sweep_file(tmp_path, body.format(seed=2)))
    assert [r.params for r in one.runs] == [r.params for r in again.runs]
    assert [r.params for r in one.runs] != [r.params for r in other.runs]
    for r in one.runs:
        assert 0.1 <= r.params["policy.exposure"] <= 0.3
        assert r.params["agents.sma.params.slow"] in (20, 21, 22)
        assert r.params["consensus.method"] in ("majority", "unanimous")
        assert 100 <= r.params["risk.max_order_notional"] <= 10_000
        assert r.config.consensus.method == r.params["consensus.method"]


@pytest.mark.parametrize(("body", "names"), [
    ('[grid]\n"agents.sma.params.fastt" = [3]\n', ["agents.sma.params.fastt", "fast, slow"]),
    ('[grid]\n"policy.exposur" = [0.1]\n', ["policy.exposur", "exposure"]),
    ('[grid]\n"agents.nobody.params.fast" = [3]\n', ["agents.nobody.params.fast", "sma, z"]),
    ('[grid]\n"agents.5.params.fast" = [3]\n', ["agents.5.params.fast", "index 5"]),
    ('[random]\nsamples = 2\nparams = { "risk.nope" = { uniform = [0, 1] } }\n',
     ["random.params", "risk.nope"]),
    ('[grid]\n"agents..fast" = [3]\n', ["agents..fast"]),
])
def test_unknown_parameter_is_one_line_naming_it(tmp_path: Path, body: str,
                                                 names: list[str]) -> None:
    message = error_of(sweep_file(tmp_path, body))
    assert "unknown parameter" in message
    for name in names:
        assert name in message


@pytest.mark.parametrize(("body", "fragment"), [
    ("[grid]\n", "grid: empty"),
    ('[grid]\n"policy.exposure" = []\n', "'policy.exposure': empty list"),
    ('[grid]\n"policy.exposure" = [0.2, 0.2]\n', "listed twice"),
    ('seeds = []\n', "seeds: empty"),
    ('rank_by = ["sharp"]\n', "unknown metric 'sharp'"),
    ('suite = "nosuite.toml"\n', "suite file not found"),
    ('regimes = ["crash"]\n', "needs suite"),
    ('[random]\nsamples = 2\nparams = { "policy.exposure" = { uniform = [0.5, 0.1] } }\n',
     "above high"),
    ('[walk_forward]\ntrain = "30d"\ntest = "10d"\n', "longer than the data"),
    ('[walk_forward]\ntrain = "3x"\ntest = "1d"\n', "walk_forward.train"),
    ('rank_by = ["win_rate"]\n[walk_forward]\ntrain = "3d"\ntest = "1d"\n',
     "name a window metric"),
    ('colour = "red"\n', "colour: unknown field"),
])
def test_bad_sweep_file_is_one_line(tmp_path: Path, body: str, fragment: str) -> None:
    assert fragment in error_of(sweep_file(tmp_path, body))


def test_unknown_regime_names_the_suite_contents(tmp_path: Path) -> None:
    path = tmp_path / "sweep.toml"
    path.write_text(f'name = "t"\nscenario = "{REGIMES / "trend_up.toml"}"\n'
                    f'suite = "{REGIMES / "suite.toml"}"\nregimes = ["crash", "moon"]\n')
    message = error_of(path)
    assert "unknown regime 'moon'" in message and "trend_up" in message


def test_invalid_combination_fails_or_is_left_out(tmp_path: Path) -> None:
    body = '[grid]\n"agents.sma.params.fast" = [5, 30]\n"agents.sma.params.slow" = [20, 40]\n'
    message = error_of(sweep_file(tmp_path, body))
    assert "sma.fast=30 sma.slow=20" in message and "must be below slow" in message
    assert "skip_invalid" in message
    sweep = load_sweep(sweep_file(tmp_path, "skip_invalid = true\n" + body))
    assert [r.params for r in sweep.runs] == [
        {"agents.sma.params.fast": 5, "agents.sma.params.slow": 20},
        {"agents.sma.params.fast": 5, "agents.sma.params.slow": 40},
        {"agents.sma.params.fast": 30, "agents.sma.params.slow": 40},
    ]
    assert [s[0] for s in sweep.skipped] == [{"agents.sma.params.fast": 30,
                                              "agents.sma.params.slow": 20}]
    # parameter-set numbers are those of the full grid, so a skipped one leaves a gap
    assert [r.param_set for r in sweep.runs] == [0, 1, 3]


def test_resolve_path_returns_concrete_keys() -> None:
    config = load_scenario(REGIMES / "crash.toml")
    assert resolve_path(config, "agents.zscore.params.entry") == ("agents", 1, "params",
                                                                  "entry")
    assert resolve_path(config, "venues.alpha.fee_bps") == ("venues", 0, "fee_bps")
    assert short_name("agents.zscore.params.entry") == "zscore.entry"
    assert short_name("policy.exposure") == "policy.exposure"
