"""Compare two sweep stores table by table (the same sweep run by two trees): per table, the
row count and order-free sums of DuckDB row hashes, each run's id replaced by its index in
the sweep (run ids are drawn per sweep), wall-clock and code-identity columns left out::

    python tests/perf/sweep_store_digests.py A.duckdb B.duckdb
"""

from __future__ import annotations

import sys
from typing import Any

import duckdb

_SKIP = {"started_at", "finished_at", "writer_pid", "writer_host", "created_at",
         "started_ns", "sweep_id", "code_version", "run_id"}
_SKIP_TABLES = {"run_code", "sweeps", "meta"}  # code identity; the sweep's own id and time


def digests(path: str) -> dict[str, Any]:
    con = duckdb.connect(path, read_only=True)
    out = {}
    tables = con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1")
    for (table,) in tables.fetchall():
        if table in _SKIP_TABLES:
            continue
        names = [c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?"
            " ORDER BY ordinal_position", [table]).fetchall()]
        cols = [f't."{c}"' for c in names if c not in _SKIP and not c.startswith("elapsed")]
        source = f"{table} t"
        if "run_id" in names and table != "sweep_runs":
            source += " JOIN sweep_runs k USING (run_id)"
            cols.append("k.idx")
        row = ", ".join(cols)
        out[table] = con.execute(f"SELECT count(*), sum(hash({row})::HUGEINT),"
                                 f" bit_xor(hash({row})) FROM {source}").fetchone()
    return out


def main() -> None:
    a, b = digests(sys.argv[1]), digests(sys.argv[2])
    differ = sorted(t for t in a.keys() | b.keys() if a.get(t) != b.get(t))
    print(f"{len(a)} tables, {sum(v[0] for v in a.values()):,} rows; differ: "
          f"{', '.join(differ) or 'none'}")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
