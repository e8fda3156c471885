"""The write-ahead journal: what a killed process appended reaches the store exactly,
once, and nothing it never finished writing is taken for an order."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from live.journal import OrderJournal, absorb, journal_dir
from live.records import VENUE_ORDER_COLUMNS, create_tables, open_venue_orders

ROOT = Path(__file__).resolve().parents[2]


def row(order_id: int, leg: int = 0, **changes: object) -> dict[str, object]:
    base: dict[str, object] = {
        "run_id": "r1", "order_id": order_id, "leg": leg, "cloid": f"0x{order_id:032x}",
        "venue": "hl", "symbol": "ETH", "coin": "ETH", "quantity": 0.1 * order_id,
        "size": 0.1 * order_id, "price": 2000.0 + 1 / 3, "venue_type": "market",
        "reduce_only": False, "decision_id": order_id, "ts": 1_700_000_000_000_000_000,
        "decision_ts": 1_699_999_940_000_000_000, "ref_price": 1999.9, "kind": "market",
        "tif": "gtc", "limit_price": None, "stop_price": None, "post_only": False,
        "role": "entry", "parent_id": 0, "replaces": 0, "status": "sent", "oid": None,
        "filled": 0.0, "message": None, "sent_ns": 5, "updated_ns": 5}
    base.update(changes)
    return base


def store() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    create_tables(con)
    return con


def test_the_journal_lives_beside_the_store_file_and_not_for_a_memory_store(tmp_path) -> None:
    assert journal_dir(str(tmp_path / "runs.duckdb")) == tmp_path / "runs.duckdb.journal"
    assert journal_dir(":memory:") is None
    journal = OrderJournal(None, "r1")
    journal.append(row(1))  # nothing to write to, nothing to fail
    journal.close(remove=True)


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=5))
def test_rows_come_back_exactly(tmp_path_factory, quantities: list[float]) -> None:
    directory = tmp_path_factory.mktemp("j")
    journal = OrderJournal(directory, "r1")
    rows = [row(n + 1, quantity=q) for n, q in enumerate(quantities)]
    for r in rows:
        journal.append(r)
    journal.close()
    con = store()
    assert absorb(con, directory) == len(rows)
    assert open_venue_orders(con, "r1") == rows  # floats bit for bit, NULLs as None
    assert absorb(con, directory) == 0  # once only


def test_rows_already_in_the_store_are_left_as_the_store_has_them(tmp_path) -> None:
    con = store()
    journal = OrderJournal(tmp_path, "r1")
    for n in (1, 2):
        journal.append(row(n))
    cols = ", ".join(VENUE_ORDER_COLUMNS)
    marks = ", ".join("?" for _ in VENUE_ORDER_COLUMNS)
    filled = row(1, status="filled", filled=0.1)
    con.execute(f"INSERT INTO venue_orders ({cols}) VALUES ({marks})",
                [filled[c] for c in VENUE_ORDER_COLUMNS])
    assert absorb(con, tmp_path) == 1
    statuses = con.execute("SELECT order_id, status FROM venue_orders ORDER BY 1").fetchall()
    assert statuses == [(1, "filled"), (2, "sent")]


def test_a_line_cut_short_at_the_end_is_skipped_with_a_warning(tmp_path, caplog) -> None:
    journal = OrderJournal(tmp_path, "r1")
    journal.append(row(1))
    journal.close()
    assert journal.path is not None
    with journal.path.open("ab") as f:
        f.write(b"[\"r1\",2,0,\"0x")  # the machine stopped mid-write
    con = store()
    with caplog.at_level(logging.WARNING):
        assert absorb(con, tmp_path) == 1
    assert "cut short" in caplog.text


def test_a_damaged_line_inside_the_journal_is_an_error_naming_it(tmp_path) -> None:
    journal = OrderJournal(tmp_path, "r1")
    journal.append(row(1))
    journal.close()
    assert journal.path is not None
    with journal.path.open("ab") as f:
        f.write(b"not json\n")
    with pytest.raises(ValueError, match="line 3 is not a journal row"):
        absorb(store(), tmp_path)


def test_close_with_remove_deletes_the_file(tmp_path) -> None:
    journal = OrderJournal(tmp_path, "r1")
    journal.append(row(1))
    journal.close(remove=True)
    assert list(tmp_path.iterdir()) == []


def test_rows_appended_before_sigkill_survive_it(tmp_path) -> None:
    """A child appends rows and then SIGKILLs itself before closing anything: every row
    whose append returned is in the journal."""
    code = (
        "import os, signal\n"
        "from pathlib import Path\n"
        "from live.journal import OrderJournal\n"
        "from tests.unit.test_journal import row\n"
        f"j = OrderJournal(Path({str(tmp_path)!r}), 'r1')\n"
        "for n in range(1, 51):\n"
        "    j.append(row(n))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert proc.returncode == -signal.SIGKILL
    con = store()
    assert absorb(con, Path(tmp_path)) == 50
    assert [r["order_id"] for r in open_venue_orders(con, "r1")] == list(range(1, 51))
