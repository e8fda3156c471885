"""Whether a stored run was made by the code here (``quorum show``; ``sim.code_identity``)."""

from __future__ import annotations

import json

import duckdb

from sim.code_identity import code_identity, stale_reason


def code_status(con: duckdb.DuckDBPyConnection, run_id: str, config_json: str) -> str:
    """``current``, or ``stale: <what differs>`` against the code here: Quorum's source
    and the user modules the run's agents are loaded from, as they are now."""
    try:
        row = con.execute("SELECT quorum, modules FROM run_code WHERE run_id = ?",
                          [run_id]).fetchone()
    except duckdb.CatalogException:  # a store from before code was recorded
        row = None
    stored = None if row is None else {"quorum": row[0], "modules": json.loads(row[1])}
    agents = json.loads(config_json).get("agents", [])
    reason = stale_reason(stored, code_identity(agents))
    return "current" if reason is None else f"stale: {reason}"
