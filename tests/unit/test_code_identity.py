"""The code part of a run's identity (sim.code_identity): by content, never by path, so
another checkout of the same code is the same code and an edit anywhere in what a run
executes is not."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from sim.code_identity import (
    CodeIdentity,
    agent_modules,
    code_identity,
    quorum_digest,
    source_digest,
    stale_reason,
    user_modules,
)


def _package(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "a.py").write_text("X = 1\n")
    (root / "pkg" / "sub" / "b.py").write_text("Y = 2\n")
    (root / "pkg" / "notes.txt").write_text("not code\n")
    return root


def test_source_digest_follows_content_not_location(tmp_path: Path) -> None:
    one = _package(tmp_path / "one")
    two = tmp_path / "elsewhere" / "two"
    shutil.copytree(one, two)
    assert source_digest(one, ["pkg"]) == source_digest(two, ["pkg"])
    (two / "pkg" / "notes.txt").write_text("other notes\n")  # not code: no change
    assert source_digest(one, ["pkg"]) == source_digest(two, ["pkg"])
    (two / "pkg" / "sub" / "b.py").write_text("Y = 3\n")
    assert source_digest(one, ["pkg"]) != source_digest(two, ["pkg"])
    (two / "pkg" / "sub" / "b.py").write_text("Y = 2\n")  # undone: the same again
    assert source_digest(one, ["pkg"]) == source_digest(two, ["pkg"])


def _user_agent(root: Path) -> None:
    (root / "uagents").mkdir(parents=True)
    (root / "uagents" / "__init__.py").write_text("")
    (root / "uagents" / "trend.py").write_text(
        "import json\nimport numpy as np\nfrom . import rules\nfrom sim.messages import LONG\n"
        "class Trend:\n    def on_bar(self, view):\n        return None\n")
    (root / "uagents" / "rules.py").write_text("from uhelp import EXIT\n")
    (root / "uhelp.py").write_text("EXIT = 10\n")


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _user_agent(tmp_path / "a")
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    for name in ("uagents", "uagents.trend", "uagents.rules", "uhelp"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path / "a"


def test_a_user_agent_counts_with_the_user_modules_it_imports(user_code: Path) -> None:
    agents = [{"kind": "uagents.trend:Trend", "params": {}},
              {"kind": "sma_crossover", "params": {"fast": 3, "slow": 9}}]
    assert agent_modules(agents) == ["uagents.trend", "sim.agents.sma"]
    modules = code_identity(agents).modules
    # numpy, json (installed, standard library) and sim (Quorum's own digest) are not here
    assert sorted(modules) == ["uagents", "uagents.rules", "uagents.trend", "uhelp"]
    before = code_identity(agents).code_id
    (user_code / "uhelp.py").write_text("EXIT = 20\n")  # two imports away
    assert code_identity(agents).code_id != before
    (user_code / "uhelp.py").write_text("EXIT = 10\n")
    assert code_identity(agents).code_id == before


def test_the_same_user_code_elsewhere_is_the_same_code(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    agents = [{"kind": "uagents.trend:Trend"}]
    seen = []
    for where in ("first", "second/checkout"):
        _user_agent(tmp_path / where)
        with monkeypatch.context() as m:
            m.syspath_prepend(str(tmp_path / where))
            for name in ("uagents", "uagents.trend", "uagents.rules", "uhelp"):
                m.delitem(sys.modules, name, raising=False)
            seen.append(code_identity(agents))
    assert seen[0] == seen[1] and len(seen[0].modules) == 4


def test_a_module_class_parameter_counts_too(user_code: Path) -> None:
    agents = [{"kind": "ml_logistic", "params": {"estimator": "uhelp:Model"}}]
    assert "uhelp" in code_identity(agents).modules


def test_built_in_agents_are_quorums_code() -> None:
    code = code_identity([{"kind": "sma_crossover"}, {"kind": "external"}])
    assert code == CodeIdentity(quorum_digest(), {})


def test_stale_reason_names_what_differs() -> None:
    now = CodeIdentity("q1", {"a": "1", "b": "2"})
    assert stale_reason({"quorum": "q1", "modules": {"a": "1", "b": "2"}}, now) is None
    assert stale_reason(None, now) == "code unknown (stored by an older Quorum)"
    assert stale_reason({"quorum": "q0", "modules": '{"a": "1", "b": "2"}'}, now) == (
        "Quorum's source differs")
    assert stale_reason({"quorum": "q1", "modules": {"a": "9"}}, now) == "modules a, b differ"
    assert stale_reason({"quorum": "q1", "modules": {"a": "1", "b": "3"}}, now) == (
        "module b differs")


def test_user_modules_skip_what_cannot_be_found() -> None:
    assert user_modules(["no_such_module_anywhere", "os", "numpy"]) == {}
