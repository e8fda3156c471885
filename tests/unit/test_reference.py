"""The generated reference pages (quorum.reference) name every scenario field, store table
and column, and CLI command and option there is: a page that missed one fails here."""

from __future__ import annotations

import argparse
from pathlib import Path

import duckdb
import pytest
from pydantic import BaseModel

from quorum.cli import build_parser
from quorum.reference import (
    _models_in,
    cli_reference,
    field_comments,
    scenario_reference,
    schema_reference,
    store_tables,
)
from sim.config import RiskConfig, ScenarioConfig
from sim.schema import TABLES


def _all_models(model: type[BaseModel]) -> set[type[BaseModel]]:
    seen = {model}
    for info in model.model_fields.values():
        for sub in _models_in(info.annotation):
            if sub not in seen:
                seen |= _all_models(sub)
    return seen


def test_every_scenario_section_and_field_is_in_the_reference() -> None:
    text = scenario_reference()
    models = _all_models(ScenarioConfig)
    assert len(models) > 10
    for model in models:
        section = text.split(f"`{model.__name__}`", 1)
        assert len(section) == 2, f"{model.__name__} has no section"
        body = section[1].split("\n## ", 1)[0]
        for name in model.model_fields:
            assert f"| `{name}` |" in body, f"{model.__name__}.{name} missing"


def test_a_field_comment_and_default_reach_the_reference() -> None:
    comments = field_comments(ScenarioConfig)
    assert comments["data"] == "may come from code instead"
    text = scenario_reference()
    assert "| `initial_cash` | float | `10000.0` | gt 0 |" in text
    assert "| `agents` | list[AgentConfig] | **required** | min_length 1 |" in text
    assert "`RiskConfig`" in text and set(RiskConfig.model_fields) <= set(
        line.split("`")[1] for line in text.splitlines() if line.startswith("| `"))


def test_every_store_table_and_column_is_in_the_schema_page() -> None:
    tables = store_tables()
    for table, columns in TABLES.items():
        assert {c for c, _ in columns} <= {c for c, _ in tables[table]}, table
    for expected in ("runs", "live_sessions", "venue_orders", "sweep_runs", "run_metrics"):
        assert expected in tables
    text = schema_reference()
    for table, columns in tables.items():
        assert f"## `{table}`" in text
        for column, kind in columns:
            assert f"| `{column}` | {kind} |" in text


def test_the_schema_page_is_the_store_the_code_makes(tmp_path: Path) -> None:
    """Checked against a store made independently of the generator: a run's store."""
    from sim.store import DuckDBStore

    DuckDBStore(tmp_path / "s.duckdb").close()
    with duckdb.connect(str(tmp_path / "s.duckdb"), read_only=True) as con:
        made = con.execute("select table_name, column_name from information_schema.columns "
                           "where table_schema = 'main'").fetchall()
    tables = store_tables()
    for table, column in made:
        key = table if table in tables else f"{table} (view)"
        assert column in {c for c, _ in tables[key]}, (table, column)


def _parsers(parser: argparse.ArgumentParser, prefix: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from _parsers(sub, f"{prefix} {name}")


@pytest.mark.parametrize("command", ["run", "sandbox", "live", "data calibrate"])
def test_the_cli_page_has_known_commands(command: str) -> None:
    assert f"## `quorum {command}`" in cli_reference()


def test_every_command_and_option_is_in_the_cli_page() -> None:
    text = cli_reference()
    for name, parser in _parsers(build_parser(), "quorum"):
        section = text.split(f"## `{name}`\n", 1)
        assert len(section) == 2, name
        body = section[1].split("\n## ", 1)[0]
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in body, (name, flag)
