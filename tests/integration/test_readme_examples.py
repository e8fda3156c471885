"""The README's and the docs pages' commands and SQL, run as written.

Each page (the README too) is read top to bottom in a fresh directory, as a reader in a
clone would (``tests._docs_runner``): its files saved, its commands run, its SQL run
against the store its commands made. The queries of "Query the store" whose meaning can
be wrong while still running (the ASOF join, the shortfall) are also checked against the
same answer computed independently from the tables, on a store holding a small sweep and
two demo runs (seeds 7 and 8, the second the latest), so an example that forgets to pick
one run mixes runs and is caught.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from bisect import bisect_right
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests._docs_runner import run_page
from tests._readme import (
    DOCS,
    README,
    REPO,
    Command,
    as_test_argv,
    docs_pages,
    fenced_blocks,
    page_commands,
    page_sql,
)

# from the clone's root, as the README's commands are run: its test helpers importable
ENV = {**{k: v for k, v in os.environ.items() if k != "QUORUM_DB"}, "COLUMNS": "200",
       "PYTHONPATH": str(REPO)}
# Where a project's commands store their runs without --db (quorum.store_path): the store
# of a checkout, whose root holds scenarios/.
STORE = Path(".quorum") / "runs.duckdb"
_ENV_PREFIX = re.compile(r"^[A-Z_][A-Z0-9_]*=")  # VAR=value before a command
QUERY_PAGE = DOCS / "howto" / "query.md"
SCENARIO_PAGE = DOCS / "howto" / "scenarios.md"


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=ENV, timeout=600)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project (its ``scenarios/`` beside the store) whose store holds the tiny sweep,
    then the demo at seeds 7 and 8 (the latest)."""
    where = tmp_path_factory.mktemp("readme")
    (where / "scenarios").symlink_to(REPO / "scenarios")
    quorum = [sys.executable, "-m", "quorum.cli"]
    steps = [
        [*quorum, "sweep", str(REPO / "scenarios/sweeps/tiny.toml"), "--quiet",
         "--workers", "1"],
        [*quorum, "run", str(REPO / "scenarios/demo.toml"), "--quiet"],
        [*quorum, "run", str(REPO / "scenarios/demo.toml"), "--seed", "8", "--quiet"],
    ]
    for argv in steps:
        done = _run(argv, where)
        assert done.returncode == 0, (argv, done.stderr)
    return where


def _last_run(store: Path) -> str:
    with duckdb.connect(str(store / STORE), read_only=True) as con:
        row = con.execute("SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


def _command(marker: str) -> Command:
    """The one shell command of "Query the store" whose text or comment has ``marker``."""
    found = [c for c in page_commands(QUERY_PAGE)
             if marker in c.comment or marker in " ".join(c.argv)]
    assert len(found) == 1, f"{len(found)} commands of {QUERY_PAGE.name} match {marker!r}"
    return found[0]


def _query_csv(command: Command, cwd: Path) -> pd.DataFrame:
    done = _run([*as_test_argv(command.argv), "--csv"], cwd)
    assert done.returncode == 0, f"{QUERY_PAGE.name}:{command.line}: {done.stderr}"
    return pd.read_csv(io.StringIO(done.stdout))


def test_every_shell_command_uses_the_venv() -> None:
    """A bare ``quorum`` (or a ``duckdb`` CLI) fails in a fresh clone: exit 127 unless the
    venv is activated, and a CLI of another DuckDB version cannot open the store."""
    commands = [(page, c) for page in docs_pages() for c in page_commands(page)]
    assert len({page for page, _ in commands}) > 10
    bare = [f"{page.name}:{c.line}: {c.argv[0]}" for page, c in commands
            if next(a for a in c.argv if not _ENV_PREFIX.match(a))
            not in (".venv/bin/quorum", ".venv/bin/python")]
    assert not bare, bare


def test_no_advice_to_install_a_duckdb_cli() -> None:
    """PyPI's duckdb-cli does not follow the duckdb package's versions, so the CLI it
    installs may be unable to read the store the package wrote."""
    for page in docs_pages():
        assert not re.search(r"pip install\W+duckdb-cli", page.read_text(encoding="utf-8")), page


@pytest.mark.parametrize("page", docs_pages(), ids=lambda p: p.name)
def test_every_docs_page_runs_as_written(page: Path, tmp_path: Path) -> None:
    """Each page (and the README), read top to bottom in a fresh directory beside the
    clone's ``scenarios/`` and ``data/``: its files saved, its commands run, its SQL run
    against the store they made (``tests._docs_runner``). ``PYTHONPATH`` is the clone, as
    for a reader who runs the developer pages' commands from it."""
    for name in ("scenarios", "data"):
        (tmp_path / name).symlink_to(REPO / name)
    ran = run_page(page, tmp_path, env={"PYTHONPATH": str(REPO)})
    assert ran == len(page_commands(page)) + len(page_sql(page))


def test_the_docs_show_sql_and_the_readme_a_tour() -> None:
    """What the page runner runs is there to run: SQL in the pages, commands in the
    README's tour."""
    assert sum(len(page_sql(p)) for p in docs_pages()) >= 5
    assert len(page_commands(README)) >= 8


def test_shortfall_query_is_the_last_runs_orders(store_dir: Path) -> None:
    got = _query_csv(_command("as shortfall"), store_dir)
    with duckdb.connect(str(store_dir / STORE), read_only=True) as con:
        orders = con.execute(
            "SELECT order_id, filled_quantity, ref_price, avg_fill_price, fees, ts, arrival_ts "
            "FROM orders WHERE run_id = ? AND filled_quantity <> 0 ORDER BY order_id",
            [_last_run(store_dir)]).df()
    want = orders.head(len(got))
    assert len(got) == min(10, len(orders)) > 0
    assert list(got["order_id"]) == list(want["order_id"])
    slip = want["avg_fill_price"] - want["ref_price"]
    shortfall = slip * want["filled_quantity"] + want["fees"]
    np.testing.assert_allclose(got["shortfall"], shortfall, rtol=1e-12)
    latency = (want["arrival_ts"] - want["ts"]).dt.total_seconds() * 1e3
    np.testing.assert_allclose(got["latency_ms"], latency, rtol=1e-12, atol=1e-9)


def test_asof_query_gives_each_agents_standing_signal(store_dir: Path) -> None:
    """Per decision of the last run, one row per agent that signals on that symbol: its
    latest signal at or before the decision, empty before its first."""
    got = _query_csv(_command("what every agent was saying"), store_dir)
    run_id = _last_run(store_dir)
    with duckdb.connect(str(store_dir / STORE), read_only=True) as con:
        decisions = con.execute("SELECT ts, symbol, side FROM decisions WHERE run_id = ?",
                                [run_id]).fetchall()
        signals = con.execute("SELECT ts, symbol, agent, side, confidence FROM signals "
                              "WHERE run_id = ? ORDER BY ts", [run_id]).fetchall()
    by_agent: dict[tuple[str, str], list[tuple]] = {}
    for ts, symbol, agent, side, confidence in signals:
        by_agent.setdefault((symbol, agent), []).append((ts, side, confidence))
    want = []
    for ts, symbol, side in decisions:
        for (sym, agent), rows in by_agent.items():
            if sym != symbol:
                continue
            at = bisect_right([r[0] for r in rows], ts)
            said = rows[at - 1] if at else (None, None, None)
            want.append((pd.Timestamp(ts), symbol, side, agent, said[1], said[2]))
    want.sort(key=lambda r: (r[0], r[1], r[3]))
    want = want[:len(got)]
    assert len(got) == min(12, len(want)) and len({r[3] for r in want}) > 1
    rows = [(pd.Timestamp(r.ts), r.symbol, r.decision, r.agent,
             None if pd.isna(r.side) else r.side,
             None if pd.isna(r.confidence) else float(r.confidence))
            for r in got.itertuples(index=False)]
    assert rows == want


def test_scenario_example_trades(tmp_path: Path) -> None:
    """The scenario example of "Write a scenario", copied as is (its data path is
    relative to a scenario one folder below the clone's root): it trades, and its limits
    deny few of its orders."""
    example = [b for b in fenced_blocks(SCENARIO_PAGE.read_text(encoding="utf-8"), "toml")
               if b.text.startswith('name = "my_test"')]
    assert len(example) == 1
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "data").symlink_to(REPO / "data")
    (tmp_path / "scenarios" / "my_test.toml").write_text(example[0].text, encoding="utf-8")
    done = _run([sys.executable, "-m", "quorum.cli", "run", "scenarios/my_test.toml",
                 "--quiet"], tmp_path)
    assert done.returncode == 0, done.stderr
    with duckdb.connect(str(tmp_path / STORE), read_only=True) as con:
        orders, denied = con.execute(
            "SELECT count(*), count(*) FILTER (status = 'denied') FROM orders").fetchone()
        venues = con.execute("SELECT count(DISTINCT venue) FROM fills").fetchone()[0]
        fills = con.execute("SELECT count(*) FROM fills").fetchone()[0]
    assert orders >= 50 and fills >= 0.9 * orders, (orders, denied, fills)
    assert 0 < denied <= 0.1 * orders, (orders, denied)  # the limits act, and only sometimes
    assert venues == 2  # the event takes a venue down: the other takes the orders
