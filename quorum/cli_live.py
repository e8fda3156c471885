"""The live session commands: ``quorum live`` (paper or on venue accounts), ``kill`` and
``agent``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from quorum.cli_common import (
    UsageError,
    _console,
)
from quorum.outcomes import BAD_INPUT, RunFailed
from sim.config import load_scenario
from sim.runner import RunResult
from sim.store import DuckDBStore


def cmd_live(args: argparse.Namespace) -> int:
    """A paper or real-venue session; exit 2 before connecting when the gate or the input
    refuses. SIGTERM stops it as Ctrl-C does (``quorum.signals``)."""
    from live.capital import describe
    from live.venues import kind_of
    from quorum.live import (
        check_live_config,
        check_real_venue_config,
        default_kill_file,
        open_venue_session,
        paper_session,
        run_to_resume,
        without_log,
    )
    from quorum.live_accounts import plan_session
    from quorum.signals import run_interruptible
    from research.validation import check_promotion

    real = not args.paper
    if args.feed is not None and real:
        raise UsageError("--feed chooses a paper session's market data: use it with --paper "
                         "(--venue NAME trades on NAME's)")
    if args.venues and (args.url or args.testnet):
        raise UsageError("--venues: each venue's url and testnet are set in the scenario's "
                         "[live.venues.NAME] (or $QUORUM_HL_URL, $QUORUM_OSTIUM_URL)")
    if args.max_bars is not None and args.max_bars < 1:
        raise UsageError(f"--max-bars must be >= 1, got {args.max_bars}")
    if args.resume is not None and not real:
        raise UsageError("--resume continues a run on a real venue: use it with --venue")
    if args.capital_from_account and not real:
        raise UsageError("--capital-from-account sizes from a real account: use it with "
                         "--venue")
    rehearse_every_s = _rehearse_every(args)
    config = load_scenario(args.scenario)
    try:
        plan = plan_session(config, paper=args.paper, venue=args.venue or args.feed,
                            venues=args.venues, testnet=args.testnet, url=args.url)
    except ValueError as exc:  # a key missing from the environment
        raise UsageError(str(exc)) from None
    hl = plan.feed
    check_live_config(config, kind_of(hl))
    if real:
        check_real_venue_config(config)
    clock = None
    if args.url or hl.rest_url.startswith("http://"):  # a local venue: a sandbox?
        # a ``quorum sandbox`` plays its market on its own clock: run on it
        from live.hyperliquid.fake.sandbox import probe_clock

        clock = probe_clock(hl.rest_url)
    kill_file = Path(args.kill_file) if args.kill_file else default_kill_file(args.db)
    if kill_file.exists():
        raise UsageError(f"kill file {kill_file} exists (the kill switch was pulled); "
                         "remove it to start a session")
    if args.override_gate is not None and not args.override_gate.strip():
        raise UsageError("--override-gate needs a reason")
    api = None
    if args.api is not None:  # address and keys checked before anything connects
        from quorum.api.server import SessionApi

        api = SessionApi(args)
    with DuckDBStore(args.db) as store, _closing(api):
        resume_run = run_to_resume(store, config, args.resume) if real else None
        with without_log("research.validation"):  # the override is printed below, once
            verdict = check_promotion(store, config, override_reason=args.override_gate)
        if not verdict.allowed:
            raise UsageError(f"promotion gate refused {config.name!r}: {verdict.reason}")
        if not verdict.overridden:  # which suite and thresholds it passed
            print(f"quorum live: gate: {verdict.reason}", file=sys.stderr, flush=True)
        for warning in verdict.warnings:
            print(f"quorum live: warning: {warning}", file=sys.stderr)
        if verdict.overridden:
            print(f"quorum live: PROMOTION GATE OVERRIDDEN for {config.name!r} "
                  f"(config {verdict.config_hash}): {verdict.reason.removeprefix('OVERRIDDEN: ')}"
                  f" -- reason given: {args.override_gate.strip()} (stored as validation "
                  f"{verdict.validation_id})", file=sys.stderr, flush=True)
        mode = "live" if real else "paper"
        run_ids: list[str] = []  # the session's run, once it has one

        def announce(run_id: str, resumed: bool = False, recovered: int = 0) -> None:
            what = (f"RESUMING live run {run_id} ({recovered} order(s) to resolve at the "
                    "venue)" if resumed else f"{mode} session {run_id}")
            print(f"quorum live: {what} on {plan.title} "
                  f"({hl.rest_url}); gate: {verdict.reason}; kill switch: "
                  f"`quorum kill --kill-file {kill_file}` or kill -USR1 {os.getpid()}",
                  file=sys.stderr, flush=True)

        async def trade() -> RunResult:
            first = plan.accounts[0]
            session = await open_venue_session(
                config, store, hl, verdict, override_reason=args.override_gate,
                kill_file=kill_file, credentials=first.credentials, max_bars=args.max_bars,
                resume_run=resume_run, rehearse_every_s=rehearse_every_s,
                capital_from_account=args.capital_from_account, on_run=run_ids.append,
                clock=clock, on_runner=api.attach if api is not None else None,
                bus=api.bus if api is not None else None,
                accounts=plan.accounts if len(plan.accounts) > 1 else None)
            if session.capital is not None:
                names = "+".join(kind_of(a.settings).name for a in plan.accounts)
                print(describe(session.capital, names), file=sys.stderr, flush=True)
            announce(session.runner.run_id, resume_run is not None, session.recovered)
            return await session.run()

        try:
            if not real:
                result = run_interruptible(paper_session(
                    config, store, hl, verdict, override_reason=args.override_gate,
                    kill_file=kill_file, max_bars=args.max_bars, on_start=announce,
                    on_run=run_ids.append, clock=clock,
                    on_runner=api.attach if api is not None else None,
                    bus=api.bus if api is not None else None))
            else:
                result = run_interruptible(trade())
        except (*BAD_INPUT, KeyboardInterrupt):
            raise
        except Exception as exc:  # one line; "stored as failed" only if it is
            raise RunFailed(_failed_session(store, run_ids, exc, args.db)) from exc
    _console().print(f"run id: {result.run_id}  ({result.bars} bars, mode {mode}, "
                     f"store: {args.db})")
    return 0


@contextmanager
def _closing(api: Any) -> Iterator[None]:
    """Stop a session's API server (if any) when the session's block ends."""
    try:
        yield
    finally:
        if api is not None:
            api.close()


def _failed_session(store: DuckDBStore, run_ids: list[str], exc: Exception, db: str) -> str:
    """What ``quorum live`` says when its session failed: why, and where the run is."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    what = f"{type(exc).__name__}: {first}"
    status = None
    if run_ids:
        row = store.con.execute("SELECT status FROM runs WHERE run_id = ?",
                                [run_ids[-1]]).fetchone()
        status = None if row is None else row[0]
    if status is None:
        return f"{what} (nothing stored)"
    return f"{what} (run {run_ids[-1]}, stored as {status}; quorum show {run_ids[-1]} --db {db})"


def _rehearse_every(args: argparse.Namespace) -> float | None:
    """``--rehearse-every`` in seconds (None: off), checked: 100us..1s, real venue only."""
    from sim.config_base import parse_duration

    if args.rehearse_every is None:
        return None
    if args.paper:
        raise UsageError("--rehearse-every keeps a real venue's order path warm: use it "
                         "with --venue")
    try:
        ns = parse_duration(args.rehearse_every)
    except ValueError as exc:
        raise UsageError(f"--rehearse-every: {exc}") from None
    if not 100_000 <= ns <= 1_000_000_000:
        raise UsageError(f"--rehearse-every must be between 100us and 1s, got "
                         f"{args.rehearse_every!r}")
    return ns / 1e9


def cmd_kill(args: argparse.Namespace) -> int:
    from live.kill import pull
    from quorum.live import default_kill_file

    path = pull(Path(args.kill_file) if args.kill_file else default_kill_file(args.db))
    _console().print(f"kill switch pulled: {path} (a session watching it stops adding "
                     "exposure; remove the file before the next session)")
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from quorum.agent_command import send_agent_command

    return send_agent_command(args, _console(), UsageError)
