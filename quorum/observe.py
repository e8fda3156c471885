"""``quorum logs`` and the observer parts of ``quorum run``/``quorum show``: the health
timeline, the alerts, tool feedback, the structured log (from the store, or followed
from a running session's log file beside it)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sim.monitor.logs import CATEGORIES, LEVELS, log_path, read_lines

PrintTable = Callable[..., None]


def print_observed(con: Any, run_id: str, args: argparse.Namespace,
                   print_table: PrintTable) -> None:
    """The ``--health``, ``--alerts`` and ``--tools`` parts of ``quorum show``."""
    from reports.observe import alerts, health_timeline, tool_feedback

    if getattr(args, "health", False):
        rows = health_timeline(con, run_id)
        print_table(rows or [{"health": "no health changes stored (not a watched run, or "
                                        "nothing left healthy)"}],
                    title="health timeline")
    if getattr(args, "alerts", False):
        rows = alerts(con, run_id)
        print_table(rows or [{"alerts": "no alerts stored"}], title="alerts")
    if getattr(args, "tools", False):
        rows = tool_feedback(con, run_id)
        print_table(rows or [{"tools": "no external service calls or venue orders"}],
                    title="tool feedback")


def print_run_alerts(con: Any, run_id: str, print_table: PrintTable, limit: int = 20) -> None:
    """After ``quorum run``: which alerts would have fired, and when."""
    from reports.observe import alerts

    rows = alerts(con, run_id)
    if not rows:
        print_table([{"alerts": "none fired"}], title="alerts")
        return
    shown = [{k: r[k] for k in ("ts", "severity", "source", "kind", "message")}
             for r in rows[:limit]]
    more = f" (first {limit} of {len(rows)}: quorum show RUN --alerts)" if len(rows) > limit \
        else ""
    print_table(shown, title=f"alerts{more}")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    from sim.config_base import parse_timestamp

    try:
        return datetime.fromtimestamp(parse_timestamp(text) / 1e9, UTC).replace(tzinfo=None)
    except ValueError as exc:
        raise ValueError(f"--since {text!r}: {exc}") from None


def _keep(record: dict[str, Any], args: argparse.Namespace, since_ns: int | None) -> bool:
    if args.level and LEVELS.get(record["level"], 0) < LEVELS[args.level]:
        return False
    if args.agent and record.get("agent") != args.agent:
        return False
    if args.category and record.get("category") != args.category:
        return False
    if since_ns is not None and record["ts_ns"] < since_ns:
        return False
    return not (args.grep and args.grep.lower() not in record["message"].lower())


def _emit(records: Iterable[dict[str, Any]], fmt: str, out: Any = None) -> None:
    out = out or sys.stdout
    writer = None
    for r in records:
        if fmt == "jsonl":
            out.write(json.dumps(r, default=str) + "\n")
        elif fmt == "csv":
            if writer is None:
                writer = csv.DictWriter(out, ["ts", "level", "category", "agent", "message",
                                              "data"], extrasaction="ignore")
                writer.writeheader()
            writer.writerow({**r, "data": json.dumps(r.get("data")) if r.get("data")
                             else ""})
        else:
            agent = f" [{r['agent']}]" if r.get("agent") else ""
            out.write(f"{r['ts']} {r['level'].upper():7} {r['category']:6}{agent} "
                      f"{r['message']}\n")
        out.flush()


def _from_store(args: argparse.Namespace) -> Iterator[dict[str, Any]] | None:
    """The run's records from the store; None when it cannot be opened (a session holds
    it: read its log file instead)."""
    from reports.observe import logs
    from sim.monitor.logs import iso
    from sim.store import DuckDBStore, StoreError

    try:
        store = DuckDBStore(args.db, read_only=True)
    except StoreError:
        return None
    with store:
        run_id = store.resolve_run_id(args.run_id)
        rows = logs(store.con, run_id, level=args.level, agent=args.agent,
                    category=args.category, since=_since(args.since), grep=args.grep)
    args.run_id = run_id
    out = []
    for r in rows:
        ts = r["ts"]
        ts_ns = int(ts.replace(tzinfo=UTC).timestamp() * 1e9)
        out.append({"ts": iso(ts_ns), "ts_ns": ts_ns, "level": r["level"],
                    "category": r["category"], "agent": r["agent"], "message": r["message"],
                    "data": json.loads(r["data"]) if r["data"] else None})
    return iter(out)


def _log_file(args: argparse.Namespace) -> Path:
    folder = log_path(args.db, "x").parent
    matches = sorted(folder.glob(f"{args.run_id}*.jsonl")) if folder.is_dir() else []
    if not matches:
        raise FileNotFoundError(f"no log file for run {args.run_id!r} in {folder}")
    if len(matches) > 1:
        raise ValueError(f"run id {args.run_id!r} is ambiguous ({len(matches)} log files)")
    return matches[0]


def follow(path: Path, poll_s: float = 0.5) -> Iterator[dict[str, Any]]:
    """Records appended to ``path`` from now on (a rotation starts a new file: reopen)."""
    handle = path.open(encoding="utf-8")
    inode = path.stat().st_ino
    while True:
        line = handle.readline()
        if line:
            if line.endswith("\n"):
                yield json.loads(line)
                continue
            handle.seek(handle.tell() - len(line))
        time.sleep(poll_s)
        try:
            if path.stat().st_ino != inode:
                handle.close()
                handle = path.open(encoding="utf-8")
                inode = path.stat().st_ino
        except FileNotFoundError:
            continue


def cmd_logs(args: argparse.Namespace) -> int:
    since = _since(args.since)
    since_ns = None if since is None else int(since.replace(tzinfo=UTC).timestamp() * 1e9)
    if not args.follow:
        from quorum.cli_common import UsageError

        records = _from_store(args) if Path(args.db).is_file() else None
        if records is None:
            try:
                path = _log_file(args)
            except (FileNotFoundError, ValueError) as exc:
                raise UsageError(str(exc)) from None
            records = (r for r in read_lines(path) if _keep(r, args, since_ns))
        _emit(records, args.format)
        return 0
    from quorum.cli_common import UsageError

    try:
        path = _log_file(args)
    except (FileNotFoundError, ValueError) as exc:
        raise UsageError(f"{exc} (-f follows a session's log file)") from None
    _emit((r for r in read_lines(path) if _keep(r, args, since_ns)), args.format)
    _emit((r for r in follow(path) if _keep(r, args, since_ns)), args.format)
    return 0


def add_parsers(sub: Any, db_option: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("logs", help="a run's structured log (-f: follow a running session)")
    p.add_argument("run_id", help="run id or a unique prefix of it")
    db_option(p)
    p.add_argument("--level", choices=tuple(LEVELS), help="this level and above")
    p.add_argument("--agent", help="one agent's lines")
    p.add_argument("--category", choices=CATEGORIES)
    p.add_argument("--since", metavar="TIME", help="from this time (ISO 8601, UTC)")
    p.add_argument("--grep", metavar="TEXT", help="lines containing TEXT (any case)")
    p.add_argument("--format", choices=("text", "jsonl", "csv"), default="text")
    p.add_argument("-f", "--follow", action="store_true",
                   help="follow the session's log file beside the store until Ctrl-C")
    p.set_defaults(func=cmd_logs)
