"""Farms, across price scales (with and without an allocator moving capital between
them): the account ledger is the reserve plus the sum of the farm ledgers at every time
step; each farm's cash is its transfers and fills replayed, and no buy adds to a long
beyond the farm's cash (it spends only what it has);
a farm's breach stops only that farm (the other farms trade exactly as they would with
no limit on it); the same scenario twice stores the same rows. The first property also
steers the farms while they trade (agent moves, farm pauses, resumes and kills with or
without flatten: sim.farm_lifecycle), which must keep every one of its invariants.

The engine checks the sum itself on every step (``sim.farms.check_ledgers``) and would
fail the run; here it is checked again from the stored rows, independently.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.property import _support as sup

TOLERANCE = 1e-9  # relative, as sim.farms.LEDGER_TOLERANCE


@st.composite
def farm_scenarios(draw: st.DrawFn, lifecycle: bool = False) -> dict[str, Any]:
    n_symbols = draw(st.integers(1, 2))
    symbols = sup.SYMBOLS[:n_symbols]
    scale = draw(st.sampled_from([0.001, 1.0, 100.0, 50_000.0]))
    data = [{"kind": "gbm", "symbol": s, "bars": draw(st.integers(100, 400)),
             "interval": "1h", "price": scale * draw(st.sampled_from([1.0, 3.0])),
             "volatility": draw(st.sampled_from([0.5, 1.5, 3.0]))} for s in symbols]
    agents = draw(sup.agents(symbols, min_size=2, max_size=5))
    n_farms = draw(st.integers(2, min(3, len(agents))))
    owners = [i % n_farms for i in range(len(agents))]
    farms = []
    for f in range(n_farms):
        farm: dict[str, Any] = {
            "name": f"f{f}", "agents": [a["name"] for a, o in zip(agents, owners, strict=True)
                                        if o == f]}
        how = draw(st.sampled_from(["share", "capital", "rest"]))
        if how == "share":
            farm["share"] = draw(st.sampled_from([0.1, 0.2, 0.3]))
        elif how == "capital":
            farm["capital"] = draw(st.sampled_from([500.0, 2000.0]))
        if draw(st.booleans()):
            farm["policy"] = draw(sup.policy(max_exposure=1.5))
        farms.append(farm)
    out: dict[str, Any] = {}
    if lifecycle and draw(st.booleans()):  # farms steered while they trade
        names = [f["name"] for f in farms]
        events = []
        for _ in range(draw(st.integers(1, 3))):
            at = f"2024-01-0{draw(st.integers(2, 4))}T{draw(st.integers(0, 23)):02d}:00:00Z"
            kind = draw(st.sampled_from(["agent_move", "farm_pause", "farm_resume",
                                         "farm_kill"]))
            event: dict[str, Any] = {"at": at, "kind": kind, "farm": draw(st.sampled_from(
                names))}
            if kind == "agent_move":
                event["agent"] = draw(st.sampled_from([a["name"] for a in agents]))
            if kind == "farm_kill":
                event["flatten"] = draw(st.booleans())
            events.append(event)
        out["events"] = sorted(events, key=lambda e: e["at"])
    if draw(st.booleans()):  # capital moved between the farms on a schedule
        out["allocator"] = {
            "method": draw(st.sampled_from(["equal", "inverse_volatility", "performance"])),
            "every": draw(st.sampled_from(["6h", "1d", "3d"])),
            "lookback": draw(st.sampled_from([2, 24])),
            "floor": draw(st.sampled_from([0.0, 0.1]))}
    return {
        **out,
        "name": "farm_property", "seed": draw(st.integers(0, 2**32)),
        "initial_cash": 10_000.0, "data": data, "agents": agents,
        "consensus": {"method": draw(st.sampled_from(["majority", "confidence_weighted"]))},
        "policy": draw(sup.policy(max_exposure=1.5)),
        "venues": draw(sup.venues(symbols, full_cover=True)),
        "execution": {"fill_at": draw(st.sampled_from(["next_open", "close"]))},
        "farms": farms,
    }


def _run(raw: dict[str, Any], path: Path) -> dict[str, list[tuple[Any, ...]]]:
    with DuckDBStore(path) as store:
        run_id = run_scenario(parse_scenario(raw, "property"), store).run_id
        con = store.con
        out = {}
        for name, sql in {
            "equity": "SELECT epoch_ns(ts), cash, equity FROM equity WHERE run_id = ? "
                      "ORDER BY ts",
            "farm_equity": "SELECT epoch_ns(ts), farm, cash, equity FROM farm_equity "
                           "WHERE run_id = ? ORDER BY ts, farm",
            "fills": "SELECT fill_id, farm, epoch_ns(ts), symbol, quantity, price, fee "
                     "FROM fills_by_farm WHERE run_id = ? ORDER BY fill_id",
            "risk": "SELECT farm, check_name FROM risk_events_by_farm WHERE run_id = ? "
                    "ORDER BY order_id",
            "transfers": "SELECT from_farm, to_farm, amount FROM capital_transfers "
                         "WHERE run_id = ? ORDER BY ts, from_farm, to_farm",
            "transfer_rows": "SELECT epoch_ns(ts), from_farm, to_farm, amount "
                             "FROM capital_transfers WHERE run_id = ? ORDER BY rowid",
        }.items():
            out[name] = con.execute(sql, [run_id]).fetchall()
    return out


def _replayed_cash(got: dict[str, list[tuple[Any, ...]]]) -> dict[str, float]:
    """Each farm's cash replayed from its transfers and fills alone, checking on the way
    that no buy adds to a long beyond the farm's cash (covering a short is a reduction:
    it may leave a farm that lost more than it had below zero)."""
    cash: dict[str, float] = {}
    held: dict[tuple[str, str], float] = {}
    transfers = sorted(got["transfer_rows"])
    k = 0
    for _fill_id, farm, ts, symbol, qty, price, fee in got["fills"]:
        while k < len(transfers) and transfers[k][0] <= ts:
            _, source, target, amount = transfers[k]
            cash[source] = cash.get(source, 0.0) - amount
            cash[target] = cash.get(target, 0.0) + amount
            k += 1
        position = held.get((farm, symbol), 0.0)
        cash[farm] -= qty * price + fee
        held[farm, symbol] = position + qty
        opening = qty - min(qty, max(-position, 0.0)) if qty > 0 else 0.0
        if opening > 0.0:
            assert cash[farm] >= -TOLERANCE * max(1.0, qty * price), (
                f"farm {farm} bought {qty} {symbol} at {price} with cash it did not have")
    for _, source, target, amount in transfers[k:]:
        cash[source] = cash.get(source, 0.0) - amount
        cash[target] = cash.get(target, 0.0) + amount
    cash.pop("account", None)
    return cash


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b), scale)


@settings(deadline=None, max_examples=15)
@given(raw=farm_scenarios(lifecycle=True))
def test_account_is_the_sum_of_farms_and_no_farm_overspends(raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        got = _run(raw, Path(tmp) / "a.duckdb")
        again = _run(raw, Path(tmp) / "a.duckdb")
    assert got == again  # determinism, farm rows included
    reserve = 10_000.0 - sum(amount for source, _, amount in got["transfers"]
                             if source == "account")
    assert reserve >= -1e-9
    by_ts: dict[int, list[tuple[float, float]]] = {}
    last_cash: dict[str, float] = {}
    for ts, farm, cash, equity in got["farm_equity"]:
        by_ts.setdefault(ts, []).append((cash, equity))
        last_cash[farm] = cash
    assert _replayed_cash(got) == pytest.approx(last_cash, rel=TOLERANCE, abs=1e-6)
    assert len(got["equity"]) == len(by_ts)
    for ts, cash, equity in got["equity"]:
        farms = by_ts[ts]
        assert len(farms) == len(raw["farms"])
        scale = sum(abs(e) + abs(c) for c, e in farms)
        assert _close(cash, reserve + sum(c for c, _ in farms), scale)
        assert _close(equity, reserve + sum(e for _, e in farms), scale)
    for farm, check in got["risk"]:
        assert farm is not None and check is not None


@settings(deadline=None, max_examples=10)
@given(raw=farm_scenarios(), limit=st.sampled_from([0.001, 0.01, 0.05]))
def test_a_farms_breach_stops_only_that_farm(raw: dict[str, Any], limit: float) -> None:
    """Farm f0 gets tight limits (daily loss as money and as a fraction, drawdown): its
    own orders may be denied; every other farm's fills are exactly those of the run
    without f0's limits."""
    raw = {k: v for k, v in raw.items() if k != "allocator"}  # moves capital by results
    limited = {**raw, "farms": [
        {**raw["farms"][0], "risk": {"daily_loss_limit": limit, "max_drawdown": 2 * limit,
                                     "daily_loss": 1.0}},
        *raw["farms"][1:]]}
    with tempfile.TemporaryDirectory() as tmp:
        free = _run(raw, Path(tmp) / "a.duckdb")
        held = _run(limited, Path(tmp) / "a.duckdb")
    assert {f for f, c in held["risk"] if c.startswith("farm.")} <= {"f0"}
    assert not [c for _, c in free["risk"] if c.startswith("farm.") and c != "farm.capital"]

    def others(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return [row[1:] for row in rows if row[1] != "f0"]

    assert others(held["fills"]) == others(free["fills"])
