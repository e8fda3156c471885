"""Scenario config: every mistake is a ConfigError, on one line, naming the field."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import pytest

from sim.config import load_scenario, parse_scenario
from sim.config_base import ConfigError, parse_duration

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "demo.toml"


def base() -> dict[str, Any]:
    return {
        "name": "t",
        "seed": 3,
        "data": [
            {"symbol": "AAA", "path": "/data/aaa.csv", "interval": "5m"},
            {"kind": "gbm", "symbol": "BBB", "bars": 10, "interval": "1h"},
        ],
        "agents": [
            {"name": "fast", "kind": "sma_crossover", "params": {"fast": 2, "slow": 5}},
            {"name": "z", "kind": "zscore_reversion", "symbols": ["BBB"]},
        ],
        "risk": {"max_order_notional": 1000.0, "max_orders_per_day": 5},
        "venues": [{"name": "v", "symbols": ["AAA", "BBB"], "fee_bps": 1.0}],
    }


def error_for(raw: dict[str, Any], source: str = "s.toml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_scenario(raw, source)
    message = str(info.value)
    assert "\n" not in message, message
    assert message.startswith(f"{source}: "), message
    return message


def test_base_is_valid():
    config = parse_scenario(base())
    assert config.seed == 3
    assert [a.name for a in config.agents] == ["fast", "z"]
    assert config.data[0].kind == "file" and config.data[1].kind == "gbm"
    assert config.risk.max_order_notional == 1000.0


def test_demo_scenario_loads_and_resolves_paths():
    config = load_scenario(DEMO)
    assert config.name == "demo"
    files = [d for d in config.data if d.kind == "file"]
    assert files and all(Path(d.path).is_absolute() and Path(d.path).is_file() for d in files)


def _set(path: str, value: Any):
    """A mutation setting ``a.0.b``-style ``path`` to ``value``."""
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


def _drop(path: str):
    def mutate(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = raw
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]
    return mutate


# (id, mutation, text the message must contain)
CASES = [
    ("unknown top-level field", _set("sed", 1), "sed: unknown field"),
    ("unknown risk field", _set("risk.max_order", 1.0), "risk.max_order: unknown field"),
    ("unknown file source field", _set("data.0.intervall", "5m"),
     "data.0.intervall: unknown field"),
    ("unknown gbm field", _set("data.1.vol", 0.3), "data.1.vol: unknown field"),
    ("unknown agent field", _set("agents.0.param", {}), "agents.0.param: unknown field"),
    ("unknown agent kind", _set("agents.0.kind", "nope"), "agents.0.kind: unknown agent 'nope'"),
    ("agent module missing", _set("agents.0.kind", "no_such_mod_xyz:Agent"),
     "agents.0.kind: agent 'no_such_mod_xyz:Agent': cannot import"),
    ("agent class missing", _set("agents.1.kind", "sim.agents.sma:Nope"),
     "agents.1.kind: agent 'sim.agents.sma:Nope': module 'sim.agents.sma' has no 'Nope'"),
    ("agent without on_bar", _set("agents.0.kind", "sim.data:DataError"),
     "agents.0.kind: agent 'sim.data:DataError'"),
    ("negative order limit", _set("risk.max_order_notional", -5),
     "risk.max_order_notional: Input should be greater than 0"),
    ("zero order limit", _set("risk.max_order_notional", 0), "risk.max_order_notional"),
    ("negative position limit", _set("risk.max_position_notional", -1.0),
     "risk.max_position_notional"),
    ("zero orders per day", _set("risk.max_orders_per_day", 0), "risk.max_orders_per_day"),
    ("negative cash", _set("initial_cash", -100.0), "initial_cash"),
    ("negative fee", _set("venues.0.fee_bps", -1.0), "venues.0.fee_bps"),
    ("negative slippage", _set("venues.0.slippage_bps", -1.0), "venues.0.slippage_bps"),
    ("negative seed", _set("seed", -1), "seed"),
    ("exposure out of range", _set("policy.exposure", 0), "policy.exposure"),
    ("min_agreement out of range", _set("consensus.min_agreement", 1.5),
     "consensus.min_agreement"),
    ("unknown consensus", _set("consensus.method", "dictator"), "consensus.method"),
    ("unknown fill timing", _set("execution.fill_at", "whenever"), "execution.fill_at"),
    ("bad interval", _set("data.0.interval", "5 minutes"),
     "data.0.interval: '5 minutes' is not a positive duration"),
    ("zero interval", _set("data.0.interval", "0m"), "data.0.interval"),
    ("bad gbm interval", _set("data.1.interval", "5x"), "data.1.interval"),
    ("allow_gaps is gone", _set("data.0.allow_gaps", True), "data.0: allow_gaps is replaced by"),
    ("unknown gap policy", _set("data.0.gaps", "maybe"), "data.0.gaps"),
    ("gap policy without interval",
     lambda raw: raw["data"].__setitem__(0, {"symbol": "AAA", "path": "/a", "gaps": "ffill"}),
     "data.0.gaps: 'ffill' needs interval"),
    ("unknown format", _set("data.0.format", "ticks"), "data.0.format"),
    ("trades without interval",
     lambda raw: raw["data"].__setitem__(0, {"symbol": "AAA", "path": "/a", "format": "trades"}),
     "data.0.interval: required for format = 'trades'"),
    ("unknown timezone", _set("data.0.timezone", "Mars/Olympus_Mons"),
     "data.0.timezone: 'Mars/Olympus_Mons' is not a known time zone"),
    ("timezone on trades", _set("data.0", {"symbol": "AAA", "path": "/a", "format": "trades",
                                           "interval": "1m", "timezone": "Asia/Tokyo"}),
     "data.0.timezone: does not apply to trades"),
    ("resample not a multiple", _set("data.0.resample", "7m"),
     "data.0.resample: '7m' is not a multiple of interval '5m'"),
    ("resample without interval",
     lambda raw: raw["data"].__setitem__(0, {"symbol": "AAA", "path": "/a", "resample": "1h"}),
     "data.0.resample: needs interval"),
    ("bad resample", _set("data.0.resample", "hourly"), "data.0.resample: 'hourly' is not"),
    ("gbm zero bars", _set("data.1.bars", 0), "data.1.bars"),
    ("gbm negative price", _set("data.1.price", -1.0), "data.1.price"),
    ("unknown source kind", _set("data.0.kind", "sql"), "data.0: kind must be 'file'"),
    ("duplicate data symbol", _set("data.1.symbol", "AAA"), "data: symbol 'AAA' appears twice"),
    ("duplicate agent name", _set("agents.1.name", "fast"), "agents: name 'fast' is used twice"),
    ("duplicate venue name", _set("venues", [{"name": "v", "symbols": ["AAA"]},
                                             {"name": "v", "symbols": ["BBB"]}]),
     "venues: name 'v' is used twice"),
    ("agent symbol not in data", _set("agents.1.symbols", ["CCC"]),
     "agents.z.symbols: 'CCC' is not in data"),
    ("missing name", _drop("name"), "name: required field is missing"),
    ("missing agents", _drop("agents"), "agents: required field is missing"),
    ("no agents", _set("agents", []), "agents"),
    ("missing venues", _drop("venues"), "venues: required field is missing"),
    ("missing source path", _drop("data.0.path"), "data.0.path: required field is missing"),
    ("wrong type", _set("seed", "abc"), "seed"),
    ("data not a list", _set("data", {"symbol": "AAA"}), "data"),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_config_names_the_field(mutate, expected):
    raw = copy.deepcopy(base())
    mutate(raw)
    message = error_for(raw)
    assert expected in message, message


def test_several_problems_are_reported_on_one_line():
    raw = base()
    raw["sed"] = 1
    raw["risk"]["max_order_notional"] = -5
    message = error_for(raw)
    assert "sed: unknown field" in message
    assert "risk.max_order_notional" in message


@pytest.mark.parametrize(
    ("text", "ns"),
    [("1ns", 1), ("5m", 300 * 10**9), ("1h", 3600 * 10**9), ("2d", 2 * 86_400 * 10**9),
     (" 15 s ", 15 * 10**9), ("250ms", 250 * 10**6), ("3us", 3000)],
)
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "m", "0m", "-5m", "5 minutes", "1.5h", "5M", "1w"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a positive duration"):
        parse_duration(text)


def test_with_seed_revalidates():
    config = parse_scenario(base())
    assert config.with_seed(42).seed == 42
    assert config.seed == 3  # frozen: the original is untouched


# -- load_scenario: files ---------------------------------------------------------------
def test_malformed_toml_names_file_and_position(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nseed = = 7\n')
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: malformed TOML"), message
    assert "line 2" in message


def test_missing_and_unreadable_scenario_files(tmp_path):
    with pytest.raises(ConfigError, match="scenario file not found"):
        load_scenario(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_scenario(tmp_path)  # a directory
    assert "\n" not in str(info.value)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ConfigError, match=r"binary\.toml: cannot read"):
        load_scenario(binary)


def test_load_errors_name_the_file(tmp_path):
    path = tmp_path / "neg.toml"
    text = DEMO.read_text().replace("max_order_notional = 5_000.0", "max_order_notional = -5")
    assert text != DEMO.read_text()
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    message = str(info.value)
    assert message == f"{path}: risk.max_order_notional: Input should be greater than 0"


def test_relative_data_paths_resolve_against_the_scenario_file(tmp_path):
    sub = tmp_path / "scenarios"
    sub.mkdir()
    path = sub / "s.toml"
    path.write_text(
        'name = "rel"\n'
        '[[data]]\nsymbol = "AAA"\npath = "../data/a.csv"\nfunding = "f.csv"\n'
        '[[data]]\nsymbol = "BBB"\npath = "/abs/b.csv"\n'
        '[[agents]]\nname = "a"\nkind = "sma_crossover"\n'
        '[[venues]]\nname = "v"\nsymbols = ["AAA", "BBB"]\n'
    )
    config = load_scenario(path)
    assert config.data[0].path == str((tmp_path / "data" / "a.csv").resolve())
    assert config.data[1].path == "/abs/b.csv"
    assert config.data[0].funding == str((sub / "f.csv").resolve())


def test_demo_round_trips_through_parse_scenario():
    raw = tomllib.loads(DEMO.read_text())
    config = parse_scenario(raw)
    assert parse_scenario(config.model_dump(mode="json")) == config


# -- regressions: each was a bug found by these tests ---------------------------------
def test_infinite_cash_is_rejected():
    raw = base()
    raw["initial_cash"] = float("inf")
    assert "initial_cash" in error_for(raw)


def test_bad_gbm_start_is_rejected():
    raw = base()
    raw["data"][1]["start"] = "garbage"
    assert "data.1.start" in error_for(raw)
