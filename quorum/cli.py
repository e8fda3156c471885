"""The ``quorum`` command: the composition root that wires sim, reports (and later live).

Exit codes: 0 done; 1 the run itself failed; 2 bad input (one line on stderr, no traceback);
130 interrupted.

Here: the parser and ``main``. The commands are beside it: ``quorum.cli_run`` (run, bench,
validate, sweep), ``quorum.cli_store`` (runs, show, query, report, compare, parity),
``quorum.cli_live`` (live, kill, agent), ``quorum.cli_data`` (data, agents list), and
``quorum.cli_common`` what they share.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import NoReturn

from quorum import signals
from quorum.agent_path import agent_import_path

DEFAULT_DB = "runs.duckdb"  # the name; where it goes without --db: quorum.store_path
_DB_HELP = ("DuckDB run store (default: $QUORUM_DB, else the project's .quorum/runs.duckdb "
            "or a runs.duckdb found from here up, else ./runs.duckdb; printed on stderr)")
# Commands that make runs: SIGTERM stops them as Ctrl-C does (quorum.signals).
RUN_COMMANDS = ("run", "sweep", "validate", "live", "sandbox")


def command(target: str) -> Callable[[argparse.Namespace], int]:
    """A command's function named ``"module:function"``, imported when it runs: ``quorum
    runs`` does not pay for importing the simulator, the live wing and the API."""
    module, _, name = target.partition(":")

    def run(args: argparse.Namespace) -> int:
        func: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(module),
                                                            name)
        return func(args)

    run.__qualname__ = run.__name__ = name
    return run


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, like every other bad input
        self.exit(2, f"quorum: error: {message}\n")


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a bad one exits 2 naming the option)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="quorum", description="Backtest and audit multi-agent trading systems.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def db_option(p: argparse.ArgumentParser) -> None:
        p.add_argument("--db", default=None, metavar="PATH", help=_DB_HELP)

    p = sub.add_parser("run", help="run a scenario and store every step")
    p.add_argument("scenario", help="scenario TOML file, e.g. scenarios/demo.toml")
    db_option(p)
    p.add_argument("--seed", type=int, help="override the scenario's seed")
    p.add_argument("--out", metavar="DIR", help="also write summary, CSVs and an equity plot")
    p.add_argument("--api", metavar="[HOST:]PORT", help="serve the API and the live stream "
                   "while it runs (e.g. 127.0.0.1:8765; port 0 picks one)")
    p.add_argument("--keys", metavar="FILE", help="API key file (default $QUORUM_KEYS, else "
                   ".quorum/keys.toml)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-monitor", action="store_true",
                   help="do not watch the run (health, alerts, logs: on by default)")
    p.add_argument("--per-bar", action="store_true",
                   help="walk every bar (no event-skipping fast path; same stored rows)")
    p.set_defaults(func=command("quorum.cli_run:cmd_run"))

    p = sub.add_parser("runs", help="list stored runs, newest first")
    db_option(p)
    p.add_argument("--limit", type=_positive_int, default=50, help="at most this many (>= 1)")
    p.add_argument("--fix-abandoned", action="store_true",
                   help="store runs whose process died while they ran as abandoned")
    p.add_argument("--scenario", metavar="NAME", help="only this scenario (a glob: 'rsi*')")
    p.add_argument("--status", choices=["completed", "failed", "interrupted", "running",
                                        "abandoned"])
    p.add_argument("--mode", choices=["backtest", "paper", "live"])
    p.add_argument("--kind", choices=["run", "sweep", "validation", "paper", "live"],
                   help="what made it: a single run, a sweep, a validation, a session")
    p.add_argument("--since", metavar="WHEN", help="started at or after WHEN: a time "
                   "(2026-01-31, 2026-01-31T12:00; UTC unless it says) or a duration back "
                   "from now (2h, 3d)")
    p.add_argument("--sweep", metavar="NAME", help="only the runs of this sweep (its name, "
                   "or its id or a prefix of it)")
    p.set_defaults(func=command("quorum.cli_store:cmd_runs"))

    p = sub.add_parser("show", help="provenance and summary of one run")
    p.add_argument("run_id", help="run id or a unique prefix of it")
    db_option(p)
    p.add_argument("--config", action="store_true", help="also print the resolved config")
    p.add_argument("--routing", action="store_true",
                   help="also print routing by venue and symbol, success rate, routing time")
    p.add_argument("--metrics", action="store_true",
                   help="also print every metric and the per-regime, per-agent, per-venue "
                        "and per-risk-check tables (the numbers of `quorum report`)")
    p.add_argument("--health", action="store_true", help="also print the health timeline")
    p.add_argument("--alerts", action="store_true", help="also print the alerts raised")
    p.add_argument("--tools", action="store_true",
                   help="also print tool feedback: calls, success, latency per service/venue")
    p.set_defaults(func=command("quorum.cli_store:cmd_show"))
    from quorum.observe import add_parsers as add_observe_parsers

    add_observe_parsers(sub, db_option)

    p = sub.add_parser("query", help="run SQL against the store")
    p.add_argument("sql")
    db_option(p)
    p.add_argument("--csv", action="store_true", help="CSV instead of a table")
    p.set_defaults(func=command("quorum.cli_store:cmd_query"))

    p = sub.add_parser("report", help="self-contained HTML report of one run, with PNGs")
    p.add_argument("run_id", help="run id or a unique prefix of it")
    db_option(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: report_RUN_ID)")
    p.set_defaults(func=command("quorum.cli_store:cmd_report"))

    p = sub.add_parser("compare", help="metrics side by side and overlaid equity of runs")
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID", help="run ids or unique prefixes")
    db_option(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: compare_IDS)")
    p.add_argument("--regimes", action="store_true",
                   help="also write the regime matrix (Sharpe, return, max drawdown per "
                        "regime label)")
    p.add_argument("--by", choices=["scenario", "config", "run"], default="run",
                   help="regime matrix rows: each run apart (the default), or runs pooled "
                        "by scenario or by config (agents and their params, consensus, "
                        "policy, risk)")
    p.add_argument("--farms", action="store_true",
                   help="put the farms of the run(s) side by side instead of the runs: "
                        "per-farm metrics and equity over starting capital")
    p.set_defaults(func=command("quorum.cli_store:cmd_compare"))

    p = sub.add_parser("parity", help="replay a paper or live session through the backtest "
                       "and explain every difference, stage by stage (HTML report)")
    p.add_argument("run_id", nargs="?", metavar="LIVE_RUN",
                   help="the session's run id or a unique prefix (default: the latest "
                        "paper or live session)")
    db_option(p)
    p.add_argument("--out", metavar="DIR", help="output directory (default: parity_RUN_ID)")
    p.add_argument("--latency-tolerance", type=float, default=100.0, metavar="MS",
                   help="a fill's venue latency beyond the model's by more than this is a "
                        "divergence (default 100)")
    p.set_defaults(func=command("quorum.cli_store:cmd_parity"))

    p = sub.add_parser("bench", help="benchmarks: throughput, a scenario's stages, live")
    p.add_argument("which", metavar="throughput|live|SCENARIO",
                   help="the built-in throughput bench, the live path (with --fake), or "
                        "a scenario file: latency per stage, throughput, peak memory")
    p.add_argument("--bars", type=int, default=None,
                   help="bars (throughput: 1,000,000; a scenario: its generated sources)")
    p.add_argument("--agents", type=int, default=1, choices=[1, 4])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--db", default=None, metavar="PATH",
                   help="store to write to (default: a temporary file)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (scenario)")
    p.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    p.add_argument("--stress", nargs="+", metavar="KEY=N,N",
                   help="agents=1,2,4 symbols=1,4: replicate agents and symbols on a grid")
    p.add_argument("--out", default="bench_out", metavar="DIR",
                   help="where --stress writes bench_stress.png and .csv")
    p.add_argument("--against", metavar="REF",
                   help="a commit (exported to a temporary tree) or another scenario "
                        "file: the same bench in the same run, and the ratios")
    p.add_argument("--fake", action="store_true", help="bench live: the fake exchange")
    p.add_argument("--per-bar", action="store_true",
                   help="bench throughput: the per-bar loop (A/B against the fast path)")
    p.set_defaults(func=command("quorum.cli_run:cmd_bench"))

    p = sub.add_parser("validate", help="run the regime suite with a scenario's trading "
                       "config and record the promotion-gate verdict (exit 1 if it fails)")
    p.add_argument("scenario", help="scenario TOML file")
    db_option(p)
    p.add_argument("--suite", metavar="FILE",
                   help="suite TOML (default: scenarios/regimes/suite.toml)")
    p.add_argument("--thresholds", metavar="FILE",
                   help="thresholds TOML (default: max_drawdown 0.30, min_sharpe -1.0 per "
                        "regime, min_mean_sharpe 0.0)")
    p.set_defaults(func=command("quorum.cli_run:cmd_validate"))

    p = sub.add_parser("live", help="trade a validated scenario on live market data "
                       "(--paper: fills simulated by the scenario's venues; --venue NAME: "
                       "a real account there; --venues: one per scenario venue)")
    p.add_argument("scenario", help="scenario TOML file")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--paper", action="store_true",
                     help="live data (of --feed), simulated fills (the scenario's venue "
                          "model)")
    how.add_argument("--venue", metavar="NAME",
                     help="trade a real account at venue NAME: hyperliquid or ostium (keys "
                          "from the environment, e.g. $QUORUM_HL_SECRET_KEY, never from a "
                          "file or the command line)")
    how.add_argument("--venues", action="store_true",
                     help="trade the account each scenario venue is bound to in its "
                          "[live.venues.NAME] tables, in one session (orders fall back to "
                          "another venue when one cannot be reached)")
    p.add_argument("--feed", metavar="NAME",
                   help="with --paper: the venue whose market data it trades on "
                        "(hyperliquid, ostium; default: hyperliquid, or the first of the "
                        "scenario's [live.venues] when it has them)")
    p.add_argument("--resume", metavar="RUN_ID",
                   help="continue this live run (default: the scenario's last live run "
                        "when it is unfinished)")
    p.add_argument("--testnet", action="store_true",
                   help="the venue's test network (default: mainnet)")
    db_option(p)
    p.add_argument("--kill-file", metavar="PATH",
                   help="the file that pulls the kill switch (default: the store's name "
                        "with .kill, e.g. runs.kill)")
    p.add_argument("--override-gate", metavar="REASON",
                   help="start although the promotion gate refuses (logged and stored)")
    p.add_argument("--max-bars", type=int, metavar="N",
                   help="end after N live bars per symbol (default: run until Ctrl-C)")
    p.add_argument("--capital-from-account", action="store_true",
                   help="with --venue: trade an account holding less than the scenario's "
                        "initial_cash, sized from what it holds (stored with the session)")
    p.add_argument("--url", metavar="URL",
                   help="the venue's base URL (Hyperliquid: REST, its /ws the stream; "
                        "default $QUORUM_HL_URL, $QUORUM_OSTIUM_URL, else the network's "
                        "public API)")
    p.add_argument("--api", metavar="[HOST:]PORT",
                   help="serve the control API, the live stream and the dashboard in the "
                        "session's process (e.g. 127.0.0.1:8765; beyond loopback needs keys)")
    p.add_argument("--keys", metavar="FILE", help="API key file (default $QUORUM_KEYS, else "
                   ".quorum/keys.toml)")
    p.add_argument("--api-rate", metavar="RATE[:BURST]",
                   help="control calls per second per key, and the burst (default 5:20)")
    p.add_argument("--rehearse-every", metavar="DURATION",
                   help="with --venue: a dry run of the order path (prepare, sign, encode; "
                        "nothing sent) this often, e.g. 1ms, so it runs warm when a market "
                        "event comes; costs CPU (default: off; see BENCHMARKS.md)")
    p.set_defaults(func=command("quorum.cli_live:cmd_live"))

    p = sub.add_parser("kill", help="pull the kill switch of a running live session")
    db_option(p)
    p.add_argument("--kill-file", metavar="PATH",
                   help="the session's kill file (default: the store's name with .kill)")
    p.set_defaults(func=command("quorum.cli_live:cmd_kill"))
    p = sub.add_parser("agent", help="steer the agents of a running live session: spawn, "
                                     "pause, resume, stop, update, kill")
    from quorum.agent_command import add_agent_arguments

    add_agent_arguments(p)
    db_option(p)
    p.set_defaults(func=command("quorum.cli_live:cmd_agent"))
    p = sub.add_parser("sweep", help="run a sweep over parameters, regimes and seeds; rank, "
                                     "walk forward, regime matrix")
    p.add_argument("sweep", help="sweep TOML file, e.g. scenarios/sweeps/regimes_grid.toml")
    p.add_argument("--db", "--store", dest="db", default=None, metavar="PATH",
                   help=_DB_HELP + "; runs already in it are not made again")
    p.add_argument("--workers", type=int, metavar="N",
                   help="local worker processes (default: every core; 1 runs in this process)")
    p.add_argument("--cluster", metavar="tcp://HOST:PORT",
                   help="run on a dask.distributed cluster (its scheduler address) instead")
    p.add_argument("--commit-every", type=_seconds, default=2.0, metavar="SECONDS",
                   help="store finished runs together at most this often (default 2; 0: "
                        "each at once, slower: a DuckDB commit costs as much as a few "
                        "short runs); with workers, the last few runs are stored as they "
                        "come, in one commit at the end; an interrupted sweep keeps what "
                        "was stored")
    p.add_argument("--out", metavar="DIR", help="also write the sweep's HTML report, "
                   "ranking.csv, the regime matrix and, with walk_forward, walk_forward.csv "
                   "and stability.csv")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="parameter sets shown in the table and the regime matrix (default 10)")
    p.add_argument("--run-reports", type=int, default=1, metavar="N",
                   help="with --out: also write the report of every run of the N best "
                        "sets, linked from the sweep's HTML page (default 1; 0: none)")
    p.add_argument("--retry-failed", action="store_true",
                   help="run failed runs again (by default a stored failure is final)")
    p.add_argument("--reuse-stale", action="store_true",
                   help="keep stored runs made by other code (an edited agent, another "
                        "Quorum) instead of running them again; the ranking marks them")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--prescreen", type=_positive_int, metavar="N",
                   help="rank every parameter set with vectorbt on the agents' batch "
                        "signals first, run only the top N sets through the engine, and "
                        "report the rank agreement per regime")
    p.set_defaults(func=command("quorum.sweep_entry:cmd_sweep"))  # the pool, then cli_run

    agents = sub.add_parser("agents", help="the agent library")
    agents_sub = agents.add_subparsers(dest="agents_command", metavar="COMMAND", required=True,
                                       parser_class=_Parser)
    p = agents_sub.add_parser("list", help="every agent type with its parameters and defaults")
    p.set_defaults(func=command("quorum.cli_data:cmd_agents_list"))

    data = sub.add_parser("data", help="market data files: generate, inspect, calibrate, "
                                       "compare")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True,
                                   parser_class=_Parser)
    p = data_sub.add_parser("inspect", help="statistics, gaps and regimes of a bar file")
    p.add_argument("file", help="OHLCV bars, CSV or Parquet")
    p.add_argument("--symbol", help="symbol name (default: the file name without suffix)")
    p.add_argument("--interval", metavar="DURATION",
                   help="expected bar spacing for the gap report, e.g. 5m (default: the "
                        "median spacing)")
    p.add_argument("--out", metavar="DIR", help="also write a price chart with regimes shaded")
    p.set_defaults(func=command("quorum.cli_data:cmd_data_inspect"))

    p = data_sub.add_parser("generate", help="write a seeded regime series to a file")
    p.add_argument("regime", help="trend_up, trend_down, ranging, high_volatility, crash, "
                                  "regime_switching, or calibrated (with --model)")
    p.add_argument("--model", metavar="MODEL.toml",
                   help="with calibrated: the model from quorum data calibrate")
    p.add_argument("--bars", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, metavar="FILE", help=".csv or .parquet; with "
                   "several symbols one file each, named FILE_SYMBOL.ext")
    p.add_argument("--symbols", help="comma-separated (default SYN; calibrated: the "
                                     "model's symbols)")
    p.add_argument("--interval", help="bar spacing (default 1m; calibrated: the model's)")
    p.add_argument("--start", default="2024-01-01T00:00:00Z")
    p.add_argument("--price", type=float,
                   help="start price (default 100; calibrated: each source's first close)")
    p.add_argument("--generator-version", type=int, choices=[1, 2],
                   help="default 2: with stylized facts (fat tails, clustering, reversal; "
                        "--param stylized={...}); 1: the textbook models of older runs")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="regime parameter, value in TOML syntax (repeatable)")
    p.set_defaults(func=command("quorum.cli_data:cmd_data_generate"))
    from quorum.data_model import add_parsers as add_model_parsers

    add_model_parsers(data_sub)
    from quorum.sandbox import add_parser as add_sandbox_parser

    add_sandbox_parser(sub)
    from quorum.api.serve import add_parsers as add_api_parsers

    add_api_parsers(sub)
    _add_debug(parser)
    return parser


def _add_debug(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on every command: a failure's full traceback (the file and line of an
    agent's own code), then the usual one line."""
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        if not any("--debug" in a.option_strings for a in parser._actions):
            parser.add_argument("--debug", action="store_true",
                                help="on failure, print the full traceback first")
        return
    for action in actions:
        for child in dict.fromkeys(action.choices.values()):
            _add_debug(child)


def _print_traceback(args: argparse.Namespace, exc: BaseException) -> None:
    """With ``--debug``: the traceback of what failed (a wrapped run error's cause)."""
    if not getattr(args, "debug", False):
        return
    import traceback

    shown = exc.__cause__ if isinstance(exc, _run_failed()) and exc.__cause__ else exc
    traceback.print_exception(shown, file=sys.stderr)


def _choose_store(args: argparse.Namespace) -> None:
    """``args.db`` when ``--db`` was not given: the project's store (``quorum.store_path``),
    said on stderr; a command that writes makes its ``.quorum/`` folder."""
    from quorum.store_path import default_store, shown

    if getattr(args, "db", "") is not None or args.command == "bench":
        return
    chosen = default_store()
    args.db = shown(chosen.path)
    if args.command in RUN_COMMANDS:
        chosen.path.parent.mkdir(parents=True, exist_ok=True)
    print(f"quorum: store {args.db} ({chosen.why})", file=sys.stderr, flush=True)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0.0:  # NaN too
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def _bad_input() -> tuple[type[BaseException], ...]:
    """What exits 2 (imported only when something was raised)."""
    from quorum.cli_common import UsageError
    from quorum.outcomes import BAD_INPUT

    return (*BAD_INPUT, UsageError)


def _run_failed() -> type[BaseException]:
    from quorum.outcomes import RunFailed

    return RunFailed


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stoppable = args.command in RUN_COMMANDS
    try:
        _choose_store(args)
        with (agent_import_path(args),  # module:Class agents beside the scenario, then here
              signals.interrupts_as_keyboard_interrupt() if stoppable else nullcontext()):
            return args.func(args)
    except _bad_input() as exc:
        _print_traceback(args, exc)
        print(f"quorum: error: {exc}", file=sys.stderr)
        return 2
    except _run_failed() as exc:
        _print_traceback(args, exc)
        print(f"quorum: run failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        from quorum.outcomes import Interrupted

        print(f"quorum: {exc}" if isinstance(exc, Interrupted) else
              "quorum: interrupted; what was computed is stored, run marked interrupted",
              file=sys.stderr)
        return signals.interrupted_exit_code()
    except Exception as exc:
        from sim.store import is_interrupt, one_line

        if is_interrupt(exc) or (stoppable and signals.received()):
            print(f"quorum: interrupted ({type(exc).__name__}: {one_line(exc)})",
                  file=sys.stderr)
            return signals.interrupted_exit_code()
        if os.environ.get("QUORUM_TRACEBACK"):
            raise
        _print_traceback(args, exc)
        print(f"quorum: {args.command} failed: {type(exc).__name__}: {one_line(exc)} "
              "(a bug: --debug shows where)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
