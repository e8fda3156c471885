"""``quorum data inspect`` end to end, the regime chart, and regime labels in the store."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from quorum.cli import main
from quorum.inspect_data import duration_text, inspect_bars
from reports.plots import REGIME_COLOURS, plot_regimes
from sim.config import parse_scenario
from sim.data import NS_PER_YEAR, gbm_bars, load_bars
from sim.regimes.labels import LABELS, label_regimes
from sim.runner import run_scenario
from sim.store import DuckDBStore

DATA = Path(__file__).resolve().parents[2] / "data"
ETH = DATA / "binance_ETH_BTC_5m_2018-01.csv"
PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write_bars(path: Path, n: int = 400, drop: tuple[int, ...] = (), seed: int = 0) -> Path:
    bars = gbm_bars("X", n, np.random.default_rng(seed), interval_ns=300 * 10**9,
                    start_ns=pd.Timestamp("2024-01-01T00:00:00Z").value)
    frame = pd.DataFrame({
        "timestamp": pd.to_datetime(bars.ts, utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **{c: bars.column(c) for c in ("open", "high", "low", "close", "volume")},
    }).drop(index=list(drop))
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def table_value(out: str, name: str) -> str:
    match = re.search(rf"│ {re.escape(name)}\s+│ (.+?)\s+│", out)
    assert match, f"{name!r} not in output:\n{out}"
    return match.group(1)


# -- the CLI ---------------------------------------------------------------------------
def test_inspect_recorded_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "data", "inspect", str(ETH), "--symbol", "ETHBTC",
                         "--out", str(tmp_path / "out"))
    assert code == 0, err
    bars = load_bars(ETH, "ETHBTC")
    returns = np.diff(np.log(bars.close))
    assert table_value(out, "rows") == "5760"
    assert table_value(out, "interval (median spacing)") == "5m"
    assert table_value(out, "span") == "19d 23h 55m"
    assert table_value(out, "gaps") == "0" and table_value(out, "largest gap") == "none"
    vol = returns.std(ddof=1) * np.sqrt(NS_PER_YEAR / (300 * 10**9))
    assert float(table_value(out, "annualised volatility (365d)")) == pytest.approx(vol,
                                                                                    rel=1e-5)
    assert float(table_value(out, "min price (low)")) == pytest.approx(bars.low.min())
    labels = label_regimes(bars.ts, bars.close)
    for name in LABELS:
        assert re.search(rf"│ {name}\s+│ {(labels == name).sum()}\s+│", out), name
    chart = tmp_path / "out" / "ETHBTC_regimes.png"
    assert chart.read_bytes().startswith(PNG)
    assert f"chart: {chart}" in out


def test_inspect_reports_gaps_and_takes_parquet(capsys: pytest.CaptureFixture[str],
                                                tmp_path: Path) -> None:
    path = write_bars(tmp_path / "gappy.parquet", drop=(10, 200, 201, 202))
    code, out, err = run(capsys, "data", "inspect", str(path))
    assert code == 0, err
    assert table_value(out, "symbol") == "gappy"  # the file name without suffix
    assert table_value(out, "rows") == "396"
    assert table_value(out, "gaps") == "2" and table_value(out, "missing bars") == "4"
    assert table_value(out, "largest gap") == "20m (3 bars missing)"
    assert "gaps: 396 of 400 bars every 5m: 4 missing in 2 gap(s)" in out
    assert not list(tmp_path.glob("*.png"))  # a chart only with --out


def test_interval_option_sets_the_gap_grid(capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path) -> None:
    path = write_bars(tmp_path / "bars.csv", n=50)
    code, out, _ = run(capsys, "data", "inspect", str(path), "--interval", "1m")
    assert code == 0
    assert table_value(out, "interval (expected)") == "1m"
    assert table_value(out, "missing bars") == str(49 * 4)


@pytest.mark.parametrize(("argv", "message"), [
    (["missing.csv"], "missing.csv: file not found"),
    (["{bad}"], "missing column(s) 'close'"),
    (["{one}"], "1 bar(s); at least 2 are needed"),
    (["{ok}", "--interval", "5x"], "--interval: '5x' is not a positive duration"),
    (["{ok}", "--interval", "7m"], "not a whole number of 7m bars"),
    (["{txt}"], "unknown format '.txt'"),
])
def test_bad_input_exits_2_with_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                         message: str) -> None:
    monkeypatch.chdir(tmp_path)
    ok = write_bars(tmp_path / "ok.csv", n=30)
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,volume\n2024-01-01T00:00:00Z,1,1,1,1\n")
    one = tmp_path / "one.csv"
    one.write_text("\n".join(ok.read_text().splitlines()[:2]) + "\n")
    txt = tmp_path / "bars.txt"
    txt.write_text("x")
    files = {"{ok}": str(ok), "{bad}": str(bad), "{one}": str(one), "{txt}": str(txt)}
    code, _, err = run(capsys, "data", "inspect", *(files.get(a, a) for a in argv),
                         "--out", str(tmp_path / "out"))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("quorum: error: ")
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_data_needs_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["data"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_inspect_bars_on_daily_data() -> None:
    bars = load_bars(DATA / "sp500_daily_1999-2018.csv", "SPX")
    found = inspect_bars(bars)
    assert found.stats["interval (median spacing)"] == "1d"
    assert found.gaps.gaps > 900  # weekends and holidays are missing days
    assert found.stats["largest gap"].startswith("7d")  # the market shut after 9/11
    assert sum(found.regimes.values()) == len(bars) and found.regimes["crash"] > 0


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"), (300 * 10**9, "5m"), (86_400 * 10**9, "1d"), (5400 * 10**9, "1h 30m"),
    (1_500_000_000, "1.5s"), ((2 * 86_400 + 3600) * 10**9, "2d 1h"),
])
def test_duration_text(ns: int, text: str) -> None:
    assert duration_text(ns) == text


# -- the chart -------------------------------------------------------------------------
def test_every_label_has_its_own_colour() -> None:
    assert set(REGIME_COLOURS) == set(LABELS)
    assert len(set(REGIME_COLOURS.values())) == len(LABELS)


@pytest.mark.parametrize("n", [1, 500, 120_000])
def test_plot_regimes_writes_a_png(tmp_path: Path, n: int) -> None:
    bars = gbm_bars("X", n, np.random.default_rng(0), start_ns=0, interval_ns=60 * 10**9)
    labels = label_regimes(bars.ts, bars.close)
    path = plot_regimes(bars.ts, bars.close, labels, tmp_path / "r.png", title="x",
                        max_points=5_000)
    assert path.read_bytes().startswith(PNG)


def test_plot_regimes_rejects_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="same non-zero length"):
        plot_regimes(np.arange(3), np.ones(3), np.array(["ranging"] * 2), tmp_path / "x.png")


# -- the store -------------------------------------------------------------------------
def test_every_stored_bar_carries_its_regime_label(tmp_path: Path) -> None:
    config = parse_scenario({
        "name": "labels", "seed": 5,
        "data": [
            {"symbol": "ETHBTC", "path": str(ETH), "interval": "5m"},
            {"kind": "gbm", "symbol": "SYN", "bars": 3000, "interval": "1h",
             "volatility": 1.5},
        ],
        "agents": [{"name": "sma", "kind": "sma_crossover", "params": {"fast": 5, "slow": 20}}],
        "venues": [{"name": "v", "symbols": ["ETHBTC", "SYN"]}],
    })
    with DuckDBStore(tmp_path / "runs.duckdb") as store:
        result = run_scenario(config, store)
        con: duckdb.DuckDBPyConnection = store.con
        counts = con.execute(
            "SELECT symbol, count(*), count(regime) FROM bars WHERE run_id = ? GROUP BY symbol"
            " ORDER BY symbol", [result.run_id]).fetchall()
        assert counts == [("ETHBTC", 5760, 5760), ("SYN", 3000, 3000)]
        names = {r[0] for r in con.execute("SELECT DISTINCT regime FROM bars").fetchall()}
        assert names <= set(LABELS) and "warmup" in names and "ranging" in names
        for symbol in ("ETHBTC", "SYN"):
            ts, close, regime = con.execute(
                "SELECT epoch_ns(ts), close, regime FROM bars WHERE run_id = ? AND symbol = ?"
                " ORDER BY ts", [result.run_id, symbol]).fetchnumpy().values()
            # The labels stored are the labeller's on that symbol's bars alone.
            assert regime.tolist() == label_regimes(ts, close).tolist()
