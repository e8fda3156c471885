"""Every number of ``quorum report`` / ``quorum show --metrics`` on stored runs, against an
independent computation: empyrical on returns read and sliced here with pandas, the
ledger's cash, the scenario's venue fees, the engine's own agent_performance rows, plain
loops. Plus the execution figures when the store holds the columns, and bad input."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import duckdb
import empyrical
import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest

from quorum.cli import main
from reports import data, slices
from reports.execution import execution_frame, funding_frame
from reports.figures import FIG_PX
from reports.metrics import DAY_NS, NS_PER_YEAR, periods_per_year
from reports.regime_matrix import regime_matrix
from reports.report import write_report
from reports.summary import NOT_STORED, run_metrics
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
REL = 1e-9


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    db = tmp_path_factory.mktemp("metrics") / "runs.duckdb"
    with DuckDBStore(db) as s:
        demo = run_scenario(load_scenario(REPO / "scenarios" / "demo.toml"), s).run_id
        crash = run_scenario(load_scenario(REPO / "scenarios" / "regimes" / "crash.toml"),
                             s).run_id
        s.create_run("emptyrun0000", "empty", {"initial_cash": 1000.0}, 0, "test", "none")
        s.finish_run("emptyrun0000", "failed", 0, "nothing ran")
    return {"db": str(db), "demo": demo, "crash": crash}


@pytest.fixture(scope="module")
def con(store):
    with duckdb.connect(store["db"], read_only=True) as c:  # as the CLI reads it (one
        # configuration per file and process)
        yield c


def _frame(con, sql: str, run_id: str) -> pd.DataFrame:
    return con.execute(sql, [run_id]).df()


def _returns(con, run_id: str) -> tuple[pd.DataFrame, float]:
    eq = _frame(con, "SELECT ts, cash, equity FROM equity WHERE run_id = ? ORDER BY ts", run_id)
    initial = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?",
                                     [run_id]).fetchone()[0])["initial_cash"]
    eq["ret"] = eq["equity"] / eq["equity"].shift(1, fill_value=initial) - 1.0
    return eq, float(initial)


def close(ours: float, ref: float, rel: float = REL) -> bool:
    if isinstance(ref, float) and math.isnan(ref):
        return math.isnan(ours)
    return ours == pytest.approx(ref, rel=rel, abs=1e-12)


# -- run-level -----------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["demo", "crash"])
def test_run_metrics_against_empyrical_and_by_hand(store, con, which: str) -> None:
    run_id = store[which]
    m = run_metrics(data.RunData(con, run_id))
    eq, initial = _returns(con, run_id)
    r = eq["ret"].to_numpy()
    spacing = eq["ts"].diff().median().value  # ns
    ppy = 365 * 86_400e9 / spacing
    assert close(m["bars_per_year"], ppy)
    assert close(m["sharpe"], empyrical.sharpe_ratio(r, annualization=ppy))
    assert close(m["sortino"], empyrical.sortino_ratio(r, annualization=ppy))
    assert close(m["annual_volatility"], empyrical.annual_volatility(r, annualization=ppy))
    assert close(m["cagr"], empyrical.cagr(r, annualization=ppy))
    assert close(m["max_drawdown"], -empyrical.max_drawdown(r))
    assert close(m["calmar"], empyrical.calmar_ratio(r, annualization=ppy))
    assert close(m["total_return"], empyrical.cum_returns_final(r))
    # APR since inception: simple return over the span, the initial cash dated one bar
    # before the first bar; trailing windows from the equity at the window's start
    end = eq["ts"].iloc[-1].value
    span = end - (eq["ts"].iloc[0].value - spacing)
    assert close(m["apr_since_inception"], m["total_return"] * NS_PER_YEAR / span)
    for key, days in (("apr_30d", 30), ("apr_90d", 90)):
        start = end - days * DAY_NS
        if start < eq["ts"].iloc[0].value - spacing:
            assert math.isnan(m[key])  # the run is shorter than the window
            continue
        before = eq[eq["ts"].astype("int64") <= start]
        e0 = before["equity"].iloc[-1] if len(before) else initial
        t0 = before["ts"].iloc[-1].value if len(before) else eq["ts"].iloc[0].value - spacing
        assert close(m[key], (eq["equity"].iloc[-1] / e0 - 1) * NS_PER_YEAR / (end - t0))
    if which == "crash":  # 2000 hourly bars, 83 days: a 30-day APR, no 90-day one
        assert math.isfinite(m["apr_30d"]) and math.isnan(m["apr_90d"])
    # execution and funding figures appear exactly when the store holds their columns
    if funding_frame(con, run_id) is None:
        assert m["funding_paid"] == NOT_STORED
    else:
        paid = con.execute("SELECT coalesce(-sum(payment), 0) FROM funding WHERE run_id = ?",
                           [run_id]).fetchone()[0]
        assert m["funding_paid"] == pytest.approx(paid, rel=REL, abs=1e-12)
    assert ("implementation_shortfall" in m) == (execution_frame(con, run_id) is not None)


def test_fees_and_turnover_agree_with_the_ledger(store, con) -> None:
    run_id = store["demo"]
    m = run_metrics(data.RunData(con, run_id))
    f = _frame(con, "SELECT quantity, price, fee FROM fills WHERE run_id = ?", run_id)
    eq, initial = _returns(con, run_id)
    assert m["fees"] == pytest.approx(math.fsum(f["fee"]), rel=REL)
    # cash account: what the fills and fees took out is what the ledger's cash lost
    cash = initial - math.fsum(f["quantity"] * f["price"]) - math.fsum(f["fee"])
    assert cash == pytest.approx(eq["cash"].iloc[-1], rel=REL)
    assert m["turnover"] == pytest.approx(
        math.fsum((f["quantity"] * f["price"]).abs()) / eq["equity"].mean(), rel=REL)
    assert m["fills"] == len(f) and m["round_trips"] > 0


@pytest.mark.parametrize("which", ["demo", "crash"])
def test_exposure_is_the_position_value_in_the_ledger(store, con, which: str) -> None:
    # spot, no leverage: equity - cash is the net value of the positions; the exposure
    # series rebuilds the positions from fills and marks them at the closes on its own
    run_id = store[which]
    ex = data.RunData(con, run_id).exposure
    eq, _ = _returns(con, run_id)
    net_value = ex["net"] * eq["equity"].to_numpy()
    assert net_value == pytest.approx((eq["equity"] - eq["cash"]).to_numpy(), rel=REL, abs=1e-6)
    assert np.all(ex["gross"] >= np.abs(ex["net"]) - 1e-12)
    m = run_metrics(data.RunData(con, run_id))
    assert m["time_in_market"] == pytest.approx(float(np.mean(ex["gross"] > 0)), rel=REL)


def test_mean_agreement_by_a_plain_loop(store, con) -> None:
    run_id = store["demo"]
    bars = con.execute("SELECT symbol, epoch_ns(ts) FROM bars WHERE run_id = ?"
                       " ORDER BY symbol, ts", [run_id]).fetchall()
    decisions = con.execute("SELECT symbol, epoch_ns(ts), agreement FROM decisions"
                            " WHERE run_id = ? ORDER BY symbol, ts, decision_id",
                            [run_id]).fetchall()
    by_symbol: dict[str, list[tuple[int, float]]] = {}
    for sym, t, a in decisions:
        by_symbol.setdefault(sym, []).append((t, a))
    values = []
    for sym, t in bars:  # the latest decision at or before the bar (the last of a tie)
        standing = [a for dt, a in by_symbol.get(sym, []) if dt <= t]
        if standing:
            values.append(standing[-1])
    assert run_metrics(data.RunData(con, run_id))["mean_agreement"] == pytest.approx(
        math.fsum(values) / len(values), rel=REL)


# -- per regime ----------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["demo", "crash"])
def test_regime_table_against_an_independent_slice(store, con, which: str) -> None:
    run_id = store[which]
    table = slices.regime_table(data.RunData(con, run_id))
    eq, _ = _returns(con, run_id)
    ref = con.execute("SELECT min(symbol) FROM bars WHERE run_id = ?", [run_id]).fetchone()[0]
    labels = _frame(con, f"SELECT ts, coalesce(regime, 'unknown') AS regime FROM bars "
                         f"WHERE run_id = ? AND symbol = '{ref}' ORDER BY ts", run_id)
    sliced = pd.merge_asof(eq, labels, on="ts", direction="backward")
    sliced["regime"] = sliced["regime"].fillna("unknown")
    ppy = periods_per_year(eq["ts"].astype("int64").to_numpy())
    assert sum(row["bars"] for row in table) == len(eq)
    assert math.prod(1 + row["return"] for row in table) - 1 == pytest.approx(
        eq["equity"].iloc[-1] / _returns(con, run_id)[1] - 1, rel=1e-9, abs=1e-12)
    for row in table:
        r = sliced.loc[sliced["regime"] == row["regime"], "ret"].to_numpy()
        assert row["bars"] == len(r)
        assert close(row["return"], empyrical.cum_returns_final(r))
        assert close(row["max_drawdown"], -empyrical.max_drawdown(r))
        if len(r) > 1 and r.std(ddof=1) > 1e-12:
            assert close(row["sharpe"], empyrical.sharpe_ratio(r, annualization=ppy))
            assert close(row["volatility"], empyrical.annual_volatility(r, annualization=ppy))
    f = _frame(con, "SELECT fee FROM fills WHERE run_id = ?", run_id)
    assert sum(row["fills"] for row in table) == len(f)
    assert sum(row["fees"] for row in table) == pytest.approx(f["fee"].sum(), rel=REL)
    denied = con.execute("SELECT count(*) FROM risk_events WHERE run_id = ?",
                         [run_id]).fetchone()[0]
    assert sum(row["denials"] for row in table) == denied
    # slices of means weighted by their bars give back the run's figures
    m = run_metrics(data.RunData(con, run_id))
    assert sum(row["trades_opened"] for row in table) == m["round_trips"]
    assert sum(row["time_in_market"] * row["bars"] for row in table) / len(eq) == \
        pytest.approx(m["time_in_market"], rel=1e-12)
    agree = data.RunData(con, run_id).agreement  # rows with a standing decision only
    regime_of = dict(zip(sliced["ts"].astype("int64"), sliced["regime"], strict=True))
    labels_of_agree = np.array([regime_of[t] for t in agree["ts"].tolist()])
    weights = [int(agree["n"][labels_of_agree == row["regime"]].sum()) for row in table]
    assert sum(r["mean_agreement"] * w for r, w in zip(table, weights, strict=True) if w) \
        / sum(weights) == pytest.approx(m["mean_agreement"], rel=1e-9)


def test_regime_matrix_and_regime_table_are_one_definition(store, con) -> None:
    run_id = store["crash"]
    matrix = regime_matrix(con, [run_id], by="run")
    for row in slices.regime_table(data.RunData(con, run_id)):
        j = matrix["labels"].index(row["regime"])
        for stat in ("return", "sharpe", "max_drawdown"):
            assert close(matrix[stat][0, j], row[stat], rel=1e-12)


# -- per venue, agent, check ---------------------------------------------------------------
def test_venue_table_against_the_scenario_fees(store, con) -> None:
    run_id = store["demo"]
    config = json.loads(con.execute("SELECT config FROM runs WHERE run_id = ?",
                                    [run_id]).fetchone()[0])
    venues = {v["name"]: v for v in config["venues"]}
    table = slices.venue_table(data.RunData(con, run_id))
    assert {row["venue"] for row in table} == set(venues)
    for row in table:
        # every simulated fill pays the taker fee and the fixed slippage (no tick grid)
        assert row["fee_bps"] == pytest.approx(venues[row["venue"]]["fee_bps"], rel=1e-9)
        assert row["slippage_bps"] == pytest.approx(venues[row["venue"]]["slippage_bps"],
                                                    rel=1e-6)
    m = run_metrics(data.RunData(con, run_id))
    assert sum(row["fills"] for row in table) == m["fills"]
    assert sum(row["fees"] for row in table) == pytest.approx(m["fees"], rel=REL)
    assert sum(row["notional_share"] for row in table) == pytest.approx(1.0, rel=1e-12)
    assert sum(row["turnover"] for row in table) == pytest.approx(m["turnover"], rel=REL)
    legs = con.execute("SELECT count(*) FROM routing_decisions WHERE run_id = ?",
                       [run_id]).fetchone()[0]
    assert sum(row["legs_routed"] for row in table) == legs


@pytest.mark.parametrize("which", ["demo", "crash"])
def test_agent_table_against_the_engines_agent_performance(store, con, which: str) -> None:
    run_id = store[which]
    run = data.RunData(con, run_id)
    shadow = slices.agent_shadow(run)
    table = slices.agent_table(run, shadow)
    stored = dict(con.execute("SELECT agent, sum(shadow_pnl) FROM agent_performance"
                              " WHERE run_id = ? GROUP BY agent", [run_id]).fetchall())
    signals = dict(con.execute("SELECT agent, count(*) FROM signals WHERE run_id = ?"
                               " GROUP BY agent", [run_id]).fetchall())
    ppy = periods_per_year(shadow["ts"])
    assert [row["agent"] for row in table] == sorted(stored)
    for row in table:
        # the engine books shadow PnL per episode; reports rebuild it bar by bar
        assert row["shadow_pnl"] == pytest.approx(stored[row["agent"]], rel=1e-9, abs=1e-12)
        assert row["signals"] == signals[row["agent"]]
        inc = shadow["agents"][row["agent"]]["increments"]
        assert close(row["shadow_sharpe"], empyrical.sharpe_ratio(inc, annualization=ppy))
        assert 0.0 <= row["time_in_market"] <= 1.0
        assert row["in_majority"] + row["overruled"] <= row["votes"]


def test_denials_table_counts_every_denial(store, con) -> None:
    run_id = store["demo"]
    table = slices.denials_table(data.RunData(con, run_id))
    expected = dict(con.execute("SELECT check_name, count(*) FROM risk_events WHERE run_id = ?"
                                " GROUP BY ALL", [run_id]).fetchall())
    assert {row["check_name"]: row["denials"] for row in table} == expected
    assert sum(expected.values()) == run_metrics(data.RunData(con, run_id))["denied"] > 0


# -- CLI -----------------------------------------------------------------------------------
def test_show_metrics_prints_every_table(store) -> None:
    code, out, err = _cli("show", store["demo"][:8], "--db", store["db"], "--metrics")
    assert code == 0, err
    for title in ("metrics", "per regime label", "per agent", "per venue",
                  "risk denials by check", "apr_since_inception", "mean_agreement",
                  "shadow_pnl", "slippage_bps", "max_orders_per_day"):
        assert title in out, title


@pytest.mark.parametrize("run_id", ["nosuchrun", "emptyrun0000"])
def test_show_metrics_bad_input_is_one_line(store, run_id: str) -> None:
    code, out, err = _cli("show", run_id, "--db", store["db"], "--metrics")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("quorum: error:")


# -- execution columns, when the store has them --------------------------------------------
def test_report_shows_execution_when_the_store_has_it(tmp_path: Path) -> None:
    # a run stored as the execution issue stores it (schema 7 columns on orders, a funding
    # table; reports.execution): arrival 150 ms after submission, fill 400 ms after it, the
    # expected price the decision bar's close, one funding payment
    with DuckDBStore(tmp_path / "x.duckdb") as store:
        run_id = run_scenario(load_scenario(REPO / "scenarios" / "demo.toml"), store).run_id
        c = store.con
        for column, kind in (("decision_ts", "TIMESTAMP_NS"), ("arrival_ts", "TIMESTAMP_NS"),
                             ("fill_ts", "TIMESTAMP_NS"), ("avg_fill_price", "DOUBLE")):
            c.execute(f"ALTER TABLE orders ADD COLUMN IF NOT EXISTS {column} {kind}")
        c.execute("""
            UPDATE orders SET decision_ts = d.ts, arrival_ts = orders.ts + INTERVAL 150 MILLISECOND,
                              ref_price = b.close
            FROM decisions d, bars b
            WHERE d.run_id = orders.run_id AND d.decision_id = orders.decision_id
              AND b.run_id = d.run_id AND b.symbol = d.symbol AND b.ts = d.ts""")
        c.execute("UPDATE fills SET ts = ts + INTERVAL 400 MILLISECOND WHERE run_id = ?",
                  [run_id])  # filled 250 ms after arrival
        c.execute("CREATE TABLE IF NOT EXISTS funding (run_id VARCHAR, ts TIMESTAMP_NS,"
                  " symbol VARCHAR, position DOUBLE, mark DOUBLE, rate DOUBLE, payment DOUBLE)")
        c.execute("INSERT INTO funding (run_id, ts, symbol, position, mark, rate, payment)"
                  " VALUES (?, '2018-01-20', 'SYN', 1, 100, 0.001, -0.1)", [run_id])
        expected = c.execute("""
            SELECT sum(f.quantity * (f.price - o.ref_price)),
                   1e4 * sum(f.quantity * (f.price - o.ref_price))
                       / sum(abs(f.quantity) * o.ref_price)
            FROM fills f JOIN orders o USING (run_id, order_id) WHERE f.run_id = ?""",
                             [run_id]).fetchone()
        report = write_report(c, run_id, tmp_path / "rep")
    m = report.metrics
    assert m["implementation_shortfall"] == pytest.approx(expected[0], rel=1e-9)
    assert m["implementation_shortfall_bps"] == pytest.approx(expected[1], rel=1e-9)
    assert m["latency_to_arrival_ms_mean"] == pytest.approx(150.0, rel=1e-12)
    assert m["latency_to_fill_ms_p99"] == pytest.approx(400.0, rel=1e-12)
    assert m["funding_paid"] == pytest.approx(0.1, rel=1e-12)
    png = tmp_path / "rep" / "execution.png"
    assert png in report.pngs
    img = mpimg.imread(png)
    assert img.shape[:2] == (FIG_PX[1], FIG_PX[0]) and float(img[..., :3].var()) > 1e-3
    page = report.html.read_text(encoding="utf-8")
    assert "Execution per venue" in page and "Not in this run's store" not in page
    assert {row["venue"] for row in report.tables["execution"]} == {"alpha", "beta"}


def test_a_run_that_never_trades_is_reported(tmp_path: Path) -> None:
    # 30 bars, a 50-bar slow average: no signal, decision, order or fill at all
    from sim.config import parse_scenario

    config = parse_scenario({
        "name": "quiet", "seed": 1,
        "data": [{"kind": "gbm", "symbol": "X", "bars": 30, "interval": "1h"}],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 10, "slow": 50}}],
        "venues": [{"name": "v", "symbols": ["X"]}]}, "test")
    with DuckDBStore(tmp_path / "q.duckdb") as store:
        run_id = run_scenario(config, store).run_id
        report = write_report(store.con, run_id, tmp_path / "rep")
    m = report.metrics
    assert m["fills"] == 0 and m["round_trips"] == 0 and m["total_return"] == 0.0
    assert math.isnan(m["win_rate"]) and math.isnan(m["mean_agreement"])
    assert m["time_in_market"] == 0.0 and m["turnover"] == 0.0
    assert report.tables["venues"] == [] and report.tables["denials"] == []
    assert [row["shadow_pnl"] for row in report.tables["agents"]] == [0.0]
    assert sum(row["bars"] for row in report.tables["regimes"]) == 30
    page = report.html.read_text(encoding="utf-8")
    assert "no routed orders" in page and "no risk denials" in page
    for png in report.pngs:
        assert mpimg.imread(png).shape[:2] == (FIG_PX[1], FIG_PX[0]), png.name
