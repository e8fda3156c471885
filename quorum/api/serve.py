"""``quorum serve`` and ``quorum keys``: the API over a stored run store, and its keys."""

from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

from quorum.api.keys import ROLES, KeyFileError, KeyStore, default_key_file
from sim.config_base import ConfigError

DEFAULT_ADDRESS = ("127.0.0.1", 8765)


class ServeUsageError(ConfigError):
    """Bad input to serve/keys: one line, exit 2."""


def parse_address(text: str | None) -> tuple[str, int]:
    """``[HOST:]PORT`` (default 127.0.0.1:8765)."""
    if not text:
        return DEFAULT_ADDRESS
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ServeUsageError(f"--api {text!r}: expected [HOST:]PORT") from None
    if not 0 <= number <= 65_535:
        raise ServeUsageError(f"--api {text!r}: port must be 0..65535")
    return (host or DEFAULT_ADDRESS[0]), number


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_keys(path: str | None) -> KeyStore:
    try:
        return KeyStore(Path(path) if path else default_key_file())
    except KeyFileError as exc:
        raise ServeUsageError(str(exc)) from None


def check_binding(host: str, keys: KeyStore) -> None:
    """Only loopback without keys: anything else would hand the store to the network."""
    if not is_loopback(host) and not keys.required:
        raise ServeUsageError(
            f"--api {host}: binding beyond loopback needs API keys (quorum keys add --role "
            f"viewer; key file {keys.path})")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the API (OpenAPI at /docs) over a run store, "
                                     "read-only, with no session running")
    p.add_argument("--db", required=True, metavar="PATH", help="the DuckDB run store")
    p.add_argument("--api", metavar="[HOST:]PORT",
                   help="where to listen (default 127.0.0.1:8765; beyond loopback needs keys)")
    p.add_argument("--keys", metavar="FILE",
                   help="API key file (default $QUORUM_KEYS, else .quorum/keys.toml)")
    p.set_defaults(func=cmd_serve)
    keys = sub.add_parser("keys", help="API keys (hashed in a key file)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    add = keys_sub.add_parser("add", help="make a key and print it once")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--keys", metavar="FILE",
                     help="API key file (default $QUORUM_KEYS, else .quorum/keys.toml)")
    add.set_defaults(func=cmd_keys_add)
    listing = keys_sub.add_parser("list", help="the keys' ids and roles (never the keys)")
    listing.add_argument("--keys", metavar="FILE")
    listing.set_defaults(func=cmd_keys_list)
    from quorum.api.console import add_parser as add_console_parser

    add_console_parser(sub)


def cmd_keys_add(args: argparse.Namespace) -> int:
    store = load_keys(args.keys)
    key = store.add(args.role)
    print(key)
    print(f"quorum keys: a {args.role} key, stored hashed in {store.path}; it is shown "
          "this once", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    store = load_keys(args.keys)
    if not store.keys:
        print(f"no keys in {store.path}")
    for key in store.keys.values():
        print(f"{key.key_id}  {key.role:<8}  {key.created}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import time

    import duckdb

    from quorum.api.app import create_app
    from quorum.api.reads import StoreReader
    from quorum.api.server import ApiServer

    host, port = parse_address(args.api)
    keys = load_keys(args.keys)
    check_binding(host, keys)
    if not Path(args.db).exists():
        raise ServeUsageError(f"no run store at {args.db}")
    con = duckdb.connect(args.db, read_only=True)
    app = create_app(StoreReader(con), keys, mode="read-only", store=str(args.db))
    server = ApiServer(app, host, port).start()
    print(f"quorum serve: http://{host}:{server.port} (OpenAPI at /docs; store {args.db}, "
          f"read-only; keys {'required' if keys.required else 'off, loopback only'}; "
          "Ctrl-C stops)", flush=True)
    try:
        while server.thread.is_alive():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        con.close()
    return 0
