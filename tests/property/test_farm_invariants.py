"""Farms, across price scales (with and without an allocator moving capital between
them), with market, limit and stop orders, brackets, time in force, execution latency,
volatility slippage, maker fees and tick replay drawn: the account ledger is the reserve
plus the sum of the farm ledgers at every time step; each farm's cash is its transfers
and fills replayed, and no buy adds to a long beyond the farm's cash (it spends only what
it has, resting and in-flight orders included);
a farm's breach stops only that farm (the other farms trade exactly as they would with
no limit on it); the same scenario twice stores the same rows. The first property also
steers the farms while they trade (agent moves, farm pauses, resumes and kills with or
without flatten: sim.farm_lifecycle), which must keep every one of its invariants.

(Latency is drawn fixed: a random latency or reject rate draws from the venue's one
seeded stream in the account's order of orders, so another farm's denied order would
shift the draws of the rest.)

The engine checks the sum itself on every step (``sim.farms.check_ledgers``) and would
fail the run; here it is checked again from the stored rows, independently.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
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
    execution, venue_extra = draw(_execution())
    venues = [{**v, **venue_extra, "volatility_slippage": draw(st.sampled_from([0.0, 0.3]))}
              for v in draw(sup.venues(symbols, full_cover=True))]
    if execution.get("replay") == "ticks":  # one symbol from a trades file (_run writes it)
        data = [{"kind": "ticks", "symbol": symbols[0], "price": data[0]["price"],
                 "trades": draw(st.integers(300, 600)), "seed": draw(st.integers(0, 999))}]
        agents = [{**a, "symbols": [symbols[0]]} for a in agents]
        venues = [{**v, "symbols": [symbols[0]]} for v in venues]
    return {
        **out,
        "name": "farm_property", "seed": draw(st.integers(0, 2**32)),
        "initial_cash": 10_000.0, "data": data, "agents": agents,
        "consensus": {"method": draw(st.sampled_from(["majority", "confidence_weighted"]))},
        "policy": draw(sup.policy(max_exposure=1.5)),
        "venues": venues, "execution": execution, "farms": farms,
    }


@st.composite
def _execution(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """``[execution]`` and what every venue gets with it (maker fee, fixed latency)."""
    order_type = draw(st.sampled_from(["market", "market", "limit", "stop"]))
    execution: dict[str, Any] = {"order_type": order_type}
    if draw(st.integers(0, 5)) == 0:
        execution["replay"] = "ticks"
    else:
        execution["fill_at"] = draw(st.sampled_from(["next_open", "close"]))
    if order_type != "market":
        execution["offset_bps"] = float(draw(st.sampled_from([0, 20, 100])))
        execution["time_in_force"] = draw(st.sampled_from(["gtc", "gtc", "ioc"]))
        execution["intrabar"] = draw(st.sampled_from(["worst_case", "ohlc"]))
        if draw(st.booleans()):
            execution["order_ttl"] = draw(st.sampled_from(["2h", "1d"]))
    if draw(st.booleans()):
        execution["take_profit"] = draw(st.sampled_from([0.01, 0.05]))
        execution["stop_loss"] = draw(st.sampled_from([0.01, 0.05]))
    extra: dict[str, Any] = {"maker_fee_bps": float(draw(st.sampled_from([0, -1, 5])))}
    if draw(st.booleans()):
        execution["latency"] = True
        extra["latency_ms"] = float(draw(st.sampled_from([0, 20 * 60_000, 90 * 60_000])))
    return execution, extra


def _write_ticks(raw: dict[str, Any], directory: Path) -> dict[str, Any]:
    """A drawn ``kind = "ticks"`` source as a trades file: a seeded random walk, a few
    trades a minute, aggregated into 1-minute bars by the run."""
    source = raw["data"][0]
    if source.get("kind") != "ticks":
        return raw
    rng = np.random.default_rng(source["seed"])
    n = source["trades"]
    seconds = np.cumsum(rng.integers(5, 40, n))
    price = source["price"] * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    path = directory / "trades.csv"
    pd.DataFrame({"timestamp_ms": sup.START_NS // 10**6 + seconds * 1000,
                  "trade_id": np.arange(n), "side": "buy", "price": price,
                  "amount": rng.integers(1, 50, n).astype(float)}).to_csv(path, index=False)
    return {**raw, "data": [{"symbol": source["symbol"], "path": str(path),
                             "format": "trades", "interval": "1m", "gaps": "skip"}]}


def _run(raw: dict[str, Any], path: Path) -> dict[str, list[tuple[Any, ...]]]:
    raw = _write_ticks(raw, path.parent)
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
