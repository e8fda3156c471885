"""``live.risk_state.agent_trades``: which agents a resumed run's sent orders count
against, read from the stored votes, on hand-made store rows."""

from __future__ import annotations

from pathlib import Path

from live.records import create_tables
from live.risk_state import agent_trades, sent_orders
from sim.store import DuckDBStore

RUN = "r1"


def venue_order(con, order_id: int, decision_id: int, ts: int, role: str = "entry") -> None:
    con.execute(
        "INSERT INTO venue_orders (run_id, order_id, leg, cloid, venue, symbol, coin,"
        " quantity, size, venue_type, reduce_only, decision_id, ts, decision_ts, ref_price,"
        " kind, tif, post_only, role, parent_id, replaces, status, sent_ns, updated_ns)"
        " VALUES (?, ?, 0, ?, 'hl', 'ETH', 'ETH', 1, 1, 'Ioc', false, ?, ?, ?, 100,"
        " 'market', 'gtc', false, ?, 0, 0, 'sent', ?, ?)",
        [RUN, order_id, f"c{order_id}", decision_id, ts, ts, role, ts, ts])


def decision(con, decision_id: int, side: str, votes: dict[str, str]) -> None:
    con.execute("INSERT INTO decisions (run_id, decision_id, ts, symbol, side) VALUES"
                " (?, ?, make_timestamp_ns(?), 'ETH', ?)", [RUN, decision_id, decision_id, side])
    for agent, vote in votes.items():
        con.execute("INSERT INTO votes (run_id, decision_id, agent, side) VALUES (?, ?, ?, ?)",
                    [RUN, decision_id, agent, vote])


def test_sent_orders_count_against_the_agents_on_their_decisions_side(tmp_path: Path) -> None:
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        con = store.con
        create_tables(con)
        decision(con, 1, "buy", {"a": "buy", "b": "sell", "c": "hold"})
        decision(con, 2, "sell", {"a": "buy", "b": "sell", "c": "sell"})
        decision(con, 3, "buy", {"a": "hold", "b": "hold", "c": "hold"})  # nobody on its side
        venue_order(con, 1, 1, 100)
        venue_order(con, 2, 1, 150, role="take_profit")  # the desk's bracket: nobody's trade
        venue_order(con, 3, 2, 200)
        venue_order(con, 4, 3, 250)
        venue_order(con, 5, 9, 300)  # its decision's rows were lost in the crash
        sent = sent_orders(con, RUN)
        assert [ts for ts, _, _ in sent] == [100, 150, 200, 250, 300]
        got = agent_trades(con, RUN, sent, ["a", "c"])
        # order 5: decision unknown, so it counts against every agent with permissions
        assert got == [(100, ("a",)), (200, ("b", "c")), (250, ()), (300, ("a", "c"))]
