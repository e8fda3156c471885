"""API keys: roles, a key file that holds only hashes, constant-time checks.

A key is ``qk_<id>_<secret>``: ``id`` (8 hex) names it in audits and logs, ``secret`` (43
url-safe characters, 256 bits) is shown once, when the key is made, and never stored: the
key file keeps the SHA-256 of the whole key (a random 256-bit secret needs no slow hash).
Checking a key hashes it and compares with ``hmac.compare_digest``, also when its id is
unknown, so the time taken says nothing about which keys exist.

The key file is ``$QUORUM_KEYS``, else ``.quorum/keys.toml`` in the current directory.
Once it exists, every endpoint but the dashboard page and its assets needs a key.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROLES = ("viewer", "operator", "admin")  # each may do what the ones before it may
ENV_KEYS = "QUORUM_KEYS"
DEFAULT_KEYS = Path(".quorum") / "keys.toml"
_KEY = re.compile(r"^qk_([0-9a-f]{8})_[A-Za-z0-9_-]{43}$")
_DUMMY = hashlib.sha256(b"no such key").hexdigest()


class KeyFileError(ValueError):
    """The key file cannot be read or holds something else than keys."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    role: str
    sha256: str
    created: str


def default_key_file() -> Path:
    return Path(os.environ[ENV_KEYS]) if os.environ.get(ENV_KEYS) else DEFAULT_KEYS


def role_allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


class KeyStore:
    """The keys of one key file (none: the file does not exist, and no key is needed)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.keys: dict[str, ApiKey] = {}
        if path.exists():
            self.keys = _read(path)

    @property
    def required(self) -> bool:
        """Keys are needed once the key file exists (even with no key in it)."""
        return self.path.exists()

    def check(self, key: str | None) -> ApiKey | None:
        """The key's entry, or None; the same work whatever the key is."""
        if not key:
            hmac.compare_digest(_DUMMY, _DUMMY)
            return None
        match = _KEY.match(key)
        entry = self.keys.get(match.group(1)) if match else None
        ok = hmac.compare_digest(_digest(key), entry.sha256 if entry else _DUMMY)
        return entry if ok and entry is not None else None

    def add(self, role: str) -> str:
        """Make a key with ``role``, store its hash, return the key (shown once)."""
        if role not in ROLES:
            raise ValueError(f"--role {role!r}: expected one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(4)
        while key_id in self.keys:
            key_id = secrets.token_hex(4)
        key = f"qk_{key_id}_{secrets.token_urlsafe(32)}"
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.keys[key_id] = ApiKey(key_id, role, _digest(key), created)
        self._write()
        return key

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Quorum API keys: hashes only (quorum keys add prints a key once).", ""]
        for k in self.keys.values():
            lines += ["[[keys]]", f'id = "{k.key_id}"', f'role = "{k.role}"',
                      f'sha256 = "{k.sha256}"', f'created = "{k.created}"', ""]
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("\n".join(lines))
        os.replace(tmp, self.path)


def _read(path: Path) -> dict[str, ApiKey]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"key file {path}: {exc}") from None
    out: dict[str, ApiKey] = {}
    for i, row in enumerate(data.get("keys", [])):
        try:
            key = ApiKey(str(row["id"]), str(row["role"]), str(row["sha256"]),
                         str(row.get("created", "")))
        except (KeyError, TypeError):
            raise KeyFileError(f"key file {path}: keys.{i}: needs id, role and sha256") from None
        if key.role not in ROLES or not re.fullmatch(r"[0-9a-f]{64}", key.sha256):
            raise KeyFileError(f"key file {path}: keys.{i}: role must be one of "
                               f"{', '.join(ROLES)} and sha256 64 hex digits")
        out[key.key_id] = key
    return out
