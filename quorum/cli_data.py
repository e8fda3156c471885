"""The data commands: ``quorum data inspect``, ``data generate`` and ``agents list``."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from quorum.cli_common import (
    UsageError,
    _console,
    _print_table,
    interval_option,
)
from sim.agents.base import AgentError


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from quorum.inspect_data import chart_path, inspect_bars
    from sim.data import load_bars

    interval = interval_option(args.interval)
    path = Path(args.file)
    symbol = args.symbol or path.stem
    bars = load_bars(path, symbol)  # gaps are reported below, not refused
    found = inspect_bars(bars, interval)
    _print_table([{"statistic": k, "value": v} for k, v in found.stats.items()],
                 title=f"{symbol}: {path.name}")
    total = sum(found.regimes.values())
    _print_table([{"regime": name, "bars": n, "share": f"{n / total:.1%}"}
                  for name, n in found.regimes.items()], title="regimes (causal labels)")
    _console().print(f"gaps: {found.gaps}")
    if args.out:
        from reports.plots import plot_regimes

        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        chart = plot_regimes(bars.ts, bars.close, found.labels, chart_path(out, symbol),
                             title=f"{symbol}: close with regimes shaded ({path.name})")
        _console().print(f"chart: {chart}")
    return 0


def cmd_agents_list(args: argparse.Namespace) -> int:
    from sim.agents.base import describe_agent, registered_agents, resolve_agent

    for kind, target in sorted(registered_agents().items()):
        try:
            params = describe_agent(kind)
            factory_doc = (resolve_agent(kind).__doc__ or "").strip().splitlines()[0]
        except (AgentError, IndexError) as exc:  # listed, not fatal
            params, factory_doc = [], f"(cannot describe: {exc})"
        rows = [{"parameter": p["name"], "type": p["type"],
                 "default": "(required)" if p["required"] else repr(p["default"]),
                 "description": p["description"]} for p in params]
        _console().print(f"[bold]{kind}[/bold]  ({target})  {factory_doc}")
        if rows:
            _print_table(rows)
    return 0


def cmd_data_generate(args: argparse.Namespace) -> int:
    """Same regime, seed and settings as a one-source scenario gives the same bytes."""
    from quorum.generate_data import write_generated
    from sim.config import parse_scenario

    params: dict[str, Any] = {}
    for item in args.param:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        try:
            params[name.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            params[name.strip()] = value  # a bare word, e.g. a state name
    symbols = [s.strip() for s in (args.symbols or "SYN").split(",") if s.strip()]
    source: dict[str, Any] = {
        "kind": "regime", "regime": args.regime, "bars": args.bars, "symbols": symbols,
        "interval": args.interval or "1m", "start": args.start,
        "price": 100.0 if args.price is None else args.price,
        "params": params}
    if args.generator_version is not None:
        source["generator_version"] = args.generator_version
    if args.regime == "calibrated":
        from quorum.data_model import calibrated_source

        source = calibrated_source(args, symbols if args.symbols else None)
        symbols = source["symbols"]
    elif args.model is not None:
        raise UsageError("--model: only with the regime 'calibrated'")
    config = parse_scenario(
        {"name": f"generate_{args.regime}", "seed": args.seed, "data": [source],
         "agents": [{"name": "none", "kind": "sma_crossover"}],
         "venues": [{"name": "none", "symbols": symbols}]},
        "arguments",
    )
    for path, rows in write_generated(config, Path(args.out)):
        _console().print(f"wrote {path} ({rows} bars)")
    return 0
