"""``quorum report`` / ``quorum compare`` end to end on stored runs: a self-contained HTML
page (no external URL, every figure embedded), PNGs that are the right size and not blank,
the compare overlay and the regime matrix, and bad input (exit 2, one line)."""

from __future__ import annotations

import base64
import contextlib
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import matplotlib.image as mpimg
import numpy as np
import pytest

from quorum.cli import main
from reports.execution import execution_frame, funding_frame
from reports.figures import FIG_PX, minmax_indices
from reports.regime_matrix import regime_matrix
from sim.config import load_scenario
from sim.runner import run_scenario
from sim.store import DuckDBStore

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "scenarios" / "demo.toml"
REGIMES = REPO / "scenarios" / "regimes"
PIXEL_VARIANCE_FLOOR = 1e-3  # a white page with a few words is far below a chart's spread


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.refs.append((tag, name, value))


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    db = tmp_path_factory.mktemp("report") / "runs.duckdb"
    with DuckDBStore(db) as s:
        demo = run_scenario(load_scenario(DEMO), s).run_id
        regimes = [run_scenario(load_scenario(REGIMES / f"{name}.toml"), s).run_id
                   for name in ("trend_up", "crash")]
        s.create_run("emptyrun0000", "empty", {"initial_cash": 1000.0}, 0, "test", "none")
        s.finish_run("emptyrun0000", "failed", 0, "nothing ran")
    return {"db": str(db), "demo": demo, "regimes": regimes}


def test_report_is_one_self_contained_page_with_every_figure(store, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    code, stdout, stderr = _cli("report", store["demo"][:8], "--db", store["db"],
                                "--out", str(out))
    assert code == 0, stderr
    pages = list(out.glob("*.html"))
    assert len(pages) == 1 and "report:" in stdout
    text = pages[0].read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    assert {"html", "table", "img"} <= set(page.tags)
    assert "script" not in page.tags and "link" not in page.tags
    for tag, attr, value in page.refs:
        assert not re.match(r"\s*(https?:)?//", value), f"external {tag} {attr}: {value[:60]}"
    assert "http://" not in text and "https://" not in text
    pngs = sorted(out.glob("*.png"))
    names = {p.name for p in pngs}
    assert {"equity_drawdown.png", "exposure.png", "agents.png", "consensus.png",
            "routing.png", "risk.png", "price_ETHBTC.png", "price_LTCBTC.png",
            "price_SYN.png"} <= names
    assert text.count("data:image/png;base64,") == len(pngs)
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in pngs)
    for png in pngs:
        img = mpimg.imread(png)
        assert img.shape[:2] == (FIG_PX[1], FIG_PX[0]), png.name
        assert float(img[..., :3].var()) > PIXEL_VARIANCE_FLOOR, f"{png.name} looks blank"
    for metric in ("total_return", "cagr", "apr_30d", "apr_90d", "apr_since_inception",
                   "annual_volatility", "sharpe", "sortino", "calmar", "max_drawdown",
                   "max_drawdown_days", "win_rate", "profit_factor", "average_trade",
                   "expectancy", "time_in_market", "turnover", "fees", "funding_paid",
                   "mean_agreement", "denied"):
        assert f"<td>{metric}</td>" in text, metric
    for heading in ("Per regime label", "Per agent", "Per venue", "Risk denials by check",
                    "Per-agent contribution", "Consensus agreement"):
        assert f"<h2>{heading}</h2>" in text, heading
    # latency, shortfall and funding: shown when the store holds them, else said, and no
    # empty figure
    with duckdb.connect(store["db"]) as con:
        has_execution = execution_frame(con, store["demo"]) is not None
        has_funding = funding_frame(con, store["demo"]) is not None
    assert ("execution.png" in names) == has_execution
    assert ("Not in this run's store: latency and implementation shortfall" in text) == (
        not has_execution)
    assert ("funding payments." in text) == (not has_funding)


def test_compare_and_regime_matrix_write_files(store, tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    ids = [store["demo"], *store["regimes"]]
    code, stdout, stderr = _cli("compare", *ids, "--db", store["db"], "--out", str(out),
                                "--regimes")
    assert code == 0, stderr
    for run_id in ids:
        assert run_id in stdout  # one column per run
    assert "total_return" in stdout and "sharpe" in stdout
    for name in ("compare_equity.png", "regime_matrix.png"):
        img = mpimg.imread(out / name)
        assert float(img[..., :3].var()) > PIXEL_VARIANCE_FLOOR, name
    metrics = (out / "compare_metrics.csv").read_text().splitlines()
    assert metrics[0] == ",".join(["metric", *ids])
    assert any(line.startswith("sharpe,") for line in metrics)
    lines = (out / "regime_matrix.csv").read_text().splitlines()
    assert lines[0] == "row,regime,bars,sharpe,return,max_drawdown,runs,row_runs"
    assert len(lines) > 3


def test_regime_matrix_bars_add_up_and_returns_compound(store) -> None:
    import duckdb

    with duckdb.connect(store["db"], read_only=True) as con:
        m = regime_matrix(con, store["regimes"], by="run")
        assert len(m["rows"]) == 2
        for i, run_id in enumerate(store["regimes"]):
            eq = con.execute("SELECT equity FROM equity WHERE run_id = ? ORDER BY ts",
                             [run_id]).fetchnumpy()["equity"]
            assert np.nansum(m["bars"][i]) == len(eq)
            total = np.prod(1.0 + np.nan_to_num(m["return"][i])) - 1.0
            assert total == pytest.approx(eq[-1] / 10_000.0 - 1.0, rel=1e-9, abs=1e-12)


def test_minmax_downsampling_keeps_extremes_and_caps_points() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1_000_003).cumsum()
    idx = minmax_indices(x, 5_000)
    assert len(idx) <= 5_002 and idx[0] == 0 and idx[-1] == len(x) - 1
    assert np.all(np.diff(idx) > 0)
    assert x[idx].max() == x.max() and x[idx].min() == x.min()
    assert np.array_equal(minmax_indices(x[:100], 5_000), np.arange(100))


@pytest.mark.parametrize("argv", [
    ["report", "nosuchrun"],
    ["report", "emptyrun0000"],
    ["compare", "emptyrun0000", "nosuchrun"],
    ["compare", "nosuchrun"],
])
def test_bad_input_exits_2_with_one_line(store, tmp_path: Path, argv: list[str]) -> None:
    code, _, stderr = _cli(*argv, "--db", store["db"], "--out", str(tmp_path / "x"))
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("quorum: error:")
    assert not (tmp_path / "x").exists()


def test_report_without_a_store_exits_2(tmp_path: Path) -> None:
    code, _, stderr = _cli("report", "abc", "--db", str(tmp_path / "none.duckdb"))
    assert code == 2 and len(stderr.strip().splitlines()) == 1
