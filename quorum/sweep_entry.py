"""``quorum sweep``'s first steps: check the arguments, start the local worker pool, then
import and run the rest (``quorum.sweep_command``).

The pool starts before the CLI imports the simulator, loads the sweep and plans it (about
a second of the driver's CPU): the workers import what a run needs meanwhile, on the other
cores, and take the first tasks as soon as there are some. A sweep that fails to load,
has nothing left to run, or is interrupted first stops the pool (``ProcessPool``'s
``release`` and ``close``): no worker outlives the command.

Kept light: it imports nothing heavier than ``research.sweep_pool`` (the standard
library) before the pool is started.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext

from research.sweep_pool import ProcessPool, default_workers


class SweepUsageError(ValueError):
    """Bad command-line input for the sweep (exit 2)."""


def check_arguments(args: argparse.Namespace) -> None:
    """The flags' checks that need no file (bad input: ``SweepUsageError``)."""
    if args.cluster is not None and args.workers is not None:
        raise SweepUsageError("--workers does not apply with --cluster (the cluster's "
                              "workers run the sweep)")
    if args.workers is not None and args.workers < 1:
        raise SweepUsageError(f"--workers must be >= 1, got {args.workers}")
    if args.top < 1:
        raise SweepUsageError(f"--top must be >= 1, got {args.top}")


def local_workers(args: argparse.Namespace) -> int:
    """How many local worker processes the sweep's runs get: 0 when it has no pool (a
    cluster runs them, or one worker: this process)."""
    if args.cluster is not None:
        return 0
    n = args.workers or default_workers()
    return n if n > 1 else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    try:
        check_arguments(args)
    except SweepUsageError as exc:
        from quorum.cli_common import UsageError

        raise UsageError(str(exc)) from None
    workers = local_workers(args)
    with ProcessPool(workers) if workers else nullcontext() as pool:
        from quorum.cli_run import cmd_sweep as run_sweep

        return run_sweep(args, pool)
