"""One owner of the schema (``sim.schema``): no other module defines a table or view, and a
store written before the schema moved there (main at a36411d) opens and migrates to what
a fresh store is."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import pytest

from live.records import create_tables
from live.risk_state import create_table as create_risk_table
from live.session import add_capital_columns
from quorum.api.audit import create_table as create_audit_table
from sim.schema import LIVE_RESUMES_DDL, SCHEMA_VERSION, SWEEP_DDL
from sim.store import DuckDBStore

ROOT = Path(__file__).resolve().parents[2]
# Every table and view of a store written by main at a36411d (``duckdb_tables().sql``).
OLD_SCHEMA = ROOT / "tests" / "fixtures" / "store_schema_a36411d.sql"
# a table or view named in the text (``sim.store`` makes ``TABLES``' by their names)
_DEFINES = re.compile(
    r"CREATE\s+(TABLE\s+IF\s+NOT\s+EXISTS|OR\s+REPLACE\s+VIEW|VIEW)\s+[A-Za-z_]",
    re.IGNORECASE)


def _open_as_owners_do(path: Path) -> duckdb.DuckDBPyConnection:
    """The store at ``path`` opened, and every first-use table made, by their owners."""
    DuckDBStore(path).close()
    con = duckdb.connect(str(path))
    create_tables(con)
    create_risk_table(con)
    add_capital_columns(con)
    con.execute(LIVE_RESUMES_DDL)
    create_audit_table(con)
    for ddl in SWEEP_DDL:
        con.execute(ddl)
    return con


def _catalog(con: duckdb.DuckDBPyConnection) -> list[str]:
    tables = con.execute("SELECT sql FROM duckdb_tables() ORDER BY table_name").fetchall()
    views = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal"
                        " ORDER BY view_name").fetchall()
    return [row[0].strip().rstrip(";") for row in (*tables, *views)]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    con = _open_as_owners_do(tmp_path_factory.mktemp("fresh") / "s.duckdb")
    try:
        return _catalog(con)
    finally:
        con.close()


def test_no_module_but_sim_schema_defines_a_table_or_view() -> None:
    found = []
    for package in ("sim", "research", "live", "quorum", "reports"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "sim" / "schema.py":
                continue
            found += [f"{path.relative_to(ROOT)}: {m.group(0)}"
                      for m in _DEFINES.finditer(path.read_text())]
    assert found == []


def test_a_store_written_before_the_move_migrates_to_a_fresh_stores_schema(
        tmp_path: Path, fresh: list[str]) -> None:
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    for statement in OLD_SCHEMA.read_text().split(";\n"):
        if statement.strip():
            con.execute(statement)
    con.execute("INSERT INTO meta VALUES ('schema_version', '10')")
    con.execute("INSERT INTO runs (run_id, scenario, config, seed, code_version, data_hash,"
                " status, started_at) VALUES ('r1', 's', '{}', 1, 'v', 'h', 'completed', now())")
    con.execute("INSERT INTO venue_fills VALUES ('r1', 7, 1, 1, NULL, 9, 'ETH', 1.0, 2.0,"
                " 0.1, 5, 'hl')")
    con.close()
    assert SCHEMA_VERSION == 10  # the fixture's; a new version needs a migration test
    con = _open_as_owners_do(path)
    try:
        assert _catalog(con) == fresh
        assert con.execute("SELECT count(*) FROM runs").fetchone() == (1,)
        assert con.execute("SELECT venue, tid FROM venue_fills").fetchall() == [("hl", 7)]
    finally:
        con.close()
