"""Small typed helpers over DuckDB queries, shared by every module that reads the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import duckdb


def one_row(con: duckdb.DuckDBPyConnection, sql: str,
            params: Sequence[Any] | Mapping[str, Any] = ()) -> tuple[Any, ...]:
    """The single row of a query that always has one (an aggregate without GROUP BY).

    ``fetchone()`` is typed as possibly ``None``; for these queries ``None`` would mean a
    broken query, so it is an error here, not a value to unpack."""
    row = con.execute(sql, params if isinstance(params, Mapping) else list(params)).fetchone()
    if row is None:
        raise LookupError(f"expected one row from: {sql}")
    return row
