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
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sim.config import parse_scenario
from sim.farm_config import FarmConfig, farm_capitals
from sim.runner import run_scenario
from sim.store import DuckDBStore
from tests.property import _support as sup

TOLERANCE = 1e-9  # relative, as sim.farms.LEDGER_TOLERANCE


@st.composite
def farm_scenarios(draw: st.DrawFn, lifecycle: bool = False, perps: bool | None = None,
                   spawns: bool = True) -> dict[str, Any]:
    """``lifecycle``: farm commands drawn too. ``perps``: the venues are perpetuals
    (None: drawn); then one symbol, so the margin each opening fill needs can be checked
    from the fills alone, and market orders without latency (perpetual farms take no
    others, sim.farm_config)."""
    perp = draw(st.booleans()) if perps is None else perps
    n_symbols = 1 if perp else draw(st.integers(1, 2))
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
            farm["policy"] = draw(sup.policy(max_exposure=9.0 if perp else 1.5))
        if draw(st.integers(0, 3)) == 0:  # its own agents weighed by their hit rates
            farm["consensus"] = {"method": "performance_weighted"}
        farms.append(farm)
    out: dict[str, Any] = {}
    events: list[dict[str, Any]] = []
    if lifecycle and draw(st.booleans()):  # farms steered while they trade
        names = [f["name"] for f in farms]
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
    reserve = 10_000.0 - sum(farm_capitals(
        [FarmConfig.model_validate(f) for f in farms], 10_000.0))
    spawn = spawns and draw(st.booleans())
    if spawn:  # an agent spawned mid-run: a farm of its own when the reserve pays, else
        # it joins one
        spec = draw(sup.sma_agent())
        at = f"2024-01-0{draw(st.integers(2, 4))}T00:00:00Z"
        events.append({"at": at, "kind": "agent_spawn", "agent": "spawned",
                       "agent_kind": spec["kind"], "params": spec["params"],
                       "farm": {"capital": reserve / 2, "risk": {"daily_loss": 50.0}}
                       if reserve > 1.0 else "f0"})
    if not spawn and draw(st.booleans()):  # capital moved between the farms on a schedule
        out["allocator"] = {
            "method": draw(st.sampled_from(["equal", "inverse_volatility", "performance"])),
            "every": draw(st.sampled_from(["6h", "1d", "3d"])),
            "lookback": draw(st.sampled_from([2, 24])),
            "floor": draw(st.sampled_from([0.0, 0.1]))}
    if perp:
        execution: dict[str, Any] = {"fill_at": draw(st.sampled_from(["next_open", "close"]))}
        venues = draw(sup.venues(symbols, full_cover=True))
        for venue in venues:
            venue.update(kind="perp", max_leverage=draw(st.sampled_from([2.0, 5.0, 10.0])),
                         maintenance_margin=draw(st.sampled_from([0.02, 0.05])),
                         funding_rate=draw(st.sampled_from([0.0005, -0.001, 0.003])),
                         funding_interval=draw(st.sampled_from(["1h", "8h"])))
    else:
        execution, venue_extra = draw(_execution())
        venues = [{**v, **venue_extra,
                   "volatility_slippage": draw(st.sampled_from([0.0, 0.3]))}
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
        "consensus": {"method": draw(st.sampled_from(["majority", "confidence_weighted",
                                                      "performance_weighted"]))},
        "policy": draw(sup.policy(max_exposure=9.0 if perp else 1.5)),
        "venues": venues, "execution": execution, "farms": farms,
        "events": sorted(events, key=lambda e: e["at"]),
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
            "fills": "SELECT fill_id, farm, epoch_ns(ts), symbol, quantity, price, fee, "
                     "order_id FROM fills_by_farm WHERE run_id = ? ORDER BY fill_id",
            "risk": "SELECT farm, check_name FROM risk_events_by_farm WHERE run_id = ? "
                    "ORDER BY order_id",
            "transfers": "SELECT from_farm, to_farm, amount FROM capital_transfers "
                         "WHERE run_id = ? ORDER BY ts, from_farm, to_farm",
            "transfer_rows": "SELECT epoch_ns(ts), from_farm, to_farm, amount "
                             "FROM capital_transfers WHERE run_id = ? ORDER BY rowid",
            "funding": "SELECT epoch_ns(ts), symbol, payment FROM funding WHERE run_id = ? "
                       "ORDER BY ts, symbol",
            "farm_funding": "SELECT epoch_ns(ts), symbol, farm, payment FROM farm_funding "
                            "WHERE run_id = ? ORDER BY rowid",
            "farm_liquidations": "SELECT order_id, farm, position, price, fee "
                                 "FROM farm_liquidations WHERE run_id = ? AND fee IS NOT NULL "
                                 "ORDER BY rowid",
        }.items():
            out[name] = con.execute(sql, [run_id]).fetchall()
    return out


def _replayed_cash(got: dict[str, list[tuple[Any, ...]]], leverage: float | None
                   ) -> dict[str, float]:
    """Each farm's cash replayed from its transfers, funding, fills and liquidation
    shares alone, checking on the way that it spends only capital it has: on spot, no buy
    adds to a long beyond the farm's cash (covering a short is a reduction: it may leave
    a farm that lost more than it had below zero); on a perpetual (``leverage``: its
    margin; one symbol), no fill growing a position leaves the farm's equity at the fill
    price short of the position's initial margin."""
    cash: dict[str, float] = {}
    held: dict[tuple[str, str], float] = {}
    shares: dict[int, list[tuple[str, float, float, float]]] = {}
    for order_id, farm, position, price, fee in got["farm_liquidations"]:
        shares.setdefault(order_id, []).append((farm, position, price, fee))
    events: list[tuple[int, int, int, Any]] = [
        (ts, 0, k, (source, target, amount))
        for k, (ts, source, target, amount) in enumerate(got["transfer_rows"])]
    events += [(ts, 1, k, (farm, payment))
               for k, (ts, _, farm, payment) in enumerate(got["farm_funding"])]
    events += [(row[2], 2, row[0], row) for row in got["fills"]]
    for _, kind, _, item in sorted(events, key=lambda e: e[:3]):
        if kind == 0:
            source, target, amount = item
            cash[source] = cash.get(source, 0.0) - amount
            cash[target] = cash.get(target, 0.0) + amount
            continue
        if kind == 1:
            farm, payment = item
            cash[farm] += payment
            continue
        _fill_id, farm, _ts, symbol, qty, price, fee, order_id = item
        if farm is None:  # the venue liquidated the account: each farm's share
            assert order_id in shares, f"fill of order {order_id} belongs to no farm"
            for owner, position, at, share in shares.pop(order_id):
                cash[owner] += position * at - share
                held[owner, symbol] = 0.0
            continue
        position = held.get((farm, symbol), 0.0)
        cash[farm] -= qty * price + fee
        after = held[farm, symbol] = position + qty
        if leverage is not None:
            if abs(after) > abs(position):
                margin = abs(after) * price / leverage
                equity = cash[farm] + after * price
                assert margin <= equity + TOLERANCE * max(1.0, abs(after) * price), (
                    f"farm {farm} holds {after} {symbol} at {price} needing margin "
                    f"{margin} with equity {equity}")
            continue
        opening = qty - min(qty, max(-position, 0.0)) if qty > 0 else 0.0
        if opening > 0.0:
            assert cash[farm] >= -TOLERANCE * max(1.0, qty * price), (
                f"farm {farm} bought {qty} {symbol} at {price} with cash it did not have")
    assert not shares, "a farm's liquidation share without the account's fill"
    cash.pop("account", None)
    return cash


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= TOLERANCE * max(1.0, abs(a), abs(b), scale)


def _check(raw: dict[str, Any], got: dict[str, list[tuple[Any, ...]]]) -> None:
    """The account is the reserve plus the farms at every step, funding included; each
    farm's cash is its own rows replayed, without spending capital it does not have."""
    spent: dict[int, float] = {}
    for ts, source, _, amount in got["transfer_rows"]:
        if source == "account":
            spent[ts] = spent.get(ts, 0.0) + amount
    assert 10_000.0 - sum(spent.values()) >= -1e-9  # the reserve never pays what it lacks
    by_ts: dict[int, list[tuple[float, float]]] = {}
    last_cash: dict[str, float] = {}
    for ts, farm, cash, equity in got["farm_equity"]:
        by_ts.setdefault(ts, []).append((cash, equity))
        last_cash[farm] = cash
    venue = raw["venues"][0]
    leverage = venue["max_leverage"] if venue.get("kind") == "perp" else None
    assert _replayed_cash(got, leverage) == pytest.approx(last_cash, rel=TOLERANCE,
                                                          abs=1e-6)
    assert len(got["equity"]) == len(by_ts)
    n_farms = len(raw["farms"])
    for ts, cash, equity in got["equity"]:
        farms = by_ts[ts]
        assert n_farms <= len(farms) <= n_farms + len(raw.get("events", ()))
        reserve = 10_000.0 - sum(amount for t, amount in spent.items() if t <= ts)
        scale = sum(abs(e) + abs(c) for c, e in farms)
        assert _close(cash, reserve + sum(c for c, _ in farms), scale)
        assert _close(equity, reserve + sum(e for _, e in farms), scale)
    paid: dict[tuple[int, str], list[float]] = {}
    for ts, symbol, _, payment in got["farm_funding"]:
        paid.setdefault((ts, symbol), []).append(payment)
    account = {(ts, symbol): payment for ts, symbol, payment in got["funding"]}
    for key in set(paid) | set(account):  # the farms' funding is the account's
        parts = paid.get(key, [])
        assert _close(account.get(key, 0.0), sum(parts), sum(abs(p) for p in parts))
    for farm, check in got["risk"]:
        assert farm is not None and check is not None


# Found by hypothesis on the fresh-clone CI: a farm spawned after the data's end (tick
# replay of a few hours, the spawn a day later) was funded at Engine.finish, after the
# last ledger row: the reserve paid a farm the ledgers never showed. Such a spawn is not
# run now (test_events_after_end).
SPAWN_AFTER_THE_END = {
    "name": "farm_property", "seed": 0, "initial_cash": 10000.0,
    "data": [{"kind": "ticks", "symbol": "AAA", "price": 0.001, "trades": 300, "seed": 0}],
    "agents": [{"name": f"a{i}", "kind": "sma_crossover", "symbols": ["AAA"],
                "params": {"fast": 2, "slow": 3, "long_only": False}} for i in range(2)],
    "consensus": {"method": "majority"},
    "policy": {"sizing": "fixed_fraction", "exposure": 0.1, "allow_short": False,
               "scale_by_confidence": False, "min_notional": 0.0},
    "venues": [{"name": "v0", "symbols": ["AAA"], "fee_bps": 0.0, "slippage_bps": 0.0,
                "maker_fee_bps": 0.0, "volatility_slippage": 0.0}],
    "execution": {"order_type": "market", "replay": "ticks"},
    "farms": [{"name": f"f{i}", "agents": [f"a{i}"], "share": 0.1,
               "consensus": {"method": "performance_weighted"}} for i in range(2)],
    "events": [{"at": "2024-01-02T00:00:00Z", "kind": "agent_spawn", "agent": "spawned",
                "agent_kind": "sma_crossover",
                "params": {"fast": 2, "slow": 3, "long_only": False},
                "farm": {"capital": 4000.0, "risk": {"daily_loss": 50.0}}}]}


@settings(deadline=None, max_examples=12)
@given(raw=farm_scenarios(lifecycle=True))
@example(raw=SPAWN_AFTER_THE_END)
def test_account_is_the_sum_of_farms_and_no_farm_overspends(raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        got = _run(raw, Path(tmp) / "a.duckdb")
        again = _run(raw, Path(tmp) / "a.duckdb")
    assert got == again  # determinism, farm rows included
    _check(raw, got)


# Found by hypothesis: units of 0.001 at 2x, the farms flat again after fills of ~1e5
# leave the account a few ulps of them (-1.5e-9); the position check scales with the
# largest fill.
TINY_PRICE_PERP = {
    "name": "farm_property", "seed": 0, "initial_cash": 10_000.0,
    "data": [{"kind": "gbm", "symbol": "AAA", "bars": 100, "interval": "1h",
              "price": 0.001, "volatility": 0.5}],
    "agents": [{"name": n, "kind": "sma_crossover",
                "params": {"fast": 2, "slow": 3, "long_only": False}} for n in ("a0", "a1")],
    "consensus": {"method": "majority"},
    "policy": {"sizing": "fixed_fraction", "exposure": 0.1, "allow_short": False},
    "venues": [{"name": "v0", "symbols": ["AAA"], "fee_bps": 0.0, "slippage_bps": 0.0,
                "kind": "perp", "max_leverage": 2.0, "maintenance_margin": 0.02,
                "funding_rate": 0.0005, "funding_interval": "1h"}],
    "execution": {"fill_at": "next_open"},
    "farms": [{"name": "f0", "agents": ["a0"],
               "policy": {"sizing": "fixed_fraction", "exposure": 0.9, "allow_short": False},
               "consensus": {"method": "performance_weighted"}},
              {"name": "f1", "agents": ["a1"], "share": 0.1,
               "consensus": {"method": "performance_weighted"}}],
    "events": [],
}


@settings(deadline=None, max_examples=6)
@example(raw=TINY_PRICE_PERP)
@given(raw=farm_scenarios(perps=True))
def test_perpetual_farms_sum_to_the_account_funding_and_margin_included(
        raw: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        got = _run(raw, Path(tmp) / "a.duckdb")
    _check(raw, got)


@settings(deadline=None, max_examples=10)
@given(raw=farm_scenarios(perps=False, spawns=False),
       limit=st.sampled_from([0.001, 0.01, 0.05]))
def test_a_farms_breach_stops_only_that_farm(raw: dict[str, Any], limit: float) -> None:
    """Farm f0 gets tight limits (daily loss as money and as a fraction, drawdown): its
    own orders may be denied; every other farm's fills are exactly those of the run
    without f0's limits. (Spot venues: on a perpetual the venue judges the account's
    margin as a whole, so one farm's positions can trim another's opening orders there;
    docs/howto/farms.md says so.)"""
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
        return [row[1:-1] for row in rows if row[1] != "f0"]  # order ids differ

    assert others(held["fills"]) == others(free["fills"])
