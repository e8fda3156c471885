"""Reference pages generated from the code, so the docs cannot drift from it.

* ``scenario_reference``: every scenario section and field, from the pydantic models
  (type, default, constraints, and the comment written beside the field in the source);
* ``schema_reference``: every table and column of a run store, read back from a store
  that the code itself created (its DDL is the only definition);
* ``cli_reference``: every command and option, from the argument parser.

The docs site's build hook (``docs/_hooks/reference.py``) writes them as pages; the tests
check that each page names every field, table and command there is.
"""

from __future__ import annotations

import argparse
import inspect
import io
import tempfile
import tokenize
import types
import typing
from pathlib import Path
from typing import Any, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

# -- the scenario ----------------------------------------------------------------------


def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """``# comment`` written on a field's line in ``model``'s source, by field name."""
    try:
        source = inspect.getsource(model)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    name_on_line: dict[int, str] = {}
    for line_no, line in enumerate(source.splitlines(), 1):
        stripped = line.strip()
        head = stripped.split(":", 1)[0]
        if line.startswith("    ") and not line.startswith("     ") and head.isidentifier():
            name_on_line[line_no] = head
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.start[0] in name_on_line:
            out[name_on_line[tok.start[0]]] = tok.string.lstrip("#").strip()
    return out


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is not None:
        inner = ", ".join(_type_name(a) for a in args)
        return f"{getattr(origin, '__name__', str(origin))}[{inner}]"
    if annotation is type(None):
        return "None"
    return getattr(annotation, "__name__", str(annotation))


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        try:
            value = info.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
    elif info.default is PydanticUndefined:
        return "**required**"
    else:
        value = info.default
    if isinstance(value, BaseModel):
        return "(section defaults)"
    return f"`{value!r}`"


def _constraints(info: FieldInfo) -> str:
    out = []
    for item in info.metadata:
        for key in ("gt", "ge", "lt", "le", "min_length", "max_length"):
            value = getattr(item, key, None)
            if value is not None:
                out.append(f"{key} {value:g}" if isinstance(value, float) else
                           f"{key} {value}")
    return ", ".join(out)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def model_fields_table(model: type[BaseModel]) -> str:
    comments = field_comments(model)
    rows = ["| field | type | default | constraints | notes |", "|---|---|---|---|---|"]
    for name, info in model.model_fields.items():
        note = (info.description or comments.get(name, "")).replace("|", "\\|")
        rows.append(f"| `{name}` | {_type_name(info.annotation)} | {_default(info)} | "
                    f"{_constraints(info)} | {note} |")
    return "\n".join(rows)


def scenario_reference() -> str:
    """Every section of a scenario file, depth first from ``ScenarioConfig``."""
    from sim.config import ScenarioConfig

    out = ["# Scenario reference", "",
           "Generated from the configuration models (`sim/config*.py`) when the docs are "
           "built: every field a scenario TOML may hold, with its type, default and "
           "limits. Unknown fields are refused (one line naming the field, exit 2).", ""]
    seen: set[type[BaseModel]] = set()
    queue: list[tuple[str, type[BaseModel]]] = [("(top level)", ScenarioConfig)]
    while queue:
        where, model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        doc = inspect.cleandoc(model.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        out += [f"## {where}: `{model.__name__}`", "", doc, "", model_fields_table(model), ""]
        for name, info in model.model_fields.items():
            for sub in _models_in(info.annotation):
                prefix = "" if model is ScenarioConfig else f"{where}."
                queue.append((f"{prefix}{name}", sub))
    return "\n".join(out)


# -- the store -------------------------------------------------------------------------


def store_tables() -> dict[str, list[tuple[str, str]]]:
    """Table -> [(column, type)] of a store made by the code: the run store, the live
    session's tables, the control audit and the sweep tables (``sim.schema``), as their
    owners create them."""
    import duckdb

    from live.records import create_tables as create_live_tables
    from live.risk_state import create_table as create_risk_table
    from live.session import add_capital_columns
    from quorum.api.audit import create_table as create_audit_table
    from sim.schema import LIVE_RESUMES_DDL, SWEEP_DDL
    from sim.store import DuckDBStore

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.duckdb"
        DuckDBStore(path).close()
        con = duckdb.connect(str(path))
        try:
            create_live_tables(con)
            create_risk_table(con)
            add_capital_columns(con)
            con.execute(LIVE_RESUMES_DDL)
            create_audit_table(con)
            for ddl in SWEEP_DDL:
                con.execute(ddl)
            rows = con.execute(
                "select table_name, column_name, data_type from information_schema.columns "
                "where table_schema = 'main' order by table_name, ordinal_position").fetchall()
            views = {r[0] for r in con.execute(
                "select view_name from duckdb_views() where not internal").fetchall()}
        finally:
            con.close()
    tables: dict[str, list[tuple[str, str]]] = {}
    for table, column, kind in rows:
        name = f"{table} (view)" if table in views else table
        tables.setdefault(name, []).append((column, kind))
    return tables


def schema_reference() -> str:
    out = ["# Store schema", "",
           "Generated when the docs are built from a store the code creates: every table "
           "(and view) of a run store, with its columns and DuckDB types. Every row carries "
           "its `run_id`; times are `TIMESTAMP_NS` (UTC, bar open time for bars).", ""]
    for table, columns in store_tables().items():
        out += [f"## `{table}`", "", "| column | type |", "|---|---|"]
        out += [f"| `{c}` | {t} |" for c, t in columns]
        out.append("")
    return "\n".join(out)


# -- the command line ------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser,
                 prefix: str) -> list[tuple[str, argparse.ArgumentParser, str]]:
    out = []
    for action in parser._actions:  # argparse keeps its parsers here; no public accessor
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((f"{prefix} {name}", sub, helps.get(name, "")))
                out += _subcommands(sub, f"{prefix} {name}")
    return out


def cli_reference() -> str:
    from quorum.cli import build_parser

    out = ["# Command line", "",
           "Generated from the argument parser when the docs are built. Exit codes: 0 done, "
           "1 the run failed (stored as failed), 2 bad input (one line naming the field), "
           "130 interrupted (Ctrl-C), 143 stopped by SIGTERM.", ""]
    for name, parser, summary in _subcommands(build_parser(), "quorum"):
        out += [f"## `{name}`", "", summary, "", "```text", parser.format_usage().strip(),
                "```", ""]
        rows = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            flags = ", ".join(f"`{f}`" for f in action.option_strings) or f"`{action.dest}`"
            text = (action.help or "").replace("|", "\\|").replace("\n", " ")
            if "%(default)" in text:
                text = text.replace("%(default)s", str(action.default))
            rows.append(f"| {flags} | {text} |")
        if rows:
            out += ["| argument | what |", "|---|---|", *rows, ""]
    return "\n".join(out)


PAGES = {
    "reference/scenario.md": scenario_reference,
    "reference/schema.md": schema_reference,
    "reference/cli.md": cli_reference,
}
