"""Who is asking, and may they: the ``X-API-Key`` check and the role a route needs, as
FastAPI dependencies shared by every router of the app; and the one error shape.

(No ``from __future__ import annotations``: FastAPI reads the dependencies' annotations.)
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from quorum.api.keys import KeyStore, role_allows


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking: the key's id (None when no keys are configured) and role."""

    key_id: str | None
    role: str

    @property
    def actor(self) -> str:
        """How a command names its sender in ``agent_events`` (a key's id, never the
        key)."""
        return f"api:{self.key_id}" if self.key_id else "api"


def error(status: int, code: str, message: str, field: str | None = None,
          **extra: Any) -> JSONResponse:
    """The one error shape: ``{"error": {status, code, message, field}}`` (``extra``:
    more top-level members, e.g. a rejected command's stored ``outcome``)."""
    return JSONResponse({"error": {"status": status, "code": code, "message": message,
                                   "field": field}, **extra}, status_code=status)


class Access:
    """The key store's checks as dependencies: ``require("operator")`` is one."""

    def __init__(self, keys: KeyStore) -> None:
        self.keys = keys

    def identify(self, key: str | None) -> Caller | None:
        """The caller a key makes (admin with no key file), or None for a bad key."""
        if not self.keys.required:
            return Caller(None, "admin")
        entry = self.keys.check(key)
        return None if entry is None else Caller(entry.key_id, entry.role)

    # Both dependencies are coroutines: a key check is a hash and a compare, and FastAPI
    # runs a plain function dependency on its thread pool (two thread hand-overs per
    # request, on the interpreter lock the trading loop shares).
    async def caller(self, request: Request) -> Caller:
        who = self.identify(request.headers.get("x-api-key"))
        if who is None:
            raise HTTPException(401, "a valid X-API-Key header is needed")
        return who

    def require(self, role: str) -> Callable[..., Any]:
        async def check(who: Annotated[Caller, Depends(self.caller)]) -> Caller:
            if not role_allows(who.role, role):
                raise HTTPException(403, f"role {who.role!r} may not do this (needs {role})")
            return who
        return check
