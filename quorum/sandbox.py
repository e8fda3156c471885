"""``quorum sandbox``: a local exchange that speaks the Hyperliquid API, for trying live
mode (paper, a venue session, the kill switch, a SIGKILL and resume) with no network and
no account. See ``live.hyperliquid.fake.sandbox`` for what it plays and how.

``--ostium``: a fake Ostium (``live.ostium.fake``) is served beside it, under ``/ostium``
of the same URL, its oracle following the same market (each price the sandbox quotes),
its clock the sandbox's, any address credited ``--fund`` USDC when first seen: a session
trading both venues at once (``quorum live --venues``) runs offline.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sim.config_base import ConfigError, parse_duration

if TYPE_CHECKING:  # the simulator is imported when the sandbox runs, not to parse
    from live.hyperliquid.fake.sandbox import Sandbox
    from sim.data import SymbolBars

DEFAULT_BARS = 20_000
DEFAULT_SYMBOLS = ("BTC", "ETH")
DEFAULT_PRICES = (60_000.0, 3_000.0)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="a local simulated Hyperliquid replaying bars, for "
                                       "live sessions offline (prints the --url to use)")
    p.add_argument("scenario", nargs="?", help="play this scenario's market data (the bars "
                   "its backtest sees); default: a generated regime-switching market")
    p.add_argument("--data", action="append", default=[], metavar="[SYMBOL=]FILE",
                   help="play recorded OHLCV bars (CSV or Parquet; the symbol defaults to "
                        "the file name); repeat for several symbols")
    p.add_argument("--interval", metavar="DURATION",
                   help="bar spacing of --data files (default: read from the file)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="replay X times faster than real time (default 1)")
    p.add_argument("--history", type=int, default=500, metavar="N",
                   help="bars already closed when it starts, for warm-ups (default 500)")
    p.add_argument("--fund", type=float, default=100_000.0, metavar="USDC",
                   help="USDC credited to any new signing key (default 100000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated market")
    p.add_argument("--ostium", action="store_true",
                   help="also serve a fake Ostium following the same market at URL/ostium "
                        "(for a two-venue session)")
    p.add_argument("--exit-when-done", action="store_true",
                   help="stop once the last bar has closed (default: serve until stopped)")
    p.set_defaults(func=cmd_sandbox)


def market(args: argparse.Namespace) -> list[SymbolBars]:
    """The bars to play: a scenario's, recorded files, or a generated market."""
    if args.scenario and args.data:
        raise ConfigError("give a scenario or --data files, not both")
    if args.scenario:
        from sim.config import load_scenario
        from sim.runner import RandomStreams, load_market_data

        config = load_scenario(args.scenario)
        streams = RandomStreams.spawn(config.seed, len(config.data), len(config.agents))
        return list(load_market_data(config, streams.data).bars)
    if args.data:
        from sim.loaders import load_file

        interval = parse_duration(args.interval) if args.interval else None
        out = []
        for item in args.data:
            symbol, _, path = item.rpartition("=")
            out.append(load_file(path, symbol or Path(path).stem, interval_ns=interval))
        return out
    import numpy as np

    from sim.regimes.generators import generate

    interval_ns = 60_000_000_000
    now = time.time_ns()
    start = now - now % interval_ns - args.history * interval_ns  # the sandbox clock ~ now
    rng = np.random.default_rng(args.seed)
    return [bars for symbol, price in zip(DEFAULT_SYMBOLS, DEFAULT_PRICES, strict=True)
            for bars in generate("regime_switching", DEFAULT_BARS, rng, symbols=(symbol,),
                                 price=price, start_ns=start, interval_ns=interval_ns)]


def _serve_ostium(sandbox: Sandbox, symbols: list[str], fund: float) -> None:
    """A fake Ostium under ``/ostium`` of the sandbox's server, following its quotes."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route

    from live.ostium.fake.exchange import FakeOstium

    pairs = tuple((symbol, i, 50.0, 5.0) for i, symbol in enumerate(symbols))
    ostium = FakeOstium(pairs=pairs, auto_fund=fund,
                        now_s=lambda: sandbox.clock.now_ns() // 1_000_000_000)
    sandbox.on_quote.append(ostium.set_price)

    async def clock(request: Request) -> Response:  # ``probe_clock``: the same clock
        body = await request.json()
        if not isinstance(body, dict) or body.get("type") != "quorumSandbox":
            return JSONResponse({"error": "unknown request"}, status_code=400)
        return JSONResponse(sandbox.describe())

    ostium.app.router.routes.append(Route("/info", clock, methods=["POST"]))
    sandbox.exchange.app.router.routes.append(Mount("/ostium", app=ostium.app))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from live.hyperliquid.fake.sandbox import Sandbox, wall_seconds

    bars = market(args)
    try:
        sandbox = Sandbox(bars, speed=args.speed, history=args.history, fund=args.fund)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if args.ostium:
        _serve_ostium(sandbox, [b.symbol for b in bars], args.fund)
    sandbox.start()
    to_play = sandbox.describe()["toPlay"]
    print(f"quorum sandbox: {sandbox.url}", flush=True)
    print(f"  {', '.join(b.symbol for b in bars)}: {sandbox.interval} candles; "
          f"{args.history} bars of history, {to_play} to play at {args.speed:g}x "
          f"({wall_seconds(sandbox):.0f} s)\n"
          f"  paper:  quorum live SCENARIO --paper --url {sandbox.url} --override-gate "
          "'sandbox'\n"
          f"  venue:  QUORUM_HL_SECRET_KEY=0x{secrets.token_hex(32)} quorum live SCENARIO "
          f"--venue hyperliquid --testnet --url {sandbox.url} --override-gate 'sandbox'\n"
          "  (any key trades: a new one is credited with "
          f"{args.fund:,.0f} USDC; Ctrl-C stops the sandbox)", file=sys.stderr, flush=True)
    if args.ostium:
        print(f"  ostium: {sandbox.url}/ostium (QUORUM_OSTIUM_URL; any address in "
              "QUORUM_OSTIUM_SANDBOX_ACCOUNT trades, credited the same)", file=sys.stderr,
              flush=True)
    try:
        while not sandbox.finished.wait(0.5):
            pass
        print("quorum sandbox: the last bar has closed", file=sys.stderr, flush=True)
        if not args.exit_when_done:
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
    return 0
