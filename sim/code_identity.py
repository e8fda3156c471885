"""Which code made a run: Quorum's own source and the user modules its agents come from.

A run's numbers depend on the code as much as on its config and data, so the code is part
of what a run is (``sim.run_identity``). It is counted by content, never by path, commit
or time, so the same code in another checkout (or installed from a wheel, with no git at
all) is the same code, and undoing an edit gives the old identity back:

* ``quorum``: sha256 over every ``.py`` file of the packages a backtest's numbers come
  from (``sim/``: the kernel and the agents shipped with it; ``reports/``: the metrics a
  sweep stores per run), each by its path inside the package and its content. ``live/``
  and ``quorum/`` only wire components and are left out, so a CLI edit remakes nothing.
* ``modules``: for an agent loaded as ``module:Class`` (or a ``module:Class`` parameter
  such as ``ml_logistic``'s ``estimator``), the sha256 of that module's file and, found
  by reading its ``import`` statements, of every user module it imports, transitively.
  A user module is one outside the standard library, site-packages and Quorum itself;
  an import made at run time by name (``importlib.import_module``) is not seen.

Quorum's version and git commit (with ``-dirty``) are kept with each run as
``runs.code_version`` for people to read; they are not part of the identity.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
import re
import site
import sysconfig
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUORUM_PACKAGES = ("sim", "reports")  # what a backtest's numbers are computed by
_OWN_PACKAGES = ("sim", "research", "reports", "live", "quorum")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes; read once per (path, size, modification time)."""
    st = os.stat(path)
    return _digest(os.fspath(path), st.st_size, st.st_mtime_ns)


@cache
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class CodeIdentity:
    quorum: str
    modules: dict[str, str] = field(default_factory=dict)

    @property
    def code_id(self) -> str:
        payload = json.dumps({"quorum": self.quorum, "modules": self.modules},
                             sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def source_digest(root: Path, packages: Sequence[str]) -> str:
    """sha256 over the ``.py`` files of ``packages`` under ``root``: relative path and
    content of each, in sorted order (caches and other files do not count)."""
    h = hashlib.sha256()
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            h.update(f"{path.relative_to(root).as_posix()}\0{file_digest(path)}\n".encode())
    return h.hexdigest()


@cache
def quorum_digest() -> str:
    """Quorum's own code, once per process (the code this process runs)."""
    return source_digest(ROOT, QUORUM_PACKAGES)


def code_identity(agents: Iterable[Mapping[str, Any]]) -> CodeIdentity:
    """The code of a run whose agents are ``agents`` (``ScenarioConfig.agents`` dumped, or
    ``runs.config``'s ``agents``: ``kind`` and ``params`` are read)."""
    return CodeIdentity(quorum_digest(), user_modules(agent_modules(agents)))


def agent_modules(agents: Iterable[Mapping[str, Any]]) -> list[str]:
    """The modules named by the agents' ``module:Class`` kinds and parameters."""
    from sim.agents.base import registered_agents

    registered = registered_agents()
    names: list[str] = []
    for agent in agents:
        targets = [registered.get(str(agent.get("kind", "")), str(agent.get("kind", "")))]
        params = agent.get("params") or {}
        targets += [v for v in params.values() if isinstance(v, str)]
        names += [t.partition(":")[0] for t in targets if _TARGET.match(t)]
    return list(dict.fromkeys(names))


def user_modules(names: Iterable[str]) -> dict[str, str]:
    """``{module: sha256 of its file}`` for each user module among ``names`` and every
    user module they import, transitively; other modules are left out."""
    out: dict[str, str] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        found = _user_file(name)
        if found is None:
            continue
        path, is_package = found
        out[name] = file_digest(path)
        todo.extend(_imported(name, is_package, path))
    return dict(sorted(out.items()))


@cache
def _not_user(name: str) -> bool:
    """Modules of the standard library, site-packages or Quorum do not move within a
    process: remembered. User modules are looked up each time (tests move them)."""
    found = _find(name)
    return found is None or _outside_user_code(found[0])


def _user_file(name: str) -> tuple[str, bool] | None:
    if _not_user(name):
        return None
    return _find(name)


def _find(name: str) -> tuple[str, bool] | None:
    try:
        spec = importlib.util.find_spec(name)
    except Exception:  # a parent package that fails to import: its run will say why
        return None
    if spec is None or not spec.has_location or not spec.origin:
        return None
    if not os.path.isfile(spec.origin):
        return None
    return spec.origin, spec.submodule_search_locations is not None


@cache
def _system_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    dirs.add(site.getusersitepackages())
    dirs.update(str(ROOT / p) for p in _OWN_PACKAGES)
    return tuple(os.path.realpath(d) + os.sep for d in dirs if d)


def _outside_user_code(path: str) -> bool:
    real = os.path.realpath(path)
    return real.startswith(_system_dirs())


def _imported(name: str, is_package: bool, path: str) -> list[str]:
    """Absolute names of the modules ``name`` (at ``path``) may import: each ``import``
    and ``from`` statement, relative ones resolved, ``from x import y`` as ``x`` and
    ``x.y`` (y may be a submodule)."""
    package = name if is_package else name.rpartition(".")[0]
    st = os.stat(path)
    out: list[str] = []
    for level, module, aliases in _imports(path, st.st_size, st.st_mtime_ns):
        if level:
            parts = package.split(".") if package else []
            if level - 1 > len(parts):
                continue
            base = ".".join(parts[:len(parts) - (level - 1)])
            module = ".".join(p for p in (base, module) if p)
        if not module:
            continue
        pieces = module.split(".")
        out += [".".join(pieces[:i]) for i in range(1, len(pieces) + 1)]
        out += [f"{module}.{a}" for a in aliases if a != "*"]
    return out


@cache
def _imports(path: str, size: int, mtime_ns: int) -> tuple[tuple[int, str, tuple[str, ...]],
                                                           ...]:
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (SyntaxError, ValueError, OSError):
        return ()
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(0, a.name, ()) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", tuple(a.name for a in node.names)))
    return tuple(found)


def stale_reason(stored: Mapping[str, Any] | None, current: CodeIdentity) -> str | None:
    """Why the code a run was made by is not ``current`` (None: it is the same code).
    ``stored``: the run's ``run_code`` row (quorum, modules), None if it has none."""
    if stored is None:
        return "code unknown (stored by an older Quorum)"
    reasons = []
    if stored["quorum"] != current.quorum:
        reasons.append("Quorum's source differs")
    modules = stored["modules"]
    if isinstance(modules, str):
        modules = json.loads(modules)
    changed = sorted(m for m in set(modules) | set(current.modules)
                     if modules.get(m) != current.modules.get(m))
    if changed:
        reasons.append(f"module{'s' if len(changed) > 1 else ''} {', '.join(changed)} "
                       "differ" + ("" if len(changed) > 1 else "s"))
    return "; ".join(reasons) or None
