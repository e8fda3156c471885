"""Calibrated regimes end to end on the bundled recorded files (issue 20 acceptance).

``quorum data calibrate`` fits each bundled 5-minute file (the three BTC pairs of the
issue's table and the XRP/USDT perpetual, whose tails are fat but whose volatility
clusters little) and the S&P 500 daily file
(once per file, module-scoped). From each model three seeds of 20,000 bars are generated;
the median over the seeds must match the source: excess kurtosis within 35%, the
autocorrelation of |r| at lags 1 and 20 within 0.06, the lag-1 autocorrelation of r
within 0.05, annualised volatility within 10% (252-day year for the S&P 500). The S&P
500's |r| autocorrelation at lag 1 passes with 0.005 to spare (0.301 against 0.246; its
median over 30 seeds is 0.281, one path's sd 0.034): the index's clustering decays
slower from lag 1 to 20 than the model's slow components can
(docs/concepts/calibrated-regimes.md). Then ``generate calibrated`` -> ``compare``
through the CLI, and bad input.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from quorum.cli import main
from sim.data import load_bars
from sim.regimes.calibrate import calibrate
from sim.regimes.calibrated import CalibratedModel, generate_calibrated, load_model
from sim.regimes.facts import bar_returns, bars_per_year, kurtosis

DATA = Path(__file__).resolve().parents[2] / "data"
FILES = ["binance_ETH_BTC_5m_2018-01.csv", "binance_LTC_BTC_5m_2018-01.csv",
         "binance_ADA_BTC_5m_2018-01.csv", "binance_XRP_USDT_perp_5m_2021-11.csv",
         "sp500_daily_1999-2018.csv"]
SEEDS, BARS = (1, 2, 3), 20_000
PNG = b"\x89PNG\r\n\x1a\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every bundled file calibrated once, through the CLI (in process)."""
    out = tmp_path_factory.mktemp("models")
    paths = {}
    for name in FILES:
        path = out / f"{Path(name).stem}.toml"
        assert main(["data", "calibrate", str(DATA / name), "--out", str(path)]) == 0
        paths[name] = path
    return paths


def facts(r: np.ndarray, year: float) -> dict[str, float]:
    a = np.abs(r) - np.abs(r).mean()
    d = r - r.mean()
    return {
        "kurtosis": kurtosis(r),
        "acf_abs_1": float(np.sum(a[1:] * a[:-1]) / np.sum(a * a)),
        "acf_abs_20": float(np.sum(a[20:] * a[:-20]) / np.sum(a * a)),
        "acf_1": float(np.sum(d[1:] * d[:-1]) / np.sum(d * d)),
        "annual_volatility": float(r.std(ddof=1) * np.sqrt(year)),
    }


@pytest.mark.parametrize("name", FILES)
def test_calibrated_series_match_the_source(models: dict[str, Path], name: str) -> None:
    source = load_bars(DATA / name, "SRC")
    year = bars_per_year(source)
    model = load_model(models[name])
    assert model.bars_per_year == year
    real = facts(bar_returns(source), year)
    runs = [facts(np.log(b.close / b.open)[1:], year) for b in
            (generate_calibrated(model, BARS, np.random.default_rng(s))[0] for s in SEEDS)]
    got = {k: float(np.median([f[k] for f in runs])) for k in real}
    report = f"{name}: real {real}, generated (median of {len(SEEDS)}) {got}"
    assert abs(got["kurtosis"] / real["kurtosis"] - 1) <= 0.35, report
    assert abs(got["acf_abs_1"] - real["acf_abs_1"]) <= 0.06, report
    assert abs(got["acf_abs_20"] - real["acf_abs_20"]) <= 0.06, report
    assert abs(got["acf_1"] - real["acf_1"]) <= 0.05, report
    assert abs(got["annual_volatility"] / real["annual_volatility"] - 1) <= 0.10, report


def test_calibration_is_deterministic_per_seed(models: dict[str, Path], tmp_path: Path) -> None:
    again = tmp_path / "again.toml"
    name = FILES[1]
    assert main(["data", "calibrate", str(DATA / name), "--out", str(again)]) == 0
    assert again.read_bytes() == models[name].read_bytes()


def test_generate_then_compare(models: dict[str, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    real = DATA / FILES[0]
    gen = tmp_path / "gen.csv"
    code, out, err = run(capsys, "data", "generate", "calibrated", "--model",
                         str(models[FILES[0]]), "--bars", "20000", "--seed", "2",
                         "--out", str(gen))
    assert code == 0, err
    frame = pd.read_csv(gen)
    assert len(frame) == 20000 and set(frame["regime"]) <= {"calm", "turbulent"}
    assert frame["close"].iloc[0] > 0 and frame["open"].iloc[0] == pytest.approx(
        load_bars(real, "R").close[0])
    code, out, err = run(capsys, "data", "compare", str(real), str(gen), "--out",
                         str(tmp_path / "cmp"))
    assert code in (0, 1), err
    table = pd.read_csv(tmp_path / "cmp" / "facts.csv").set_index("fact")
    for fact in ("excess_kurtosis", "acf_abs_1", "acf_abs_20", "acf_1", "annual_volatility"):
        assert table.loc[fact, "result"] == "pass", table
    assert (code == 1) == (table["result"] == "FAIL").any()
    for png in ("qq.png", "acf.png"):
        assert (tmp_path / "cmp" / png).read_bytes()[:8] == PNG
    assert "facts within tolerance" in out


def test_compare_fails_a_series_without_the_facts(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The named regime_switching generator's textbook version (no fat tails, no
    reversal) against the ETH pair: compare must say so, and exit 1."""
    gen = tmp_path / "plain.csv"
    assert main(["data", "generate", "regime_switching", "--bars", "20000", "--interval",
                 "5m", "--generator-version", "1", "--out", str(gen)]) == 0
    code, out, _ = run(capsys, "data", "compare", str(DATA / FILES[0]), str(gen))
    assert code == 1
    assert "excess_kurtosis" in out and "FAIL" in out


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.csv"
    pd.read_csv(DATA / FILES[0]).head(100).to_csv(short, index=False)
    code, _, err = run(capsys, "data", "calibrate", str(short), "--out",
                       str(tmp_path / "m.toml"))
    assert code == 2 and "calibration needs at least 500" in err and len(err.splitlines()) == 1
    code, _, err = run(capsys, "data", "calibrate", str(DATA / FILES[0]), "--out",
                       str(tmp_path / "m.json"))
    assert code == 2 and "--out" in err
    code, _, err = run(capsys, "data", "calibrate", str(DATA / FILES[0]), "--symbols", "A,B",
                       "--out", str(tmp_path / "m.toml"))
    assert code == 2 and "--symbols: 1 distinct name(s) needed" in err
    code, _, err = run(capsys, "data", "compare", str(tmp_path / "none.csv"), str(short))
    assert code == 2 and "file not found" in err


def test_model_keeps_the_source_correlation() -> None:
    """Two pairs calibrated together share one chain and keep their correlation (the
    maximum-likelihood fit alone: the moment matching is per symbol and tested above)."""
    files = [DATA / FILES[0], DATA / FILES[1]]
    model: CalibratedModel = calibrate(files, tune=False)
    assert [s.name for s in model.symbols] == [f.stem for f in files]
    assert model.correlation is not None
    target = model.correlation[0][1]
    bars = generate_calibrated(model, 50_000, np.random.default_rng(0))
    ra, rb = (np.log(b.close / b.open) for b in bars)
    assert abs(np.corrcoef(ra, rb)[0, 1] - target) < 0.1


def test_no_slow_states_and_constant_volume(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the switching fit finds only flickering states, the model falls back to one
    state (names, matrix and per-symbol states agreeing); a constant volume gives a
    volume model without spread, not NaN."""
    import sim.regimes.calibrate as cal

    n = 3000
    r = np.random.default_rng(1).standard_t(3, n) * 0.002
    close = 100 * np.exp(np.cumsum(r))
    opened = np.concatenate(([100.0], close[:-1]))
    path = tmp_path / "flat_volume.csv"
    pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
        .strftime("%Y-%m-%dT%H:%M:%SZ"),
        "open": opened, "high": np.maximum(opened, close) * 1.001,
        "low": np.minimum(opened, close) * 0.999, "close": close, "volume": 10.0,
    }).to_csv(path, index=False)
    monkeypatch.setattr(cal, "_MIN_SPELL", 1e12)  # no fit is slow enough
    model = cal.calibrate([path], tune=False)
    assert model.states == ["normal"] and model.transition == [[1.0]]
    assert len(model.symbols[0].states) == 1
    assert model.symbols[0].volume_ar == 0.0 and model.symbols[0].volume_sd == 0.0
    # Bars whose open and close are the extremes (no wicks): generated bars have none.
    frame = pd.read_csv(path)
    frame["high"] = frame[["open", "close"]].max(axis=1)
    frame["low"] = frame[["open", "close"]].min(axis=1)
    frame.to_csv(path, index=False)
    model = cal.calibrate([path], tune=False)
    bars = generate_calibrated(model, 1000, np.random.default_rng(0))[0]
    body = np.maximum(bars.open, bars.close)
    assert np.all(bars.high - body <= 1e-9 * body)
