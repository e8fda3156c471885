"""``quorum data calibrate`` and ``quorum data compare``: fit a market model to recorded
bars, and check generated bars against the real ones' stylized facts.

Kept out of ``quorum.cli`` (which only registers the two subcommands): the fits pull in
``arch`` and ``statsmodels``, imported only when ``calibrate`` runs.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the commands import what they use: parsing ``quorum``'s options does not
    import numpy as np

    from sim.data import SymbolBars
    from sim.regimes.facts import FactRow


def add_parsers(data_sub: argparse._SubParsersAction) -> None:
    """Register ``calibrate`` and ``compare`` under ``quorum data``."""
    p = data_sub.add_parser("calibrate", help="fit a regime model (Markov-switching states, "
                            "GARCH-t volatility, reversal, jumps, range and volume) to "
                            "recorded bars; a scenario names it with kind = 'calibrated'")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="OHLCV bars, CSV or Parquet, one symbol per file (named by the file)")
    p.add_argument("--out", required=True, metavar="MODEL.toml")
    p.add_argument("--interval", metavar="DURATION",
                   help="bar spacing of the files (default: the median spacing)")
    p.add_argument("--states", type=int, default=2, choices=[1, 2, 3],
                   help="regimes of the Markov chain (default 2)")
    p.add_argument("--seed", type=int, default=0,
                   help="random numbers of the moment matching (default 0)")
    p.add_argument("--symbols", metavar="A,B", help="symbol names, one per file (default: "
                   "each file's name without suffix)")
    p.set_defaults(func=cmd_calibrate)

    p = data_sub.add_parser("compare", help="stylized facts of real and generated bars side "
                            "by side, with tolerances and pass/fail (exit 1 if any fails)")
    p.add_argument("real", metavar="REAL", help="recorded bars (CSV or Parquet)")
    p.add_argument("generated", metavar="GENERATED", help="generated bars (CSV or Parquet)")
    p.add_argument("--out", metavar="DIR", help="also write facts.csv, qq.png and acf.png")
    p.add_argument("--bars-per-year", type=float, metavar="N",
                   help="for annualised volatility (default: from REAL: the calendar year "
                        "for intraday bars, the bars a year it has for daily bars)")
    p.set_defaults(func=cmd_compare)

    p = data_sub.add_parser("strategy-check", help="each agent of a scenario on recorded "
                            "bars: its Sharpe ratio there and over calibrated paths")
    p.add_argument("scenario", help="scenario whose data are the recorded files the model "
                                    "was fitted to")
    p.add_argument("--model", required=True, metavar="MODEL.toml")
    p.add_argument("--paths", type=int, default=50, help="calibrated paths (default 50)")
    p.add_argument("--out", metavar="DIR", help="also write strategy_check.csv")
    p.set_defaults(func=cmd_strategy_check)


def calibrated_source(args: argparse.Namespace, symbols: list[str] | None) -> dict[str, Any]:
    """The ``[[data]]`` table ``quorum data generate calibrated`` stands for."""
    from quorum.cli_common import UsageError
    from sim.regimes.calibrated import load_model

    if args.model is None:
        raise UsageError("--model: required for the regime 'calibrated'")
    if args.param:
        raise UsageError("--param: a calibrated model takes its parameters from --model")
    if args.generator_version is not None:
        raise UsageError("--generator-version: applies to the named regimes only")
    model = load_model(args.model)
    if args.interval is not None and args.interval != model.interval:
        raise UsageError(f"--interval: the model was fitted on {model.interval} bars; its "
                         "dynamics are per bar, so it generates at that interval only")
    source: dict[str, Any] = {"kind": "calibrated", "model": str(Path(args.model).resolve()),
                              "bars": args.bars, "start": args.start,
                              "symbols": symbols or [s.name for s in model.symbols]}
    if args.price is not None:  # by default each symbol starts at its source's first close
        source["prices"] = [args.price] * len(model.symbols)
    return source


def cmd_calibrate(args: argparse.Namespace) -> int:
    from quorum.cli_common import UsageError, _console, _print_table, interval_option
    from sim.regimes.calibrate import calibrate
    from sim.regimes.calibrated import model_to_toml

    interval = interval_option(args.interval)
    out = Path(args.out)
    if out.suffix.lower() != ".toml":
        raise UsageError(f"--out: {out} must be a .toml file")
    names = None
    if args.symbols is not None:
        names = [s.strip() for s in args.symbols.split(",")]
        if len(names) != len(args.files) or not all(names) or len(set(names)) != len(names):
            raise UsageError(f"--symbols: {len(args.files)} distinct name(s) needed, one per "
                             f"file; got {args.symbols!r}")
    model = calibrate(args.files, interval_ns=interval, states=args.states, seed=args.seed,
                      symbols=names)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(model_to_toml(model), encoding="utf-8")
    rows = []
    for s in model.symbols:
        rows.append({
            "symbol": s.name, "nu": f"{s.nu:.2f}", "alpha": f"{s.alpha:.3f}",
            "gamma": f"{s.gamma:.3f}", "beta": f"{s.beta:.3f}",
            "reversal": f"{s.reversal:.3f}", "jumps/bar": f"{s.jump_intensity:.4f}",
            "volatility (per state, annualised)": ", ".join(
                f"{st.volatility * math.sqrt(model.bars_per_year):.1%}" for st in s.states),
        })
    _print_table(rows, title=f"calibrated on {model.interval} bars; states "
                             f"{', '.join(model.states)}")
    _console().print(f"wrote {out}")
    return 0


def _load(path: str) -> SymbolBars:
    from sim.data import load_bars

    return load_bars(Path(path), Path(path).stem)


def cmd_compare(args: argparse.Namespace) -> int:
    from quorum.cli_common import UsageError, _console, _print_table
    from sim.regimes.facts import bar_returns, bars_per_year, compare_facts, stylized_facts

    real, generated = _load(args.real), _load(args.generated)
    if args.bars_per_year is not None and not 0 < args.bars_per_year < math.inf:
        raise UsageError("--bars-per-year: must be a positive number")
    year = args.bars_per_year or bars_per_year(real)
    rows = compare_facts(stylized_facts(real, year), stylized_facts(generated, year))
    _print_table([_row(r) for r in rows], title=f"stylized facts: {Path(args.real).name} "
                                                f"vs {Path(args.generated).name}")
    failed = [r.fact.name for r in rows if not r.passed]
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        import pandas as pd

        pd.DataFrame([_row(r) for r in rows]).to_csv(out / "facts.csv", index=False)
        for chart in plot_facts(bar_returns(real), bar_returns(generated), out):
            _console().print(f"chart: {chart}")
    _console().print(f"{len(rows) - len(failed)} of {len(rows)} facts within tolerance"
                     + (f"; outside: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def cmd_strategy_check(args: argparse.Namespace) -> int:
    from quorum.cli_common import UsageError, _console, _print_table
    from research.strategy_check import strategy_check
    from sim.config import load_scenario

    if not 1 <= args.paths <= 10_000:
        raise UsageError("--paths: must be between 1 and 10000")
    config = load_scenario(args.scenario)
    checks = strategy_check(config, args.model, args.paths)
    rows = [c.row() for c in checks]
    _print_table(rows, title=f"Sharpe ratio: {config.name} on its data vs {args.paths} "
                             f"calibrated paths ({Path(args.model).name})")
    if args.out:
        import pandas as pd

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(out / "strategy_check.csv", index=False)
        _console().print(f"wrote {out / 'strategy_check.csv'}")
    return 0


def _row(r: FactRow) -> dict[str, str]:
    def num(x: float) -> str:
        return f"{x:.4g}"

    tol = (f"±{r.fact.tolerance:.0%}" if r.fact.mode == "rel" else f"±{r.fact.tolerance:g}")
    return {"fact": r.fact.name, "real": num(r.real), "generated": num(r.generated),
            "tolerance": tol, "result": "pass" if r.passed else "FAIL",
            "what": r.fact.what}


def plot_facts(real: np.ndarray, generated: np.ndarray, out: Path) -> list[Path]:
    """``qq.png``: quantiles of standardised returns against each other (a straight
    diagonal is the same distribution); ``acf.png``: the autocorrelation of ``r``,
    ``|r|`` and ``r**2`` for both series."""
    import matplotlib
    import numpy as np

    from sim.regimes.facts import MAX_LAG, acf

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def std(x: np.ndarray) -> np.ndarray:
        return (x - x.mean()) / x.std()

    q = np.linspace(0.001, 0.999, 999)
    qr, qg = np.quantile(std(real), q), np.quantile(std(generated), q)
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(qr, qg, s=6, color="#1565c0")
    lim = float(max(abs(qr).max(), abs(qg).max()))
    ax.plot([-lim, lim], [-lim, lim], color="#9e9e9e", lw=1)
    ax.set(xlabel="real (standardised return quantiles)", ylabel="generated",
           title="QQ plot of standardised log returns")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    qq = out / "qq.png"
    fig.savefig(qq, dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    lags = np.arange(1, MAX_LAG + 1)
    transforms: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
        ("r", lambda x: x), ("|r|", np.abs), ("r²", np.square))
    for ax, (name, f) in zip(axes, transforms, strict=True):
        ax.plot(lags, acf(f(real), MAX_LAG), "o-", ms=3, label="real", color="#212121")
        ax.plot(lags, acf(f(generated), MAX_LAG), "o-", ms=3, label="generated",
                color="#e65100")
        ax.axhline(0, color="#9e9e9e", lw=0.8)
        ax.set(title=f"autocorrelation of {name}", xlabel="lag (bars)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    acf_png = out / "acf.png"
    fig.savefig(acf_png, dpi=110)
    plt.close(fig)
    return [qq, acf_png]


__all__ = ["add_parsers", "cmd_calibrate", "cmd_compare", "cmd_strategy_check",
           "plot_facts"]
