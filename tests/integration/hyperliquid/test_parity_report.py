"""``quorum parity``: a venue session on the fake Hyperliquid, replayed through the backtest
on the bars it stored, diffed stage by stage.

Faults are injected at known bars (``parity_session``): a thin book (the market order, an
IOC, fills part; the venue cancels the rest) and a slow venue (fills stamped so long after
the request). The report's explained root causes are exactly those, at those orders; all
that follows from them is ``carried``, naming its root; nothing is unexplained. The same
session without faults, and a paper session, diff to nothing at all. A fill altered in
the store behind the session's back is unexplained.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import duckdb
import numpy as np
import pytest

from live.clock import AcceleratedClock
from live.feeds import PacedReplayFeed
from live.runner import LiveRunner
from quorum.cli import main
from quorum.parity import replay
from reports.parity import parity
from sim.config import parse_scenario
from sim.runner import RandomStreams, load_market_data, run_scenario
from sim.store import DuckDBStore
from tests.integration.test_live_seam import SCENARIO as SEAM
from tests.integration.test_live_seam import _bars

from .parity_session import Faults, order_times, parity_scenario, run_session
from .venue_session import INTERVAL_NS, bars_of

LAG_MS = (750, 400)  # the slow venue, at two orders
DEPTH = (1.5, 2.0)  # units on each side of the book, at two others


def _diff(db: Path, run_id: str, **kw):
    with duckdb.connect(str(db), read_only=True) as con:
        rep = replay(con, run_id)
        try:
            return parity(rep.store.con, rep.live_run, rep.replay_run, rep.mode, **kw)
        finally:
            rep.store.close()


def test_injected_latency_and_partial_fills_are_the_explained_divergences(tmp_path) -> None:
    config = parity_scenario()
    times = order_times(config)
    assert len(times) >= 8
    index = {b.ts: k for k, b in enumerate(bars_of(config))}
    thin = {times[1]: DEPTH[0], times[5]: DEPTH[1]}
    slow = {times[3]: LAG_MS[0], times[7]: LAG_MS[1]}
    faults = Faults(lag_ms={index[t]: ms for t, ms in slow.items()},
                    depth={index[t]: d for t, d in thin.items()})
    run_id, db = run_session(tmp_path, config, faults)
    result = _diff(db, run_id)

    assert result.unexplained == []
    roots = [d for d in result.divergences if d.cause != "carried"]
    assert {(d.cause, d.ts) for d in roots} == (
        {("partial_fill", t) for t in thin} | {("latency", t) for t in slow})
    for d in roots:
        if d.cause == "partial_fill":  # what the venue filled is the injected depth
            assert abs(d.live) == pytest.approx(thin[d.ts]) and abs(d.model) > abs(d.live)
        else:
            assert d.field == "timing"
            assert d.live == pytest.approx(slow[d.ts]) and d.model == 0.0
    # what follows (order sizes, equity) is carried and names the first root
    carried = [d for d in result.divergences if d.cause == "carried"]
    assert carried and all(d.ts >= times[1] for d in carried)
    assert {d.stage for d in carried} >= {"orders", "equity"}
    assert all(str(times[1]) in d.detail or "order itself" in d.detail for d in carried)
    # nothing before the first fault, and the stages that do not see fills agree
    assert result.counts["signals"] == result.counts["decisions"] == {}
    # the slow venue shows in the calibration: mean latency over the session's fills
    (cal,) = result.calibration
    n = cal["fills"]
    assert cal["suggested_latency_ms"] == pytest.approx(sum(LAG_MS) / n, abs=1e-3)
    assert cal["suggested_slippage_bps"] == 0.0  # the book was at the modelled price


@pytest.mark.parametrize("warmup", [0, 25])
def test_a_session_without_faults_diffs_to_nothing(tmp_path, warmup) -> None:
    """The same venue session with no fault, through the CLI: zero divergences, and the
    page and its figures are written. With a warm-up, its bars' orders were held live
    (denied, check "hold"), and the replay holds them too."""
    config = parity_scenario(live={"warmup_bars": warmup})
    run_id, db = run_session(tmp_path, config)
    result = _diff(db, run_id)
    assert result.divergences == []
    with duckdb.connect(str(db), read_only=True) as con:
        (held,) = con.execute("SELECT count(*) FROM risk_events WHERE run_id = ? AND "
                              "check_name = 'hold'", [run_id]).fetchone()
    assert (held > 0) == (warmup > 0)
    assert result.shortfall["live"]["fills"] >= 5
    assert result.shortfall["live"]["shortfall"] == pytest.approx(
        result.shortfall["model"]["shortfall"], rel=1e-9)
    assert result.dispatch_ms == INTERVAL_NS / 1e6  # a bar is acted on once it has closed
    out = tmp_path / "report"
    assert main(["parity", run_id[:6], "--db", str(db), "--out", str(out)]) == 0
    page = (out / f"parity_{run_id}.html").read_text()
    assert "no divergence" in page and page.count("data:image/png;base64,") == 2
    # nothing fetched from elsewhere ("http" alone turns up by chance in the figures' base64)
    assert "http://" not in page and "https://" not in page and "<script" not in page


def _paper_session(tmp_path: Path) -> tuple[Path, str]:
    config = parse_scenario(SEAM)
    db = tmp_path / "runs.duckdb"
    bars = _bars(load_market_data(
        config, RandomStreams.spawn(config.seed, len(config.data), len(config.agents)).data))
    with DuckDBStore(db) as store:
        clock = AcceleratedClock(start_ns=bars[0].ts, speed=30_000.0)
        feed = PacedReplayFeed(bars, clock, 60 * 10**9)
        live = asyncio.run(LiveRunner(config, store).run([feed]))
    return db, live.run_id


def test_a_paper_session_diffs_to_nothing_and_a_tampered_fill_is_unexplained(
        tmp_path, capsys) -> None:
    db, run_id = _paper_session(tmp_path)
    result = _diff(db, run_id)
    assert result.divergences == [] and result.mode == "paper"
    with duckdb.connect(str(db)) as con:
        (fill_id, price) = con.execute(
            "SELECT fill_id, price FROM fills WHERE run_id = ? ORDER BY fill_id LIMIT 1 "
            "OFFSET 2", [run_id]).fetchone()
        con.execute("UPDATE fills SET price = ? WHERE run_id = ? AND fill_id = ?",
                    [price * 1.001, run_id, fill_id])
    result = _diff(db, run_id)
    # the price, and so the fee against it: both unexplained (a paper fill is the model's)
    d, fee = result.divergences
    assert (d.stage, d.field, d.cause) == ("fills", "price", "unexplained")
    assert (fee.field, fee.cause, fee.key) == ("fee rate", "unexplained", d.key)
    assert d.live == pytest.approx(price * 1.001) and d.model == pytest.approx(price)
    assert main(["parity", "--db", str(db), "--out", str(tmp_path / "r")]) == 0  # latest
    assert "2 unexplained" in capsys.readouterr().out


def test_a_backtest_is_refused_in_one_line(tmp_path, capsys) -> None:
    db = tmp_path / "runs.duckdb"
    with DuckDBStore(db) as store:
        run = run_scenario(parse_scenario(SEAM), store)
    assert main(["parity", run.run_id, "--db", str(db)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a backtest run" in err
    assert main(["parity", "--db", str(db)]) == 2
    assert "no paper or live session" in capsys.readouterr().err


def test_a_refusal_a_price_off_the_model_and_venue_funding_are_explained(tmp_path) -> None:
    """The venue refuses the first order (margin: the account drained for that bar), fills
    a later one half a dollar off the modelled price (a wider book), and charges funding
    the scenario does not model: three roots, each with its cause; nothing unexplained."""
    config = parity_scenario(live={"reconcile_every": "1s"})  # funding is polled with it
    times = order_times(config)
    bars = bars_of(config)
    index = {b.ts: k for k, b in enumerate(bars)}
    funded = index[times[4]] + 1  # a bar between two orders, a position open
    faults = Faults(refuse={index[times[0]]}, offset={index[times[2]]: 0.5},
                    funding={funded: 0.0005})
    run_id, db = run_session(tmp_path, config, faults)
    result = _diff(db, run_id)

    assert result.unexplained == []
    roots = {(d.cause, d.ts): d for d in result.divergences if d.cause != "carried"}
    assert set(roots) == {("venue_rejection", times[0]), ("price", times[2]),
                          ("funding_rate", bars[funded].ts)}
    refused = roots[("venue_rejection", times[0])]
    assert "Insufficient margin" in refused.detail and refused.live == 0.0
    priced = roots[("price", times[2])]
    assert abs(priced.live - priced.model) == pytest.approx(0.5)
    paid = roots[("funding_rate", bars[funded].ts)]
    assert paid.model is None and paid.live != 0.0 and "0.0005" in paid.detail


def test_the_calibration_is_fitted_to_the_live_fills(tmp_path) -> None:
    """A book 0.3 wider than the model's at every bar: every fill is a ``price``
    divergence, and the suggested slippage is the median of their errors, computed here
    from the stored live fills (the model's price is the live one less 0.3 for a buy)."""
    config = parity_scenario()
    bars = bars_of(config)
    run_id, db = run_session(tmp_path, config,
                             Faults(offset={k: 0.3 for k in range(len(bars))}))
    result = _diff(db, run_id)
    assert result.unexplained == []
    prices = [d for d in result.divergences if d.field == "price"]
    assert prices and all(d.cause == "price" for d in prices)
    with duckdb.connect(str(db), read_only=True) as con:
        fills = con.execute("SELECT quantity, price FROM fills WHERE run_id = ?",
                            [run_id]).fetchall()
    errors = sorted(0.3 / (px - 0.3 * (1 if q > 0 else -1)) * 1e4 for q, px in fills)
    (cal,) = result.calibration
    assert cal["fills"] == len(fills) == len(prices)
    assert cal["suggested_slippage_bps"] == pytest.approx(float(np.median(errors)), abs=1e-3)
    assert 1.0 < cal["suggested_slippage_bps"] < 2.0


@pytest.mark.parametrize("table", ["live_risk_trips", "live_resumes"])
def test_a_trip_or_a_restart_explains_what_follows_it_only(tmp_path, table) -> None:
    """The store says the kill switch was pulled (or the session restarted) at a bar:
    a fill altered after it is explained by it (``lifecycle`` / ``restart``), one altered
    before it is not."""
    db, run_id = _paper_session(tmp_path)
    with duckdb.connect(str(db)) as con:
        fills = con.execute("SELECT fill_id, epoch_ns(ts), price FROM fills WHERE run_id = ?"
                            " ORDER BY fill_id", [run_id]).fetchall()
        (early, t_early, p_early), (late, t_late, p_late) = fills[1], fills[-2]
        at = (t_early + t_late) // 2
        if table == "live_risk_trips":
            con.execute("CREATE TABLE live_risk_trips (run_id VARCHAR, ts BIGINT, kind VARCHAR,"
                        " name VARCHAR, value DOUBLE, until_ns BIGINT)")
            con.execute("INSERT INTO live_risk_trips VALUES (?, ?, 'kill_switch', 'file', "
                        "NULL, NULL)", [run_id, at])
        else:
            con.execute("CREATE TABLE live_resumes (run_id VARCHAR, resumed_ns BIGINT, "
                        "recovered_orders INTEGER, config_hash VARCHAR, validation_id VARCHAR)")
            con.execute("INSERT INTO live_resumes VALUES (?, ?, 0, 'x', NULL)", [run_id, at])
        for fill_id, price in ((early, p_early), (late, p_late)):
            con.execute("UPDATE fills SET price = ? WHERE run_id = ? AND fill_id = ?",
                        [price * 1.002, run_id, fill_id])
    result = _diff(db, run_id)
    by_time = {d.ts: d.cause for d in result.divergences if d.field == "price"}
    assert by_time == {t_early: "unexplained",
                       t_late: "lifecycle" if table == "live_risk_trips" else "restart"}


def test_a_position_adopted_from_the_venue_is_a_reconciliation(tmp_path) -> None:
    """The account holds 0.25 ETH when the session starts: reconciliation adopts it (an
    adjustment fill), the first order is sized from it, and all that follows is carried
    from that root."""
    config = parity_scenario()
    run_id, db = run_session(tmp_path, config, Faults(held=0.25))
    result = _diff(db, run_id)
    assert result.unexplained == []
    (root,) = [d for d in result.divergences if d.cause != "carried"]
    assert (root.stage, root.field, root.cause, root.live) == (
        "fills", "adjustment", "reconciliation", pytest.approx(0.25))
    carried = [d for d in result.divergences if d.cause == "carried"]
    assert {d.stage for d in carried} >= {"orders", "equity"}
