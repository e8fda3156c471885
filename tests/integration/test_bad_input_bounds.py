"""Bounds that name the field (issue 15, §3): exit 2, one line, no run stored.

Each used to run: fees or slippage of 1e9 bps (a LONG became a sell, equity -1e57, exit
0; fills at negative prices), a GBM drift or volatility past what a float holds (a failed
run with numpy warnings), a start past 2262 (a traceback) or an interval that ran the
timestamps past it (silently wrapped to 1677), a venue listing none of the data's symbols
(every order unroutable, exit 0), ``quorum runs --limit -1``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from quorum.cli import main
from sim.config import parse_scenario
from sim.config_base import ConfigError, parse_timestamp
from sim.data import DataError, gbm_bars, merge
from sim.runner import run_scenario
from sim.store import DuckDBStore


def scenario(gbm: dict[str, Any] | None = None, venue: dict[str, Any] | None = None) -> str:
    data = {"kind": "gbm", "symbol": "SYN", "bars": 500, "interval": "5m", **(gbm or {})}
    venue = {"name": "v", "symbols": ["SYN"], **(venue or {})}

    def toml(d: dict[str, Any]) -> str:  # str, float, int and lists of str: repr is TOML
        return "\n".join(f"{k} = {v!r}".replace("'", '"') for k, v in d.items())

    text = (f'name = "bounds"\n[[data]]\n{toml(data)}\n[[agents]]\nname = "sma"\n'
            f'kind = "sma_crossover"\n[[venues]]\n{toml(venue)}\n')
    return text


def run_cli(tmp_path: Path, text: str, capsys) -> tuple[int, str]:
    path = tmp_path / "s.toml"
    path.write_text(text)
    code = main(["run", str(path), "--db", str(tmp_path / "runs.duckdb"), "--quiet"])
    return code, capsys.readouterr().err


def stored_runs(tmp_path: Path) -> int:
    db = tmp_path / "runs.duckdb"
    if not db.exists():
        return 0
    with duckdb.connect(str(db)) as con:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.mark.parametrize(("venue", "field"), [
    ({"fee_bps": 1e9}, "venues.0.fee_bps"),
    ({"slippage_bps": 1e9}, "venues.0.slippage_bps"),
    ({"fee_bps": 10_000.0}, "venues.0.fee_bps"),
    ({"impact_bps": 10_000.0}, "venues.0.impact_bps"),
    ({"symbols": ["XYZ"]}, "venues.v.symbols: lists none of the data's symbols (SYN)"),
])
def test_venue_bounds_exit_2_naming_the_field(tmp_path: Path, capsys, venue, field) -> None:
    code, err = run_cli(tmp_path, scenario(venue=venue), capsys)
    assert code == 2 and field in err and err.count("\n") == 1, err
    assert stored_runs(tmp_path) == 0


def test_fees_and_slippage_just_below_100_percent_run(tmp_path: Path, capsys) -> None:
    code, err = run_cli(tmp_path, scenario(venue={"fee_bps": 9_999.0,
                                                  "slippage_bps": 9_999.0}), capsys)
    assert code == 0, err


@pytest.mark.parametrize(("gbm", "words"), [
    ({"drift": 1e6}, "data.0: drift, volatility, interval"),
    ({"volatility": 1e4}, "data.0: drift, volatility, interval"),
    ({"volatility": 60.0, "interval": "1d", "bars": 5000}, "data.0: drift, volatility"),
    ({"interval": "1000d"}, "data.0: start, interval, bars"),
    ({"start": "2262-04-11T20:00:00Z"}, "data.0: start, interval, bars"),
    ({"start": "2300-01-01"}, "data.0.start: '2300-01-01' is outside 1677-09-22 .. 2262-04-11"),
])
def test_generator_bounds_exit_2_naming_the_field(tmp_path: Path, capsys, gbm, words) -> None:
    code, err = run_cli(tmp_path, scenario(gbm=gbm), capsys)
    assert code == 2 and words in err and err.count("\n") == 1, err
    assert "Warning" not in err and stored_runs(tmp_path) == 0


def test_a_long_volatile_series_within_the_bound_is_valid() -> None:
    """The bound is about floats, not taste: 10 years of 1m bars at 150% volatility."""
    parse_scenario({"name": "ok", "data": [{"kind": "gbm", "symbol": "S", "bars": 5_256_000,
                                            "interval": "1m", "volatility": 1.5}],
                    "agents": [{"name": "a", "kind": "sma_crossover"}],
                    "venues": [{"name": "v", "symbols": ["S"]}]})


def test_events_past_2262_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"events\.0\.at: '2263-01-01T00:00:00Z' is outside"):
        parse_scenario({"name": "e", "agents": [{"name": "a", "kind": "sma_crossover"}],
                        "venues": [{"name": "v", "symbols": ["S"]}],
                        "events": [{"at": "2263-01-01T00:00:00Z", "kind": "kill_switch"}]})
    assert parse_timestamp("2262-04-11T00:00:00Z") > parse_timestamp("2262-04-10")


def test_gbm_bars_called_in_code_refuse_an_overflowing_path() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="leaves the range of floating point"):
        gbm_bars("S", 500, rng, start_ns=0, interval_ns=300 * 10**9, drift=1e6)
    with pytest.raises(DataError, match="overflow nanosecond timestamps"):
        gbm_bars("S", 500, rng, start_ns=0, interval_ns=86_400 * 10**9 * 1000)


def test_data_in_code_no_venue_lists_is_bad_input(tmp_path: Path) -> None:
    config = parse_scenario({"name": "c", "agents": [{"name": "a", "kind": "sma_crossover"}],
                             "venues": [{"name": "v", "symbols": ["XYZ"]}]})
    bars = gbm_bars("SYN", 50, np.random.default_rng(0), start_ns=0, interval_ns=60 * 10**9)
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        with pytest.raises(ConfigError, match=r"venues\.v\.symbols: lists none"):
            run_scenario(config, store, data=merge([bars]))
        assert store.con.execute("SELECT count(*) FROM runs").fetchone() == (0,)


@pytest.mark.parametrize("limit", ["-1", "0", "many"])
def test_runs_limit_must_be_a_positive_whole_number(tmp_path: Path, capsys, limit) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["runs", "--db", str(tmp_path / "runs.duckdb"), "--limit", limit])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--limit" in err and err.count("\n") == 1, err
